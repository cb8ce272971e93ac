"""``xmen plot`` and ``xmen report``: the click layer over :mod:`xmen.look.plot` and :mod:`xmen.look.report`."""
from __future__ import annotations

import os

import click

from xmen.store.terminal import plain
from xmen.errors import UsageError
from xmen.cli._common import GLOB
from xmen.cli._values import NAME
from xmen.look import plot, report
from xmen.look.listing import to_dataframe

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _names(values: tuple[str, ...]) -> list[str]:
    """``--by lr --by wd`` and ``--by lr,wd`` alike."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


@click.command("plot", context_settings=CONTEXT)
@click.argument("args", nargs=-1, required=True, metavar="[GLOB]... METRIC")
@click.option("--by", multiple=True, metavar="PARAM[,PARAM]", type=NAME,
              help="One curve per group of these parameters (mean, with a band of one std), not per experiment.")
@click.option("-x", "--x", "x_axis", type=click.Choice(["step", "time"]), default="step", show_default=True,
              help="Against the step given to message() (else its position), or seconds since the first message.")
@click.option("-p", "--param", "params", multiple=True, metavar="PREDICATE",
              help="Only experiments passing a predicate, as in xmen list ('lr<0.01'). Repeatable.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE.png|FILE.svg",
              help="Where to write the plot (default: METRIC.png in the current folder).")
def plot_command(args, by, x_axis, params, output) -> None:
    """Plot METRIC against step or time for the experiments matching GLOBs (default: every set below here).

    \b
    xmen plot loss                          one curve per experiment, loss.png
    xmen plot "~/exps/*" val_acc --by lr    one curve per lr, mean and std over the rest (seeds)
    xmen plot loss -x time -o loss.svg      against time, as SVG
    """
    *globs, metric = args
    for glob in globs:
        GLOB.convert(glob, None, None)
    output = output or f"{metric}.png"
    plot.output_format(output)
    plot.pyplot()  # a missing matplotlib is an error before anything is read
    groups = _names(by)
    history = to_dataframe(globs or None, history=True, params=params)
    experiments = to_dataframe(globs or None, params=[*params, ".*"]) if groups else None
    drawn = plot.plot(history, metric, output, x=x_axis, by=groups, experiments=experiments)
    click.echo(f"Wrote {os.path.abspath(output)} ({len(drawn)} curve(s) of {metric})", err=True)


@click.command("report", context_settings=CONTEXT)
@click.argument("sets", nargs=-1, metavar="[SET]...", type=GLOB)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="report.html", show_default=True,
              help="The HTML file to write.")
@click.option("--by", multiple=True, metavar="PARAM[,PARAM]", type=NAME,
              help="Compare and plot groups of these parameters (default: every varying parameter but seeds).")
@click.option("-m", "--metric", "metrics", multiple=True, metavar="NAME", type=NAME,
              help="Compare and plot these metrics only (default: every numeric message). Repeatable.")
@click.option("-x", "--x", "x_axis", type=click.Choice(["step", "time"]), default="step", show_default=True,
              help="x axis of the plots.")
@click.option("--title", help="Title of the page (default: the sets' names).")
def report_command(sets, output, by, metrics, x_axis, title) -> None:
    """Write one self-contained HTML page about SETs (default: every set below here): notes, status, failures
    and why, the comparison, metric plots and every experiment with parameters, metrics and provenance.

    The page needs no server and loads nothing from the network: mail it, archive it, open it anywhere.
    """
    if not output.lower().endswith((".html", ".htm")):
        raise UsageError(f"the report is HTML: name it .html, not {output!r}")
    data = report.write_report(
        output, list(sets) or None, by=_names(by) or None, metrics=list(metrics) or None, x=x_axis, title=title
    )
    for path, reason in data.problems:
        click.echo(plain(f"Warning: skipped {path}: {reason}"), err=True)
    if data.plot_note:
        click.echo(data.plot_note, err=True)
    click.echo(
        f"Wrote {os.path.abspath(output)} ({len(data.experiments)} experiment(s), {len(data.plots)} plot(s))", err=True
    )
