"""Compare settings: group experiments by some parameters and summarise each metric over the rest (seeds, repeats).

A sweep over ``lr x seed`` answers "which lr worked" only once the seeds are averaged over: :func:`compare` groups
the rows of :func:`xmen.listing.to_dataframe` by the named parameters and gives count, mean, std, min and max of
each numeric metric (the latest value each experiment sent with ``message()``). ``xmen compare`` prints it.

pandas is imported inside the functions only (``import xmen`` stays light).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Hashable, Mapping, Sequence

from xmen.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["GROUP_SIZE", "STATS", "compare", "compare_rows", "metric_columns", "summarise", "table"]

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


def summarise(
    n_rows: int, by_values: Sequence[Sequence[Any]], metric_values: Mapping[str, Sequence[Any]]
) -> tuple[list[list[Any]], list[int], dict[str, dict[str, list[float]]]]:
    """The grouping and statistics behind :func:`compare`, in plain Python (no pandas: ``xmen compare`` stays fast).

    ``by_values`` holds one sequence per grouping column and ``metric_values`` one per metric, all with one value
    per experiment (``n_rows`` of them). Returns the groups' values (one list per grouping column), their sizes and, per metric, the
    lists ``count``, ``mean``, ``std``, ``min``, ``max`` (one value per group).
    """
    groups: dict[tuple[Hashable, ...], list[int]] = {}
    first: dict[tuple[Hashable, ...], list[Any]] = {}
    for i in range(n_rows):
        values = [column[i] for column in by_values]
        key = tuple(_group_key(v) for v in values)
        members = groups.get(key)
        if members is None:
            groups[key] = members = []
            first[key] = values
        members.append(i)
    keys = sorted(groups, key=_order)
    labels = [[first[k][j] for k in keys] for j in range(len(by_values))]
    stats: dict[str, dict[str, list[float]]] = {}
    for metric, column in metric_values.items():
        numbers = [_number(v) for v in column]
        out: dict[str, list[float]] = {s: [] for s in STATS}
        for k in keys:
            picked = [numbers[i] for i in groups[k] if numbers[i] == numbers[i]]
            n = len(picked)
            mean = math.fsum(picked) / n if n else math.nan
            out["count"].append(n)
            out["mean"].append(mean)
            low, high = (min(picked), max(picked)) if n else (math.nan, math.nan)
            if n < 2:
                out["std"].append(math.nan)
            elif low == high:  # no spread, whatever the rounding of the mean (0.99 three times gives 1.4e-16)
                out["std"].append(0.0)
            else:
                out["std"].append(math.sqrt(math.fsum((x - mean) ** 2 for x in picked) / (n - 1)))
            out["min"].append(low)
            out["max"].append(high)
        stats[metric] = out
    return labels, [len(groups[k]) for k in keys], stats


def table(
    by: Sequence[str], labels: list[list[Any]], sizes: list[int], stats: Mapping[str, Mapping[str, list[float]]]
) -> tuple[list[str], list[list[Any]]]:
    """Column labels and values (column-major) of a comparison, in the layout :func:`compare` documents."""
    names = [*by, GROUP_SIZE]
    columns: list[list[Any]] = [*labels, sizes]
    for metric, values in stats.items():
        for s in STATS:
            names.append(f"{metric} {s}")
            columns.append(values[s])
    return names, columns


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
    if GROUP_SIZE in by:
        raise UsageError(f"cannot group by {GROUP_SIZE!r}: the comparison's own column has that name")
    labels, sizes, stats = summarise(len(frame), [list(frame[c]) for c in by], {m: list(frame[m]) for m in chosen})
    names, columns = table(by, labels, sizes, stats)
    out = pd.DataFrame({name: pd.Series(values, dtype=object if i < len(by) else None)
                        for i, (name, values) in enumerate(zip(names, columns))})
    for i, c in enumerate(by):  # a numeric parameter stays numeric; others keep None apart from NaN
        if all(map(_is_number, labels[i])):
            out[c] = pd.Series(labels[i])
    out.attrs["xmen"] = {"by": by, "metrics": chosen}
    return out


def compare_rows(
    rows: Sequence[Mapping[str, Any]], by: Sequence[str], metrics: Sequence[str] | None = None
) -> tuple[list[str], list[list[Any]]]:
    """:func:`compare` on the rows of :func:`xmen.listing.collect` (parameters and latest messages), without
    pandas: the labels and columns of the same table, for ``xmen compare``."""
    by = list(by)
    param_names: dict[str, None] = {}
    message_names: dict[str, None] = {}
    for row in rows:
        param_names.update(row["params"])
        message_names.update(row["messages"])
    missing = [c for c in by if c not in param_names]
    if missing:
        raise UsageError(f"cannot group by {missing[0]!r}: no such parameter (parameters: {', '.join(param_names)})")
    if GROUP_SIZE in by:
        raise UsageError(f"cannot group by {GROUP_SIZE!r}: the comparison's own column has that name")
    numeric = [m for m in message_names if any(_is_value(r["messages"].get(m)) for r in rows)]
    chosen = numeric if metrics is None else list(metrics)
    unknown = [m for m in chosen if m not in message_names]
    if unknown:
        raise UsageError(f"no metric {unknown[0]!r} (numeric messages: {', '.join(numeric) or 'none'})")
    by_values = [[r["params"].get(c, math.nan) for r in rows] for c in by]
    metric_values = {m: [r["messages"].get(m) for r in rows] for m in chosen}
    labels, sizes, stats = summarise(len(rows), by_values, metric_values)
    return table(by, labels, sizes, stats)
