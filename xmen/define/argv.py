"""The command line every Experiment class gets: ``--update``, ``--execute``, ``--to_root``, ``--register``,
``--debug``... (:data:`experiment_parser`, which users may extend as in the original xmen)."""
from __future__ import annotations

import argparse
import copy
import os
import sys
from typing import Any

from xmen.errors import UsageError, XmenError
from xmen.store import files, naming


def parse_update(text: str) -> dict[str, Any]:
    """The ``--update`` YAML mapping (safe loader only: tags such as ``!!python/object`` are refused)."""
    try:
        data = files.load_yaml_text(text, "--update")
    except XmenError as exc:
        raise UsageError(str(exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"--update expects a YAML mapping such as '{{a: 1, b: x}}', got {text!r}")
    return data


#: The original xmen's (2021) short options of an experiment's command line, gone: each -> its long form here.
ORIGINAL_SHORT_OPTIONS = {"-u": "--update", "-x": "--execute", "-r": "--to_root", "-d": "--debug", "-p": "--purpose"}


class _ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: ...``) instead of usage + message, and the original's short options
    refused naming their long form (unless a user added that option to :data:`experiment_parser`)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(2, f"error: {message} (see --help)\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        bad = naming.not_utf8(sys.argv[1:] if args is None else list(args))
        if bad is not None:
            self.error(bad)
        for token in sys.argv[1:] if args is None else list(args):
            if token == "--":
                break
            short = token[:2]
            if short in ORIGINAL_SHORT_OPTIONS and not token.startswith("--") and short not in self._option_string_actions:
                self.error(f"{short} was the original xmen's short option: use {ORIGINAL_SHORT_OPTIONS[short]}")
        return super().parse_known_args(args, namespace)


def class_parser(cls: type, prog: str | None) -> argparse.ArgumentParser:
    """The command line of ``cls``: :data:`experiment_parser` (sharing its arguments, so arguments a user adds to
    it appear here too) with the class's name and documentation."""
    parser = copy.copy(experiment_parser)
    parser.prog = prog or os.path.basename(sys.argv[0] or "") or cls.__name__
    parser.description = cls.__doc__
    return parser


def _base_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="experiment", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--update", metavar="YAML_STRING",
        help="Update the parameters given by a yaml string, e.g. \"{a: x, b: 3}\". Applied before the other flags; "
        "can be combined with --to_root, --to_defaults, --register and --debug.",
    )
    parser.add_argument(
        "--execute", metavar="PARAMS",
        help="Execute the experiment from the given params.yml file. Cannot be called with --update.",
    )
    parser.add_argument(
        "--to_root", metavar="DIR",
        help="Generate a run script and defaults.yml file for interfacing with the experiment manager. If the "
        "directory does not exist then it is first created.",
    )
    parser.add_argument(
        "--to_defaults", metavar="DIR",
        help="Generate a defaults.yml file from the experiment defaults in the given directory.",
    )
    parser.add_argument(
        "--register", nargs=2, metavar=("ROOT", "NAME"),
        help="Register an experiment at root (1st positional) name (2nd positional).",
    )
    parser.add_argument("--purpose", metavar="TEXT", help="The purpose recorded by --register.")
    parser.add_argument(
        "--debug", nargs="?", const="", metavar="DIR",
        help="Run the experiment now in DIR, or in a fresh temporary folder if DIR is not given.",
    )
    parser.add_argument("--name", action="store_true", help="Print the name of the experiment class.")
    return parser


#: The parser every Experiment's command line is made from (``parse_args()`` uses a copy naming the class).
experiment_parser = _base_parser()


def debug_folder(value: str | None) -> str | None:
    """``--debug``'s folder; the original's boolean form ``--debug True`` / ``False`` means a temporary folder /
    no debug run (unless a folder of that name exists)."""
    if value is not None and value.lower() in ("true", "false") and not os.path.isdir(value):
        return "" if value.lower() == "true" else None
    return value
