"""Experiment statuses and the rules for which status a folder really has.

A process that dies without reporting (``kill -9``, OOM, node loss) cannot write its own status, so a running
experiment keeps a heartbeat file fresh; a stale heartbeat turns ``running`` into ``lost`` when read.
"""
from __future__ import annotations
from xmen.store.layout import DONE_FILE, HEARTBEAT_FILE

from typing import Any, Mapping

DEFAULT = "default"
REGISTERED = "registered"
RUNNING = "running"
FINISHED = "finished"
ERROR = "error"
STOPPED = "stopped"
TIMEOUT = "timeout"
#: Cancelled from outside: ``scancel`` of its SLURM job (SLURM's verdict) or ``xmen cancel``.
CANCELLED = "cancelled"
LOST = "lost"
#: Submitted to SLURM, not started yet: never stored in params.yml, read from the marker file (xmen.slurm_queue)
#: and squeue.
QUEUED = "queued"

ALL = (DEFAULT, REGISTERED, QUEUED, RUNNING, FINISHED, ERROR, STOPPED, TIMEOUT, CANCELLED, LOST)
FAILED = (ERROR, STOPPED, TIMEOUT, CANCELLED, LOST)

#: Statuses under which a SLURM queued marker is never believed: the job started the experiment (``running``), or
#: the experiment finished (only a forced rerun would submit it again).
NEVER_QUEUED = frozenset([RUNNING, FINISHED])


def may_be_queued(status: str) -> bool:
    """Whether an experiment with this recorded status may have a SLURM job waiting in the queue (a retry after a
    failure too); its marker and squeue then decide (xmen.slurm_queue). ``xmen list`` and ``xmen cancel`` ask."""
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
