"""``xmen compare``: the click layer over :func:`xmen.compare.compare` (select like ``xmen list``, group, print)."""
from __future__ import annotations

import csv
import io
import math
from typing import Any

import click

from xmen.store.terminal import plain
from xmen.look import listing
from xmen.store import status as st
from xmen.errors import UsageError
from xmen.cli._common import GLOB
from xmen.cli._values import NAME
from xmen.look.compare import compare_rows

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _names(values: tuple[str, ...]) -> list[str]:
    """Repeated and comma-separated names, in order (``--by lr,model`` is ``--by lr --by model``)."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


@click.command("compare", context_settings=CONTEXT)
@click.argument("globs", nargs=-1, metavar="[GLOB]...", type=GLOB)
@click.option("-b", "--by", "by", multiple=True, metavar="PARAM", type=NAME,
              help="Group by these parameters (repeatable or comma-separated); the rest, such as seeds, is averaged "
              "over. Without --by, all experiments form one group.")
@click.option("-m", "--metric", "metrics", multiple=True, metavar="MESSAGE", type=NAME,
              help="Summarise these messages (repeatable or comma-separated; default: every numeric message).")
@click.option("-p", "--param", "params", multiple=True, metavar="PREDICATE",
              help="Only experiments passing a predicate, as in xmen list ('seed<3', 'val_acc>0.9'). Repeatable.")
@click.option("-n", "--type", "type_", metavar="TYPE", type=NAME, help="Only experiments whose type matches TYPE (glob or regex).")
@click.option("--status-is", "status_is", multiple=True, metavar="STATUS",
              type=click.Choice(st.ALL, case_sensitive=False),
              help="Only experiments with this status (e.g. finished). Repeatable.")
@click.option("--sort", "sort", metavar="COLUMN", type=NAME,
              help="Sort the groups by a column of the table, e.g. 'val_acc mean'; '-COLUMN' from largest.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV on stdout and nothing else.")
def compare_command(
    globs: tuple[str, ...],
    by: tuple[str, ...],
    metrics: tuple[str, ...],
    params: tuple[str, ...],
    type_: str | None,
    status_is: tuple[str, ...],
    sort: str | None,
    as_csv: bool,
) -> None:
    """Compare settings: group the experiments matching GLOBs (default: every set below the current folder) by
    parameters and show count, mean, std, min and max of each metric (the latest value each experiment sent).

    \b
    xmen compare --by lr                      # each lr, averaged over seeds and repeats
    xmen compare "sweep/*" --by lr,model -m val_acc --status-is finished --csv
    """
    result = listing.collect(list(globs) or None, params=params, type=type_, status=[s.lower() for s in status_is])
    for path, reason in result.problems:
        click.echo(plain(f"Warning: skipped {path}: {reason}"), err=True)
    if not result.rows:
        click.echo(f"No experiments found which match glob pattern {', '.join(result.patterns)}.", err=as_csv)
        return
    labels, columns = compare_rows(result.rows, _names(by), _names(metrics) or None)
    if sort:
        columns = _sorted(labels, columns, sort)
    if as_csv:
        click.echo(_csv(labels, columns), nl=False)
    else:
        click.echo(listing.render_table(labels, [[_cell(v) for v in column] for column in columns]))


def _sorted(labels: list[str], columns: list[list[Any]], key: str) -> list[list[Any]]:
    """The groups ordered by one column of the comparison ('-COLUMN' from largest), missing values last."""
    name, descending = (key[1:], True) if key.startswith("-") else (key, False)
    if name not in labels:
        raise UsageError(f"cannot sort by {name!r}: no such column (columns: {', '.join(labels)})")
    keys = [listing.sort_value(v) for v in columns[labels.index(name)]]
    present = [i for i, k in enumerate(keys) if k is not None]
    present.sort(key=keys.__getitem__, reverse=descending)
    order = present + [i for i, k in enumerate(keys) if k is None]
    return [[column[i] for i in order] for column in columns]


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _cell(value: Any) -> str:
    """Table text of a value: numbers to 6 significant digits, as pandas prints them."""
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _csv(labels: list[str], columns: list[list[Any]]) -> str:
    """CSV of the comparison (no index column; empty cells for missing values, numbers in full)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(labels)
    for i in range(len(columns[0]) if columns else 0):
        writer.writerow(["" if not _present(column[i]) else column[i] for column in columns])
    return out.getvalue()
