"""The run lock protocol: who runs an experiment now, and what a planner saw of it.

One process at a time holds an exclusive ``flock`` on ``<exp_dir>/.xmen-job.lock`` while it runs the experiment
(the runner, or a python experiment run directly). Readers probe the lock (a held lock is "running"), and every
runner appends one line to the lock file when a run starts and when it ends, so the file's size counts runs
(:func:`done_token`). The environment variables here are how a runner tells the experiment it manages.
"""
from __future__ import annotations

import fcntl
import os

from xmen.errors import XmenError
from xmen.store import files
from xmen.store import status as st
from xmen.store.layout import DONE_FILE, LOCK_FILE
from xmen.store.provenance import hostname, now_time

#: Set in the child's environment: a runner manages status and heartbeat.
ENV_JOB = "XMEN_JOB"
#: Set in the child's environment: the absolute params.yml the runner manages (so nested experiments can tell).
ENV_JOB_PARAMS = "XMEN_JOB_PARAMS"
#: What the planner saw of the status file (:func:`done_token`); the runner skips an experiment finished since.
ENV_EXPECT_DONE = "XMEN_EXPECT_DONE"
#: The run's attempt number (Snakemake does not export it: the rule passes ``XMEN_ATTEMPT={resources.attempt}``).
ENV_ATTEMPT = "XMEN_ATTEMPT"
#: How many experiments the SLURM job running this one runs (a pack, README "packs"); set only when more than one.
ENV_PACK = "XMEN_PACK"
#: ``_run`` key a python experiment sets when it starts: it records its own outcome when ``run()`` returns.
RUN_BY_EXPERIMENT = "experiment"
#: Token of a missing status file.
DONE_MISSING = "missing"


def try_lock(exp_dir: str | os.PathLike[str], wait: bool = False) -> int | None:
    """Take the experiment's run lock; its fd (release with :func:`release`), or ``None`` if held elsewhere.

    With ``wait=True`` block until the lock is free instead of returning ``None``. The fd is close-on-exec; the
    runner hands it to the experiment process explicitly (``pass_fds``) so that the lock lives as long as it does.
    """
    fd = files.open_own(os.path.join(os.fspath(exp_dir), LOCK_FILE), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_held(exp_dir: str | os.PathLike[str]) -> bool | None:
    """Whether some process holds the experiment's run lock now; ``None`` when there is no lock file.

    Never creates the lock file. The probe takes the lock for an instant when it is free: a runner that
    arrives at that instant waits for it like for any holder, and finds that nobody ran the experiment meanwhile.
    """
    return flock_held(os.path.join(os.fspath(exp_dir), LOCK_FILE))


def flock_held(path: str | os.PathLike[str]) -> bool | None:
    """Whether some process holds an flock on the file at ``path`` now; ``None`` when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)
    return False


def done_token(exp_dir: str | os.PathLike[str]) -> str:
    """What a planner saw of an experiment: ``DONE;RUNS`` for :data:`ENV_EXPECT_DONE`.

    DONE is ``missing`` or the status file's inode and mtime (each write is a new inode); RUNS is the size of the
    run lock file, to which every runner appends a line when a run starts and when it ends. Snakemake removes a
    job's output before running it, so the status file alone cannot tell a forced rerun from an experiment another
    run just finished; the run count can. Two ``stat`` calls; the generated Snakefile computes the same text.
    """
    folder = os.fspath(exp_dir)
    try:
        info = os.stat(os.path.join(folder, DONE_FILE))
        done = f"{info.st_ino}:{info.st_mtime_ns}"
    except OSError:
        done = DONE_MISSING
    try:
        runs = str(os.stat(os.path.join(folder, LOCK_FILE)).st_size)
    except OSError:
        runs = "0"
    return f"{done};{runs}"


def finished_since(exp_dir: str | os.PathLike[str], expected: str, params: str) -> bool:
    """True when another run finished the experiment after it was planned (``expected``, see :func:`done_token`):
    its status file exists and is not the one the planner saw, or a run started or ended since and the experiment
    is ``finished`` now."""
    done_then, _, runs_then = expected.partition(";")
    done_now, _, runs_now = done_token(exp_dir).partition(";")
    if done_now != DONE_MISSING and done_now != done_then:
        return True
    if runs_then and runs_now != runs_then:
        try:
            return files.read_yaml_settled(params).get("_status") == st.FINISHED
        except (XmenError, OSError):
            return False
    return False


def count_run(fd: int, event: str) -> None:
    """Append a line to the run lock file when a run starts and when it ends: its size, which
    :func:`done_token` reports, then changes whenever a run started or ended since a planner looked."""
    try:
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, f"{now_time()} {event} {hostname()} {os.getpid()}\n".encode("utf-8", "replace"))
    except OSError:  # disk full: the lock still works
        pass


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
