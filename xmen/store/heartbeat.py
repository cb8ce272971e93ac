"""Liveness of running experiments.

A process killed with ``kill -9``, by the OOM killer or with its node cannot record that it stopped, so its
``params.yml`` would say ``running`` forever. While an experiment runs, a daemon thread therefore touches
``<exp_dir>/.xmen-heartbeat`` every :data:`~xmen.store.status.HEARTBEAT_INTERVAL` seconds; a ``running`` status whose
heartbeat went stale reads as ``lost`` (:func:`effective_status`, which readers reach through
xmen.store.shown.shown_status, the one place that derives what a user sees). Nothing is written when reading.

On the host that ran it, the experiment's run lock says more, at once: the job runner's lock lives as long as the
experiment process (see :mod:`xmen.run.runner`), so a held lock means running and a free one means the run ended without
recording how (killed, zombie, disk full): ``lost`` without waiting for the heartbeat to go stale.
"""
from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import Any, Mapping

from xmen.store import files
from xmen.store import status as st
from xmen.store.locks import lock_held
from xmen.store.provenance import hostname, parse_time


class Heartbeat:
    """Touch ``<exp_dir>/.xmen-heartbeat`` now and then every ``interval`` seconds until stopped.

    Use as a context manager (``with Heartbeat(folder): ...``) or with :meth:`start` / :meth:`stop`. The thread is a
    daemon so that it can never keep a finished experiment's process alive; touching errors (folder removed, disk
    full) are ignored, because a missed beat only risks a false ``lost``, never a wrong result.
    """

    def __init__(self, exp_dir: str | os.PathLike[str], interval: float = st.HEARTBEAT_INTERVAL) -> None:
        self.path = os.path.join(os.fspath(exp_dir), st.HEARTBEAT_FILE)
        self.interval = float(interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """Touch the heartbeat file once."""
        try:
            fd = files.open_own(self.path, os.O_WRONLY | os.O_CREAT)
        except OSError:  # a link there (LinkError) is never touched: the runner refused to start over one
            return
        try:
            os.utime(fd, None)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def start(self) -> "Heartbeat":
        """Beat at once (so a fresh run is never seen as lost) and then in the background."""
        if self._thread is None:
            self.beat()
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="xmen-heartbeat", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating; the file is left in place (its age tells when the run ended)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> "Heartbeat":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _pid_dead(pid: Any) -> bool:
    """True only when we are sure that process ``pid`` (on this host) no longer exists."""
    try:
        number = int(pid)
    except (TypeError, ValueError):
        return False
    if number <= 0:
        return False
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):  # exists but belongs to someone else, or we cannot tell
        return False
    return False


def effective_status(params: Mapping[str, Any], exp_dir: str | os.PathLike[str], now: float | None = None) -> str:
    """The status a reader should show: ``_status``, except that a dead ``running`` experiment is ``lost``.

    For a run on this host (``_run.host``) with a run lock file, the lock decides: held is ``running``, free is
    ``lost``. Otherwise a ``running`` experiment is lost when its heartbeat is older than
    :data:`~xmen.store.status.LOST_AFTER`, when there is no heartbeat and the run started (``_run.started``, or a
    top-level ``_started``) longer ago than that, or when the recorded process (``_run.pid`` on ``_run.host``) ran on
    this host and is gone. Costs one open+flock or one ``stat``, and only for ``running`` experiments, so listing
    100k experiments stays fast.
    """
    status = params.get("_status", st.DEFAULT)
    if status != st.RUNNING:
        return str(status) if status is not None else st.DEFAULT
    now = time.time() if now is None else now
    run = params.get("_run")
    run = run if isinstance(run, Mapping) else {}
    if run.get("host") == hostname():
        held = lock_held(exp_dir)
        if held is not None:
            return st.RUNNING if held else st.LOST
    try:
        beat: float | None = os.stat(os.path.join(os.fspath(exp_dir), st.HEARTBEAT_FILE)).st_mtime
    except OSError:
        beat = None
    if beat is not None:
        if now - beat > st.LOST_AFTER:
            return st.LOST
    else:
        started = parse_time(run.get("started") or params.get("_started") or "")
        if started is not None and now - started.timestamp() > st.LOST_AFTER:
            return st.LOST
    if run.get("host") == hostname() and _pid_dead(run.get("pid")):
        return st.LOST
    return st.RUNNING
