"""Option values every verb checks the same way: names that are not empty, finite intervals, bounded counts.

Apart from ``_common`` because the bounds come from xmen.store.statecheck (which reads YAML): a command's module
imports this when the command runs, never the bare command line (import weight)."""
from __future__ import annotations

import math

import click

from xmen.store.statecheck import MAX_COUNT, MAX_SECONDS


class Name(click.ParamType):
    """A name (a parameter, a message, a column, a profile): an empty one (``"$UNSET"``, ``--by ""``, ``--by ,``)
    is an error, never "none given" or "every one"."""

    name = "name"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        if isinstance(value, str) and not value.replace(",", " ").strip():
            what = (param.metavar if param is not None and param.metavar else "NAME")
            self.fail(f"empty {what} (an unset variable?)", param, ctx)
        return value


class Seconds(click.FloatRange):
    """A finite number of seconds from ``least`` to statecheck.MAX_SECONDS: click's FloatRange lets ``nan``
    through every bound, and ``inf`` would overflow the sleep."""

    def __init__(self, least: float) -> None:
        super().__init__(min=least, max=MAX_SECONDS)

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


def count(least: int) -> click.IntRange:
    """A whole number from ``least`` to statecheck.MAX_COUNT, the bound of every count a command takes."""
    return click.IntRange(min=least, max=MAX_COUNT)


NAME = Name()
