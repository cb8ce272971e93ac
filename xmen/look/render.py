"""The text of ``xmen list``: the table (as pandas prints it, without pandas for plain text), CSV, the notebook
view of ``xmen list -l``, and values made readable (Unix times as dates).

pandas is imported only for tables it must format itself (xmen.look.frames).
"""
from __future__ import annotations

import csv
import io
import re
import time
from typing import Any, Sequence

from xmen.look.frames import _frame
from xmen.look.rows import _MISSING, ListResult, _is_number, split_label
from xmen.store.terminal import cell, cut, plain


def _plain_table(labels: Sequence[str], columns: Sequence[Sequence[Any]]) -> str | None:
    """What ``DataFrame.to_string()`` prints for columns of plain text, without importing pandas (it costs 0.5 s).

    pandas right-justifies ``" " + value`` in a column as wide as its widest cell or header and joins the columns
    with one space. Returns None when a value is not text (or None), has leading/trailing whitespace or characters
    pandas would escape or measure otherwise: such tables go through pandas itself.
    """
    if not columns or not columns[0]:
        return None  # pandas prints 'Empty DataFrame ...'
    texts: list[Sequence[str]] = []
    widths: list[int] = []
    for label, values in zip(labels, columns):
        try:
            distinct = set(values)  # roots, statuses, dates repeat: check each text once
        except TypeError:  # a list- or dict-valued parameter or message: pandas prints it
            return None
        if None in distinct:
            distinct.discard(None)
            distinct.add("None")
            values = ["None" if v is None else v for v in values]
        for v in distinct:
            if v.__class__ is not str or (v and (v[0].isspace() or v[-1].isspace())):
                return None
        if not label.isprintable() or label != label.strip() or not "".join(distinct).isprintable():
            return None
        texts.append(values)
        widths.append(max(len(label), 1 + max(map(len, distinct), default=0)))
    n = len(columns[0])
    index_width = len(str(n - 1))
    header = " " * index_width + "".join(" " + label.rjust(w) for label, w in zip(labels, widths))
    row = f"{{:<{index_width}}}" + "".join(f" {{:>{w}}}" for w in widths)
    return "\n".join([header, *map(row.format, range(n), *texts)])


def render_table(
    labels: Sequence[str],
    columns: Sequence[Sequence[Any]],
    max_width: int | None = None,
    max_rows: int | None = None,
) -> str:
    """The table as pandas ``DataFrame.to_string`` prints it; ``max_width`` caps each column's width (longer values
    end in ``...``) and ``max_rows`` shows only the first and last rows. Plain-text tables skip pandas (same text).

    Every label and cell is shown without terminal escapes and cut to xmen.store.terminal.CELL_LIMIT."""
    labels = [plain(str(label)) for label in labels]
    columns = [[cell(v) for v in column] for column in columns]
    n = len(columns[0]) if columns else 0
    # pandas truncates " " + value, so a value exactly max_width long is already cut.
    fits = (max_rows is None or n <= max_rows) and (
        max_width is None or all(len(str(v)) < max_width for col in columns for v in col)
    )
    if fits:
        text = _plain_table(labels, columns)
        if text is not None:
            return text
    return _frame(labels, columns).to_string(max_rows=max_rows, max_colwidth=max_width)


#: Message/parameter names whose Unix-time values tables show as dates (``time``, ``start_time``, ``time_end``...).
_TIME_NAME = re.compile(r"(?i)(time|timestamp|.*_time|time_.*|.*_at)")
#: Unix times a table shows as dates: 2001-09-09 to 2286-11-20 (durations and step counts are far smaller).
_EPOCH_RANGE = (1e9, 1e10)


def _is_time_column(label: str, values: Sequence[Any]) -> bool:
    if not _TIME_NAME.fullmatch(split_label(label)[0]):
        return False
    present = [v for v in values if v is not _MISSING and not (v.__class__ is float and v != v)]
    low, high = _EPOCH_RANGE
    return bool(present) and all(_is_number(v) and low <= v < high for v in present)


def readable(labels: Sequence[str], columns: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """Columns for a table people read (CSV and DataFrames keep the raw values): Unix times in a column named like
    a time (``time``, ``*_time``, ``time_*``, ``*_at``, ``timestamp``) as local ``2026-12-01 18:39:27`` rather
    than ``1.796151e+09``, and no ``None`` for an experiment without an ``error`` or ``notes``."""
    out = []
    for label, values in zip(labels, columns):
        if label in ("error", "notes"):
            out.append(["" if v is None else v for v in values])
        elif _is_time_column(label, values):
            out.append([v if v is _MISSING or v != v else _local_time(v) for v in values])
        else:
            out.append(values)
    return out


def _local_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _csv_cell(value: Any) -> Any:
    if value is None or value is _MISSING:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    return value


def render_csv(labels: Sequence[str], columns: Sequence[Sequence[Any]]) -> str:
    """CSV like ``DataFrame.to_csv()``: an unnamed index column first, empty cells for None and missing values."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["", *labels])
    n = len(columns[0]) if columns else 0
    for i in range(n):
        writer.writerow([i, *(_csv_cell(col[i]) for col in columns)])
    return out.getvalue()


def render_notebook(result: ListResult, show_empty: bool | None = None) -> str:
    """The ``xmen list -l`` view: each set with its listed experiments, purpose, creation time, type and notes.

    Sets without listed experiments are shown only when no filter dropped rows (``show_empty`` overrides)."""
    if show_empty is None:
        show_empty = not result.filtered
    blocks = []
    shown = [s for s in result.sets if s.names or show_empty]
    def shown_text(value: Any) -> str:  # one line of the user's text, without terminal escapes, capped
        return cut(" ".join(plain("" if value is None else str(value)).splitlines()))

    for i, info in enumerate(shown):
        lines = [f"{i:>2} {shown_text(info.root)}"]
        lines.extend(f"     |- {shown_text(name)}" for name in info.names)
        lines.append(f"     Purpose: {shown_text(info.purpose)}")
        lines.append(f"     Created: {shown_text(info.created)}")
        lines.append(f"     Type: {shown_text(info.type)}")
        lines.append("     Notes: ")
        lines.extend(f"       {shown_text(note)}" for note in info.notes)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
