"""``xmen report``: one self-contained HTML page answering "which setting worked, how did the metrics go, what
failed and why" for one or more sets.

The page holds the sets' notes, a status summary, the failures with their reasons, the comparison table (metrics
over the groups of :func:`xmen.compare.compare`), the metric plots (PNG as ``data:`` URIs) and the experiments
table with parameters, latest metrics and provenance. It needs no server and loads nothing from the network (the
CSS is inline, there is no script), so it can be mailed, archived with the results or opened on a cluster's login
node. Every user string is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from xmen._version import __version__
from xmen.store import status as st
from xmen.errors import StateFileError, XmenError
from xmen.look import compare as comparing, listing, plot
from xmen.look.listing import readable
from xmen.store import files
from xmen.store.files import write_text_atomic
from xmen.store.layout import PARAMS_FILE, RUN_LOG
from xmen.store.provenance import parse_time
from xmen.store.terminal import cut, plain

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from xmen.look.listing import SetInfo

#: At most this many metrics get a plot (the first ones sent); ``--metric`` chooses others.
MAX_PLOTS = 12
#: Parameters not grouped by default: the ones averaged over (seeds, repeats).
AVERAGED_OVER = re.compile(r"(^|_)(seed|repeat|rep|trial|run)s?($|_)", re.IGNORECASE)
_FAILED = set(st.FAILED) | {st.CORRUPT}


@dataclass
class Plot:
    metric: str
    png: bytes
    caption: str


@dataclass
class ReportData:
    """Everything the page shows, gathered before any HTML is written (so a failure writes nothing)."""

    title: str
    sets: list["SetInfo"]
    experiments: "pandas.DataFrame"
    params: list[str]
    metrics: list[str]
    details: dict[tuple[str, str], dict[str, Any]]
    by: list[str]
    comparison: "pandas.DataFrame | None"
    plots: list[Plot] = field(default_factory=list)
    plot_note: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)
    generated: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))


# ---------------------------------------------------------------------------------------------- gathering
def default_by(experiments: "pandas.DataFrame", params: Sequence[str]) -> list[str]:
    """Parameters that vary across the experiments, except seeds and repeats (which the comparison averages)."""
    varying = []
    for name in params:
        if AVERAGED_OVER.search(name):
            continue
        if len({repr(v) for v in experiments[name]}) > 1:
            varying.append(name)
    return varying


def _details(root: str, name: str) -> dict[str, Any]:
    """What params.yml says beyond parameters and messages: failure reason, notes and provenance."""
    try:
        params = files.read_yaml(os.path.join(root, name, PARAMS_FILE))
    except StateFileError as exc:
        return {"error": str(exc)}
    run = params.get("_run") if isinstance(params.get("_run"), dict) else {}
    version = params.get("_version") if isinstance(params.get("_version"), dict) else {}
    git = version.get("git") if isinstance(version.get("git"), dict) else {}
    meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
    notes = params.get("_notes")
    return {
        "error": params.get("_error"),
        "notes": [str(n) for n in notes] if isinstance(notes, list) else ([str(notes)] if notes else []),
        "created": params.get("_created"),
        "host": run.get("host") or meta.get("host"),
        "started": run.get("started"),
        "ended": run.get("ended"),
        "attempt": run.get("attempt"),
        "slurm job": run.get("slurm_job_id"),
        "commit": git.get("commit"),
        "class": version.get("class"),
    }


def gather(
    globs: Sequence[str] | None = None,
    *,
    by: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    x: str = "step",
    title: str | None = None,
    plots: bool = True,
) -> ReportData:
    """Read the sets matching ``globs`` (default: every set below the current folder) for the report.

    ``by`` defaults to :func:`default_by`; ``metrics`` (the compared and plotted ones) to every numeric message.
    Without matplotlib the report has no plots and says why.
    """
    result = listing.collect(list(globs) if globs else None)
    if not result.rows:
        where = ", ".join(result.patterns)
        raise XmenError(f"no experiments to report in {where}")
    experiments = listing.to_dataframe(list(globs) if globs else None)
    info = experiments.attrs.get("xmen", {})
    params = list(info.get("params", result.param_names()))
    chosen_by = list(by) if by else default_by(experiments, params)
    chosen_metrics = list(metrics) if metrics else comparing.metric_columns(experiments, chosen_by)
    comparison = comparing.compare(experiments, chosen_by, chosen_metrics) if chosen_metrics else None
    details = {(r, n): _details(r, n) for r, n in zip(experiments["root"], experiments["name"])}

    data = ReportData(
        title=title or "xmen report: " + ", ".join(os.path.basename(s.root) or s.root for s in result.sets),
        sets=result.sets,
        experiments=experiments,
        params=params,
        metrics=[m for m in info.get("messages", result.message_names())],
        details=details,
        by=chosen_by,
        comparison=comparison,
        problems=result.problems,
    )
    if plots:
        _add_plots(data, globs, metrics, x)
    return data


def _add_plots(data: ReportData, globs: Sequence[str] | None, metrics: Sequence[str] | None, x: str) -> None:
    try:
        plot.pyplot()
    except XmenError as exc:
        data.plot_note = f"No plots: {exc}."
        return
    wanted = "|".join(re.escape(m) for m in metrics) if metrics else None
    history = listing.to_dataframe(list(globs) if globs else None, history=True, messages=wanted)
    names = list(metrics) if metrics else plot.metric_names(history)
    if not names:
        data.plot_note = "No plots: no experiment has a metric history yet (see Experiment.message)."
        return
    if len(names) > MAX_PLOTS:
        data.plot_note = f"Plotted the first {MAX_PLOTS} of {len(names)} metrics (choose others with --metric)."
        names = names[:MAX_PLOTS]
    grouping = f", mean and one std over each group of {', '.join(data.by)}" if data.by else ""
    for metric in names:
        drawn = plot.curves(history, metric, x=x, by=data.by, experiments=data.experiments)
        if not drawn:
            continue
        caption = f"{metric} against {'step' if x == 'step' else 'time'}{grouping}"
        data.plots.append(Plot(metric, plot.render(drawn, metric, x=x, fmt="png"), caption))


# ---------------------------------------------------------------------------------------------- rendering
def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_value(value: Any, none: str = "", exact: bool = False) -> str:
    """A cell's text: numbers with 4 significant digits (``exact``: as written, for parameters), xmen timestamps
    as dates, a missing value (NaN) empty and a YAML null as ``none``. (Unix times in time-named message columns
    become dates before, by :func:`xmen.listing.readable`, as in ``xmen list``.)"""
    if value is None:
        return none
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (bool, str)) or not _is_number(value):
        if isinstance(value, str) and parse_time(value) is not None:
            return parse_time(value).strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[union-attr]
        return str(value)
    number = float(value)
    if number != number:
        return ""
    if _is_integer(value):
        return str(int(value))
    return str(number) if exact else f"{number:.4g}"


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    return getattr(getattr(value, "dtype", None), "kind", None) in ("i", "u", "f")


def _is_integer(value: Any) -> bool:
    if isinstance(value, int):
        return True
    return getattr(getattr(value, "dtype", None), "kind", None) in ("i", "u")


def _e(value: Any, none: str = "", exact: bool = False) -> str:
    """A cell's HTML: the value's text without terminal escapes, cut to CELL_LIMIT, escaped."""
    return html.escape(cut(plain(format_value(value, none, exact))), quote=True)


def _status_class(status: Any) -> str:
    text = str(status)
    if text == st.FINISHED:
        return "ok"
    if text in _FAILED:
        return "bad"
    if text == st.RUNNING:
        return "live"
    return "idle"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """An HTML table from already-escaped cells."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _sets_html(data: ReportData) -> str:
    parts = []
    for info in data.sets:
        notes = "".join(f"<li>{_e(n)}</li>" for n in info.notes) or "<li class='muted'>no notes</li>"
        parts.append(
            f"<div class='set'><h3>{_e(info.root)}</h3>"
            f"<p>Type: {_e(info.type)} &middot; created {_e(info.created)} &middot; "
            f"{len(info.names)} experiment(s)</p>"
            + (f"<p>Purpose: {_e(info.purpose)}</p>" if not _is_missing(info.purpose) and info.purpose else "")
            + f"<h4>Notes</h4><ul class='notes'>{notes}</ul></div>"
        )
    return "".join(parts)


def _summary_html(data: ReportData) -> str:
    counts: dict[str, int] = {}
    for status in data.experiments["status"]:
        counts[str(status)] = counts.get(str(status), 0) + 1
    cells = "".join(
        f"<span class='badge {_status_class(s)}'>{html.escape(s)}: {n}</span>" for s, n in sorted(counts.items())
    )
    return f"<p class='summary'>{len(data.experiments)} experiment(s): {cells}</p>"


def _failures_html(data: ReportData) -> str:
    rows = []
    for root, name, status in zip(data.experiments["root"], data.experiments["name"], data.experiments["status"]):
        if str(status) not in _FAILED:
            continue
        detail = data.details.get((root, name), {})
        log = os.path.join(root, name, RUN_LOG)
        rows.append([_e(name), f"<span class='badge bad'>{_e(status)}</span>", _e(detail.get("error")), _e(log)])
    if not rows:
        return "<p class='muted'>No experiment failed.</p>"
    return _table(["experiment", "status", "reason", "log"], rows, "failures")


def _comparison_html(data: ReportData) -> str:
    frame = data.comparison
    if frame is None or frame.empty:
        return "<p class='muted'>No numeric metrics to compare (experiments send them with message()).</p>"
    header = [html.escape(str(c)) for c in frame.columns]
    exact = set(data.by)
    rows = [[_e(v, "None", c in exact) for c, v in zip(frame.columns, row)] for row in frame.itertuples(index=False)]
    grouped = ", ".join(data.by) if data.by else "nothing (all experiments in one group)"
    return (
        f"<p>Grouped by {html.escape(grouped)}; every other parameter (seeds, repeats) is averaged over. "
        "std is the sample standard deviation.</p>" + _table(header, rows, "comparison")
    )


def _plots_html(data: ReportData) -> str:
    parts = []
    for item in data.plots:
        encoded = base64.b64encode(item.png).decode("ascii")
        parts.append(
            f"<figure><img alt='{_e(item.metric)}' src='data:image/png;base64,{encoded}'>"
            f"<figcaption>{_e(item.caption)}</figcaption></figure>"
        )
    note = f"<p class='muted'>{_e(data.plot_note)}</p>" if data.plot_note else ""
    return note + "".join(parts)


def _short(key: str, value: Any) -> Any:
    """A commit as its first 10 characters, like git's short form (the full one is in params.yml)."""
    return value[:10] if key == "commit" and isinstance(value, str) else value


_PROVENANCE = ("created", "host", "started", "ended", "attempt", "slurm job", "commit", "class")


def _experiments_html(data: ReportData) -> str:
    frame = data.experiments
    several = len({str(r) for r in frame["root"]}) > 1
    shown_provenance = [
        k for k in _PROVENANCE if any(not _is_missing(d.get(k)) and d.get(k) != "" for d in data.details.values())
    ]
    has_notes = any(d.get("notes") for d in data.details.values())
    header = (["set"] if several else []) + ["experiment", "status", "reason"] + (["notes"] if has_notes else [])
    header += data.params + data.metrics + shown_provenance
    params = [frame[c].tolist() for c in data.params]
    metrics = readable(data.metrics, [frame[c].tolist() for c in data.metrics])  # Unix times as dates
    rows = []
    for i, (root, name, status) in enumerate(zip(frame["root"], frame["name"], frame["status"])):
        detail = data.details.get((root, name), {})
        row = [_e(os.path.basename(str(root)))] if several else []
        row += [_e(name), f"<span class='badge {_status_class(status)}'>{_e(status)}</span>", _e(detail.get("error"))]
        if has_notes:
            row.append("<br>".join(_e(n) for n in detail.get("notes") or []))
        row += [_e(column[i], "None", exact=True) for column in params]
        row += [_e(column[i]) for column in metrics]
        row += [_e(_short(k, detail.get(k))) for k in shown_provenance]
        rows.append(row)
    header_html = [html.escape(h) for h in header]
    legend = (
        f"<p class='muted'>Parameters: {html.escape(', '.join(data.params) or 'none')}. "
        f"Latest metrics: {html.escape(', '.join(data.metrics) or 'none')}.</p>"
    )
    return legend + _table(header_html, rows, "experiments")


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2em;
       color: #1d2430; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #dde2ea; }
h3 { margin-bottom: 0.2em; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 1em; }
.muted { color: #667085; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 13px; }
th, td { border: 1px solid #dde2ea; padding: 3px 8px; text-align: left; vertical-align: top; white-space: nowrap; }
th { background: #f3f5f9; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fafbfd; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; margin-right: 4px; font-size: 12px; }
.ok { background: #dcfae6; color: #085d3a; } .bad { background: #fee4e2; color: #912018; }
.live { background: #d1e9ff; color: #1849a9; } .idle { background: #eaecf0; color: #344054; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #475467; font-size: 12px; }
.scroll { overflow-x: auto; }
"""


def render_html(data: ReportData) -> str:
    """The page: sets and notes, status summary, failures, comparison, plots, experiments."""
    problems = ""
    if data.problems:
        items = "".join(f"<li>{_e(path)}: {_e(reason)}</li>" for path, reason in data.problems)
        problems = f"<h2>Unreadable</h2><ul>{items}</ul>"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta name='generator' content='xmen {html.escape(__version__)}'>"
        f"<title>{_e(data.title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(data.title)}</h1><p class='muted'>Generated {_e(data.generated)} by xmen {_e(__version__)}.</p>"
        f"<h2>Sets</h2>{_sets_html(data)}"
        f"<h2>Status</h2>{_summary_html(data)}"
        f"<h2>Failures</h2>{_failures_html(data)}"
        f"<h2>Comparison</h2><div class='scroll'>{_comparison_html(data)}</div>"
        f"<h2>Metrics</h2>{_plots_html(data)}"
        f"<h2>Experiments</h2><div class='scroll'>{_experiments_html(data)}</div>"
        f"{problems}</body></html>\n"
    )


def write_report(output: str | os.PathLike[str], globs: Sequence[str] | None = None, **options: Any) -> ReportData:
    """Gather, render and write the report to ``output`` (atomically); what it shows."""
    data = gather(globs, **options)
    write_text_atomic(os.path.abspath(os.fspath(output)), render_html(data))
    return data
