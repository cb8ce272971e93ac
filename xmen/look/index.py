"""The ``xmen list`` index cache: each set's ``index.json`` and the reading of params.yml it saves.

Sets hold 10k-100k experiments and parsing that many ``params.yml`` files takes tens of seconds, so each set has
an index in the user's cache folder (:func:`cache_folder`: ``$XDG_CACHE_HOME/xmen/list-index/<hash of the set's
real path>/``), never in the set: a listing reads sets of other users, read-only sets and synced copies, and
changes none of them; a cache that cannot be written costs time, never the listing. ``index.json`` holds, per linked experiment, the ``(inode, mtime_ns, ctime_ns,
size)`` of its ``params.yml`` and the row read from it (``[ino, mtime, ctime, size, context, status, params,
messages, liveness, extra]``, with the creation/type/purpose/meta/commit ``context`` shared between rows and
``extra`` the failure reason and notes of experiments that have any), plus the parsed ``experiment.yml`` under
its own signature; ``index-delta.json`` holds the entries re-read since. A listing stats every selected
``params.yml`` and re-reads only those whose signature changed; it writes (atomically, last writer wins) only
what changed. The folders stay the source of truth: a missing, corrupt or foreign index is ignored and
rebuilt, and an entry is only stored when the file's mtime and ctime are older than :data:`RACY_NS` at read time,
so that two writes within one timestamp tick (same size, recycled inode) cannot hide behind an unchanged signature
(git's "racily clean" rule).

Reading a params.yml the index does not vouch for goes through its own YAML chunk parser (:func:`_parse_entries`),
not the store's whole-file reader: experiments of a set share most of their text, so each top-level ``key:
value`` chunk is parsed once per listing and reused. It is a measured fast path, kept for that reason: 3,000
params.yml written as ``xmen register`` writes them (benchmarks/bench_list.py's set) parse in about 0.2 s by
chunks against about 0.4 s whole (``python benchmarks/bench_chunks.py``); whatever the chunks cannot express
equivalently goes to the whole-file parser (tests/test_listing.py compares the two on odd documents).

:class:`_SetState` is one set during a listing (xmen.look.rows drives it); ``RACY_NS``, ``DELTA_MIN`` and
``_read_params`` are module globals that tests patch here.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from typing import Any, Iterable, Iterator

from xmen.errors import StateFileError
from xmen.store import status as st
from xmen.store.files import load_yaml_text, write_text_atomic
from xmen.store.config import cache_dir
from xmen.store.layout import DELTA_FILE, INDEX_CACHE_DIR, INDEX_FILE, PARAMS_FILE, SET_FILE
from xmen.store.legacy import convert_set
from xmen.store.statecheck import check_set_data

#: The delta is folded into the base once it holds more than this many entries or a tenth of the set.
DELTA_MIN = 500
INDEX_FORMAT = "xmen-list-index"
INDEX_VERSION = 3  # 3: extra carries the last SLURM job record
#: Files whose mtime or ctime is this close to the time they were read are re-read next time rather than trusted
#: from the index: 2 s covers the coarsest timestamps in use (FAT; ext3 and some NFS servers have 1 s).
RACY_NS = 2_000_000_000
#: The fields of an experiment's last ``_slurm`` record a row keeps, in the order of xmen.look.rows.SLURM_COLUMNS.
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
    (aliases, merge keys, documents, directives) is sent to the whole-file parser, whose errors users then see; so
    is a top-level key given in two chunks (the whole-file parser refuses it: a duplicate key is damage).
    """
    if _NEEDS_WHOLE.search(text):
        return None
    starts = [m.start() for m in _ENTRY_START.finditer(text)]
    if not starts:
        return None
    starts[0] = 0  # leading comments and a BOM belong to the first entry, as in the whole document
    starts.append(len(text))
    result: dict[str, Any] = {}
    given = 0
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
        given += len(parsed)
    if given != len(result):  # a top-level key given twice: the whole-file parser names it (damage)
        return None
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


def cache_folder(root: str | os.PathLike[str]) -> str:
    """The user's cache folder of the set at ``root`` (keyed by its real path; a moved set starts a new one)."""
    real = os.path.realpath(os.fspath(root))
    key = hashlib.sha256(os.fsencode(real)).hexdigest()[:32]
    return os.path.join(cache_dir(), INDEX_CACHE_DIR, key)


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
        folder = cache_folder(root)
        self.index_path = os.path.join(folder, INDEX_FILE)
        self.delta_path = os.path.join(folder, DELTA_FILE)
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
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            write_text_atomic(path, text)
        except (OSError, ValueError, TypeError, RecursionError):
            pass  # the folders are the truth; the next listing simply reads them again
