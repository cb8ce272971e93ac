"""Command-line forms of the original xmen: an option taking several values, and the names that are gone.

The original's ``xmen list -p a b`` (argparse ``nargs='*'``) gave ``-p`` both values; click gives an option one.
``SeveralValuesCommand`` rewrites ``-p a b`` to ``-p a -p b`` before click parses it: every token after the
option's first value, up to the next token starting with ``-``, is one more value of that option.

The 2020/2021 commands and options that are gone (:data:`GONE_COMMANDS`, :data:`GONE_OPTIONS`) are refused with one
line naming the form that replaced them, never taken for something else.
"""
from __future__ import annotations

from typing import Sequence

import click

from xmen.errors import UsageError

_CLASSES = ("register a class with `xmen config --add SCRIPT.py`, list them with `xmen config --list`, make a set of "
            "one with `xmen init -n NAME` and run it with `xmen run`; a class's own command line is "
            "`python SCRIPT.py --help` (or `python -m xmen.experiment SCRIPT.py:NAME --help`)")

#: The original's commands that are gone: name -> what replaced them.
GONE_COMMANDS = {
    "python": f"`xmen python` was the original xmen's (2021): {_CLASSES}",
    "experiments": f"`xmen experiments` was the original xmen's: {_CLASSES}",
    "link": "`xmen link` was the original xmen's: it is `xmen register` now (`xmen register \"{lr: 0.1 | 0.01}\"`, "
            "with -u YAML, -x N repeats and -n NAME as before)",
}

#: The original's options that are gone, per command: option -> what replaced it.
GONE_OPTIONS = {
    "list": {
        "-f": "`xmen list -f FILTER` was the original xmen's: filter with -p PREDICATE (-p \"a==cat\", -p "
              "\"lr<0.01\", a regex name as in -p \"a.*==cat\") and --status-is STATUS",
        "--filters": "`xmen list --filters` was the original xmen's: filter with -p PREDICATE (-p \"a==cat\") and "
                     "--status-is STATUS",
    },
}


def refuse_gone_command(name: str) -> None:
    """UsageError naming the new form when ``name`` is one of the original's commands that are gone."""
    if name in GONE_COMMANDS:
        raise UsageError(GONE_COMMANDS[name])


def refuse_gone_options(command: str, args: Sequence[str]) -> None:
    """UsageError naming the new form for the first of the original's gone options of ``command`` in ``args``
    (before any ``--``; ``-fX`` and ``--filters=X`` count)."""
    gone = GONE_OPTIONS.get(command, {})
    for token in args:
        if token == "--":
            return
        option = token.split("=", 1)[0] if token.startswith("--") else token[:2]
        if token.startswith("-") and option in gone:
            raise UsageError(gone[option])


def spread_values(args: Sequence[str], options: Sequence[str]) -> list[str]:
    """``args`` with each run of values after one of ``options`` given that option once per value."""
    out: list[str] = []
    current: str | None = None
    index = 0
    while index < len(args):
        token = args[index]
        if token == "--":
            out.extend(args[index:])
            break
        if token in options and index + 1 < len(args):
            out += [token, args[index + 1]]
            current = token
            index += 2
            continue
        if current is not None and not token.startswith("-"):
            out += [current, token]
        else:
            current = None
            out.append(token)
        index += 1
    return out


class SeveralValuesCommand(click.Command):
    """A click command whose ``-p``/``--param`` take several values, as the original xmen's did."""

    several_values = ("-p", "--param")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        refuse_gone_options(self.name or "", args)
        return super().parse_args(ctx, spread_values(args, self.several_values))
