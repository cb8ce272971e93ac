"""The rows of ``xmen list``: collect the selected experiments of the selected sets, filter and sort them.

Which sets and experiments the globs select is xmen.sets.finding's walk; each set's experiments are read through
its index cache (xmen.look.index); the status each row shows comes from xmen.store.shown.shown_status, the one
place that derives it (a ``running`` row costs one more stat, of its heartbeat, to tell ``lost`` apart; rows with
a SLURM queued marker cost one ``squeue`` call for all of them). ``-p`` predicates, ``-n`` and ``--status-is``
filter the rows, ``--sort`` orders them, and the planner (xmen.run.planner) adds its word where a status alone
misleads (the ``plan`` column).
"""
from __future__ import annotations

import contextlib
import fnmatch
import gc
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from xmen.errors import StateFileError, UsageError
from xmen.look.index import _Context, _SetState
from xmen.look.predicates import Predicate, parse_param_filters
from xmen.run.planner import BLOCKED, CHANGED, DONE, Planner
from xmen.sets.finding import named_sets, select_sets
from xmen.slurm.queue import QueueView
from xmen.store import status as st
from xmen.store.layout import LOCK_FILE, SET_FILE
from xmen.store.markers import marker as read_marker
from xmen.store.origin import label as origin_label
from xmen.store.shown import shown_status

#: Columns every row has, in the order of the tutorial's ``xmen list -v``; parameters and messages follow.
FIXED_COLUMNS = ("root", "name", "created", "type", "purpose", "mac", "host", "user", "home", "status", "commit")
META_COLUMNS = ("mac", "host", "user", "home")
#: Columns from the experiment's last SLURM job record (``_slurm``, see xmen.slurm): ``xmen list --slurm``.
SLURM_COLUMNS = ("slurm_job", "slurm_state", "slurm_node", "slurm_elapsed", "slurm_max_rss")

_MISSING: Any = float("nan")  # what a row without a parameter/message shows, as pandas would
_NO_SLURM = (None,) * len(SLURM_COLUMNS)


# ---------------------------------------------------------------------------------------------- results
@dataclass
class SetInfo:
    """One listed set: its folder, what experiment.yml says about it, and its listed experiments."""

    root: str
    type: Any = None
    created: Any = None
    purpose: Any = None
    notes: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


@dataclass
class ListResult:
    """Rows (plain dicts, see :data:`FIXED_COLUMNS` plus ``params`` and ``messages`` dicts) and what went wrong.

    ``problems`` holds ``(path, reason)`` for each set or experiment that could not be read; the others are listed.
    """

    rows: list[dict[str, Any]]
    problems: list[tuple[str, str]]
    sets: list[SetInfo]
    patterns: list[str]
    filtered: bool = False

    def param_names(self) -> list[str]:
        """Parameter names in order of first appearance."""
        return _union(row["params"] for row in self.rows)

    def message_names(self) -> list[str]:
        """Message names in order of first appearance."""
        return _union(row["messages"] for row in self.rows)


def _union(dicts: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, Any] = {}
    for d in dicts:
        seen.update(d)  # keeps each key where it first appeared; runs in C
    return list(seen)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: loading 100k rows of small dicts triggers full collections that find
    nothing (the rows hold no cycles) yet cost a third of a warm listing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------- collecting
def _type_matches(pattern: str, value: Any) -> bool:
    """``-n``: a glob or a regex over the whole type name."""
    if value is None:
        return False
    text = str(value)
    if fnmatch.fnmatchcase(text, pattern):
        return True
    try:
        return re.fullmatch(pattern, text) is not None
    except re.error:
        return False


def _refuse_named_damage(named: set[str], selected: dict[str, tuple[Any, Any]]) -> None:
    """Raise StateFileError (``FILE: what is wrong``) when a set the globs name themselves (``named``: xmen.sets.
    finding.named_sets, the current folder's set or ROOT) cannot be read, or links an invalid experiment name;
    sets found below a parent folder are only skipped, with a warning."""
    for root in sorted(named):
        state = selected.get(root, (None, None))[0]
        problem = getattr(state, "problem", None)
        if problem is None and state is not None:
            bad = next((n for n in state.names if _invalid_name(n)), None)
            problem = None if bad is None else f"'experiments' links an invalid experiment name {bad!r}"
        if problem is not None:
            prefix = f"{SET_FILE}: "
            raise StateFileError(f"{os.path.join(root, SET_FILE)}: {problem.removeprefix(prefix)}")


def _invalid_name(name: str) -> bool:
    """A linked name that is no experiment folder of the set (empty, a path, ``.`` or ``..``)."""
    return not name or "/" in name or name in (".", "..")


def collect(
    globs: Sequence[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    *,
    params: Sequence[str] = (),
    type: str | None = None,
    status: Sequence[str] = (),
    sort: Sequence[str] = (),
) -> ListResult:
    """Experiments selected by ``globs`` (default: every set below ``cwd``) passing every filter.

    ``params`` are ``-p`` values (only their predicates filter rows, see :mod:`xmen.look.predicates`), ``type`` a glob or
    regex over the experiment class (``_version.class``, else the set's ``type``) and ``status`` the statuses to
    keep (``lost`` included). A predicate's name is looked up among the experiment's parameters first, then among
    its messages (``val_acc>0.9``); ``NAME [param]`` / ``NAME [message]`` (the table's labels for a name that is
    both) look in one place only. ``sort`` orders the rows (see :func:`sort_rows`). Unreadable experiments, and
    unreadable sets found below a parent folder, are reported in ``problems``; a set the globs name themselves
    (the current folder's set, ROOT, ROOT/GLOB) whose experiment.yml cannot be read raises StateFileError.
    """
    with no_gc():
        result = _collect(globs, cwd, params=params, type=type, status=status)
        if sort:
            sort_rows(result.rows, sort)
        return result


def _collect(
    globs: Sequence[str] | None,
    cwd: str | os.PathLike[str] | None,
    *,
    params: Sequence[str],
    type: str | None,
    status: Sequence[str],
) -> ListResult:
    unknown = [s for s in status if s not in st.ALL]
    if unknown:
        raise UsageError(f"unknown status {unknown[0]!r} (choose from {', '.join(st.ALL)})")
    predicates = [(*split_label(f.name), f) for f in parse_param_filters(params) if isinstance(f, Predicate)]
    wanted_status = set(status)
    base = os.path.abspath(os.fspath(cwd) if cwd is not None else os.getcwd())
    now_ns = time.time_ns()
    patterns, selected = select_sets(list(globs or [base]), base, lambda root: _SetState(root, now_ns))
    named = named_sets(patterns)
    _refuse_named_damage(named, selected)

    rows: list[dict[str, Any]] = []
    problems: list[tuple[str, str]] = []
    sets: list[SetInfo] = []
    queue = QueueView(own_job=True, explain=True)  # what SLURM says of the queued markers: one squeue call for all
    marked: list[dict[str, Any]] = []  # rows with a SLURM queued marker (xmen.slurm.queue)
    contexts: dict[_Context, _Context] = {}
    type_ok: dict[Any, bool] = {}
    for root, (state, matcher) in selected.items():
        if state.problem is not None:
            problems.append((root, state.problem))
            continue
        info = state.info
        names = state.names if matcher is None else [n for n in state.names if matcher(n)]
        for bad in [n for n in names if _invalid_name(n)]:
            problems.append((root, f"{SET_FILE} links an invalid experiment name {bad!r}"))
            names = [n for n in names if n != bad]
        notes = info.get("notes")
        listed = SetInfo(root, info.get("type"), info.get("created"), info.get("purpose"), list(notes or []))
        set_type = info.get("type")
        place = info.get("place")
        origin = origin_label(place, root) if isinstance(place, dict) else ""
        for name, (context, raw_status, user, messages, liveness, extra) in state.records(names, contexts, problems):
            exp_type = context[1] if context[1] is not None else set_type
            if type is not None:
                ok = type_ok.get(exp_type)
                if ok is None:
                    ok = type_ok[exp_type] = _type_matches(type, exp_type)
                if not ok:
                    continue
            if predicates and not _passes(predicates, user, messages):
                continue
            if raw_status.__class__ is str and raw_status != st.RUNNING:
                shown = raw_status  # what shown_status says without the queue: the common case, without a call
            else:
                shown = shown_status({"_status": raw_status, **(liveness or {})}, f"{root}/{name}").value
            # Its SLURM queued marker: one failed open in the common case.
            queued = read_marker(f"{root}/{name}") if st.may_be_queued(shown) else None
            if wanted_status and shown not in wanted_status and not (queued and st.QUEUED in wanted_status):
                continue
            rows.append(
                {
                    "root": root,
                    "name": name,
                    "created": context[0],
                    "type": exp_type,
                    "purpose": context[2],
                    "origin": origin,
                    "mac": context[3],
                    "host": context[4],
                    "user": context[5],
                    "home": context[6],
                    "status": shown,
                    "commit": context[7],
                    "params": user,
                    "messages": messages,
                    "error": extra["error"] if extra is not None else None,
                    "notes": extra["notes"] if extra is not None else None,
                    **_slurm_columns(extra, liveness, shown),
                }
            )
            if queued is not None:
                marked.append(rows[-1])
                queue.known(f"{root}/{name}", queued)  # squeue is asked about the kept rows' jobs only
            listed.names.append(name)
        _add_plan_reasons(rows, root)
        state.save()
        sets.append(listed)
    if marked:
        _show_queued(marked, queue)
        if wanted_status:
            rows = [r for r in rows if r["status"] in wanted_status]
            for listed in sets:
                kept = {r["name"] for r in rows if r["root"] == listed.root}
                listed.names[:] = [n for n in listed.names if n in kept]
    filtered = bool(predicates or type is not None or wanted_status)
    return ListResult(rows, problems, sets, [p.text for p in patterns], filtered)


def _slurm_columns(extra: dict[str, Any] | None, liveness: dict[str, Any] | None, shown: str) -> dict[str, Any]:
    """The SLURM columns: the last job whose verdict was recorded (``_slurm``), or the job that runs the experiment
    now when that is a later one (a retry): its id, ``RUNNING`` and its node (its verdict comes when it ends)."""
    values = (extra is not None and extra.get("slurm")) or _NO_SLURM
    run = (liveness or {}).get("_run") if shown == st.RUNNING else None
    job = str(run.get("slurm_job_id") or "") if isinstance(run, dict) else ""
    if job and job != str(values[0]):
        values = (job, "RUNNING", run.get("slurm_node"), None, None)  # type: ignore[union-attr]
    elif shown == st.TIMEOUT and values[1] == "FAILED" and str(extra.get("error") or "").startswith(st.STOPPED_ITSELF):
        # SLURM saw the exit code of a run that stopped itself before its time limit (Monitor stop_before)
        values = (values[0], "FAILED (stopped itself for its time limit)", *values[2:])
    return dict(zip(SLURM_COLUMNS, values))


def _show_queued(marked: list[dict[str, Any]], queue: QueueView) -> None:
    """Rows whose experiment has a queued marker: ``queued`` while its job is alive in SLURM, with the job id and
    SLURM's pending reason (ONE ``squeue`` call for all); otherwise their status stays, and the plan column says
    what became of the job (see QueueView.about: ONE ``sacct`` call for the jobs that left the queue)."""
    for row in marked:
        path = f"{row['root']}/{row['name']}"
        shown = shown_status({"_status": row["status"]}, path, queue)
        row["status"] = shown.value
        found = queue.marker(path)
        if shown.value == st.QUEUED and found is not None and str(row.get("slurm_job")) != found.job_id:
            state = queue.state(found.job_id)  # a retry's job: its own id and state, not the last attempt's
            row.update(zip(SLURM_COLUMNS, (found.job_id, state.state if state else "PENDING", None, None, None)))
        if shown.why:
            row["plan"] = shown.why


# ---------------------------------------------------------------------------------------------- filters and sorting
def split_label(label: str) -> tuple[str, str]:
    """``("lr", "param")`` for ``"lr [param]"``, ``("lr", "message")`` for ``"lr [message]"``, else
    ``(label, "any")``: how ``-p`` predicates and ``--sort`` keys name a parameter or message explicitly."""
    for where in ("param", "message"):
        suffix = f" [{where}]"
        if label.endswith(suffix):
            return label[: -len(suffix)], where
    return label, "any"


def _lookup(name: str, where: str, user: dict[str, Any], messages: dict[str, Any]) -> Any:
    """The value a predicate or sort key names: the parameter if there is one (unless ``[message]``), else the
    message; ``_MISSING`` when neither."""
    if where != "message" and name in user:
        return user[name]
    if where != "param" and name in messages:
        return messages[name]
    return _MISSING


def _passes(predicates: Sequence[tuple[str, str, Predicate]], user: dict[str, Any], messages: dict[str, Any]) -> bool:
    for name, where, predicate in predicates:
        value = _lookup(name, where, user, messages)
        if value is _MISSING and where == "any":  # the original's regex names ('a.*==cat'): every match holds
            matched = predicate.names(user)
            if matched and all(predicate.holds(user[n]) for n in matched):
                continue
        if value is _MISSING or not predicate.holds(value):
            return False
    return True


#: Row keys ``--sort`` can name besides parameters and messages.
SORTABLE_COLUMNS = (*FIXED_COLUMNS, "error", "notes", *SLURM_COLUMNS)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sort_value(value: Any) -> tuple[int, float, str] | None:
    """The sort key of a value: numbers by value before text; None for a missing value or a YAML null (those go
    last whatever the direction)."""
    if value is None or value is _MISSING or (value.__class__ is float and value != value):
        return None
    if _is_number(value):
        return (0, float(value), "")
    return (1, 0.0, value if value.__class__ is str else str(value))


def sort_rows(rows: list[dict[str, Any]], keys: Sequence[str], descending: bool = False) -> None:
    """Sort ``rows`` in place by ``keys``, the first deciding first; ``-KEY`` (or ``descending``) sorts one key
    from largest to smallest. Numbers sort by value, before text; rows without the key come last either way.

    A key names a row column (:data:`SORTABLE_COLUMNS`: ``name``, ``status``, ``created``, ...), else a parameter,
    else a message, as ``-p`` predicates do (``NAME [param]`` / ``NAME [message]`` choose one). A key no row has
    is a UsageError.
    """
    for key in reversed(list(keys)):
        reverse = descending
        if key.startswith("-"):
            key, reverse = key[1:], not descending
        name, where = split_label(key)
        if not name:
            raise UsageError("empty sort key (expected e.g. --sort val_acc or --sort=-val_acc)")
        if where == "any" and name in SORTABLE_COLUMNS:
            values = [sort_value(r[name]) for r in rows]
        else:
            values = [sort_value(_lookup(name, where, r["params"], r["messages"])) for r in rows]
            if rows and all(v is None for v in values) and not any(
                _lookup(name, where, r["params"], r["messages"]) is not _MISSING for r in rows
            ):
                raise UsageError(f"cannot sort by {key!r}: no listed experiment has such a parameter or message")
        present = [i for i, v in enumerate(values) if v is not None]
        absent = [i for i, v in enumerate(values) if v is None]
        present.sort(key=values.__getitem__, reverse=reverse)
        rows[:] = [rows[i] for i in present + absent]


# ---------------------------------------------------------------------------------------------- the planner's word
def _ran_by_xmen(exp_dir: str) -> bool:
    """True when xmen's job runner ran the experiment in ``exp_dir`` (its run lock file counts the runs)."""
    try:
        return os.stat(os.path.join(exp_dir, LOCK_FILE)).st_size > 0
    except OSError:
        return False


def _add_plan_reasons(rows: list[dict[str, Any]], root: str) -> None:
    """The planner's word (xmen.run.planner) on the rows of the set at ``root`` where the status alone misleads: a
    finished experiment that is stale (``! changed: params changed (lr: 0.1 -> 0.5)``), needs a run anyway, or is
    blocked by a requirement."""
    planner = Planner(reasons=False)
    checker: Planner | None = None  # reads params.yml: for the rare status file beside an unfinished status
    for row in rows:
        if row["root"] != root or "plan" in row:
            continue
        path = os.path.join(root, row["name"])
        reason = ""
        contradicted = row["status"] != st.FINISHED and os.path.lexists(os.path.join(path, st.DONE_FILE))
        if row["status"] != st.FINISHED and not contradicted and not (planner.options(path) or {}).get("requires"):
            row["plan"] = reason  # nothing to say: its status says it all, and nothing can block it
            continue
        if contradicted:
            checker = checker or Planner(reasons=True)
        verdict = (checker if contradicted else planner).verdict(path)  # type: ignore[union-attr]
        if verdict.action == CHANGED:
            reason = f"! changed: {verdict.reason}"
        elif verdict.action == BLOCKED:
            reason = f"! blocked: {verdict.reason}"
        elif verdict.action != DONE and row["status"] == st.FINISHED and verdict.reason != "pending":
            reason = f"! pending: {verdict.reason}"
        elif verdict.action != DONE and row["status"] == st.FINISHED and _ran_by_xmen(path):
            # Its status file is gone (`snakemake --delete-all-output`, a hand rm): it runs again. A finished
            # experiment of the original xmen never had one and was never run by xmen's runner: not flagged.
            reason = "! pending: status file missing"
        row["plan"] = reason
