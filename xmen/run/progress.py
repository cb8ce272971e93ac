"""Quiet, live runs: one progress line for ``xmen run`` instead of Snakemake's per-job blocks.

Snakemake's own output goes to a log file in the set; the progress is read from the experiments' files, not
parsed from that output (Snakemake's wording changes between releases, files are xmen's own contract):
an experiment is *done* once its status file ``xmen.done`` changed, and *running* or *failed* by the ``_status``
its runner wrote to ``params.yml``. Each poll costs two ``stat`` calls per experiment, and a ``params.yml`` is
parsed again only when it changed.

Ctrl-C reaches only ``xmen`` (Snakemake runs in its own process group); xmen passes it on once to Snakemake's
group, which stops the running experiments (their runners record ``stopped``), waits for Snakemake to finish,
and then prints the summary. A second Ctrl-C sends SIGTERM, a third SIGKILL.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Callable, Mapping, Sequence

from xmen.store import files
from xmen.store import status as st
from xmen.errors import StateFileError
from xmen.sets.expset import PARAMS_FILE
from xmen.store.shown import shown_status
from xmen.store.terminal import plain

#: Seconds between refreshes of the line on a terminal, and the least time between lines otherwise.
TTY_INTERVAL = 0.5
PLAIN_INTERVAL = 10.0
#: Signals xmen passes on to Snakemake's process group during a run.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_Signature = tuple[int, int, int]


@dataclass(frozen=True)
class Counts:
    """How many of a run's experiments are in each state."""

    done: int = 0
    running: int = 0
    failed: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.done + self.running + self.failed + self.pending


def _signature(path: Path) -> _Signature | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class RunWatcher:
    """Counts the states of a run's experiments from their files, relative to what they were at the start."""

    def __init__(self, root: str | os.PathLike[str], names: Sequence[str]) -> None:
        self.names = list(names)
        self.folders = [Path(root) / name for name in names]
        self._done_before = [_signature(f / st.DONE_FILE) for f in self.folders]
        self._params_before = [_signature(f / PARAMS_FILE) for f in self.folders]
        self._status_cache: dict[Path, tuple[_Signature, str]] = {}

    def _status(self, params: Path, signature: _Signature) -> str:
        cached = self._status_cache.get(params)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:  # the recorded status: Snakemake, not a heartbeat, tells whether its jobs still run
            value = shown_status(files.read_yaml(params)).value
        except StateFileError:
            value = "unreadable"  # a torn read never happens (atomic writes); a broken file counts as pending
        self._status_cache[params] = (signature, value)
        return value

    def untouched(self) -> list[str]:
        """The experiments whose files nothing has written since the start: they did not run (yet)."""
        return [
            name
            for name, folder, done_before, params_before in zip(
                self.names, self.folders, self._done_before, self._params_before
            )
            if _signature(folder / st.DONE_FILE) == done_before and _signature(folder / PARAMS_FILE) == params_before
        ]

    def counts(self) -> Counts:
        done = running = failed = pending = 0
        for folder, done_before, params_before in zip(self.folders, self._done_before, self._params_before):
            done_now = _signature(folder / st.DONE_FILE)
            if done_now is not None and done_now != done_before:
                done += 1
                continue
            params = folder / PARAMS_FILE
            params_now = _signature(params)
            if params_now is None or params_now == params_before:
                pending += 1
                continue
            current = self._status(params, params_now)
            if current == st.RUNNING:
                running += 1
            elif current in st.FAILED:
                failed += 1
            elif current == st.FINISHED:
                done += 1  # the rule writes the status file a moment after the runner records the finish
            else:
                pending += 1
        return Counts(done, running, failed, pending)


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def format_line(counts: Counts, elapsed: float) -> str:
    """``3/13 done, 2 running, 1 failed, 7 pending  [0:01:05]``"""
    return (
        f"{counts.done}/{counts.total} done, {counts.running} running, {counts.failed} failed, "
        f"{counts.pending} pending  [{format_elapsed(elapsed)}]"
    )


class ProgressLine:
    """Shows the progress line: rewritten in place on a terminal, printed sparsely (when it changed and at most
    every ``interval`` seconds) otherwise, so a CI log gets a few lines rather than one per poll."""

    def __init__(self, stream: IO[str], tty: bool | None = None, interval: float | None = None) -> None:
        self.stream = stream
        self.tty = _isatty(stream) if tty is None else tty
        self.interval = interval if interval is not None else (TTY_INTERVAL if self.tty else PLAIN_INTERVAL)
        self._shown = ""
        self._last_print = float("-inf")
        self._open = False  # a line without its newline is on the terminal

    def show(self, line: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write(f"\r{line}\x1b[K")
            self._open = True
        elif force or (_state(line) != _state(self._shown) and now - self._last_print >= self.interval):
            self.stream.write(line + "\n")
            self._last_print = now
        else:
            return
        self._shown = line
        self.stream.flush()

    def note(self, text: str) -> None:
        """A message of its own, on its own line (the progress line comes back at the next refresh)."""
        self.end()
        self.stream.write(plain(text) + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def finish(self, line: str) -> None:
        """The final state, always shown once, ending the line."""
        if self.tty:
            self.show(line)
        elif _state(line) != _state(self._shown):
            self.show(line, force=True)
        self.end()


def _state(line: str) -> str:
    """A progress line without its elapsed time: a line that only counted seconds has nothing new to say."""
    return line.rsplit("  [", 1)[0]


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Snakemake, its job runners and their experiments), parents first."""
    try:
        import psutil  # a dependency of Snakemake
    except ImportError:  # pragma: no cover
        return [pid]
    try:
        return [pid] + [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return [pid]


def _terminal_signalled_our_group() -> bool:
    """True when xmen's process group is the foreground group of its terminal: a Ctrl-C (SIGINT) or hang-up
    (SIGHUP) from that terminal went to every process of the group, Snakemake and the experiments included."""
    for stream in (sys.stdin, sys.stderr, sys.stdout):
        try:
            fd = stream.fileno()
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except (AttributeError, ValueError, OSError):
            continue
    return False


class _Forwarder:
    """During the run, passes SIGINT/SIGTERM/SIGHUP on to Snakemake's process group, escalating on repeats.

    The handler only records and forwards: writing to a stream from a signal handler can interrupt a write in
    progress on the same stream; :meth:`news` tells the main loop what to say.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.child: subprocess.Popen[bytes] | None = None
        self._previous: dict[int, object] = {}
        self._told = 0

    def __enter__(self) -> "_Forwarder":
        for sig in FORWARDED:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        self.forward(len(self.received))

    def forward(self, count: int) -> None:
        """Send Snakemake the ``count``-th signal: the one received, then SIGTERM, then SIGKILL.

        Snakemake stays in xmen's process group, so that whatever ends that group (kill -9 of the job, a closed
        terminal) ends the run with it. A Ctrl-C on the terminal has then reached Snakemake and its experiments
        already: the first one is not passed on again (a second SIGINT makes Snakemake give up on a clean stop).
        """
        sent = self.received[0] if count == 1 else signal.SIGTERM if count == 2 else signal.SIGKILL
        if count == 1 and sent in (signal.SIGINT, signal.SIGHUP) and _terminal_signalled_our_group():
            return
        child = self.child
        if child is not None and child.returncode is None:
            for pid in _tree(child.pid):  # what a signal to the group would reach, xmen itself left out
                try:
                    os.kill(pid, sent)
                except (ProcessLookupError, PermissionError):
                    pass

    def news(self) -> list[str]:
        """A line for each signal received since the last call."""
        lines = []
        while self._told < len(self.received):
            self._told += 1
            name = signal.Signals(self.received[self._told - 1]).name
            what = "stopping the running experiments (Ctrl-C again to force)" if self._told == 1 else "forcing"
            lines.append(f"Interrupted ({name}): {what}")
        return lines


@dataclass
class RunOutcome:
    """What :func:`run_quietly` saw: Snakemake's exit code, the signals xmen received during the run, and the
    experiments it did not start (their files unchanged)."""

    returncode: int
    signals: list[int]
    counts: Counts
    not_run: list[str]

    @property
    def interrupted(self) -> bool:
        return bool(self.signals)


def run_quietly(
    command: Sequence[str],
    cwd: str | os.PathLike[str],
    watcher: RunWatcher,
    *,
    log_path: str | os.PathLike[str] | None,
    stream: IO[str] | None = None,
    tty: bool | None = None,
    interval: float | None = None,
    env: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Run Snakemake's ``command`` in ``cwd`` (with ``env``, default xmen's) showing one progress line on ``stream``
    (default stderr).

    Snakemake's output goes to ``log_path`` (replaced), or, when it is None, to xmen's own stdout/stderr (``-v``);
    then no progress line is drawn, only the final one.
    """
    stream = stream if stream is not None else sys.stderr
    line = ProgressLine(stream, tty=tty if log_path is not None else False, interval=interval)
    started = time.monotonic()

    log = (os.fdopen(files.open_own(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb")  # noqa: SIM115 - closed below
           if log_path is not None else None)
    try:
        with _Forwarder() as forwarder:
            child = subprocess.Popen(
                list(command), cwd=cwd, stdin=subprocess.DEVNULL, env=env,
                stdout=log, stderr=subprocess.STDOUT if log is not None else None,
            )
            forwarder.child = child
            if forwarder.received:  # a signal that came while Snakemake was starting
                forwarder.forward(1)
            poll = line.interval if log is not None else PLAIN_INTERVAL
            refresh = time.monotonic()
            while True:
                for news in forwarder.news():
                    line.note(news)
                if log is not None and time.monotonic() >= refresh:  # with -v Snakemake shows its own progress
                    cost = time.monotonic()
                    counts = watcher.counts()
                    cost = time.monotonic() - cost
                    line.show(format_line(counts, time.monotonic() - started))
                    refresh = time.monotonic() + max(poll, 20 * cost)  # polling a huge set stays cheap
                try:
                    returncode = child.wait(timeout=min(0.5, max(0.01, refresh - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    continue
            for news in forwarder.news():
                line.note(news)
    finally:
        if log is not None:
            log.close()
    counts = watcher.counts()
    if watcher.names:  # a dry run watches nothing: no line of zeros
        line.finish(format_line(counts, time.monotonic() - started))
    return RunOutcome(returncode, list(forwarder.received), counts, watcher.untouched())


def tail(path: str | os.PathLike[str], lines: int = 15) -> list[str]:
    """The last ``lines`` lines of a text file (for a Snakemake that failed before any experiment ran)."""
    from collections import deque

    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return [l.rstrip("\n") for l in deque(handle, maxlen=lines)]
    except OSError:
        return []


#: Failures listed one by one in the summary; beyond this, a count and how to list them all.
MAX_LISTED = 50
#: The summary's word for the experiments this run did not start, whatever their status says from before.
NOT_RUN = "not run"


def summary_lines(
    grouped: dict[str, list[str]], reasons: Callable[[str], str], log_of: Callable[[str], str]
) -> list[str]:
    """The run's summary: one line of counts per state, then each failed experiment with its reason and log.

    Experiments that did not run (:data:`NOT_RUN`, or ``registered``, after an interrupt) are counted, not listed:
    there may be thousands.
    """
    counts = ", ".join(f"{len(names)} {state}" for state, names in sorted(grouped.items()))
    lines = [f"Summary: {counts}" if counts else "Summary: nothing ran"]
    listed = [
        (state, name)
        for state, names in sorted(grouped.items())
        if state not in (st.FINISHED, st.REGISTERED, st.DEFAULT, NOT_RUN)
        for name in names
    ]
    for state, name in listed[:MAX_LISTED]:
        reason = reasons(name)
        lines.append(f"  {state}: {name}" + (f": {reason}" if reason else ""))
        lines.append(f"    log: {log_of(name)}")
    if len(listed) > MAX_LISTED:
        lines.append(f"  ... and {len(listed) - MAX_LISTED} more (xmen list -s --status-is error)")
    return lines
