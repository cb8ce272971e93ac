"""``xmen list``: the click layer over :mod:`xmen.listing` (parse options, call ``collect``, print).

Data goes to stdout and warnings to stderr, so ``xmen list --csv > runs.csv`` stays a clean CSV.
"""
from __future__ import annotations

import glob
import os
import sys
from typing import Sequence

import click

from xmen.store.terminal import plain
from xmen.look import listing
from xmen.store import status as st
from xmen.cli.compat import SeveralValuesCommand
from xmen.cli._common import GLOB
from xmen.cli._values import NAME, Seconds, count
from xmen.errors import UsageError, XmenError
from xmen.look.watch import watch as redraw

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _no_experiments(patterns: Sequence[str], params: Sequence[str], type_: str | None, statuses: Sequence[str]) -> str:
    """The tutorial's message, naming every filter in force."""
    param_text = ", ".join(params) if params else "None"
    if statuses:
        filters = f"parameter filter = {param_text}, type filter = {type_} and status filter = {', '.join(statuses)}"
    else:
        filters = f"parameter filter = {param_text} and type filter = {type_}"
    return f"No experiments found which match glob pattern {', '.join(patterns)}. With {filters}."


def _refuse_meta_regex(globs: Sequence[str]) -> None:
    """With ``-M``: a GLOB that names no path is the original's ``-M REGEX`` (2021: ``-M "system_.*"``), which
    chose the groups of meta information to show; refused with our form instead of listing nothing."""
    for pattern in globs:
        if not glob.glob(os.path.expanduser(pattern)):
            raise UsageError(
                f"no folder matches {pattern!r}: -M takes no REGEX here (the original xmen's -M {pattern!r}); "
                "xmen list -M shows mac, host, user and home, the meta xmen records (-v shows every column)"
            )


@click.command("list", context_settings=CONTEXT, cls=SeveralValuesCommand)
@click.argument("globs", nargs=-1, metavar="[GLOB]...", type=GLOB)
@click.option(
    "-v", "--verbose", is_flag=True, help="Show every column: dates, type, purpose, meta, git, parameters, messages."
)
@click.option(
    "-p", "--param", "params", multiple=True, metavar="REGEX_OR_PREDICATE",
    help="Show parameters matching REGEX ('w_.*'), or filter by a predicate ('lr<0.01', '1<a<=2', 'b==cat', or "
    "the original's 'a.*==cat' with a regex name) on a parameter or, when no parameter has that name, a message "
    "('val_acc>0.957'; 'NAME [message]' forces the message). Repeatable; takes every value up to the next option "
    "(-p a b), as the original did: put GLOBs before -p.",
)
@click.option(
    "--sort", "sort", multiple=True, metavar="KEY", type=NAME,
    help="Sort by a column, parameter or message (looked up in that order); '-KEY' (or --sort=-KEY) sorts from "
    "largest to smallest. Repeatable: the first KEY decides first. Experiments without KEY come last.",
)
@click.option("--desc", is_flag=True, help="Sort from largest to smallest (every --sort KEY without '-').")
@click.option("-n", "--type", "type_", metavar="TYPE", type=NAME, help="Only experiments whose type matches TYPE (glob or regex).")
@click.option("-s", "--status", "show_status", is_flag=True, help="Show the status column.")
@click.option(
    "--status-is", "status_is", multiple=True, metavar="STATUS",
    type=click.Choice(st.ALL, case_sensitive=False),
    help=f"Only experiments with this status ({', '.join(st.ALL)}). Repeatable.",
)
@click.option(
    "-m", "--messages", "messages", is_flag=False, flag_value=".*", default=None, metavar="[REGEX]",
    help="Show messages (those matching REGEX). Takes the next argument as REGEX, so put GLOBs first.",
)
@click.option("-d", "--created", is_flag=True, help="Show when each experiment was created.")
@click.option("-g", "--git", is_flag=True, help="Show the git commit of each experiment.")
@click.option("-M", "--meta", is_flag=True, help="Show mac, host, user and home.")
@click.option("--slurm", is_flag=True,
              help="Show each experiment's last SLURM job: id, state, node, elapsed time and MaxRSS (from sacct).")
@click.option("-P", "--purpose", is_flag=True, help="Show each experiment's purpose.")
@click.option("-l", "--list", "notebook", is_flag=True, help="Show each set with its experiments, purpose and notes.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV on stdout and nothing else (roots relative).")
@click.option("--max_width", "--max-width", "max_width", type=count(4), metavar="N",
              help="Cap each column at N characters (longer values end in '...').")
@click.option("--max_rows", "--max-rows", "max_rows", type=count(1), metavar="N",
              help="Show only the first and last rows when there are more than N.")
@click.option("--watch", type=Seconds(0.1), is_flag=False, flag_value=2.0, default=None,
              metavar="[SECONDS]", help="Redraw every SECONDS (default 2) until Ctrl-C. Put GLOBs first.")
def list_command(
    globs: tuple[str, ...],
    verbose: bool,
    params: tuple[str, ...],
    sort: tuple[str, ...],
    desc: bool,
    type_: str | None,
    show_status: bool,
    status_is: tuple[str, ...],
    messages: str | None,
    created: bool,
    git: bool,
    meta: bool,
    slurm: bool,
    purpose: bool,
    notebook: bool,
    as_csv: bool,
    max_width: int | None,
    max_rows: int | None,
    watch: float | None = None,
) -> None:
    """List experiments matching GLOBs (default: every set below the current folder).

    A GLOB matches set folders (listing every set below them) and ROOT/NAME experiment paths; relative GLOBs are
    relative to the current folder. Without column options the table shows root, name and status, with the
    reason of each failure (error) and the experiments' notes when there are any. Tables show Unix times of time
    messages as dates; --csv keeps every value as recorded.
    """
    if watch is not None:
        ctx = click.get_current_context()
        once = lambda: ctx.invoke(list_command, **{**ctx.params, "watch": None})  # noqa: E731
        return redraw(once, watch, "xmen " + " ".join(sys.argv[1:]))
    with listing.no_gc():  # a short-lived command building 100k rows: cyclic GC passes only cost time
        if notebook and as_csv:
            raise UsageError("-l/--list and --csv cannot be combined")
        statuses = [s.lower() for s in status_is]
        if meta:
            _refuse_meta_regex(globs)
        result = listing.collect(list(globs) or None, params=params, type=type_, status=statuses)
        if sort:
            listing.sort_rows(result.rows, sort, descending=desc)
        # Check the column options before printing anything (a bad -p/-m regex is a usage error, not a warning).
        labels, columns = listing.table_columns(
            result,
            verbose=verbose,
            status=True if show_status else None,
            created=created,
            git=git,
            meta=meta,
            slurm=slurm,
            purpose=purpose,
            messages=messages,
            params=params,
            relative_roots=True,
        )
        for path, reason in result.problems:
            click.echo(plain(f"Warning: skipped {path}: {reason}"), err=True)

        if notebook:
            text = listing.render_notebook(result)
            if text:
                click.echo(text)
                return
        elif result.rows:
            if as_csv:
                text = listing.render_csv(labels, columns)
                # Every value as recorded into a file or pipe; on a terminal, without its escapes.
                click.echo(plain(text) if click.get_text_stream("stdout").isatty() else text, nl=False)
            else:
                shown = listing.readable(labels, columns)
                table = listing.render_table(labels, shown, max_width=max_width, max_rows=max_rows)
                prefix = listing.common_root(row["root"] for row in result.rows)
                click.echo(f"{table}\n\nRoots relative to: {prefix}")
            return
        message = _no_experiments(result.patterns, params, type_, statuses)
        click.echo(plain(message), err=as_csv)  # keep --csv output pure: an empty stdout is an empty CSV


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``list`` alone (``python -m xmen.cli_list``), errors as one ``Error: ...`` line like ``xmen`` does."""
    try:
        list_command.main(args=list(argv) if argv is not None else None, prog_name="xmen list", standalone_mode=False)
    except XmenError as exc:
        click.echo(f"Error: {exc}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"Error: {' '.join(exc.format_message().split())}", err=True)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
