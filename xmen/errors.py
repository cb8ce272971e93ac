"""One error family for xmen.

The library raises these; only the CLI edge turns them into a one-line message and an exit code.
"""
from __future__ import annotations


class XmenError(Exception):
    """Base of every error xmen reports to a user."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        # Messages are shown on one line: fold any newline a user value brought in.
        super().__init__(" ".join(str(message).split("\n")))
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(XmenError, ValueError):
    """The user asked for something malformed (bad YAML, unknown parameter, ...)."""

    exit_code = 2


class NotASetError(XmenError, FileNotFoundError):
    """A folder that should hold an experiment set does not."""


class SetExistsError(XmenError, FileExistsError):
    """Refusing to create a set over an existing one."""


class StateFileError(XmenError, OSError):
    """A YAML state file is missing, unreadable or corrupt."""


class LinkError(XmenError, OSError):
    """A symbolic link stands where xmen writes one of its own files: xmen never writes through one."""

    @classmethod
    def at(cls, path: object) -> "LinkError":
        """The one-line refusal naming the link at ``path``."""
        return cls(f"{path} is a symbolic link; xmen never writes its own files through one (move the link away)")


class ForeignFileError(XmenError, OSError):
    """A file xmen did not write stands at one of xmen's names, where a command would overwrite or delete it."""

    @classmethod
    def at(cls, path: object, why: str) -> "ForeignFileError":
        """The one-line refusal naming the file at ``path`` and why it is not xmen's."""
        return cls(f"{path}: {why}; xmen never overwrites or deletes a file it did not write (move it away)")


class ExperimentError(XmenError):
    """An experiment definition is invalid (parameter table, type mismatch, ...)."""
