"""``xmen compare``: the click layer over :func:`xmen.compare.compare` (select like ``xmen list``, group, print)."""
from __future__ import annotations

import click

from . import listing
from . import status as st

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _names(values: tuple[str, ...]) -> list[str]:
    """Repeated and comma-separated names, in order (``--by lr,model`` is ``--by lr --by model``)."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


@click.command("compare", context_settings=CONTEXT)
@click.argument("globs", nargs=-1, metavar="[GLOB]...")
@click.option("-b", "--by", "by", multiple=True, metavar="PARAM",
              help="Group by these parameters (repeatable or comma-separated); the rest, such as seeds, is averaged "
              "over. Without --by, all experiments form one group.")
@click.option("-m", "--metric", "metrics", multiple=True, metavar="MESSAGE",
              help="Summarise these messages (repeatable or comma-separated; default: every numeric message).")
@click.option("-p", "--param", "params", multiple=True, metavar="PREDICATE",
              help="Only experiments passing a predicate, as in xmen list ('seed<3', 'val_acc>0.9'). Repeatable.")
@click.option("-n", "--type", "type_", metavar="TYPE", help="Only experiments whose type matches TYPE (glob or regex).")
@click.option("--status-is", "status_is", multiple=True, metavar="STATUS",
              type=click.Choice(st.ALL, case_sensitive=False),
              help="Only experiments with this status (e.g. finished). Repeatable.")
@click.option("--sort", "sort", metavar="COLUMN",
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
    from .compare import compare
    from .errors import UsageError

    frame = listing.to_dataframe(
        list(globs) or None, params=params, type=type_, status=[s.lower() for s in status_is]
    )
    if frame.empty:
        click.echo("No experiments found which match glob pattern "
                   f"{', '.join(globs) or '.'}.", err=as_csv)
        return
    table = compare(frame, _names(by), _names(metrics) or None)
    if sort:
        column, descending = (sort[1:], True) if sort.startswith("-") else (sort, False)
        if column not in table.columns:
            raise UsageError(f"cannot sort by {column!r}: no such column (columns: {', '.join(table.columns)})")
        table = table.sort_values(column, ascending=not descending, na_position="last", kind="stable")
    if as_csv:
        click.echo(table.to_csv(index=False), nl=False)
    else:
        click.echo(table.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
