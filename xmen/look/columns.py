"""The columns of ``xmen list``: which columns the options ask for, in which order, with which labels.

The table text (xmen.look.render) and the DataFrames (xmen.look.frames) are both made from these columns.
"""
from __future__ import annotations

import os
import re
from typing import Any, Iterable, Sequence

from xmen.errors import UsageError
from xmen.look.predicates import ColumnPattern, Predicate, parse_param_filters
from xmen.look.rows import _MISSING, META_COLUMNS, SLURM_COLUMNS, ListResult, split_label


def common_root(roots: Iterable[str]) -> str:
    """The folder the roots are shown relative to: their common parent (a set's parent when there is one set)."""
    unique = sorted(set(roots))
    if not unique:
        return ""
    prefix = os.path.commonpath(unique)
    if prefix in unique:
        prefix = os.path.dirname(prefix)
    return prefix


def table_columns(
    result: ListResult,
    *,
    verbose: bool = False,
    status: bool | None = None,
    created: bool = False,
    git: bool = False,
    meta: bool = False,
    purpose: bool = False,
    messages: str | None = None,
    params: Sequence[str] = (),
    relative_roots: bool = True,
    kinds: list[str] | None = None,
    slurm: bool = False,
) -> tuple[list[str], list[list[Any]]]:
    """Column labels and values (column-major) for the chosen options; absent parameters/messages are NaN.

    ``status=None`` shows status only when no other column was asked for (the default view: root, name, status).
    ``verbose`` shows every column, parameters and messages restricted by ``params`` regexes/``messages`` if given.
    Wherever status is shown, ``error`` (why the last run failed) and ``notes`` (``xmen note -e``, joined by
    ``"; "``) follow it when some listed experiment has one. A predicate shows the column it filters on (the
    message's when the name is a message only). ``slurm`` shows :data:`SLURM_COLUMNS` (the last SLURM job of
    each experiment); ``verbose`` shows them when some listed experiment ran as a SLURM job. Names clashing
    with a fixed column or a parameter get a ``[param]``/``[message]`` suffix. ``kinds``, if given, receives
    ``"fixed"``, ``"param"`` or ``"message"`` per column.
    """
    filters = parse_param_filters(params)
    regexes = [f for f in filters if isinstance(f, ColumnPattern)]
    all_params = result.param_names()
    all_messages = result.message_names()
    known_params = set(all_params)
    predicate_names: list[tuple[str, str]] = []
    for f in filters:
        if not isinstance(f, Predicate):
            continue
        name, where = split_label(f.name)
        if where == "any" and name not in known_params:
            expanded = f.names(all_params)  # the original's regex names: 'a.*==cat'
            if expanded:
                predicate_names.extend((n, "param") for n in expanded)
                continue
        predicate_names.append((name, where))
    try:
        message_regex = re.compile(messages) if messages is not None else None
    except re.error as exc:
        raise UsageError(
            f"bad message regex {messages!r}: {exc} (put GLOBs before -m, or give -m a regex such as '.*')"
        ) from None
    if status is None:
        status = verbose or not (created or git or meta or purpose or messages is not None or params)

    fixed = ["root", "name"]
    if verbose or created:
        fixed.append("created")
    if verbose:
        fixed.append("type")
    if verbose or purpose:
        fixed.append("purpose")
    if any(r.get("origin") for r in result.rows):
        fixed.append("origin")  # where sets copied from elsewhere live (see xmen.store.origin)
    if verbose or meta:
        fixed.extend(META_COLUMNS)
    rows = result.rows
    if status:
        fixed.append("status")
        if any(r["error"] is not None for r in rows):
            fixed.append("error")
        if any(r["notes"] for r in rows):
            fixed.append("notes")
    if verbose or git:
        fixed.append("commit")
    if slurm or (verbose and any(r.get("slurm_job") for r in rows)):
        fixed.extend(SLURM_COLUMNS)
    if status and any(r.get("plan") for r in result.rows):
        fixed.append("plan")  # why a listed status is not the whole story (stale, blocked, pending again)

    predicate_messages = {
        name: None
        for name, where in predicate_names
        if where == "message" or (where == "any" and name not in known_params and name in all_messages)
    }
    if regexes or predicate_names or not verbose:
        chosen = {p: None for p in all_params if any(r.selects(p) for r in regexes)}
        for name, where in predicate_names:
            if name not in predicate_messages or (where == "param"):
                chosen.setdefault(name, None)
        param_names = [p for p in all_params if p in chosen] + [p for p in chosen if p not in known_params]
    else:
        param_names = all_params
    if message_regex is not None:
        message_names = [m for m in all_messages if message_regex.fullmatch(m)]
    else:
        message_names = all_messages if verbose else []
    message_names += [m for m in predicate_messages if m not in message_names]

    labels: list[str] = []
    columns: list[list[Any]] = []
    roots = {r["root"] for r in rows}
    prefix = common_root(roots) if relative_roots else ""
    relative = {root: os.path.relpath(root, prefix) for root in roots} if relative_roots else {}
    for key in fixed:
        if key == "root" and relative_roots:
            values = [relative[r["root"]] for r in rows]
        elif key == "notes":
            values = ["; ".join(r["notes"]) if r["notes"] else None for r in rows]
        else:
            values = [r.get(key) for r in rows]
        labels.append(key)
        columns.append(values)
    taken = set(fixed)
    for key in param_names:
        labels.append(f"{key} [param]" if key in taken else key)
        columns.append([r["params"].get(key, _MISSING) for r in rows])
    taken.update(param_names)
    for key in message_names:
        labels.append(f"{key} [message]" if key in taken else key)
        columns.append([r["messages"].get(key, _MISSING) for r in rows])
    if kinds is not None:
        kinds.extend(["fixed"] * len(fixed) + ["param"] * len(param_names) + ["message"] * len(message_names))
    return labels, columns
