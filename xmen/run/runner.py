"""The job runner: ``python -m xmen.job PARAMS_YML SCRIPT_SH``, exec'd by every generated ``run.sh``.

It wraps any experiment, python or plain shell, so that what users see in ``params.yml`` is true whatever the
script does. The steps every run goes through (the lock, the start and end records, the heartbeat, the status file)
are :class:`xmen.store.lifecycle.Lifecycle`'s, which a python experiment run without a runner goes through too; the
runner is the process around the script (steps 4-6: signals, grace, time limit, reserve, the outcome of an exit):

1. An exclusive ``flock`` on ``<exp_dir>/.xmen-job.lock`` makes sure one experiment never runs twice at once,
   whatever started it (``xmen run``, a plain ``snakemake``, ``xmen ci``, a launcher). The lock's fd is inherited
   by the experiment process, so the lock lives as long as the experiment itself: ``kill -9`` of the runner alone
   does not free it, and readers take a held lock as "running" and a free one as "not running" (see
   :mod:`xmen.store.heartbeat`). A runner finding the lock taken waits for the holder; if the holder ran the experiment
   meanwhile, it exits 0 if that run ``finished``, else 1, without running anything.
   A process the experiment leaves running in the background (``server &`` in a shell script) inherits the lock
   too, and keeps the experiment "running" until it exits; python's ``subprocess`` does not pass it on.
   Whoever planned the run passes what it saw then (``XMEN_EXPECT_DONE``, see :func:`done_token`: the status file
   and the runs started and ended); a runner that gets the lock and finds that another run finished the
   experiment since exits 0 without running it. No run since (a forced rerun: Snakemake removed the status
   file; ``xmen reset``; a requirement reran) means: run.
2. The status file ``xmen.done`` is removed, and ``_status: running`` and
   ``_run: {host, pid, started, attempt?, slurm_job_id?, code, requires, params_hash...}`` are recorded; the
   experiment is no longer queued (its marker, see :mod:`xmen.store.markers`, is removed).
3. A heartbeat thread keeps ``.xmen-heartbeat`` fresh (readers turn a stale ``running`` into ``lost``).
4. ``bash SCRIPT_SH PARAMS_YML`` runs as a child with ``XMEN_JOB=1`` (a python experiment then leaves the heartbeat
   to us); SIGTERM/SIGINT/SIGUSR1/SIGHUP are forwarded to it. A child still alive
   :data:`KILL_GRACE_SECONDS` (``XMEN_KILL_GRACE``) after the first signal is killed with SIGKILL, with every
   process it started, and recorded ``timeout``/``stopped``: an experiment ignoring SIGTERM is not ``finished``.
   Run outside SLURM, an experiment with a time limit (``XMEN_RUNTIME``, minutes: Snakemake's ``runtime`` resource)
   gets SIGTERM when it is reached, then the same grace and SIGKILL, and is recorded ``timeout`` with the limit in
   ``_error``. Under SLURM (``SLURM_JOB_ID`` set) SLURM enforces the limit itself and sends the SIGTERM.
5. If the child did not record a final status itself (plain shell scripts never do, and ``kill -9`` prevents anyone
   from doing so), the runner does: ``finished`` on exit 0, ``timeout`` after SIGTERM/SIGUSR1 (what SLURM sends
   before the time limit), ``stopped`` after SIGINT/SIGHUP, else ``error``, with a one-line ``_error`` reason.
   A python experiment records ``_run.experiment`` when it starts and its outcome when ``run()`` returns; one that
   exited without recording it (``os._exit(0)`` inside ``run()``) is an ``error``, whatever its exit code.
   A small reserve file kept while the experiment runs is freed to record the outcome when the experiment filled
   the disk. If the outcome still cannot be written, the runner says so in one line and exits non-zero; readers
   then see ``running`` with a free lock, which they show as ``lost``.
   A finished experiment gets its status file ``xmen.done`` (written last), whoever launched it, so Snakemake and
   xmen agree on what is finished.
6. The exit code is the child's (128+N when it was killed by signal N); 0 only for a finished experiment.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from xmen.store import files
from xmen.store import status as st
from xmen.store.terminal import plain
from xmen.errors import LinkError, XmenError
from xmen.store import ownership
from xmen.store.layout import EXPERIMENT_RUN_WRITES, RESERVE_BYTES, RESERVE_FILE, RUN_COMMENTS  # noqa: F401 - RUN_COMMENTS: its old home
from xmen.store.lifecycle import CancelledBeforeStart, Lifecycle, attempt_number as _attempt  # noqa: F401 - _attempt: its old name
# The lock protocol's names, also importable from here (their old home; tests and tools use them).
from xmen.store.locks import (DONE_MISSING, ENV_ATTEMPT, ENV_EXPECT_DONE, ENV_JOB, ENV_JOB_PARAMS,  # noqa: F401
                              LOCK_FILE, RUN_BY_EXPERIMENT, count_run, done_token, finished_since, flock_held,
                              lock_held, managed_by_runner, release, try_lock)

#: Set in the child's environment for a repeat registered with ``-x N``: its index (params.yml ``_repeat``).
ENV_REPEAT = "XMEN_REPEAT"
#: Seconds a signalled child may take to stop before it is killed (override with ``XMEN_KILL_GRACE``).
ENV_KILL_GRACE = "XMEN_KILL_GRACE"
KILL_GRACE_SECONDS = 30.0
#: The experiment's time limit in minutes (the rule exports Snakemake's ``runtime`` resource under this name).
ENV_RUNTIME = "XMEN_RUNTIME"

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP)
_TIMEOUT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGHUP)
# Return codes of a child ended by a timeout signal: killed by it (negative) or a shell's 128 + N.
_SIGNALLED_CODES = frozenset(code for sig in _TIMEOUT_SIGNALS for code in (-sig, 128 + sig))
SIGNAL_GRACE_SECONDS = 2.0


def kill_grace() -> float:
    """Seconds a signalled experiment may take to stop (``XMEN_KILL_GRACE``, else :data:`KILL_GRACE_SECONDS`)."""
    try:
        return max(0.0, float(os.environ.get(ENV_KILL_GRACE, KILL_GRACE_SECONDS)))
    except ValueError:
        return KILL_GRACE_SECONDS


def time_limit() -> float | None:
    """Seconds the experiment may run here before the runner stops it: ``XMEN_RUNTIME`` minutes, when run outside
    SLURM (a SLURM job's limit is SLURM's to enforce); ``None`` without a usable limit."""
    if os.environ.get("SLURM_JOB_ID"):
        return None
    try:
        minutes = float(os.environ.get(ENV_RUNTIME, ""))
    except ValueError:
        return None
    return minutes * 60 if minutes > 0 and minutes != float("inf") else None


def _say(text: str) -> None:
    """One line of the runner's on stderr (the terminal of whoever ran run.sh): the paths and errors it names are
    shown without terminal escapes (xmen.store.terminal.plain)."""
    print(plain(text), file=sys.stderr, flush=True)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min"


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc; empty elsewhere), children first."""
    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid ...
        if len(fields) > 1 and fields[1].isdigit():
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in parents.get(queue.pop(), ()):
            found.append(child)
            queue.append(child)
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process it started (they share its lock fd, so all must go)."""
    _signal_tree(pid, signal.SIGKILL)


def _signal_tree(pid: int, signum: int) -> None:
    """Send ``signum`` to ``pid`` and every process it started."""
    for target in [pid] + _descendants(pid):
        try:
            os.kill(target, signum)
        except OSError:
            pass


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _final_status(rc: int, current: Any, received: list[int], by_experiment: bool = False,
                  limit: float | None = None) -> tuple[str, str | None]:
    """(status, error reason) the runner records when the child left ``current`` as the status.

    ``by_experiment``: the child is a python experiment that records its own outcome when ``run()`` returns; if
    it left ``running``, it ended before that (``os._exit``, a crash of the interpreter), whatever its exit code.
    ``limit``: the runner stopped the child at this time limit (seconds): ``timeout``, whatever its exit code.
    """
    reason = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
    if limit is not None and current in (st.TIMEOUT, st.RUNNING, st.REGISTERED, st.DEFAULT, None):
        return st.TIMEOUT, f"time limit of {_minutes(limit)} reached (runtime), stopped with SIGTERM; {reason}"
    if current not in (st.RUNNING, st.REGISTERED, st.DEFAULT, None):
        return str(current), None  # the child recorded its own outcome: keep it (and its _error)
    if received:
        first = received[0]
        prefix = f"received {_signal_name(first)}; "
        if first in _TIMEOUT_SIGNALS and rc != 0:
            return st.TIMEOUT, prefix + reason
        if first in _STOP_SIGNALS and rc != 0:
            return st.STOPPED, prefix + reason
    if by_experiment:
        return st.ERROR, f"the experiment exited ({reason}) without recording that its run() returned"
    if rc == 0:
        return st.FINISHED, None
    return st.ERROR, reason


def _exit_code(rc: int, final: str) -> int:
    if rc < 0:
        return 128 - rc
    if rc == 0 and final != st.FINISHED:
        return 1
    return rc


class _Forwarder:
    """Signal handlers for the runner's whole life: record every signal and pass it on to the child while it runs.

    Installed before the child starts and removed only after the outcome is recorded, so that a late signal can
    neither be lost (it is forwarded as soon as the child exists) nor kill the runner before it writes the status.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        #: The time limit (seconds) at which the runner itself stopped the child, if it did.
        self.stopped_at_limit: float | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_Forwarder":
        self._previous = {sig: signal.signal(sig, self._handle) for sig in FORWARDED}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        child = self.child
        if child is not None and child.returncode is None:  # never signal a reaped (possibly reused) pid
            try:
                os.kill(child.pid, signum)
            except ProcessLookupError:
                pass

    def run(self, argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = (),
            limit: float | None = None) -> int:
        """Start the child, pass on any signal that came before it existed, wait for it; its return code.

        A child still running :func:`kill_grace` seconds after the first signal is killed, with its descendants.
        A child still running ``limit`` seconds after it started gets SIGTERM, as a signal from outside would.
        """
        started = time.monotonic()
        try:
            self.child = subprocess.Popen(argv, env=env, pass_fds=pass_fds)
        except OSError as exc:  # no bash: the shell's own code for "command not found"
            _say(f"xmen.job: cannot start {argv[0]}: {exc}")
            return 127
        if self.received:
            self._forward(self.received[-1])
        grace = kill_grace()
        signalled_at: float | None = None
        while True:
            try:
                rc = self.child.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            if limit is not None and not self.received and time.monotonic() - started >= limit:
                _say(f"xmen.job: time limit of {_minutes(limit)} reached (runtime); sending SIGTERM")
                self.stopped_at_limit = limit
                self.received.append(signal.SIGTERM)
                _signal_tree(self.child.pid, signal.SIGTERM)  # as SLURM signals every process of a job at its limit
            if self.received and signalled_at is None:
                signalled_at = time.monotonic()
            if signalled_at is not None and time.monotonic() - signalled_at > grace:
                _say(f"xmen.job: the experiment ignored {_signal_name(self.received[0])} for {grace:g} s; "
                      f"killing it")
                _kill_tree(self.child.pid)
                rc = self.child.wait()
                break
        if rc in _SIGNALLED_CODES and not self.received:
            self._wait_for_own_signal()
        return rc

    def _wait_for_own_signal(self) -> None:
        """A child that died of SIGTERM/SIGUSR1 before the runner heard of it: wait a moment for the runner's copy.

        SLURM (and `kill` of a process group) signal the whole job, children often first; a script that exits at
        once would otherwise be recorded as `error: exit code 143` instead of `timeout`.
        """
        deadline = time.monotonic() + SIGNAL_GRACE_SECONDS
        while not self.received and time.monotonic() < deadline:
            time.sleep(0.02)


def run_job(params_path: str, script_path: str) -> int:
    """Run one experiment under the job protocol described in the module docstring; the exit code.

    The steps every run goes through (lock, start, heartbeat, end, status file, release) are the
    :class:`~xmen.store.lifecycle.Lifecycle`'s; the runner adds the process around the script: the signals it
    forwards, the kill after the grace, the time limit, the reserve for a full disk, and the outcome decided from
    the child's exit.
    """
    params = os.path.abspath(params_path)
    script = os.path.abspath(script_path)
    exp_dir = os.path.dirname(params)
    if not os.path.isfile(params):
        raise XmenError(f"{params}: no such file", exit_code=2)
    if not os.path.isfile(script):
        raise XmenError(f"{script}: no such file", exit_code=2)
    files.refuse_links(exp_dir, EXPERIMENT_RUN_WRITES)  # before the lock: nothing written through a link
    ownership.refuse_foreign_run_files(exp_dir)  # nor over (or instead of) a file of the user's at xmen's names
    life = Lifecycle(params, owner=True, on_full_disk=lambda: _release_space(exp_dir), prefix="xmen.job")
    if not life.acquire(wait=True):  # the holder ran it meanwhile: report that run, never start a second one
        status = life.ran_meanwhile[0] if life.ran_meanwhile else None
        _say(f"xmen.job: {exp_dir} was run by another process: {status}")
        return 0 if status == st.FINISHED else 1
    try:
        if life.finished_since(os.environ.get(ENV_EXPECT_DONE)):
            _say(f"xmen.job: {exp_dir} was finished by another run since it was planned; not run again")
            return 0
        with _Forwarder() as forwarder:
            try:
                life.start()
            except CancelledBeforeStart as exc:  # a pack member cancelled while its pack ran others: skipped
                _say(f"xmen.job: {exc}")
                return 1
            except OSError as exc:  # disk full, read-only: nothing ran, nothing is claimed
                _say(f"xmen.job: cannot record the start in {params}: {exc}")
                return 1
            env = dict(os.environ)
            env[ENV_JOB] = "1"
            env[ENV_JOB_PARAMS] = params
            env.pop(ENV_EXPECT_DONE, None)  # for this run only, not for experiments it starts
            if life.repeat is not None:  # -x N: which repeat this is (params.yml _repeat)
                env[ENV_REPEAT] = str(life.repeat)
            _reserve_space(exp_dir)
            try:
                assert life.lock_fd is not None
                rc = forwarder.run(["bash", script, params], env, pass_fds=(life.lock_fd,), limit=time_limit())
                return _record_outcome(life, rc, forwarder.received, forwarder.stopped_at_limit)
            finally:
                _release_space(exp_dir)
    finally:
        life.release()


def _reserve_space(exp_dir: str) -> None:
    """Write :data:`RESERVE_FILE` (real blocks, not a sparse file); no reserve if there is no room for it."""
    path = os.path.join(exp_dir, RESERVE_FILE)
    try:
        with os.fdopen(files.open_own(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as handle:
            handle.write(b"\0" * RESERVE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except LinkError:
        return  # not ours: neither written nor removed (the runner refuses to start over it, see run_job)
    except OSError:
        _release_space(exp_dir)


def _release_space(exp_dir: str) -> None:
    """Free the reserve: delete RESERVE_FILE, only when it is the reserve xmen writes (ownership.is_xmen_reserve:
    never a symbolic link or a file of the user's)."""
    path = os.path.join(exp_dir, RESERVE_FILE)
    if not ownership.is_xmen_reserve(path):
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def _record_outcome(life: Lifecycle, rc: int, received: list[int], limit: float | None = None) -> int:
    """Record the outcome after the child exited (:meth:`Lifecycle.end`); the runner's exit code (``limit``: see
    _final_status)."""

    def decide(data: dict[str, Any], ran: dict[str, Any]) -> tuple[str, str | None]:
        current = data.get("_status")
        if current in st.FAILED and st.outside_verdict(data, ran):
            current = st.RUNNING  # SLURM's or xmen cancel's verdict stays (settle); our reason is added to it
        return _final_status(rc, current, received, bool(ran.get(RUN_BY_EXPERIMENT)), limit)

    try:
        final: str = life.end(rc, decide=decide)
        error = life.error
    except XmenError as exc:  # params.yml vanished or was corrupted by the script: report, keep the code
        _say(f"xmen.job: cannot record the outcome: {exc}")
        final, error = (st.FINISHED if rc == 0 else st.ERROR), None
        if final == st.FINISHED:
            life.write_done()
    except OSError as exc:  # disk full: readers see `running` with a free lock, i.e. lost; never `finished`
        _say(f"xmen.job: cannot record the outcome in {life.params}: {exc}")
        return _exit_code(rc, st.ERROR) or 1
    if final == st.FINISHED and not life.done_written:
        return 1
    if final != st.FINISHED:
        _say(_last_line(life.exp_dir, final, error, received, limit))
    return _exit_code(rc, final)


def _last_line(exp_dir: str, final: str, error: str | None, received: list[int], limit: float | None) -> str:
    """The runner's last line in the experiment's log: the status it recorded, except where SLURM's verdict is to
    come. A SIGTERM from SLURM is its time limit or a cancellation (``scancel``), which only SLURM knows and the main
    Snakemake process records when the job ends: the line then says what happened, not a status it may not keep."""
    if final == st.TIMEOUT and received[:1] == [signal.SIGTERM] and limit is None and os.environ.get("SLURM_JOB_ID"):
        return (f"xmen.job: {exp_dir} stopped by SIGTERM from SLURM (its time limit, or a cancellation): SLURM's "
                f"verdict is recorded in params.yml when the job ends")
    detail = f": {error}" if error else ""
    return f"xmen.job: {exp_dir} {final}{detail}"


def main(argv: list[str] | None = None) -> int:
    """Command line entry: one-line errors, exit code of the experiment."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0].startswith("-"):
        _say("error: usage: python -m xmen.job PARAMS_YML SCRIPT_SH")
        return 2
    try:
        return run_job(args[0], args[1])
    except XmenError as exc:
        _say(f"error: {exc}")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
