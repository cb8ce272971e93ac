"""Rows for ``xmen list``: find experiment sets, read their experiments through an index cache, filter, format.

Sets hold 10k-100k experiments and parsing that many ``params.yml`` files takes tens of seconds, so each set keeps
an index in ``<root>/.xmen/``: ``index.json`` holds, per linked experiment, the ``(inode, mtime_ns, ctime_ns,
size)`` of its ``params.yml`` and the row read from it (``[ino, mtime, ctime, size, context, status, params,
messages, liveness, extra]``, with the creation/type/purpose/meta/commit ``context`` shared between rows and
``extra`` the failure reason and notes of experiments that have any), plus the parsed ``experiment.yml`` under
its own signature; ``index-delta.json`` holds the entries re-read since. A listing stats every selected
``params.yml`` and re-reads only those whose signature changed; it writes (atomically, last writer wins) only
what changed. The folders stay the source of truth: a missing, corrupt or foreign index is ignored and
rebuilt, and an entry is only stored when the file's mtime and ctime are older than :data:`RACY_NS` at read time,
so that two writes within one timestamp tick (same size, recycled inode) cannot hide behind an unchanged signature
(git's "racily clean" rule). A ``running`` row costs one more stat, of its heartbeat, to tell ``lost`` apart.

pandas is imported only by :func:`to_dataframe` and by :func:`render_table` for tables it must format itself.
"""
from __future__ import annotations

import contextlib
import csv
import fnmatch
import gc
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from xmen.store import status as st
from xmen.errors import StateFileError, UsageError
from xmen.store.origin import label as origin_label
from xmen.look.predicates import ColumnPattern, Predicate, parse_param_filters
from xmen.store.statecheck import check_set_data
from xmen.store.shown import shown_status
from xmen.store.layout import DELTA_FILE, INDEX_FILE, LOCK_FILE, PARAMS_FILE, SET_FILE, XMEN_DIR
from xmen.run.planner import BLOCKED, CHANGED, DONE, Planner
from xmen.slurm.queue import QueueView
from xmen.store import history
from xmen.store.files import load_yaml_text, write_text_atomic
from xmen.store.legacy import convert_set
from xmen.sets.finding import select_sets, sets_selected as find_sets  # find_sets: xmen.listing.find_sets, its old name

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = [
    "FIXED_COLUMNS",
    "ListResult",
    "SetInfo",
    "collect",
    "common_root",
    "find_sets",
    "render_csv",
    "render_notebook",
    "readable",
    "render_table",
    "sort_rows",
    "sort_value",
    "table_columns",
    "to_dataframe",
]

#: The delta is folded into the base once it holds more than this many entries or a tenth of the set.
DELTA_MIN = 500
INDEX_FORMAT = "xmen-list-index"
INDEX_VERSION = 3  # 3: extra carries the last SLURM job record
#: Files whose mtime or ctime is this close to the time they were read are re-read next time rather than trusted
#: from the index: 2 s covers the coarsest timestamps in use (FAT; ext3 and some NFS servers have 1 s).
RACY_NS = 2_000_000_000

#: Columns every row has, in the order of the tutorial's ``xmen list -v``; parameters and messages follow.
FIXED_COLUMNS = ("root", "name", "created", "type", "purpose", "mac", "host", "user", "home", "status", "commit")
META_COLUMNS = ("mac", "host", "user", "home")
#: Columns from the experiment's last SLURM job record (``_slurm``, see xmen.slurm): ``xmen list --slurm``.
SLURM_COLUMNS = ("slurm_job", "slurm_state", "slurm_node", "slurm_elapsed", "slurm_max_rss")
_SLURM_FIELDS = ("job_id", "state", "node", "elapsed", "max_rss")

# In-memory experiment record: (context, status, params, messages, liveness, extra) where context is the tuple
# below, shared between the experiments of one registration, liveness holds ``_run``/``_started`` of running ones
# and extra ``{"error": _error, "notes": _notes, "slurm": last _slurm record?}`` of experiments that have any
# (None otherwise).
_CONTEXT_FIELDS = ("created", "type", "purpose", "mac", "host", "user", "home", "commit")
_Context = tuple[Any, ...]
_Record = tuple[_Context, Any, dict[str, Any], dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]
_ENTRY_LENGTH = 10
_Signature = tuple[int, int, int, int]

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


# ---------------------------------------------------------------------------------------------- index
def _signature(stat: os.stat_result) -> _Signature:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)


def _settled(stat: os.stat_result, now_ns: int) -> bool:
    """Whether a file's last change is old enough that any later change must alter its signature."""
    return max(stat.st_mtime_ns, stat.st_ctime_ns) < now_ns - RACY_NS


def _jsonable(value: Any) -> Any:
    """A JSON-safe copy of a YAML value (dates, sets, bytes become text), used for fresh and cached rows alike."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _read_text(path: str) -> tuple[os.stat_result, str]:
    """Contents of ``path`` and the signature of exactly that version (fstat of the open file)."""
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        raise StateFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return stat, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateFileError(f"{path}: cannot read: {exc}") from None


def _read_mapping(path: str) -> tuple[os.stat_result, dict[str, Any]]:
    """Parse a YAML mapping; StateFileError with a one-line reason otherwise."""
    stat, text = _read_text(path)
    data = load_yaml_text(text, path)
    if not isinstance(data, dict):
        raise StateFileError(f"{path}: expected a YAML mapping, found {type(data).__name__}")
    return stat, data


# Where a top-level entry of a block mapping starts: a line beginning with anything but space, comment or '- '.
_ENTRY_START = re.compile(r"^(?:[^\s#-]|-\S)", re.M)
# Top-level constructs whose meaning spans entries (documents, directives, explicit/merge keys, anchors, flow).
_NEEDS_WHOLE = re.compile(r"^(?:---|\.\.\.|%|\?|:|<<|[&*!{\[|>@`])", re.M)
_MEMO_LIMIT = 4096


def _parse_entries(text: str, memo: dict[str, Any]) -> dict[str, Any] | None:
    """Parse a params.yml entry by entry, reusing entries seen in other files; None when that is not equivalent.

    Experiments of a set share most of their text (``_version``, ``_meta``, ``_root``, most parameters), and the
    YAML constructor is the slow part of reading them, so each top-level ``key: value`` chunk is parsed once. A
    chunk boundary inside a quoted or flow value leaves an unparsable chunk, and anything that links entries
    (aliases, merge keys, documents, directives) is sent to the whole-file parser, whose errors users then see.
    """
    if _NEEDS_WHOLE.search(text):
        return None
    starts = [m.start() for m in _ENTRY_START.finditer(text)]
    if not starts:
        return None
    starts[0] = 0  # leading comments and a BOM belong to the first entry, as in the whole document
    starts.append(len(text))
    result: dict[str, Any] = {}
    for begin, end in zip(starts, starts[1:]):
        chunk = text[begin:end]
        parsed = memo.get(chunk)
        if parsed is None:
            try:
                parsed = load_yaml_text(chunk)
            except StateFileError:
                return None
            if not isinstance(parsed, dict):
                return None
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[chunk] = parsed
        result.update(parsed)
    return result


def _read_params(path: str, memo: dict[str, Any] | None = None) -> tuple[os.stat_result, dict[str, Any]]:
    """Read one params.yml (the one expensive step the index exists to avoid; tests count calls)."""
    if memo is None:
        return _read_mapping(path)
    stat, text = _read_text(path)
    data = _parse_entries(text, memo)
    if data is None:
        data = load_yaml_text(text, path)
        if not isinstance(data, dict):
            raise StateFileError(f"{path}: expected a YAML mapping, found {type(data).__name__}")
    return stat, data


def _record(params: dict[str, Any], contexts: dict[_Context, _Context]) -> _Record:
    """The listed part of a params.yml, JSON-safe, with its context shared through ``contexts``."""
    meta = params.get("_meta")
    context = tuple(
        _jsonable(v)
        for v in (
            params.get("_created") or _get(params, "_timestamps", "created"),  # the latter: the 2021 original's
            _get(params, "_version", "class"),
            params.get("_purpose"),
            _get(meta, "mac"),
            _get(meta, "host"),
            _get(meta, "user"),
            _get(meta, "home"),
            _get(params, "_version", "git", "commit"),
        )
    )
    context = contexts.setdefault(context, context)
    status = _jsonable(params.get("_status", st.DEFAULT))
    user = {}
    for key, value in params.items():
        key = key if isinstance(key, str) else str(key)
        if not key.startswith("_"):
            user[key] = _jsonable(value)
    messages = _jsonable(params.get("_messages"))
    messages = messages if isinstance(messages, dict) else {}
    liveness = None
    if status == st.RUNNING:
        liveness = {k: _jsonable(params[k]) for k in ("_run", "_started") if k in params}
    extra = None
    error, notes, jobs = params.get("_error"), params.get("_notes"), params.get(st.SLURM_KEY)
    if error is not None or notes or jobs:
        notes = [str(n) for n in notes] if isinstance(notes, list) else [str(notes)] if notes else []
        extra = {"error": None if error is None else str(error), "notes": notes}
        last = jobs[-1] if isinstance(jobs, list) and jobs else None
        if isinstance(last, dict):
            extra["slurm"] = [_jsonable(last.get(key)) for key in _SLURM_FIELDS]
    return (context, status, user, messages, liveness, extra)


def _reason(exc: Exception, path: str) -> str:
    """The message of a StateFileError without the leading path (reported next to it)."""
    text = str(exc)
    return text[len(path) + 2 :] if text.startswith(path + ": ") else text


class _SetState:
    """One set during a listing: its index as loaded, what experiment.yml says, and the entries to write back.

    The index is two files of the same format: ``index.json`` with every entry and a small ``index-delta.json``
    with the entries re-read since, so that a listing while experiments run (their params.yml change all the time)
    rewrites a few entries rather than all 100k. The delta is folded into the base once it holds a tenth of the set.
    Any mix of the two files, even from different listings, is correct: each entry carries its own signature.
    """

    def __init__(self, root: str, now_ns: int) -> None:
        self.root = root
        self.now_ns = now_ns
        self.index_path = os.path.join(root, XMEN_DIR, INDEX_FILE)
        self.delta_path = os.path.join(root, XMEN_DIR, DELTA_FILE)
        self.problem: str | None = None
        self.info: dict[str, Any] = {}
        self.names: list[str] = []
        self._rewrite = False  # the base must be rewritten (missing, corrupt, or experiment.yml changed)
        self._old_contexts: list[_Context | None] = []
        self._old: dict[str, Any] = {}
        self._delta_names: set[str] = set()
        self._new: dict[str, tuple[_Signature, _Record] | None] = {}
        self._set_entry: list[Any] | None = None
        self._load()

    # -- reading
    @staticmethod
    def _load_document(path: str) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as handle:
                data = json.loads(handle.read())
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or data.get("version") != INDEX_VERSION:
            return None  # not ours, or another version
        if not isinstance(data.get("contexts"), list) or not isinstance(data.get("experiments"), dict):
            return None
        return data

    def _add_entries(self, data: dict[str, Any], delta: bool) -> None:
        """Merge one index file's entries, renumbering its contexts after those already loaded."""
        offset = len(self._old_contexts)
        # Validated once here so that each cached row costs a few comparisons; None marks a bad context.
        self._old_contexts.extend(
            tuple(c) if isinstance(c, list) and len(c) == len(_CONTEXT_FIELDS) else None for c in data["contexts"]
        )
        entries: dict[str, Any] = data["experiments"]
        if not delta:
            self._old.update(entries)
            return
        for name, entry in entries.items():
            if isinstance(entry, list) and len(entry) == _ENTRY_LENGTH and entry[4].__class__ is int and entry[4] >= 0:
                entry[4] += offset
                self._old[name] = entry
                self._delta_names.add(name)

    def _load(self) -> None:
        base = self._load_document(self.index_path)
        cached_set = None
        if base is not None:
            self._add_entries(base, delta=False)
            cached_set = base.get("set")
        else:
            self._rewrite = True  # no usable index: write one
        delta = self._load_document(self.delta_path)
        if delta is not None:
            self._add_entries(delta, delta=True)
        path = os.path.join(self.root, SET_FILE)
        try:
            stat = os.stat(path)
        except OSError as exc:
            self.problem = f"cannot read {SET_FILE}: {exc.strerror or exc}"
            return
        if isinstance(cached_set, list) and len(cached_set) == 2 and cached_set[0] == list(_signature(stat)):
            info = cached_set[1]
            names = info.get("names") if isinstance(info, dict) else None
            if isinstance(names, list) and all(name.__class__ is str for name in names):
                self.info = info
                self.names = names
                self._set_entry = cached_set
                return
        try:
            stat, data = _read_mapping(path)
        except StateFileError as exc:
            self.problem = f"{SET_FILE}: {_reason(exc, path)}"
            return
        data = convert_set(data)  # a set written by the original xmen (experiments: a list of absolute paths)
        try:  # the shape every command checks (experiments: [a, b] is damage, not a list of names)
            check_set_data(SET_FILE, data, check_names=False)
        except StateFileError as exc:
            self.problem = str(exc)
            return
        linked = data.get("experiments") or {}
        names = [str(k) for k in linked]
        notes = data.get("notes") or []
        notes = [str(n) for n in notes] if isinstance(notes, list) else [str(notes)]
        self.info = {
            "type": _jsonable(data.get("type")),
            "created": _jsonable(data.get("created")),
            "purpose": _jsonable(data.get("purpose")),
            "notes": notes,
            "names": names,
            "place": _jsonable({key: data.get(key) for key in ("root", "origin", "origins")}),  # for its origin
        }
        self.names = names
        self._set_entry = [list(_signature(stat)), self.info] if _settled(stat, self.now_ns) else None
        if cached_set != self._set_entry:
            self._rewrite = True

    def _cached(self, entry: Any, stat: os.stat_result) -> _Record | None:
        """The indexed record ``entry`` if its signature still matches ``stat`` (None for any malformed entry)."""
        try:
            ino, mtime, ctime, size, context_id, status, user, messages, liveness, extra = entry
            if ino != stat.st_ino or mtime != stat.st_mtime_ns or ctime != stat.st_ctime_ns or size != stat.st_size:
                return None
            if context_id.__class__ is not int or context_id < 0:
                return None
            context = self._old_contexts[context_id]
        except (ValueError, IndexError, TypeError):
            return None
        if context is None or user.__class__ is not dict or messages.__class__ is not dict:
            return None
        if liveness is not None and liveness.__class__ is not dict:
            return None
        if extra is not None and extra.__class__ is not dict:
            return None
        return (context, status, user, messages, liveness, extra)

    def records(
        self, names: Iterable[str], contexts: dict[_Context, _Context], problems: list[tuple[str, str]]
    ) -> Iterator[tuple[str, _Record]]:
        """Records of ``names`` (linked experiments), from the index where still valid, else from disk."""
        root = self.root
        memo: dict[str, Any] = {}
        old = self._old
        for name in names:
            path = f"{root}/{name}/{PARAMS_FILE}"
            try:
                stat = os.stat(path)
            except OSError as exc:
                problems.append((os.path.join(root, name), f"cannot read {PARAMS_FILE}: {exc.strerror or exc}"))
                self._new[name] = None
                continue
            entry = old.get(name)
            record = self._cached(entry, stat) if entry is not None else None
            if record is not None:
                yield name, record
                continue
            try:
                stat, params = _read_params(path, memo)
            except StateFileError as exc:
                problems.append((os.path.join(root, name), _reason(exc, path)))
                self._new[name] = None
                continue
            record = _record(params, contexts)
            # A file changed within RACY_NS is read again next time: its signature cannot vouch for its content.
            self._new[name] = (_signature(stat), record) if _settled(stat, self.now_ns) else None
            yield name, record

    # -- writing
    def save(self) -> None:
        """Write what changed: the delta, or the whole index when it must be rebuilt or the delta grew large.

        Entries known to be stale (re-read but too recent to store, unreadable, unlinked) are simply left out;
        one left behind in the base is harmless, as its signature no longer matches. Never fails a listing.
        """
        linked = set(self.names)
        fresh = [name for name, new in self._new.items() if new is not None]
        full = self._rewrite or any(name not in linked for name in self._old)
        if not full and not fresh:
            return
        if not full:
            delta = [n for n in self._delta_names if n not in self._new] + fresh
            if len(delta) <= max(DELTA_MIN, len(self.names) // 10):
                self._write(self.delta_path, delta, None)
                return
        self._write(self.index_path, self.names, self._set_entry)
        with contextlib.suppress(OSError):
            os.unlink(self.delta_path)

    def _write(self, path: str, names: Iterable[str], set_entry: list[Any] | None) -> None:
        contexts: dict[tuple[Any, ...], int] = {}
        entries: dict[str, list[Any]] = {}
        for name in names:
            if name in self._new:
                fresh = self._new[name]
                if fresh is None:
                    continue
                sig, (context, status, user, messages, liveness, extra) = fresh
                entries[name] = [
                    *sig, contexts.setdefault(context, len(contexts)), status, user, messages, liveness, extra
                ]
                continue
            entry = self._old.get(name)
            if isinstance(entry, list) and len(entry) == _ENTRY_LENGTH:
                try:
                    old_context = self._old_contexts[entry[4]]
                except (IndexError, TypeError):
                    continue
                if old_context is not None:
                    entries[name] = entry[:4] + [contexts.setdefault(old_context, len(contexts))] + entry[5:]
        document = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "set": set_entry,
            "contexts": [list(c) for c in contexts],
            "experiments": entries,
        }
        try:
            text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_text_atomic(path, text)
        except (OSError, ValueError, TypeError, RecursionError):
            pass  # the folders are the truth; the next listing simply reads them again


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

    ``params`` are ``-p`` values (only their predicates filter rows, see :mod:`xmen.predicates`), ``type`` a glob or
    regex over the experiment class (``_version.class``, else the set's ``type``) and ``status`` the statuses to
    keep (``lost`` included). A predicate's name is looked up among the experiment's parameters first, then among
    its messages (``val_acc>0.9``); ``NAME [param]`` / ``NAME [message]`` (the table's labels for a name that is
    both) look in one place only. ``sort`` orders the rows (see :func:`sort_rows`). Unreadable sets and
    experiments are reported in ``problems``, never raised.
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
        for bad in [n for n in names if not n or "/" in n or n in (".", "..")]:
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
            queued = None  # its queued marker, read (one failed open in the common case) only when it matters
            if st.may_be_queued(shown) and (not wanted_status or shown in wanted_status or st.QUEUED in wanted_status):
                queued = queue.marker(f"{root}/{name}")
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
                    **dict(zip(SLURM_COLUMNS, (extra is not None and extra.get("slurm")) or _NO_SLURM)),
                }
            )
            if queued is not None:
                marked.append(rows[-1])
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


def _show_queued(marked: list[dict[str, Any]], queue: QueueView) -> None:
    """Rows whose experiment has a queued marker: ``queued`` while its job is alive in SLURM, with the job id and
    SLURM's pending reason (ONE ``squeue`` call for all); otherwise their status stays, and the plan column says
    what became of the job (see QueueView.about: ONE ``sacct`` call for the jobs that left the queue)."""
    for row in marked:
        shown = shown_status({"_status": row["status"]}, f"{row['root']}/{row['name']}", queue)
        row["status"] = shown.value
        if shown.why:
            row["plan"] = shown.why


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


def _ran_by_xmen(exp_dir: str) -> bool:
    """True when xmen's job runner ran the experiment in ``exp_dir`` (its run lock file counts the runs)."""
    try:
        return os.stat(os.path.join(exp_dir, LOCK_FILE)).st_size > 0
    except OSError:
        return False


def _add_plan_reasons(rows: list[dict[str, Any]], root: str) -> None:
    """The planner's word (xmen.planner) on the rows of the set at ``root`` where the status alone misleads: a
    finished experiment that is stale (``! changed: params changed (lr: 0.1 -> 0.5)``), needs a run anyway, or is
    blocked by a requirement."""
    planner = Planner(reasons=False)
    for row in rows:
        if row["root"] != root or "plan" in row:
            continue
        path = os.path.join(root, row["name"])
        reason = ""
        if row["status"] != st.FINISHED and not (planner.options(path) or {}).get("requires"):
            row["plan"] = reason  # nothing to say: its status says it all, and nothing can block it
            continue
        verdict = planner.verdict(path)
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


# ---------------------------------------------------------------------------------------------- columns
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
        fixed.append("origin")  # where sets copied from elsewhere live (see xmen.origin)
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


# ---------------------------------------------------------------------------------------------- rendering
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _frame(labels: Sequence[str], columns: Sequence[Sequence[Any]]) -> "pandas.DataFrame":
    """A DataFrame keeping YAML's None apart from a missing value: numeric columns are numbers, others objects."""
    import pandas as pd

    data = {}
    for i, values in enumerate(columns):
        present = [v for v in values if v is not _MISSING]
        numeric = bool(present) and all(_is_number(v) for v in present)
        data[i] = pd.Series(values, dtype=None if numeric else object) if values else pd.Series([], dtype=object)
    frame = pd.DataFrame(data)
    frame.columns = list(labels)
    return frame


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
    end in ``...``) and ``max_rows`` shows only the first and last rows. Plain-text tables skip pandas (same text)."""
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
    for i, info in enumerate(shown):
        lines = [f"{i:>2} {info.root}"]
        lines.extend(f"     |- {name}" for name in info.names)
        lines.append(f"     Purpose: {'' if info.purpose is None else info.purpose}")
        lines.append(f"     Created: {'' if info.created is None else info.created}")
        lines.append(f"     Type: {'' if info.type is None else info.type}")
        lines.append("     Notes: ")
        lines.extend(f"       {note}" for note in info.notes)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------------------------- python API
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
    import pandas as pd


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
