"""``xmen cancel GLOB``: stop the matching experiments' SLURM jobs and local runs, and record ``cancelled``.

What to stop comes from the experiments' own records: ``_run.slurm_job_id`` (the runner inside a SLURM job
records it), the job id in a queued experiment's ``.xmen-queued`` marker, and ``_run.pid`` of a run on this host.
``cancelled`` (with ``_cancelled: {at, by, job_id?, step?, before_start?, host?, pid?}``) is recorded once the signal
went out (an experiment that was not running any more is left as it is): a runner that writes its ``timeout`` after
that, a python experiment, and the SLURM verdict of the main Snakemake process keep it (xmen.store.status.settle);
one that wrote before is overwritten.

A pack (one SLURM job running several experiments, README "packs") is cancelled member by member unless every
member of it is asked for: a running member's own job step is cancelled (``scancel JOB.STEP``), a member the pack
has not started is recorded ``cancelled`` with ``before_start`` and its job skips it
(xmen.store.lifecycle.CancelledBeforeStart); the other members run on. A running member without a job step of its
own is refused, naming its pack.
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
from xmen.store.layout import PARAMS_FILE
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
    #: How many experiments the job runs (more than one: a pack).
    pack: int = 1
    #: The job step a running pack member runs in; None for one the pack has not started.
    step: str | None = None
    running: bool = False
    #: Set by :func:`cancel`: only this member of its pack is cancelled (its step, or skipped when reached).
    alone: bool = False

    def describe(self) -> str:
        """What was signalled, for the user and for ``_error``: ``SLURM job 12``, ``SLURM job 12 step 1, one of a
        pack of 3``, ``not started in SLURM job 12, a pack of 3: it skips it``, ``pid 345``."""
        if not self.job_id:
            return f"pid {self.pid}"
        if not self.alone:
            return f"SLURM job {self.job_id}"
        if self.step is not None:
            return f"SLURM job {self.job_id} step {self.step}, one of a pack of {self.pack}"
        return f"not started in SLURM job {self.job_id}, a pack of {self.pack}: it skips it"

    def scancel_argument(self) -> str | None:
        """What ``scancel`` gets: the job, a pack member's step, or nothing (a member the pack skips)."""
        if not self.job_id or not self.alone:
            return self.job_id
        return f"{self.job_id}.{self.step}" if self.step is not None else None


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
            target.job_id, target.running = job, True
            pack, step = run.get("slurm_pack"), str(run.get("slurm_step_id") or "")
            if isinstance(pack, int) and not isinstance(pack, bool) and pack > 1:
                target.pack = pack
            target.step = step if step.isdigit() else None
        elif run.get("host") == hostname() and isinstance(pid, int) and not isinstance(pid, bool) and pid > 1:
            target.pid = pid
        else:
            return f"running on {run.get('host')} outside SLURM: cannot signal it from here"
    if target.job_id is None and target.pid is None:
        found = marker(exp_dir)  # submitted again (a retry) whatever the last run ended as
        if found is not None:
            target.job_id, target.pack = found.job_id, found.pack
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
    targets = _members_alone(targets, result)
    if any(t.scancel_argument() for t in targets) and shutil.which("scancel") is None:
        raise XmenError("scancel not found: cannot cancel SLURM jobs from this machine (is SLURM installed here?)")
    for target in targets:  # before the first signal: a link where a status is written stops it with nothing done
        files.refuse_links(target.exp_dir, (PARAMS_FILE, files.lock_path(PARAMS_FILE)))
    by = f"{getpass.getuser()}@{hostname()}"
    for target in targets:
        record: dict[str, Any] = {"at": now_time(), "by": by}
        if target.job_id:
            record["job_id"] = target.job_id
        if target.alone and target.step is not None:
            record["step"] = target.step
        elif target.alone:
            record["before_start"] = True
        if target.pid is not None:
            record.update(host=hostname(), pid=target.pid)
        what = target.describe()
        started_meanwhile: list[bool] = []

        def mark(data: dict[str, Any], record: dict[str, Any] = record, what: str = what,
                 target: Target = target) -> None:
            if data.get("_status") == st.FINISHED:  # it finished between our look and the signal: it stays so
                finished_meanwhile.append(True)
                return
            run = data.get("_run") if isinstance(data.get("_run"), dict) else {}
            if record.get("before_start") and data.get("_status") == st.RUNNING and str(
                    run.get("slurm_job_id") or "") == target.job_id:  # its pack started it meanwhile
                started_meanwhile.append(True)
                return
            data["_status"] = st.CANCELLED
            data["_error"] = f"cancelled with xmen cancel ({what})"
            data[st.CANCEL_KEY] = record

        argument = target.scancel_argument()
        if argument:
            proc = subprocess.run(["scancel", argument], capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                result.skipped.append((target.name, f"scancel {argument}: {proc.stderr.strip()}"))
                continue
        if target.pid is not None:
            try:
                os.kill(target.pid, signal.SIGTERM)  # the runner forwards it to the experiment
            except ProcessLookupError:
                result.skipped.append((target.name, f"pid {target.pid} is not running any more"))
                continue
        # After the signal: whoever writes first, the runner's `timeout` is replaced, or the runner keeps this.
        finished_meanwhile: list[bool] = []
        files.update_yaml(target.exp_dir / PARAMS_FILE, mark)
        if finished_meanwhile:
            result.skipped.append((target.name, "finished before it could be cancelled"))
            continue
        if started_meanwhile:
            result.skipped.append((target.name, f"its pack (SLURM job {target.job_id}) started it meanwhile: "
                                                f"cancel it again to stop its job step"))
            continue
        result.cancelled.append(target)
    return result


def _members_alone(targets: list[Target], result: CancelResult) -> list[Target]:
    """The targets with pack members marked :attr:`Target.alone` when not every member of their pack is asked for
    (every member asked: the whole job is cancelled, as for one experiment); a running member without a job step
    of its own goes to ``result.skipped``, naming its pack (its job is never cancelled for it)."""
    asked: dict[str, int] = {}
    for target in targets:
        if target.job_id:
            asked[target.job_id] = asked.get(target.job_id, 0) + 1
    kept = []
    for target in targets:
        if target.job_id and target.pack > 1 and asked[target.job_id] < target.pack:
            if target.running and target.step is None:
                others = target.pack - 1
                result.skipped.append((target.name, f"runs in SLURM job {target.job_id} with {others} other "
                                                    f"experiment(s) of its pack and in no job step of its own: "
                                                    f"cancelling the job would stop them too"))
                continue
            target.alone = True
        kept.append(target)
    return kept
