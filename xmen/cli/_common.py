"""What the commands share: click's context settings, failing with one line, asking before destroying (light:
the command line imports it before it knows which command runs)."""
from __future__ import annotations

import sys
from typing import NoReturn

import click

from xmen.errors import XmenError
from xmen.store.terminal import plain

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def say(message: str, err: bool = False, nl: bool = True) -> None:
    """``click.echo`` of a line that holds what a user or an experiment wrote (names, reasons, paths, log lines):
    without terminal escapes (xmen.store.terminal.plain)."""
    click.echo(plain(message), err=err, nl=nl)


class Folder(click.Path):
    """A folder argument or ``-r/--root`` value: an empty one (``"$UNSET"``) is an error, never the current folder
    (``.`` is the explicit way to name it)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(file_okay=False, **kwargs)  # type: ignore[arg-type]

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        if isinstance(value, str) and not value.strip():
            self.fail("empty folder (an unset variable?); use . for the current folder", param, ctx)
        return super().convert(value, param, ctx)


class Glob(click.ParamType):
    """A GLOB of experiments or sets: an empty one (``"$UNSET"``) is an error, never "everything here"."""

    name = "glob"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        if isinstance(value, str) and not value.strip():
            self.fail("empty GLOB (an unset variable?); quote '*' to mean every one", param, ctx)
        return value


FOLDER = Folder()
GLOB = Glob()


def fail(message: str, code: int = 1) -> NoReturn:
    raise XmenError(message, exit_code=code)


def stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive action; refuse when nobody can answer."""
    if yes:
        return
    if not stdin_is_tty():
        fail("refusing without confirmation: stdin is not a terminal (pass -y to confirm)")
    if not click.confirm(question, default=False):
        fail("aborted", code=1)
