"""Metric history: every ``message()`` of an experiment, in order, in an append-only file next to its ``params.yml``.

``params.yml`` keeps only the latest value per key (``_messages``); loss curves need every value, and rewriting a
YAML file per training step costs more than the step. So each experiment folder gets :data:`HISTORY_FILE`, one JSON
object per line (JSON Lines)::

    {"time": 1796151567.25, "step": 3, "values": {"loss": 0.41, "val_acc": 0.93}}

``time`` is the Unix time of the call, ``step`` the caller's step (an int) or ``null``, ``values`` what was sent
(keys are text; values are JSON: numbers, text, booleans, null, lists, mappings; ``NaN``/``Infinity`` as Python's
json writes them). The values are a separate mapping, so a message named ``time`` or ``step`` (the tutorial sends
``{'time': time.time()}``) cannot clash with the record's own fields. :func:`read` returns the records as dicts of
exactly that shape.

Writers never rewrite the file: a :class:`HistoryWriter` buffers lines in memory and appends them in one ``write``
of an ``O_APPEND`` descriptor under an ``flock`` of the history file, at most every :data:`FLUSH_SECONDS`, from a
background thread, and at :meth:`HistoryWriter.close` / interpreter exit. Several processes may append to one
history (their lines never interleave). A ``kill -9`` loses at most the lines buffered in the last
:data:`FLUSH_SECONDS`; a write cut short leaves a torn line without its newline, which the next writer closes with
a newline first and :func:`read` skips, so the file stays readable. (Appends are not fsync'ed per flush, only at
close: a kill leaves them in the page cache; a power failure may lose the last seconds.)

Only the stdlib is imported: this module loads inside every job.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import sys
import threading
import time as _time
import weakref
from xmen.store import files
from xmen.store.layout import HISTORY_FILE
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["FLUSH_SECONDS", "HISTORY_FILE", "LATEST_SECONDS", "HistoryWriter", "append", "encode", "read"]

#: Longest time a buffered line waits before it is appended to the file (what a kill -9 can lose).
FLUSH_SECONDS = 0.2
#: Shortest time between two writes of the latest values (``_messages`` in params.yml) by a writer.
LATEST_SECONDS = 1.0


def history_path(exp_dir: str | os.PathLike[str]) -> Path:
    """The history file of the experiment in ``exp_dir``."""
    return Path(exp_dir) / HISTORY_FILE


def _step(step: Any) -> int | None:
    if step is None or step.__class__ is int:
        return step
    if isinstance(step, bool):
        raise ValueError(f"step must be an integer, got {step!r}")
    try:
        index = step.__index__()  # int, numpy integers
    except (AttributeError, TypeError):
        raise ValueError(f"step must be an integer, got {step!r}") from None
    return int(index)


# One encoder for every line: json.dumps with options builds a new encoder per call, which costs more than the line.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def encode(values: Mapping[str, Any], step: int | None = None, time: float | None = None) -> str:
    """One history line (with its newline) for ``values`` sent at ``time`` (default: now) and ``step``."""
    record = {"time": _time.time() if time is None else float(time), "step": _step(step), "values": values}
    return _ENCODER.encode(record) + "\n"


def _append_bytes(path: Path, data: bytes, fsync: bool = False) -> None:
    """Append ``data`` to ``path`` in one locked ``O_APPEND`` write, after a newline if the file ends in a torn
    line (a writer killed mid-write), so that a torn line never swallows the next record."""
    fd = files.open_own(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock


def append(
    exp_dir: str | os.PathLike[str], values: Mapping[str, Any], step: int | None = None, time: float | None = None
) -> None:
    """Append one record to the history of ``exp_dir`` now (one open/write/close: for occasional records; a
    training loop should use a :class:`HistoryWriter`)."""
    _append_bytes(history_path(exp_dir), encode(dict(values), step, time).encode("utf-8"))


def _record(record: Any) -> dict[str, Any] | None:
    """A decoded line as ``{"time", "step", "values"}``; None if it is not a record."""
    if record.__class__ is not dict:
        return None
    values = record.get("values")
    when = record.get("time")
    if values.__class__ is not dict or when.__class__ not in (float, int):
        return None
    step = record.get("step")
    return {"time": float(when), "step": step if step.__class__ is int else None, "values": values}


def _parse(data: bytes) -> list[dict[str, Any]]:
    """Records of a history file's bytes: the whole file as one JSON array when every line is whole and valid
    (one C call), else line by line, skipping torn and malformed lines."""
    if not data:
        return []
    if data.endswith(b"\n"):
        try:
            # JSON text holds no raw newline (json escapes it in strings), so each b"\n" ends a record.
            decoded = json.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]")
        except ValueError:
            decoded = None
        if decoded is not None:
            records = [_record(r) for r in decoded]
            if None not in records:
                return records  # type: ignore[return-value]
    out = []
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is torn (or empty)
        try:
            record = _record(json.loads(line))
        except ValueError:
            continue
        if record is not None:
            out.append(record)
    return out


def read(exp_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record of the history of ``exp_dir`` in file order: ``{"time": float, "step": int | None, "values":
    {key: value}}``. Torn or malformed lines are skipped; no history is an empty list."""
    try:
        with open(history_path(exp_dir), "rb") as handle:
            return _parse(handle.read())
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------------------------- writer
_live: "weakref.WeakSet[HistoryWriter]" = weakref.WeakSet()


class HistoryWriter:
    """Cheap appends to one experiment's history, plus a throttled write of the latest values.

    :meth:`append` only formats a line and adds it to a buffer (microseconds); a daemon thread appends the buffer
    to the file :data:`FLUSH_SECONDS` after it became non-empty, and calls ``write_latest(latest)`` with the values
    sent since its last call at most every ``latest_seconds`` (``Experiment.message`` merges them into
    ``_messages`` of ``params.yml``). :meth:`close` (also run at interpreter exit) does both at once and fsyncs.
    Thread-safe; after ``fork`` the child drops what the parent buffered (the parent writes it). The thread ends
    when nothing is left to write, so an idle writer costs nothing.
    """

    def __init__(
        self,
        exp_dir: str | os.PathLike[str],
        write_latest: Callable[[dict[str, Any]], None] | None = None,
        flush_seconds: float = FLUSH_SECONDS,
        latest_seconds: float = LATEST_SECONDS,
    ) -> None:
        self.folder = exp_dir
        self.path = history_path(exp_dir)
        self.write_latest = write_latest
        self.flush_seconds = flush_seconds
        self.latest_seconds = latest_seconds
        self._lock = threading.Lock()  # guards the buffers
        self._write_lock = threading.Lock()  # one flush at a time, in order
        self._lines: list[str] = []
        self._latest: dict[str, Any] = {}
        self._latest_written = 0.0  # monotonic time of the last write_latest
        self._thread: threading.Thread | None = None
        self._warned = False
        _live.add(self)

    def append(self, values: Mapping[str, Any], step: int | None = None, time: float | None = None) -> None:
        """Buffer one record (``values`` must be JSON-safe: see :func:`encode`)."""
        line = encode(values, step, time)
        with self._lock:
            self._lines.append(line)
            self._latest.update(values)
            if self._thread is None or not self._thread.is_alive():  # (a start cut short by a signal)
                thread = threading.Thread(target=self._loop, name="xmen-history", daemon=True)
                self._thread = thread
                thread.start()

    def _after_fork(self) -> None:
        """In a forked child: fresh locks, nothing buffered (the parent writes what it buffered), no thread."""
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._lines, self._latest, self._thread = [], {}, None

    def _loop(self) -> None:
        """Flush every ``flush_seconds`` while there is something to write; end when there is not."""
        me = threading.current_thread()
        while True:
            _time.sleep(self.flush_seconds)
            if self._thread is not me:
                return  # closed, or replaced after a close
            self._tick(final=False)
            with self._lock:
                if self._thread is not me:
                    return
                if not self._lines and not self._latest:
                    self._thread = None
                    return

    def _tick(self, final: bool) -> None:
        with self._write_lock:
            with self._lock:
                lines, self._lines = self._lines, []
                latest = None
                due = final or _time.monotonic() - self._latest_written >= self.latest_seconds
                if self._latest and due:
                    latest, self._latest = self._latest, {}
            try:
                if lines or final:
                    if lines or self.path.exists():
                        _append_bytes(self.path, "".join(lines).encode("utf-8"), fsync=final)
                if latest and self.write_latest is not None:
                    self._latest_written = _time.monotonic()
                    self.write_latest(latest)
            except Exception as exc:  # noqa: BLE001 - a full disk or a deleted folder must not kill the experiment
                if not self._warned:
                    self._warned = True
                    print(f"xmen: cannot record messages in {self.path.parent}: {exc}", file=sys.stderr)

    def flush(self) -> None:
        """Append what is buffered and write the latest values now (no fsync)."""
        self._flush_now(final=False)

    def _flush_now(self, final: bool) -> None:
        with self._lock:
            self._latest_written = 0.0  # due now
        self._tick(final=final)

    def close(self) -> None:
        """Append and fsync what is buffered and write the latest values now; the thread ends (``append`` starts
        another)."""
        with self._lock:
            self._thread = None
        self._flush_now(final=True)


def _close_all() -> None:
    for writer in list(_live):
        with contextlib.suppress(Exception):
            writer.close()


def _after_fork_in_child() -> None:
    for writer in list(_live):
        writer._after_fork()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
