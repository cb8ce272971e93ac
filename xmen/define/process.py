"""The process side of running an experiment in this process: its output copied to a log (a tee), and the
signals that stop it turned into a status."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, Iterator, TextIO

from xmen.store import files
from xmen.store import status as st


#: Seconds during which a repeated signal is taken as the same request (the terminal sends SIGINT to the whole
#: process group and the job runner forwards it once more; SLURM signals every process of the job step).
_SIGNAL_DEDUP_SECONDS = 1.0


class Tee:
    """A text stream writing to the original stream and to a shared log file.

    Line-buffered on both sides so that the terminal/cluster log and ``out.txt`` stay in order with stderr.
    Anything it does not define (``fileno``, ``isatty``, ``encoding``, ...) is the original stream's. A failing log
    write (disk full) never breaks the experiment.
    """

    def __init__(self, stream: TextIO, log: TextIO, lock: threading.Lock) -> None:
        self._stream = stream
        self._log = log
        self._lock = lock

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        with self._lock:
            try:
                self._log.write(text)
                if "\n" in text:
                    self._log.flush()
            except (OSError, ValueError):
                pass
        if "\n" in text:
            with contextlib.suppress(OSError, ValueError):
                self._stream.flush()
        return written if isinstance(written, int) else len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._log.flush()

    def close(self) -> None:  # closing sys.stdout must not close the terminal or the log under us
        self.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def tee_output(log_path: Path) -> Iterator[None]:
    """Copy ``sys.stdout``/``sys.stderr`` into ``log_path`` (appended) for the duration of the block."""
    try:
        log = os.fdopen(files.open_own(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a", encoding="utf-8",
                        errors="replace", buffering=1)
    except OSError as exc:  # a symbolic link there (LinkError) too: never written through  # no log is better than no run
        print(f"xmen: cannot write {log_path}: {exc}", file=sys.stderr)
        yield
        return
    lock = threading.Lock()
    originals = (sys.stdout, sys.stderr)
    # A missing stream (pythonw, a closed fd) is not teed: there is nothing to copy it from.
    tees = tuple(Tee(stream, log, lock) if stream is not None else None for stream in originals)
    sys.stdout = tees[0] or sys.stdout  # type: ignore[assignment]
    sys.stderr = tees[1] or sys.stderr  # type: ignore[assignment]
    try:
        yield
    finally:
        for tee in tees:
            if tee is not None:
                tee.flush()
        if tees[0] is not None and sys.stdout is tees[0]:
            sys.stdout = originals[0]
        if tees[1] is not None and sys.stderr is tees[1]:
            sys.stderr = originals[1]
        with lock:
            log.close()


class Interrupted(BaseException):
    """Raised inside ``run()`` when a SIGTERM/SIGUSR1/SIGHUP asks the experiment to stop.

    A ``BaseException``, so that a user's ``except Exception`` does not swallow the scheduler's request.
    """

    def __init__(self, signum: int, reason: str | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        #: Why, when the experiment itself asked (a Monitor stopping before the time limit); None for a signal from
        #: outside.
        self.reason = reason


SIGNAL_STATUS = {
    signal.SIGINT: st.STOPPED,
    signal.SIGHUP: st.STOPPED,
    signal.SIGTERM: st.TIMEOUT,
    signal.SIGUSR1: st.TIMEOUT,
}


class SignalTrap:
    """Turn SIGINT into KeyboardInterrupt and SIGTERM/SIGUSR1/SIGHUP into :class:`Interrupted` while ``run()``
    runs; ignore repeats of a signal within a second (the same request delivered twice) and, once ``run()`` has
    returned, only record signals so that the final status write cannot be interrupted."""

    def __init__(self) -> None:
        self.armed = True
        self.first: int | None = None
        self._first_at = 0.0
        self._previous: dict[int, Any] = {}
        #: Set by the experiment's own code just before it signals itself (:meth:`stop_self`).
        self.reason: str | None = None

    def install(self) -> "SignalTrap":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNAL_STATUS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first, self._first_at = signum, now
        elif now - self._first_at < _SIGNAL_DEDUP_SECONDS:
            return
        if not self.armed:
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signum, self.reason)

    def stop_self(self, signum: int, reason: str) -> None:
        """The experiment stops itself as if ``signum`` came from outside, recording ``reason`` as the cause."""
        self.reason = reason
        os.kill(os.getpid(), signum)
