"""``xmen cancel GLOB``: stop the matching experiments' SLURM jobs and local runs, and record ``cancelled``.

What to stop comes from the experiments' own records: ``_run.slurm_job_id`` (the runner inside a SLURM job
records it), the job id in a queued experiment's ``.xmen-queued`` marker, and ``_run.pid`` of a run on this host.
``cancelled`` (with ``_cancelled: {at, by, job_id?, host?, pid?}``) is recorded once the signal went out (an
experiment that was not running any more is left as it is): a runner that writes its ``timeout`` after that, a
python experiment, and the SLURM verdict of the main Snakemake process keep it (xmen.store.status.settle); one that
wrote before is overwritten.
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xmen.store import files
from xmen.store import status as st
from xmen.errors import UsageError, XmenError
from xmen.store.provenance import hostname, now_time
from xmen.store.shown import shown_status
from xmen.slurm.queue import is_job_id, marker

@dataclass
class Target:
    """What cancelling one experiment means: a SLURM job, a local process, or both unknown (nothing to do)."""

    name: str
    exp_dir: Path
    job_id: str | None = None
    pid: int | None = None


@dataclass
class CancelResult:
    cancelled: list[Target] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)


def queued_job_id(exp_dir: Path) -> str | None:
    """The job id of the experiment's queued marker (xmen.slurm.queue), or None."""
    found = marker(exp_dir)
    return found.job_id if found else None


def target_of(name: str, exp_dir: Path, params: dict[str, Any]) -> Target | str:
    """What to stop for one experiment, or why there is nothing to stop.

    Its status as a user sees it (a dead ``running`` one is ``lost``); squeue is not asked: a queued marker's job is
    cancelled whatever squeue says (scancel tells when it is gone)."""
    current = shown_status(params, exp_dir).value
    if not st.cancellable(current):
        return f"nothing to cancel ({current})"
    run = params.get("_run") if isinstance(params.get("_run"), dict) else {}
    target = Target(name, exp_dir)
    if current == st.RUNNING:
        job, pid = str(run.get("slurm_job_id") or ""), run.get("pid")
        if job:
            if not is_job_id(job):  # params.yml edited by hand: never pass it to scancel as an option
                return f"running, but its recorded SLURM job id {job!r} is not a job id"
            target.job_id = job
        elif run.get("host") == hostname() and isinstance(pid, int) and not isinstance(pid, bool) and pid > 1:
            target.pid = pid
        else:
            return f"running on {run.get('host')} outside SLURM: cannot signal it from here"
    if target.job_id is None and target.pid is None:
        target.job_id = queued_job_id(exp_dir)  # submitted again (a retry) whatever the last run ended as
    if target.job_id is None and target.pid is None:
        return f"nothing to cancel ({current}: no job or process recorded)"
    return target


def cancel(exp_set: Any, pattern: str) -> CancelResult:
    """Cancel the matching experiments of ``exp_set`` (an :class:`xmen.sets.expset.ExperimentSet`)."""
    names = exp_set.match(pattern)
    if not names:
        raise UsageError(f"no linked experiment matches {pattern!r}")
    result = CancelResult()
    targets: list[Target] = []
    for name in names:
        exp_dir = Path(exp_set.root) / name
        found = target_of(name, exp_dir, exp_set.params(name))
        if isinstance(found, str):
            result.skipped.append((name, found))
        else:
            targets.append(found)
    if any(t.job_id for t in targets) and shutil.which("scancel") is None:
        raise XmenError("scancel not found: cannot cancel SLURM jobs from this machine (is SLURM installed here?)")
    by = f"{getpass.getuser()}@{hostname()}"
    for target in targets:
        record: dict[str, Any] = {"at": now_time(), "by": by}
        if target.job_id:
            record["job_id"] = target.job_id
        if target.pid is not None:
            record.update(host=hostname(), pid=target.pid)
        what = f"SLURM job {target.job_id}" if target.job_id else f"pid {target.pid}"

        def mark(data: dict[str, Any], record: dict[str, Any] = record, what: str = what) -> None:
            if data.get("_status") == st.FINISHED:  # it finished between our look and the signal: it stays so
                finished_meanwhile.append(True)
                return
            data["_status"] = st.CANCELLED
            data["_error"] = f"cancelled with xmen cancel ({what})"
            data[st.CANCEL_KEY] = record

        if target.job_id:
            proc = subprocess.run(["scancel", target.job_id], capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                result.skipped.append((target.name, f"scancel {target.job_id}: {proc.stderr.strip()}"))
                continue
        if target.pid is not None:
            try:
                os.kill(target.pid, signal.SIGTERM)  # the runner forwards it to the experiment
            except ProcessLookupError:
                result.skipped.append((target.name, f"pid {target.pid} is not running any more"))
                continue
        # After the signal: whoever writes first, the runner's `timeout` is replaced, or the runner keeps this.
        finished_meanwhile: list[bool] = []
        files.update_yaml(target.exp_dir / "params.yml", mark)
        if finished_meanwhile:
            result.skipped.append((target.name, "finished before it could be cancelled"))
            continue
        result.cancelled.append(target)
    return result
