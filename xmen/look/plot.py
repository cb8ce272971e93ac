"""Metric curves: a metric against step (or time) for each experiment, or for each group of experiments (mean with
a band of one standard deviation) when grouped by parameters, as ``xmen compare --by`` groups them.

The data is the long history table of :func:`xmen.listing.to_dataframe` (``history=True``: root, experiment,
step, time, key, value); the groups come from the experiments' parameters (the wide table). matplotlib is an
optional extra (``pip install 'xmen[plot]'``), imported only when a figure is drawn, always with the Agg backend
(no display needed: plots are made on clusters and in CI).
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from xmen.errors import UsageError, XmenError
from xmen.store import files

if TYPE_CHECKING:  # pragma: no cover
    import numpy
    import pandas

#: Output formats, by file suffix.
FORMATS = {".png": "png", ".svg": "svg"}
#: x axes a curve can have: the step the experiment gave (else the message's position), or seconds since its
#: first message.
X_AXES = ("step", "time")
#: Points of the common grid a group's curves are averaged on when x is time (their times never coincide).
TIME_GRID = 200
#: More curves than this and the legend would cover the plot: it is left out.
MAX_LEGEND = 20

MISSING_MATPLOTLIB = "plots need matplotlib: pip install 'xmen[plot]' (or pip install matplotlib)"


@dataclass
class Curve:
    """One line of a plot: ``y`` against ``x``; for a group, the mean, with ``low``/``high`` one std around it."""

    label: str
    x: "numpy.ndarray"
    y: "numpy.ndarray"
    low: "numpy.ndarray | None" = None
    high: "numpy.ndarray | None" = None
    members: int = 1


def output_format(path: str | os.PathLike[str]) -> str:
    """``png`` or ``svg``, from the file name; anything else is a usage error."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot tell the plot format of {os.fspath(path)!r}: name it .png or .svg")
    return FORMATS[suffix]


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend; an XmenError naming the extra when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        raise XmenError(MISSING_MATPLOTLIB) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _numeric(values: "pandas.Series") -> "pandas.Series":
    """Numbers as floats, anything else (text, booleans, lists) as NaN."""
    import pandas as pd

    if values.dtype.kind in "iuf":  # the history's values were all numbers: no per-value work
        return values.astype(float)

    def number(value: Any) -> float:
        if isinstance(value, bool) or value is None:
            return math.nan
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    return pd.Series([number(v) for v in values], index=values.index, dtype=float)


def metric_names(history: "pandas.DataFrame") -> list[str]:
    """Keys of the history with at least one numeric value, in order of first appearance."""
    if history.empty:
        return []
    numeric = _numeric(history["value"]).notna()
    return list(dict.fromkeys(history.loc[numeric, "key"]))


def _points(history: "pandas.DataFrame", metric: str, x: str) -> "pandas.DataFrame":
    """Columns root, experiment, x, y: the numeric values of ``metric`` in order sent."""
    import pandas as pd

    if x not in X_AXES:
        raise UsageError(f"unknown x axis {x!r} (choose from {', '.join(X_AXES)})")
    if history.empty:
        return pd.DataFrame(columns=["root", "experiment", "x", "y"])
    experiment = [history["root"], history["experiment"]]
    if x == "time":  # seconds since the experiment's first message of any key: runs started at different times
        start = history.groupby(experiment, sort=False)["time"].transform("min")
        xs = history["time"].astype(float) - start
    else:
        xs = pd.Series(history["step"], index=history.index, dtype=object)
    picked = history["key"] == metric
    frame = pd.DataFrame({
        "root": history["root"], "experiment": history["experiment"], "x": xs, "y": _numeric(history["value"]),
    })[picked]
    if x == "step":
        # A message without a step counts as the next one of its experiment: its position among the metric's.
        steps = pd.to_numeric(frame["x"], errors="coerce")
        if steps.isna().any():
            order = frame.groupby(["root", "experiment"], sort=False).cumcount()
            steps = steps.fillna(order.astype(float))
        frame["x"] = steps
    frame["x"] = frame["x"].astype(float)
    return frame[frame["y"].notna()]


def _label(values: Sequence[Any], by: Sequence[str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in zip(by, values))


def curves(
    history: "pandas.DataFrame",
    metric: str,
    *,
    x: str = "step",
    by: Sequence[str] = (),
    experiments: "pandas.DataFrame | None" = None,
) -> list[Curve]:
    """The curves of ``metric``: one per experiment, or with ``by`` one per group of ``experiments`` (the wide
    table: root, name and the ``by`` parameters), its mean over the group's experiments with a std band.

    On a step axis the group's values at each step are averaged (experiments that stopped early drop out of
    later steps); on a time axis each experiment is first interpolated onto a common grid, within its own span.
    """
    import numpy as np

    points = _points(history, metric, x)
    if points.empty:
        return []
    several_roots = points["root"].nunique() > 1
    if not by:
        out = []
        for (root, name), group in points.groupby(["root", "experiment"], sort=False):
            group = group.sort_values("x", kind="stable")
            label = f"{os.path.basename(str(root))}/{name}" if several_roots else str(name)
            out.append(Curve(label, group["x"].to_numpy(), group["y"].to_numpy()))
        return out
    if experiments is None:
        raise UsageError("grouping curves needs the experiments' parameters")
    missing = [b for b in by if b not in experiments.columns]
    if missing:
        raise UsageError(f"cannot group by {missing[0]!r}: no such parameter")
    import pandas as pd

    keys = pd.DataFrame({
        "root": experiments["root"],
        "experiment": experiments["name"],
        "group": [_group_key(tuple(values)) for values in zip(*(experiments[b] for b in by))],
    })
    points = points.merge(keys, on=["root", "experiment"], how="inner", sort=False)
    out = []
    for key, group in sorted(points.groupby("group", sort=False), key=lambda item: _sortable(item[0])):
        members = group.groupby(["root", "experiment"], sort=False)
        label = _label(key[1], by)
        if x == "step":
            stats = group.groupby("x")["y"].agg(["mean", "std", "count"]).sort_index()
            mean, std = stats["mean"].to_numpy(), stats["std"].fillna(0.0).to_numpy()
            xs = stats.index.to_numpy(dtype=float)
        else:
            xs = np.linspace(group["x"].min(), group["x"].max(), TIME_GRID)
            rows = []
            for _, member in members:
                member = member.sort_values("x", kind="stable")
                ys = np.interp(xs, member["x"], member["y"], left=np.nan, right=np.nan)
                rows.append(ys)
            stack = np.vstack(rows)
            keep = ~np.all(np.isnan(stack), axis=0)
            xs, stack = xs[keep], stack[:, keep]
            mean = np.nanmean(stack, axis=0)
            counts = np.sum(~np.isnan(stack), axis=0)
            std = np.where(counts > 1, np.nanstd(stack, axis=0, ddof=min(1, len(rows) - 1)), 0.0)
        count = members.ngroups
        band = (mean - std, mean + std) if count > 1 else (None, None)
        out.append(Curve(f"{label} (n={count})" if count > 1 else label, xs, mean, band[0], band[1], count))
    return out


def _group_key(values: tuple[Any, ...]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """A hashable group key, equal for values that print alike (NaN, lists), carrying the values to show."""
    return (tuple(repr(v) for v in values), tuple(values))


def _sortable(key: tuple[tuple[str, ...], tuple[Any, ...]]) -> tuple[Any, ...]:
    """Numbers by value, then everything else by its text."""
    out = []
    for value in key[1]:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            out.append((0, float(value), ""))
        else:
            out.append((1, 0.0, str(value)))
    return tuple(out)


def render(
    curve_list: Sequence[Curve], metric: str, *, x: str = "step", fmt: str = "png", title: str | None = None
) -> bytes:
    """The figure of ``curve_list`` as PNG or SVG bytes."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    try:
        for curve in curve_list:
            few = len(curve.x) <= 30  # markers, so that a curve of one point shows at all
            (line,) = axes.plot(curve.x, curve.y, label=curve.label, linewidth=1.5, marker="o" if few else None,
                                markersize=3)
            if curve.low is not None and curve.high is not None:
                axes.fill_between(curve.x, curve.low, curve.high, color=line.get_color(), alpha=0.2, linewidth=0)
        axes.set_xlabel("step" if x == "step" else "seconds since the first message")
        axes.set_ylabel(metric)
        axes.set_title(title if title is not None else metric)
        axes.grid(True, alpha=0.3)
        if 0 < len(curve_list) <= MAX_LEGEND:
            axes.legend(fontsize="small", loc="best")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, metadata={"Software": None} if fmt == "png" else {"Date": None})
        return buffer.getvalue()
    finally:
        plt.close(figure)


def plot(
    history: "pandas.DataFrame",
    metric: str,
    output: str | os.PathLike[str],
    *,
    x: str = "step",
    by: Sequence[str] = (),
    experiments: "pandas.DataFrame | None" = None,
) -> list[Curve]:
    """Write the plot of ``metric`` to ``output`` (.png or .svg); the curves drawn.

    A metric no experiment sent is a usage error naming the metrics there are.
    """
    fmt = output_format(output)
    drawn = curves(history, metric, x=x, by=by, experiments=experiments)
    if not drawn:
        sent = metric_names(history)
        there = f"metrics sent: {', '.join(sent)}" if sent else "no experiment has a message history yet"
        raise UsageError(f"no experiment sent a numeric {metric!r} ({there})")
    write_output(output, render(drawn, metric, x=x, fmt=fmt))
    return drawn


def write_output(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` through a temporary file: an interrupted write never leaves half a file, and a
    symbolic link at ``path`` is refused (LinkError naming it), neither followed nor replaced."""
    files.write_atomic(os.path.abspath(os.fspath(path)), lambda handle: handle.write(data))
