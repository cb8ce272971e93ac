"""Experiment statuses: the values params.yml records, :class:`Status` (what a user sees of one experiment) and the
rules for which status a folder really has.

The statuses are plain strings, the very values params.yml and the listing index hold, so writers store them as
they are. What a user sees is derived from the recorded one in ONE place, xmen.store.shown.shown_status: a process
that dies without reporting (``kill -9``, OOM, node loss) cannot write its own status, so a running experiment
keeps a heartbeat file fresh and a stale heartbeat turns ``running`` into ``lost`` when read; an experiment whose
SLURM job waits in the queue is ``queued``, which is never recorded.
"""
from __future__ import annotations
from xmen.store.layout import DONE_FILE, HEARTBEAT_FILE  # noqa: F401 - readers use st.DONE_FILE, st.HEARTBEAT_FILE

from dataclasses import dataclass
from typing import Any, Mapping

DEFAULT = "default"
REGISTERED = "registered"
RUNNING = "running"
FINISHED = "finished"
ERROR = "error"
STOPPED = "stopped"
TIMEOUT = "timeout"
#: How an experiment's ``_error`` begins when it stopped itself before its time limit (a Monitor's ``stop_before``):
#: status ``timeout``, though the scheduler saw a job that failed (exit code 128 + SIGUSR1).
STOPPED_ITSELF = "stopped itself"
#: Cancelled from outside: ``scancel`` of its SLURM job (SLURM's verdict) or ``xmen cancel``.
CANCELLED = "cancelled"
LOST = "lost"
#: Submitted to SLURM, not started yet: never stored in params.yml, read from the marker file (xmen.slurm.queue)
#: and squeue.
QUEUED = "queued"

ALL = (DEFAULT, REGISTERED, QUEUED, RUNNING, FINISHED, ERROR, STOPPED, TIMEOUT, CANCELLED, LOST)
FAILED = (ERROR, STOPPED, TIMEOUT, CANCELLED, LOST)
#: Not statuses anyone records (not in :data:`ALL`, so no ``--status-is`` choice): what readers show for an
#: experiment whose params.yml cannot be read, and what the planner shows for one whose params.yml it did not read.
CORRUPT = "corrupt"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Status:
    """What a user sees of one experiment: its status and why, as xmen.store.shown.shown_status derives it.

    ``value`` is one of :data:`ALL` (``lost`` and ``queued`` included), :data:`UNKNOWN` when params.yml was not read,
    or whatever else a hand-edited params.yml says; ``why`` is what ``xmen list`` says next to it (its plan column)
    about the experiment's SLURM job (``SLURM job 123 (Priority)`` for a queued one), empty when there is nothing
    to add; ``job_id`` is the SLURM job of its queued marker, if it has one. ``str()`` gives the value.
    """

    value: str
    why: str = ""
    job_id: str = ""

    def __str__(self) -> str:
        return self.value

    @property
    def failed(self) -> bool:
        """Whether the last run failed (:data:`FAILED`: error, stopped, timeout, cancelled, lost)."""
        return self.value in FAILED

#: Statuses under which a SLURM queued marker is never believed: the job started the experiment (``running``), or
#: the experiment finished (only a forced rerun would submit it again).
NEVER_QUEUED = frozenset([RUNNING, FINISHED])


def may_be_queued(status: str) -> bool:
    """Whether an experiment with this recorded status may have a SLURM job waiting in the queue (a retry after a
    failure too); its marker and squeue then decide (xmen.slurm.queue). ``xmen list`` and ``xmen cancel`` ask."""
    return status not in NEVER_QUEUED


def cancellable(status: str) -> bool:
    """Whether an experiment with this status may have a job or a process to cancel: it runs, or may be queued."""
    return status == RUNNING or may_be_queued(status)


#: params.yml key: one record per SLURM attempt, written by the main Snakemake process from sacct (xmen.slurm).
SLURM_KEY = "_slurm"
#: params.yml key: what ``xmen cancel`` cancelled (``{at, by, job_id?, host?, pid?}``).
CANCEL_KEY = "_cancelled"

#: Seconds between heartbeats, and how stale a heartbeat may get before the experiment counts as lost.
HEARTBEAT_INTERVAL = 15.0
LOST_AFTER = 4 * HEARTBEAT_INTERVAL


def outside_verdict(data: Mapping[str, Any], run: Mapping[str, Any] | None) -> bool:
    """True when someone who knows better than the run itself already recorded how ``run`` ended.

    SLURM's verdict (the last ``_slurm`` record is this run's job) or ``xmen cancel`` (``_cancelled`` names this
    run's job or process) is written by another process, possibly before the runner hears its SIGTERM: the runner
    and a python experiment must then keep that status instead of writing their own ``timeout``.
    """
    if not isinstance(run, Mapping):
        return False
    job = str(run.get("slurm_job_id") or "")
    records = data.get(SLURM_KEY)
    if job and isinstance(records, list) and records and isinstance(records[-1], Mapping):
        if str(records[-1].get("job_id") or "") == job:
            return True
    cancel = data.get(CANCEL_KEY)
    if isinstance(cancel, Mapping):
        if job and str(cancel.get("job_id") or "") == job:
            return True
        pid = run.get("pid")
        if pid is not None and cancel.get("pid") == pid and cancel.get("host") == run.get("host"):
            return True
    return False


def cancelled_before_start(data: Mapping[str, Any] | None, job_id: str | None) -> bool:
    """Whether ``xmen cancel`` cancelled the experiment in SLURM job ``job_id`` before that job started it (a pack
    member): the job must skip it."""
    if not job_id or not isinstance(data, Mapping) or data.get("_status") != CANCELLED:
        return False
    cancel = data.get(CANCEL_KEY)
    return isinstance(cancel, Mapping) and str(cancel.get("job_id") or "") == str(job_id) and bool(
        cancel.get("before_start"))


def settle(data: dict[str, Any], run: Mapping[str, Any] | None, final: str, reason: str | None) -> str:
    """Record a run's own outcome (``final``, ``reason``) in ``data`` unless an outside verdict holds (see
    :func:`outside_verdict`); then the verdict stays and the run's reason is added to its ``_error``. The status kept.
    """
    if outside_verdict(data, run) and data.get("_status") in FAILED:
        current = str(data.get("_error") or "")
        for part in (reason or "").split("; "):  # what the run saw, once (the experiment and its runner both tell)
            if part and part not in current:
                current = f"{current}; {part}" if current else part
        if current:
            data["_error"] = current
        return str(data["_status"])
    data["_status"] = final
    if reason is not None:
        data["_error"] = reason
    return final
