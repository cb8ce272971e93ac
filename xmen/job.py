"""The job runner: ``python -m xmen.job PARAMS_YML SCRIPT_SH``, exec'd by every generated ``run.sh``.

It wraps any experiment, python or plain shell, so that what users see in ``params.yml`` is true whatever the
script does:

1. An exclusive ``flock`` on ``<exp_dir>/.xmen-job.lock`` makes sure one experiment never runs twice at once (two
   ``xmen run`` launchers, or a Snakemake whose lock was deleted by another run). A runner finding the lock taken
   waits for the holder and exits 0 if the experiment ``finished``, else 1, without running anything. A runner
   that gets the lock runs the experiment even if it finished before: whoever started it (Snakemake after a
   requirement reran, a user) asked for a new run.
2. The status file ``xmen.done`` is removed, and ``_status: running`` and
   ``_run: {host, pid, started, attempt?, slurm_job_id?}`` are recorded.
3. A heartbeat thread keeps ``.xmen-heartbeat`` fresh (readers turn a stale ``running`` into ``lost``).
4. ``bash SCRIPT_SH PARAMS_YML`` runs as a child with ``XMEN_JOB=1`` (a python experiment then leaves the heartbeat
   to us); SIGTERM/SIGINT/SIGUSR1/SIGHUP are forwarded to it.
5. If the child did not record a final status itself (plain shell scripts never do, and ``kill -9`` prevents anyone
   from doing so), the runner does: ``finished`` on exit 0, ``timeout`` after SIGTERM/SIGUSR1 (what SLURM sends
   before the time limit), ``stopped`` after SIGINT/SIGHUP, else ``error``, with a one-line ``_error`` reason.
   A finished experiment gets its status file ``xmen.done`` (written last), whoever launched it, so Snakemake and
   xmen agree on what is finished.
6. The exit code is the child's (128+N when it was killed by signal N); 0 only for a finished experiment.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from . import files, provenance
from . import status as st
from .errors import XmenError
from .heartbeat import Heartbeat
from .provenance import hostname, now_time

#: Lock file held by whoever runs the experiment in that folder (the runner, or a direct ``--execute``).
LOCK_FILE = ".xmen-job.lock"
#: Set in the child's environment: a runner manages status and heartbeat.
ENV_JOB = "XMEN_JOB"
#: Set in the child's environment: the absolute params.yml the runner manages (so nested experiments can tell).
ENV_JOB_PARAMS = "XMEN_JOB_PARAMS"
#: Optional attempt number (Snakemake does not export it: the rule can pass ``XMEN_ATTEMPT={resources.attempt}``).
ENV_ATTEMPT = "XMEN_ATTEMPT"

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP)
_TIMEOUT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGHUP)
# Return codes of a child ended by a timeout signal: killed by it (negative) or a shell's 128 + N.
_SIGNALLED_CODES = frozenset(code for sig in _TIMEOUT_SIGNALS for code in (-sig, 128 + sig))
SIGNAL_GRACE_SECONDS = 2.0

#: Comments for the keys the runner writes (update_yaml keeps the others).
RUN_COMMENTS = {
    "_status": "One of registered, running, finished, error, stopped, timeout",
    "_run": "The last run: host, pid, start and end time, return code",
    "_error": "Why the last run did not finish",
}


def try_lock(exp_dir: str | os.PathLike[str], wait: bool = False) -> int | None:
    """Take the experiment's run lock; its fd (release with :func:`release`), or ``None`` if held elsewhere.

    With ``wait=True`` block until the lock is free instead of returning ``None``. The fd is close-on-exec so
    that the lock dies with its holder and never leaks into a detached grandchild.
    """
    fd = os.open(os.path.join(os.fspath(exp_dir), LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def release(fd: int | None) -> None:
    """Release a lock taken by :func:`try_lock` (closing the fd releases the flock)."""
    if fd is not None:
        os.close(fd)


def managed_by_runner(params_path: str | os.PathLike[str]) -> bool:
    """True inside a child of this runner started for ``params_path`` (it then owns status and heartbeat)."""
    if not os.environ.get(ENV_JOB):
        return False
    managed = os.environ.get(ENV_JOB_PARAMS)
    if not managed:
        return True
    try:
        return os.path.samefile(managed, params_path)
    except OSError:
        return os.path.abspath(managed) == os.path.abspath(params_path)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _attempt() -> int | None:
    value = os.environ.get(ENV_ATTEMPT, "").strip()
    return int(value) if value.isdigit() else None


def _final_status(rc: int, current: Any, received: list[int]) -> tuple[str, str | None]:
    """(status, error reason) the runner records when the child left ``current`` as the status."""
    if current not in (st.RUNNING, st.REGISTERED, st.DEFAULT, None):
        return str(current), None  # the child recorded its own outcome: keep it (and its _error)
    if rc == 0:
        return st.FINISHED, None
    reason = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
    if received:
        first = received[0]
        prefix = f"received {_signal_name(first)}; "
        if first in _TIMEOUT_SIGNALS:
            return st.TIMEOUT, prefix + reason
        if first in _STOP_SIGNALS:
            return st.STOPPED, prefix + reason
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

    def run(self, argv: list[str], env: dict[str, str]) -> int:
        """Start the child, pass on any signal that came before it existed, wait for it; its return code."""
        try:
            self.child = subprocess.Popen(argv, env=env)
        except OSError as exc:  # no bash: the shell's own code for "command not found"
            print(f"xmen.job: cannot start {argv[0]}: {exc}", file=sys.stderr, flush=True)
            return 127
        if self.received:
            self._forward(self.received[-1])
        rc = self.child.wait()
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
    """Run one experiment under the job protocol described in the module docstring; the exit code."""
    params = os.path.abspath(params_path)
    script = os.path.abspath(script_path)
    exp_dir = os.path.dirname(params)
    if not os.path.isfile(params):
        raise XmenError(f"{params}: no such file", exit_code=2)
    if not os.path.isfile(script):
        raise XmenError(f"{script}: no such file", exit_code=2)
    fd = try_lock(exp_dir)
    if fd is None:
        print(f"xmen.job: {exp_dir} is being run by another process; waiting for it", file=sys.stderr, flush=True)
        fd = try_lock(exp_dir, wait=True)
        try:
            status = files.read_yaml(params).get("_status")
        finally:
            release(fd)
        print(f"xmen.job: {exp_dir} was run by another process: {status}", file=sys.stderr, flush=True)
        return 0 if status == st.FINISHED else 1
    try:
        done_file = os.path.join(exp_dir, st.DONE_FILE)
        if os.path.lexists(done_file):
            os.unlink(done_file)
        run: dict[str, Any] = {"host": hostname(), "pid": os.getpid(), "started": now_time()}
        attempt = _attempt()
        if attempt is not None:
            run["attempt"] = attempt
        if os.environ.get("SLURM_JOB_ID"):
            run["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
        run.update(provenance.run_context(exp_dir))

        def start(data: dict[str, Any]) -> None:
            data["_status"] = st.RUNNING
            provenance.record_start(data, run)
            data["_run"] = run
            data.pop("_error", None)

        with _Forwarder() as forwarder:
            files.update_yaml(params, start, RUN_COMMENTS)
            env = dict(os.environ)
            env[ENV_JOB] = "1"
            env[ENV_JOB_PARAMS] = params
            with Heartbeat(exp_dir):
                rc = forwarder.run(["bash", script, params], env)
            return _record_outcome(params, exp_dir, rc, forwarder.received, run)
    finally:
        release(fd)


def _record_outcome(params: str, exp_dir: str, rc: int, received: list[int], run: dict[str, Any]) -> int:
    """Write the final status after the child exited; the runner's exit code."""
    outcome: dict[str, Any] = {}

    def finish(data: dict[str, Any]) -> None:
        final, reason = _final_status(rc, data.get("_status"), received)
        ran = dict(data["_run"]) if isinstance(data.get("_run"), dict) else dict(run)
        ran.update(ended=now_time(), returncode=rc)
        data["_run"] = ran
        data["_status"] = final
        if reason is not None:
            data["_error"] = reason
        elif final == st.FINISHED:
            data.pop("_error", None)
        provenance.record_end(data, ran, final, reason if reason is not None else data.get("_error"), rc)
        outcome.update(status=final, error=data.get("_error"))

    try:
        files.update_yaml(params, finish, RUN_COMMENTS)
    except XmenError as exc:  # params.yml vanished or was corrupted by the script: report, keep the code
        print(f"xmen.job: cannot record the outcome: {exc}", file=sys.stderr, flush=True)
        outcome = {"status": st.FINISHED if rc == 0 else st.ERROR, "error": None}
    final = outcome["status"]
    if final == st.FINISHED:
        files.write_text_atomic(os.path.join(exp_dir, st.DONE_FILE), provenance.done_text(run))
    if final != st.FINISHED:
        detail = f": {outcome['error']}" if outcome.get("error") else ""
        print(f"xmen.job: {exp_dir} {final}{detail}", file=sys.stderr, flush=True)
    return _exit_code(rc, final)


def main(argv: list[str] | None = None) -> int:
    """Command line entry: one-line errors, exit code of the experiment."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0].startswith("-"):
        print("error: usage: python -m xmen.job PARAMS_YML SCRIPT_SH", file=sys.stderr)
        return 2
    try:
        return run_job(args[0], args[1])
    except XmenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
