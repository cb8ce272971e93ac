"""Command-line forms of the original xmen that click does not have: an option taking several values.

The original's ``xmen list -p a b`` (argparse ``nargs='*'``) gave ``-p`` both values; click gives an option one.
``SeveralValuesCommand`` rewrites ``-p a b`` to ``-p a -p b`` before click parses it: every token after the
option's first value, up to the next token starting with ``-``, is one more value of that option.
"""
from __future__ import annotations

from typing import Sequence

import click


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
        return super().parse_args(ctx, spread_values(args, self.several_values))
