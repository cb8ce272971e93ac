"""Hooks on the SLURM plugin's submissions, in the main Snakemake process: queued markers, rejected submissions,
experiments the preflight refused, and jobs adopted from an earlier run.

When the plugin submits an experiment's job, its experiments are marked queued (xmen.store.markers); a submission
``sbatch`` rejects is recorded in params.yml; ``run_job`` of an experiment the preflight (xmen.slurm.partitions)
refused reports an error without calling sbatch, and ``run_job`` of an adopted experiment reports its existing job
to the plugin instead of submitting it again (its status loop then follows that job).

A job of xmen's rule runs its experiment as a direct job step (xmen.run.rule_job) instead of Snakemake's own.

Four patches of xmen.host.patches: "mark submitted experiments queued, record rejected submissions"
(:func:`report_submissions`), "follow adopted jobs and refuse what the preflight refused instead of submitting them"
(:func:`submit_or_follow`), "keep empty SLURM log folders" (:func:`keep_log_folders`) and "run xmen's experiments
as a direct job step" (:func:`run_direct_job_steps`). Nothing here imports Snakemake or the plugin at import time:
each patches the executor class it is given (xmen.host.plugin checks the plugin and decides when).
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Any, Mapping

from xmen._version import import_path
from xmen.run import rule_job
from xmen.slurm.partitions import preflight_lines
from xmen.slurm.queue import sbatch_message
from xmen.store.markers import REFUSED, mark, record_rejected
from xmen.store.terminal import plain

_MARK = "_xmen_slurm"  # on a wrapper installed already


class _Hooks:
    """State of the hooks installed in this (main Snakemake) process."""

    def __init__(self) -> None:
        self.workdir = os.getcwd()
        #: experiment dir (absolute) -> why it is not submitted (found by :func:`preflight`)
        self.refused: dict[str, str] = {}
        #: experiment dir (absolute) -> the SLURM job still alive from an earlier run that this run adopts (the
        #: planner's verdict, see :func:`adopt`)
        self.adopted: dict[str, str] = {}
        #: every experiment dir (absolute) this run adopted, also once followed: each is a Snakemake job of its own
        #: (in no pack, xmen.host.jobs), following the job of its pack of the earlier run
        self.adopted_dirs: set[str] = set()
        #: ids of the adopted jobs reported to the plugin and not ended yet: xmen.slurm asks sacct about them
        self.following: set[str] = set()


HOOKS = _Hooks()


def experiment_dirs(job: Any, workdir: str) -> list[str]:
    """Absolute folders of the experiments of a Snakemake job (every job of a group job)."""
    jobs = list(getattr(job, "jobs", None) or []) if _is_group(job) else [job]
    found = []
    for one in jobs:
        wildcards = getattr(one, "wildcards_dict", None) or {}
        exp = wildcards.get("exp")
        if exp:
            found.append(os.path.normpath(os.path.join(workdir, str(exp))))
    return found


def _is_group(job: Any) -> bool:
    try:
        return bool(job.is_group())
    except Exception:  # noqa: BLE001 - a job object of another shape: treat as one job
        return False


def _warn(text: str) -> None:
    print(plain(f"xmen: {text}"), file=sys.stderr, flush=True)


def adopt(jobs: Mapping[str, str]) -> None:
    """``{experiment dir (absolute): SLURM job id}``: the planner's adopted experiments (in a real run with the slurm
    executor); the hooked ``run_job`` follows each one's job instead of submitting it."""
    found = {os.path.normpath(path): str(job_id) for path, job_id in jobs.items() if job_id}
    HOOKS.adopted.update(found)
    HOOKS.adopted_dirs.update(found)


def adopted_job(job: Any) -> str | None:
    """The job id this run adopts for a Snakemake job: when each of its experiments is adopted, with one job.
    Once only: a retry of the job (the adopted one failed) is submitted like any other."""
    dirs = experiment_dirs(job, HOOKS.workdir)
    ids = {HOOKS.adopted.get(d) for d in dirs}
    if not dirs or len(ids) != 1 or None in ids:
        return None
    for exp_dir in dirs:
        HOOKS.adopted.pop(exp_dir, None)
    return ids.pop()


def on_submitted(job: Any, job_id: str | None, name: str = "") -> None:
    """The plugin submitted ``job`` as SLURM job ``job_id`` (named ``name``): mark its experiments queued."""
    if not job_id:
        return
    dirs = experiment_dirs(job, HOOKS.workdir)
    for exp_dir in dirs:
        try:
            mark(exp_dir, str(job_id), name, pack=len(dirs))
        except OSError as exc:  # never fail the submission for the marker
            _warn(f"cannot mark {exp_dir} as queued: {exc}")


def on_rejected(job: Any, message: str) -> None:
    """The plugin reports that ``job`` could not be submitted (it reports nothing else this way): sbatch rejected
    it, or the plugin's own checks did (an account sacctmgr does not know). Recorded in params.yml."""
    if message.startswith(REFUSED):
        return  # refused by preflight: recorded already
    reason = sbatch_message(message)
    for prefix in ("Job submission failed with exception: ", "Array job submission failed with exception: "):
        if reason.startswith(prefix):
            reason = reason[len(prefix):]
    for exp_dir in experiment_dirs(job, HOOKS.workdir):
        try:
            record_rejected(exp_dir, reason)
        except Exception as exc:  # noqa: BLE001 - recording must never break Snakemake's own error handling
            _warn(f"cannot record the rejected submission in {exp_dir}: {exc}")


#: The submission methods the hooks wrap (the plugin 2.8's).
SUBMITTED = "_report_job_submission_threadsafe"
ERRORED = "_report_job_error_threadsafe"


def install(executor_class: Any, workdir: str, module: Any = None) -> bool:
    """Wrap the SLURM executor's submission report, error report and ``run_job`` (once per class): the patches
    :func:`report_submissions`, :func:`submit_or_follow` and, with the plugin's ``module``, :func:`keep_log_folders`.

    The plugin (2.8) learns a job's id in ``run_job`` (a worker thread) and passes it to
    ``_report_job_submission_threadsafe(SubmittedJobInfo)``; a rejected ``sbatch`` goes to
    ``_report_job_error_threadsafe(SubmittedJobInfo, msg)``. False when the class does not have these methods
    (another plugin version): nothing is patched then (xmen.host.patches checks the plugin first, and refuses).
    """
    HOOKS.workdir = workdir
    if not all(callable(getattr(executor_class, n, None)) for n in (SUBMITTED, ERRORED, "run_job")):
        return False
    submit_or_follow(executor_class, module)
    report_submissions(executor_class)
    if module is not None:
        keep_log_folders(executor_class, module)
    return True


def _hooked(method: Any) -> Any:
    """``method`` marked as one of these hooks, so that installing it twice wraps nothing twice."""
    setattr(method, _MARK, True)
    return method


def _unhooked(method: Any) -> Any:
    """The plugin's own method under the hooks installed on it."""
    while getattr(method, _MARK, False) and hasattr(method, "__wrapped__"):
        method = method.__wrapped__
    return method


def report_submissions(executor_class: Any) -> bool:
    """Patch "mark submitted experiments queued, record rejected submissions": the executor's submission report
    marks the job's experiments queued (xmen.store.markers), its error report (a rejected ``sbatch``) records the
    rejection in their params.yml. Idempotent; True."""
    submitted, errored = getattr(executor_class, SUBMITTED), getattr(executor_class, ERRORED)
    if not getattr(submitted, _MARK, False):

        @functools.wraps(submitted)
        def report_submission(self: Any, job_info: Any) -> Any:
            try:
                on_submitted(job_info.job, getattr(job_info, "external_jobid", None),
                             str(getattr(self, "run_uuid", "")))
            except Exception as exc:  # noqa: BLE001
                _warn(f"cannot record a submission: {exc}")
            return submitted(self, job_info)

        setattr(executor_class, SUBMITTED, _hooked(report_submission))
    if not getattr(errored, _MARK, False):

        @functools.wraps(errored)
        def report_error(self: Any, job_info: Any, msg: str) -> Any:
            on_rejected(job_info.job, str(msg))
            return errored(self, job_info, msg)

        setattr(executor_class, ERRORED, _hooked(report_error))
    return True


def submit_or_follow(executor_class: Any, module: Any = None) -> bool:
    """Patch "follow adopted jobs and refuse what the preflight refused instead of submitting them": ``run_job`` (and
    ``run_array_jobs``, which leaves such jobs out) of an experiment :func:`refuse` refused reports an error without
    calling sbatch; of an adopted experiment (:func:`adopt`) it reports the submission of its existing job without
    calling sbatch. Both reports are the plugin's own (no queued marker, no rejection recorded again). With the
    plugin's ``module``, an adopted job's log is where the plugin puts its own. Idempotent; True."""
    run_job = executor_class.run_job
    if getattr(run_job, _MARK, False):
        return True

    def refuse_job(self: Any, job: Any) -> bool:
        """Report a job preflight refused as failed (never submitted); False for the others."""
        refused = [HOOKS.refused[d] for d in experiment_dirs(job, HOOKS.workdir) if d in HOOKS.refused]
        if not refused:
            return False
        from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

        _unhooked(getattr(executor_class, ERRORED))(self, SubmittedJobInfo(job),
                                                    f"{REFUSED}: {refused[0]}")
        return True

    def adopt_job(self: Any, job: Any) -> bool:
        """Report an adopted job as submitted under its existing id (its marker stays as it is); False for the
        others. The plugin's status loop then follows it like its own jobs."""
        job_id = adopted_job(job)
        if job_id is None:
            return False
        from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

        HOOKS.following.add(job_id)
        log = _old_log(self, job, job_id, module)
        self.logger.info(f"xmen: job {getattr(job, 'jobid', '?')} adopts SLURM job {job_id} of an earlier run "
                         f"(not submitted again; log: {log})")
        _unhooked(getattr(executor_class, SUBMITTED))(
            self, SubmittedJobInfo(job, external_jobid=job_id, aux={"slurm_logfile": log}))
        return True

    @functools.wraps(run_job)
    def refusing_run_job(self: Any, job: Any) -> Any:
        if not adopt_job(self, job) and not refuse_job(self, job):
            return run_job(self, job)
        return None

    run_array_jobs = getattr(executor_class, "run_array_jobs", None)
    if callable(run_array_jobs):

        @functools.wraps(run_array_jobs)
        def refusing_run_array_jobs(self: Any, jobs: list[Any]) -> Any:
            kept = [job for job in jobs if not adopt_job(self, job) and not refuse_job(self, job)]
            return run_array_jobs(self, kept) if kept else None

        executor_class.run_array_jobs = _hooked(refusing_run_array_jobs)
    executor_class.run_job = _hooked(refusing_run_job)
    return True


def keep_log_folders(executor_class: Any, module: Any) -> bool:
    """Patch "keep empty SLURM log folders": the plugin's ``clean_old_logs`` (at the end of every run) keeps empty
    log folders. The plugin deletes them, among them the folder of a job still pending from a run that was killed,
    whose job then fails at its start, unable to open its log (measured: State FAILED, Elapsed 0). True when
    patched (now or before); False when the plugin has no such methods."""
    cleaner = getattr(executor_class, "clean_old_logs", None)
    if not callable(getattr(module, "delete_empty_dirs", None)) or not callable(cleaner):
        return False
    if getattr(cleaner, _MARK, False):
        return True

    @functools.wraps(cleaner)
    def clean_old_logs(self: Any) -> Any:
        deleter = module.delete_empty_dirs
        module.delete_empty_dirs = lambda path: None
        try:
            return cleaner(self)
        finally:
            module.delete_empty_dirs = deleter

    executor_class.clean_old_logs = _hooked(clean_old_logs)
    return True


def _old_log(executor: Any, job: Any, job_id: str, module: Any) -> Any:
    """Where the plugin put an adopted job's SLURM log (its own layout: ``<logdir>/rule_<rule>/<wildcards>/<id>.log``).
    The plugin removes it after a success, as for its own jobs."""
    from pathlib import Path

    wildcards = getattr(module, "get_job_wildcards", None)
    try:
        folder = Path(executor.slurm_logdir) / f"rule_{job.name}"
        return folder / (wildcards(job) if callable(wildcards) else "") / f"{job_id}.log"
    except Exception:  # noqa: BLE001 - another plugin layout: a path that does not exist
        return Path(f"{job_id}.log")


def refuse(grouped: Mapping[str, list[str]], workdir: str, dry_run: bool) -> None:
    """Say what :func:`preflight` found; in a real run record each such experiment as error and have the hooked
    ``run_job`` refuse it (Snakemake counts it failed: the run ends non-zero, the others run)."""
    for line in preflight_lines(grouped, dry_run):
        print(plain(line), file=sys.stderr, flush=True)
    if dry_run:
        return
    for problem, names in grouped.items():
        for name in names:
            exp_dir = os.path.normpath(os.path.join(workdir, name))
            HOOKS.refused.setdefault(exp_dir, problem)
            try:
                record_rejected(exp_dir, problem, refused=True)
            except Exception as exc:  # noqa: BLE001
                _warn(f"cannot record the rejection in {exp_dir}: {exc}")


def run_direct_job_steps(executor_class: Any) -> bool:
    """Patch "run xmen's experiments as a direct job step": the executor's ``format_job_exec`` (:func:`_direct_jobs`).
    Idempotent; True."""
    executor_class.format_job_exec = _direct_jobs(executor_class.format_job_exec)
    return True


def _direct_jobs(format_job_exec: Any) -> Any:
    """``format_job_exec`` giving a job of xmen's rule the direct job step (xmen.rule_job) when the workflow's glue
    says it can have one (XmenWorkflow.slurm_job); every other job keeps the plugin's command."""
    if getattr(format_job_exec, _MARK, False):
        return format_job_exec

    @functools.wraps(format_job_exec)
    def direct(self: Any, job: Any) -> str:
        glue = getattr(getattr(self, "workflow", None), "_xmen_glue", None)
        spec = glue.slurm_job(job, self) if glue is not None else None
        if spec is None:
            return format_job_exec(self, job)
        precommand = self.workflow.spawned_job_args_factory.precommand(executor_common_settings=self.common_settings)
        before = [self.get_job_exec_prefix(job), self.get_envvar_declarations(), precommand]
        xmen_path = import_path()
        line = rule_job.command(spec, self.get_python_executable(), xmen_path, before)
        return format_job_exec(self, job) if line is None else line

    setattr(direct, _MARK, True)
    return direct
