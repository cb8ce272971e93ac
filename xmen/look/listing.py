"""``xmen list`` as a library: the one module the command line, ``xmen compare``, ``xmen report`` and the old path
``xmen.listing`` (``xmen.listing.to_dataframe`` in the README) import.

It holds no code of its own; each idea lives in a module of its own, re-exported here:

- which sets and experiments globs select: xmen.sets.finding (``find_sets`` is the old name of ``sets_selected``);
- the index cache and the reading of params.yml it saves: xmen.look.index;
- collecting, filtering and sorting rows, with the status a user sees (xmen.store.shown): xmen.look.rows;
- which columns the options ask for: xmen.look.columns;
- the table text, CSV, the notebook view and readable values: xmen.look.render;
- DataFrames (``to_dataframe``, pandas imported inside functions only): xmen.look.frames.

Tests and benchmarks that patch the index (``RACY_NS``, ``DELTA_MIN``, ``_read_params``) patch xmen.look.index:
the names here are the same objects, for reading.
"""
from __future__ import annotations

from xmen.look.columns import common_root, table_columns
from xmen.look.frames import HISTORY_COLUMNS, _frame, to_dataframe
from xmen.look.index import DELTA_MIN, INDEX_FORMAT, INDEX_VERSION, RACY_NS, _read_params
from xmen.look.render import _plain_table, readable, render_csv, render_notebook, render_table
from xmen.look.rows import (
    _MISSING,
    FIXED_COLUMNS,
    META_COLUMNS,
    SLURM_COLUMNS,
    SORTABLE_COLUMNS,
    ListResult,
    SetInfo,
    collect,
    no_gc,
    sort_rows,
    sort_value,
    split_label,
)
from xmen.sets.finding import sets_selected as find_sets
from xmen.store.layout import DELTA_FILE, INDEX_FILE

__all__ = [
    "DELTA_FILE",
    "DELTA_MIN",
    "FIXED_COLUMNS",
    "HISTORY_COLUMNS",
    "INDEX_FILE",
    "INDEX_FORMAT",
    "INDEX_VERSION",
    "META_COLUMNS",
    "RACY_NS",
    "SLURM_COLUMNS",
    "SORTABLE_COLUMNS",
    "ListResult",
    "SetInfo",
    "_MISSING",
    "_frame",
    "_plain_table",
    "_read_params",
    "collect",
    "common_root",
    "find_sets",
    "no_gc",
    "readable",
    "render_csv",
    "render_notebook",
    "render_table",
    "sort_rows",
    "sort_value",
    "split_label",
    "table_columns",
    "to_dataframe",
]
