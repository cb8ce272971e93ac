"""``xmen list`` as pandas DataFrames: :func:`to_dataframe` for notebooks and scripts (the rows, or the long table
of every message sent), and the DataFrame the table text falls back to (xmen.look.render).

pandas costs half a second to import: it is imported inside the functions that build frames, never at import time.
"""
from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Sequence

from xmen.errors import UsageError
from xmen.look.columns import common_root, table_columns
from xmen.look.rows import _MISSING, ListResult, _is_number, collect
from xmen.store import history

if TYPE_CHECKING:  # pragma: no cover
    import pandas


def _frame(labels: Sequence[str], columns: Sequence[Sequence[Any]]) -> "pandas.DataFrame":
    """A DataFrame keeping YAML's None apart from a missing value: numeric columns are numbers, others objects."""
    import pandas as pd  # import weight: half a second, paid only by those who build a frame

    data = {}
    for i, values in enumerate(columns):
        present = [v for v in values if v is not _MISSING]
        numeric = bool(present) and all(_is_number(v) for v in present)
        data[i] = pd.Series(values, dtype=None if numeric else object) if values else pd.Series([], dtype=object)
    frame = pd.DataFrame(data)
    frame.columns = list(labels)
    return frame


def to_dataframe(
    globs: Sequence[str] | str | None = None,
    cwd: str | os.PathLike[str] | None = None,
    *,
    params: Sequence[str] = (),
    type: str | None = None,
    status: Sequence[str] = (),
    messages: str | None = None,
    relative_roots: bool = False,
    sort: Sequence[str] | str = (),
    history: bool = False,
) -> "pandas.DataFrame":
    """Experiments as a pandas DataFrame, for notebooks and scripts.

    Takes the filters of ``xmen list``: ``globs`` (default: every set below ``cwd``), ``params`` (``-p`` regexes
    choose parameter columns, predicates such as ``"lr<0.01"`` or ``"val_acc>0.9"`` (a message) also filter rows),
    ``type`` (``-n``), ``status`` (statuses to keep), ``messages`` (regex of message columns; default all) and
    ``sort`` (``--sort`` keys, ``"-val_acc"`` descending). Columns are :data:`FIXED_COLUMNS` (``root`` absolute
    unless ``relative_roots``) with ``error`` and ``notes`` after ``status`` when some experiment has one, then
    parameters, then messages (their latest values); a parameter an experiment lacks is NaN, while a YAML null
    stays None. ``frame.attrs["xmen"]`` names the ``params`` and ``messages`` columns (what
    :func:`xmen.compare.compare` summarises). Unreadable experiments are skipped; call :func:`collect` to see why.
    Uses the same index cache as the command line, so repeated calls are fast.

    With ``history=True`` the result is instead the long table of every message the selected experiments sent
    (their ``history.jsonl``, see :mod:`xmen.history`): columns ``root``, ``experiment`` (its name), ``step`` (int
    or None), ``time`` (Unix seconds), ``key`` and ``value``, one row per key of each ``message()`` call, in the
    order sent; ``messages`` filters the keys.

    >>> df = to_dataframe("~/experiments/*", params=["lr<0.01"], status=["finished"])  # doctest: +SKIP
    >>> curves = to_dataframe("~/experiments/*", history=True, messages="loss")  # doctest: +SKIP
    """
    if isinstance(globs, str):
        globs = [globs]
    if isinstance(sort, str):
        sort = [sort]
    result = collect(globs, cwd, params=params, type=type, status=status, sort=sort)
    if history:
        return _history_frame(result, messages, relative_roots)
    kinds: list[str] = []
    labels, columns = table_columns(
        result, verbose=True, messages=messages, params=params, relative_roots=relative_roots, kinds=kinds
    )
    frame = _frame(labels, columns)
    frame.attrs["xmen"] = {
        "params": [label for label, kind in zip(labels, kinds) if kind == "param"],
        "messages": [label for label, kind in zip(labels, kinds) if kind == "message"],
    }
    return frame


HISTORY_COLUMNS = ("root", "experiment", "step", "time", "key", "value")


def _history_frame(result: ListResult, messages: str | None, relative_roots: bool) -> "pandas.DataFrame":
    """The long table of every message of the listed experiments (see :func:`to_dataframe`)."""
    import pandas as pd  # import weight: half a second, paid only by those who build a frame

    try:
        wanted = re.compile(messages).fullmatch if messages is not None else None
    except re.error as exc:
        raise UsageError(f"bad message regex {messages!r}: {exc}") from None
    roots = {r["root"] for r in result.rows}
    prefix = common_root(roots) if relative_roots else ""
    root_col: list[str] = []
    name_col: list[str] = []
    step_col: list[Any] = []
    time_col: list[float] = []
    key_col: list[str] = []
    value_col: list[Any] = []
    for row in result.rows:
        root = os.path.relpath(row["root"], prefix) if relative_roots else row["root"]
        name = row["name"]
        start = len(key_col)
        for record in history.read(os.path.join(row["root"], name)):
            step, when = record["step"], record["time"]
            for key, value in record["values"].items():
                if wanted is None or wanted(key):
                    step_col.append(step)
                    time_col.append(when)
                    key_col.append(key)
                    value_col.append(value)
        added = len(key_col) - start
        root_col.extend([root] * added)
        name_col.extend([name] * added)
    frame = pd.DataFrame({
        "root": pd.Series(root_col, dtype=object),
        "experiment": pd.Series(name_col, dtype=object),
        "step": pd.Series(step_col, dtype="int64" if None not in step_col else object),
        "time": pd.Series(time_col, dtype=float),
        "key": pd.Series(key_col, dtype=object),
        "value": pd.Series(value_col, dtype=float if {v.__class__ for v in value_col} <= {int, float} else object),
    })
    return frame
