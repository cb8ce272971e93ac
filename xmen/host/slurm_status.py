"""Hooks on the SLURM plugin's status loop, in the main Snakemake process: states it misreads, and SLURM's verdict
recorded before Snakemake hears of a job's end.

- **No hang on scancel.** sacct reports a cancelled job as ``CANCELLED by <uid>``; the plugin (2.8.0) compares the
  state with ``"CANCELLED"`` exactly, so a cancelled job counts as active forever and Snakemake never ends. The
  plugin's status query is wrapped to report the first word of each state (xmen.slurm.sacct.normalise_state):
  idempotent, so it keeps working, and changes nothing, once upstream compares differently. A job cancelled while
  still pending is not even listed by the plugin's query (:func:`cancelled_query` adds it). A preempted job SLURM
  did not requeue is over, not waiting to resume (:func:`ended_preemptions`). A job this run adopted from an
  earlier one (xmen.host.slurm_submit) carries the earlier run's uuid as its name, which the plugin's query filters
  by: while such jobs are followed, one more query asks about them by id (:func:`adopted_query`). When the next
  status check comes (so that Snakemake ends within seconds of its last job) is xmen.host.poll's.
- **SLURM's verdict.** When the plugin reports a job's end (``report_job_success`` / ``report_job_error``), one
  ``sacct`` call for the jobs that ended in that status check, made before Snakemake hears of those ends, gives
  each one's state, exit code, node, partition, elapsed time and MaxRSS; xmen.slurm.sacct.apply_verdict records
  them in the experiment's ``_slurm`` list and turns SLURM's state into xmen's status.

Two patches of xmen.host.patches: "report cancelled and preempted jobs as ended, follow adopted jobs"
(:func:`report_states`) and "record SLURM's verdict before Snakemake hears of a job's end" (:func:`record_verdicts`).
Nothing here imports the plugin: xmen.host.plugin has them installed on the plugin it checked.
"""
from __future__ import annotations

import functools
import os
import shlex
import threading
from typing import Any, Callable

from xmen.host import slurm_submit
from xmen.slurm.queue import job_states
from xmen.slurm.sacct import apply_verdict, job_record, member_row, normalise_statuses, query
from xmen.store import files
from xmen.store import status as st
from xmen.store.layout import PARAMS_FILE


#: The rule and wildcard of the Snakefile that runs experiments (rules/xmen_rule.smk).
RULE = "xmen_experiment"


WILDCARD = "exp"


_MARK = "_xmen_slurm"


_ENDED = "_xmen_ended"  # the executor's jobs reported ended during the status check under way


_HELD = "_xmen_held"  # the plugin's reports of those ends, passed on once their verdicts are recorded


_CHECKER = "_xmen_checker"  # the thread running that status check


#: What the plugin is told of a preempted job that SLURM did not requeue: a failure (SLURM's verdict, recorded
#: from sacct, still says ``PREEMPTED``).
PREEMPTION_ENDED = "FAILED"


def ended_preemptions(statuses: dict[str, str] | None,
                      alive: Callable[[list[str]], dict[str, Any] | None] | None = None) -> dict[str, str] | None:
    """``statuses`` with each ``PREEMPTED`` job that left SLURM's queue reported as ended (:data:`PREEMPTION_ENDED`).

    The plugin (2.8) takes PREEMPTED for a job SLURM will requeue and resume, and waits for it: with the
    ``PreemptMode=CANCEL`` of many clusters (or ``--no-requeue``) it waits forever. A requeued job is back in
    squeue (PENDING, then RUNNING); one that is not has ended. One squeue call, only when a job is PREEMPTED; when
    squeue cannot answer, the plugin's reading stands.
    """
    if not statuses:
        return statuses
    preempted = [job for job, state in statuses.items() if state == "PREEMPTED"]
    if not preempted:
        return statuses
    if alive is None:
        alive = job_states
    queue = alive(preempted)
    if queue is None:
        return statuses
    ended = {job for job in preempted if not getattr(queue.get(job), "alive", False)}
    return {job: PREEMPTION_ENDED if job in ended else state for job, state in statuses.items()}


def _normalising(query: Any) -> Any:
    """The plugin's async ``query_job_status(command, logger)`` returning normalised states."""
    if getattr(query, _MARK, False):
        return query

    @functools.wraps(query)
    async def query_job_status(command: str, logger: Any) -> tuple[Any, Any]:
        statuses, duration = await query(command, logger)
        for extra in (cancelled_query(command), adopted_query(command, sorted(slurm_submit.HOOKS.following))):
            if statuses is not None and extra is not None:
                more, _ = await query(extra, logger)
                for job, state in (more or {}).items():
                    statuses.setdefault(job, state)
        return ended_preemptions(normalise_statuses(statuses)), duration

    setattr(query_job_status, _MARK, True)
    return query_job_status


def report_states(plugin: Any) -> bool:
    """Patch "report cancelled and preempted jobs as ended, follow adopted jobs": the plugin module's
    ``query_job_status`` (the plugin calls it by its module-level name). Idempotent; True."""
    plugin.query_job_status = _normalising(plugin.query_job_status)
    return True


def record_verdicts(executor_class: Any) -> bool:
    """Patch "record SLURM's verdict before Snakemake hears of a job's end": the executor class's
    ``report_job_success``, ``report_job_error`` and ``check_active_jobs``. Idempotent; True."""
    for name in ("report_job_success", "report_job_error"):
        setattr(executor_class, name, _reporting(getattr(executor_class, name)))
    executor_class.check_active_jobs = _checking(executor_class.check_active_jobs)
    return True


def _record_safely(executor: Any, job_infos: list[Any]) -> None:
    try:
        record_job_ends(job_infos)
    except Exception as exc:  # noqa: BLE001 - xmen's record must never break Snakemake's run
        logger = getattr(executor, "logger", None)
        if logger is not None:
            ids = ", ".join(str(getattr(info, "external_jobid", "?")) for info in job_infos)
            logger.warning(f"xmen: could not record SLURM's verdict for job(s) {ids}: {exc}")


def _checking(check: Any) -> Any:
    """``check_active_jobs`` that records SLURM's verdict of the jobs it saw end (one sacct call for them all).

    The verdicts are written before this status check returns, so before Snakemake, told of the ends, can exit.
    The plugin's reports of those ends reach Snakemake only after that (:func:`_reporting` holds them back): a failed
    job's retry decision (Snakemake asks ``restart_times`` as soon as it hears of the failure; xmen.store.retry) reads
    SLURM's verdict. (When the next check comes is xmen.host.poll's decision.)
    """
    if getattr(check, _MARK, False):
        return check

    @functools.wraps(check)
    async def check_active_jobs(self: Any, active_jobs: list[Any]) -> Any:
        setattr(self, _ENDED, [])
        setattr(self, _HELD, [])
        setattr(self, _CHECKER, threading.get_ident())
        try:
            async for job in check(self, active_jobs):
                yield job
        finally:
            ended = getattr(self, _ENDED, None) or []
            held = getattr(self, _HELD, None) or []
            setattr(self, _ENDED, None)
            setattr(self, _HELD, None)
            if ended:
                _record_safely(self, ended)
            for report in held:
                report()

    setattr(check_active_jobs, _MARK, True)
    return check_active_jobs


def cancelled_query(command: str) -> str | None:
    """The plugin's sacct status command narrowed to cancelled jobs (``--state CANCELLED``); None for others.

    A job cancelled while pending never became eligible: the plugin's ``sacct --starttime .. --endtime now``
    window does not list it at all, so the plugin would wait for it forever even with the state normalised.
    With ``--state`` sacct lists the jobs that were in that state during the window.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or os.path.basename(words[0]) != "sacct" or "--name" not in words or "--state" in words:
        return None
    return shlex.join([*words, "--state", "CANCELLED"])


def adopted_query(command: str, job_ids: list[str]) -> str | None:
    """A status command like the plugin's (sacct, or squeue) for adopted jobs, by id: their name is an earlier
    run's uuid, not this run's. None when there are none, or the plugin's command is another one.

    sacct's ``JobID`` is the id the marker recorded (``123``, or an array task ``123_4``); with ``-j`` and no start
    time sacct looks at every job, however old.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not job_ids or not words:
        return None
    ids = ",".join(job_ids)
    if os.path.basename(words[0]) == "sacct":
        return shlex.join(["sacct", "-X", "--parsable2", "--noheader", "--format=JobID,State", "-j", ids])
    if os.path.basename(words[0]) == "squeue":
        return shlex.join(["squeue", "--format=%i|%T", "--states=all", "--noheader", "--jobs", ids])
    return None


def _reporting(report: Any) -> Any:
    """``report_job_success`` / ``report_job_error`` that first record SLURM's verdict for the job."""
    if getattr(report, _MARK, False):
        return report

    @functools.wraps(report)
    def reported(self: Any, job_info: Any, *args: Any, **kwargs: Any) -> Any:
        slurm_submit.HOOKS.following.discard(str(getattr(job_info, "external_jobid", "")))  # an adopted job: asked about no more
        ended, held = getattr(self, _ENDED, None), getattr(self, _HELD, None)
        if ended is not None and held is not None and getattr(self, _CHECKER, None) == threading.get_ident():
            # Inside a status check: recorded at its end, one sacct call for all, and only then reported (_checking).
            # (A report from another thread, a rejected submission, is not the check's to hold: it goes on at once.)
            ended.append(job_info)
            held.append(functools.partial(report, self, job_info, *args, **kwargs))
            return None
        _record_safely(self, [job_info])
        return report(self, job_info, *args, **kwargs)

    setattr(reported, _MARK, True)
    return reported


def experiment_of(job: Any) -> str | None:
    """The experiment folder (relative to Snakemake's working directory) a job of :data:`RULE` runs, else None."""
    rule = getattr(job, "rule", None)
    if getattr(rule, "name", None) != RULE:
        return None
    wildcards = getattr(job, "wildcards", None)
    try:
        exp = wildcards[WILDCARD] if wildcards is not None else None
    except (KeyError, TypeError, IndexError):
        exp = getattr(wildcards, WILDCARD, None)
    return str(exp) if exp else None


def record_job_ends(job_infos: list[Any]) -> int:
    """Ask sacct once about jobs the plugin saw end and record SLURM's verdict in their experiments; how many
    experiments got one. A group job (a pack) records in each of its experiments, from the experiment's own job
    step where that is its outcome (xmen.slurm.sacct.member_row: a member that finished stays COMPLETED)."""
    targets: list[tuple[str, str, Any, tuple[str, bool] | None]] = []  # (job id, folder, attempt, (step, finished))
    for info in job_infos:
        job_id, job = getattr(info, "external_jobid", None), getattr(info, "job", None)
        if not job_id or job is None:
            continue
        group = getattr(job, "is_group", lambda: False)()
        jobs = list(job.jobs) if group else [job]
        targets += [(str(job_id), exp, getattr(j, "attempt", None), _step_in(exp, str(job_id)) if group else None)
                    for j in jobs if (exp := experiment_of(j))]
    ids = [job_id for job_id, _, _, _ in targets] + [f"{job_id}.{s[0]}" for job_id, _, _, s in targets if s]
    rows = query(list(dict.fromkeys(ids)))
    recorded = 0
    for job_id, exp, attempt, step in targets:
        params = os.path.join(exp, PARAMS_FILE)
        if job_id not in rows or not os.path.isfile(params):
            continue
        row = rows[job_id] if step is None else member_row(rows[job_id], rows.get(f"{job_id}.{step[0]}"), step[1])
        record = job_record(job_id, attempt, row)
        files.update_yaml(params, lambda data, record=record: apply_verdict(data, record))
        recorded += 1
    return recorded


def _step_in(exp: str, job_id: str) -> tuple[str, bool] | None:
    """``(step id, finished)`` of the experiment's run in SLURM job ``job_id`` (a pack member's own job step, which
    its runner recorded), or None when it did not run in that job."""
    data = files.read_mapping(os.path.join(exp, PARAMS_FILE)) or {}
    run = data.get("_run") if isinstance(data.get("_run"), dict) else {}
    step = str(run.get("slurm_step_id") or "")
    if str(run.get("slurm_job_id") or "") != job_id or not step.isdigit():
        return None
    return step, data.get("_status") == st.FINISHED
