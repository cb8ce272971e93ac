"""Compare settings: group experiments by some parameters and summarise each metric over the rest (seeds, repeats).

A sweep over ``lr x seed`` answers "which lr worked" only once the seeds are averaged over: :func:`compare` groups
the rows of :func:`xmen.listing.to_dataframe` by the named parameters and gives count, mean, std, min and max of
each numeric metric (the latest value each experiment sent with ``message()``). ``xmen compare`` prints it.

pandas is imported inside the functions only (``import xmen`` stays light).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Hashable, Sequence

from .errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["STATS", "compare", "metric_columns"]

#: The statistics of each metric, in column order.
STATS = ("count", "mean", "std", "min", "max")
#: The column holding the number of experiments of a group.
GROUP_SIZE = "experiments"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) or _is_numpy_number(value)


def _is_numpy_number(value: Any) -> bool:
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind in ("i", "u", "f") and getattr(value, "ndim", 1) == 0


def _number(value: Any) -> float:
    """A metric value as a float; NaN for anything that is not a number (text, booleans, missing)."""
    return float(value) if _is_number(value) else math.nan


def metric_columns(frame: "pandas.DataFrame", by: Sequence[str] = ()) -> list[str]:
    """The columns :func:`compare` summarises by default: the message columns that hold a number.

    Frames from :func:`xmen.listing.to_dataframe` name their message columns in ``frame.attrs["xmen"]
    ["messages"]``; for other frames, every column with a number that is not in ``by``.
    """
    info = frame.attrs.get("xmen") if hasattr(frame, "attrs") else None
    candidates = list(info["messages"]) if isinstance(info, dict) and "messages" in info else list(frame.columns)
    return [c for c in candidates if c not in by and c in frame.columns and any(map(_is_value, frame[c]))]


def _is_value(value: Any) -> bool:
    """A number that is not NaN (a NaN in a frame is a missing value)."""
    return _is_number(value) and value == value


def _group_key(value: Any) -> Hashable:
    """A hashable key equal for values that print alike: NaN/None are one group each, lists by their text."""
    if value is None:
        return ("none",)
    if isinstance(value, float) and math.isnan(value):
        return ("missing",)
    if _is_number(value):
        return ("number", float(value))
    try:
        hash(value)
    except TypeError:
        return ("text", repr(value))
    return ("value", type(value).__name__, value)


def _order(key: tuple[Hashable, ...]) -> tuple[Any, ...]:
    """Sort order of group keys: numbers by value, then text, then None, then missing."""
    rank = {"number": 0, "value": 1, "text": 1, "none": 2, "missing": 3}
    return tuple((rank[k[0]], k[-1] if k[0] == "number" else str(k[-1])) for k in key)  # type: ignore[index]


def compare(frame: "pandas.DataFrame", by: Sequence[str], metrics: Sequence[str] | None = None) -> "pandas.DataFrame":
    """Group the experiments of ``frame`` (one row each) by the columns ``by`` and summarise each metric.

    Everything not in ``by`` (seed, repeat, ...) is averaged over. The result has one row per distinct combination
    of the ``by`` values (sorted: numbers by value, then text, then None, then missing) and these columns:

    * the ``by`` columns, in the order given, holding the group's values (NaN: experiments without that
      parameter, None: a YAML null);
    * ``experiments``: how many experiments the group has;
    * for each metric ``m`` in order: ``m count`` (experiments of the group with a numeric value of ``m``),
      ``m mean``, ``m std`` (sample standard deviation, NaN for fewer than two values), ``m min``, ``m max``.

    ``metrics`` default to :func:`metric_columns`. Values that are not numbers (text, booleans) are left out of a
    metric's statistics. An empty ``by`` puts all experiments in one group. Unknown columns are UsageErrors.
    """
    import numpy as np
    import pandas as pd

    by = list(by)
    info = frame.attrs.get("xmen")
    info = info if isinstance(info, dict) else {}
    missing = [c for c in by if c not in frame.columns]
    if missing:
        known = ", ".join(map(str, info.get("params", list(frame.columns))))
        raise UsageError(f"cannot group by {missing[0]!r}: no such parameter (parameters: {known})")
    chosen = metric_columns(frame, by) if metrics is None else list(metrics)
    unknown = [m for m in chosen if m not in frame.columns]
    if unknown:
        known = metric_columns(frame, by)
        raise UsageError(f"no metric {unknown[0]!r} (numeric messages: {', '.join(map(str, known)) or 'none'})")

    groups: dict[tuple[Hashable, ...], list[int]] = {}
    labels: dict[tuple[Hashable, ...], list[Any]] = {}
    by_values = [list(frame[c]) for c in by]
    for i in range(len(frame)):
        values = [column[i] for column in by_values]
        key = tuple(_group_key(v) for v in values)
        members = groups.get(key)
        if members is None:
            groups[key] = members = []
            labels[key] = values
        members.append(i)
    keys = sorted(groups, key=_order)

    data: dict[str, Any] = {c: [labels[k][j] for k in keys] for j, c in enumerate(by)}
    data[GROUP_SIZE] = [len(groups[k]) for k in keys]
    for metric in chosen:
        values = np.array([_number(v) for v in frame[metric]], dtype=float)
        stats: dict[str, list[float]] = {s: [] for s in STATS}
        for k in keys:
            picked = values[groups[k]]
            picked = picked[~np.isnan(picked)]
            n = len(picked)
            stats["count"].append(n)
            stats["mean"].append(float(picked.mean()) if n else math.nan)
            # Equal values have no spread, whatever the rounding of their mean (0.99 three times gives 1.4e-16).
            if n < 2:
                stats["std"].append(math.nan)
            else:
                stats["std"].append(0.0 if picked.min() == picked.max() else float(picked.std(ddof=1)))
            stats["min"].append(float(picked.min()) if n else math.nan)
            stats["max"].append(float(picked.max()) if n else math.nan)
        for s in STATS:
            data[f"{metric} {s}"] = stats[s]
    out = pd.DataFrame(data)
    for c in by:  # keep a parameter's own type (object with None kept apart from NaN)
        out[c] = pd.Series(data[c], dtype=object if not all(map(_is_number, data[c])) else None)
    out.attrs["xmen"] = {"by": by, "metrics": chosen}
    return out
