"""xmen's integration with snakemake-executor-plugin-slurm, and SLURM's verdict on an experiment's job.

Installed by the Snakefile glue (:func:`install`, main Snakemake process, slurm executor only):

- **No hang on scancel.** sacct reports a cancelled job as ``CANCELLED by <uid>``; the plugin (2.8.0) compares the
  state with ``"CANCELLED"`` exactly, so a cancelled job counts as active forever and Snakemake never ends. The
  plugin's status query is wrapped to report the first word of each state (:func:`normalise_state`): idempotent,
  so it keeps working, and changes nothing, once upstream compares differently. A job cancelled while still
  pending is not even listed by the plugin's query (:func:`cancelled_query` adds it). A preempted job SLURM did
  not requeue is over, not waiting to resume (:func:`ended_preemptions`). A job this run adopted
  from an earlier one (xmen.slurm_queue) carries the earlier run's uuid as its name, which the plugin's query
  filters by: while such jobs are followed, one more query asks about them by id (:func:`adopted_query`). When the next status check
  comes (so that Snakemake ends within seconds of its last job) is xmen.slurm_poll's, installed from here.
- **SLURM's verdict.** When the plugin reports a job's end (``report_job_success`` / ``report_job_error``), one
  ``sacct`` call for the jobs that ended in that status check, made before Snakemake hears of those ends, gives
  each one's state, exit code, node, partition, elapsed time and MaxRSS (batch step); :func:`apply_verdict` appends
  them to the experiment's
  ``_slurm`` list and turns SLURM's state into xmen's status (:data:`VERDICTS`): SLURM knows a cancellation
  or a lack of memory, the runner inside the job only sees a signal. The runner and a python experiment keep
  that verdict (xmen.status.settle).
- **Cheap jobs.** A job of xmen's rule runs xmen.rule_job directly instead of two Snakemake processes
  (:func:`_direct_jobs`; which jobs may is XmenWorkflow.slurm_job's decision).

This module is light: it imports the plugin only inside :func:`install`.
"""
from __future__ import annotations

import functools
import os
import shlex
import subprocess
import threading
from typing import Any, Callable, Iterable, Mapping

from xmen.store import status as st

#: sacct fields of one job's record, in order (``MaxRSS`` is only on its steps: the batch step's is used).
SACCT_FIELDS = ("JobIDRaw", "JobID", "State", "ExitCode", "NodeList", "Partition", "Elapsed", "MaxRSS")
#: The job records kept per experiment (the last ones).
KEEP_RECORDS = 20
#: SLURM state -> (xmen status, ``_error``). States not here (COMPLETED, FAILED) keep what the runner recorded.
VERDICTS: dict[str, tuple[str, str]] = {
    "CANCELLED": (st.CANCELLED, "cancelled (SLURM job {job_id})"),
    "TIMEOUT": (st.TIMEOUT, "time limit (SLURM job {job_id})"),
    "DEADLINE": (st.TIMEOUT, "deadline reached (SLURM job {job_id})"),
    "OUT_OF_MEMORY": (st.ERROR, "out of memory (SLURM)"),
    "NODE_FAIL": (st.ERROR, "node failure"),
    "BOOT_FAIL": (st.ERROR, "node failure (boot)"),
    "PREEMPTED": (st.ERROR, "preempted"),
}
#: The rule and wildcard of the Snakefile that runs experiments (rules/xmen_rule.smk).
RULE = "xmen_experiment"
WILDCARD = "exp"
_MARK = "_xmen_slurm"
_ENDED = "_xmen_ended"  # the executor's jobs reported ended during the status check under way
_HELD = "_xmen_held"  # the plugin's reports of those ends, passed on once their verdicts are recorded
_CHECKER = "_xmen_checker"  # the thread running that status check


def normalise_state(state: str) -> str:
    """SLURM's state word: ``CANCELLED by 0`` -> ``CANCELLED``; a state already one word is returned as is."""
    words = str(state).split()
    return words[0] if words else ""


def normalise_statuses(statuses: dict[str, str] | None) -> dict[str, str] | None:
    """The plugin's ``{job id: state}`` with every state normalised (``None``, a failed query, stays ``None``)."""
    if statuses is None:
        return None
    return {job: normalise_state(state) for job, state in statuses.items()}


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
        from xmen.slurm.queue import job_states

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
        from xmen.slurm.queue import HOOKS

        statuses, duration = await query(command, logger)
        for extra in (cancelled_query(command), adopted_query(command, sorted(HOOKS.following))):
            if statuses is not None and extra is not None:
                more, _ = await query(extra, logger)
                for job, state in (more or {}).items():
                    statuses.setdefault(job, state)
        return ended_preemptions(normalise_statuses(statuses)), duration

    setattr(query_job_status, _MARK, True)
    return query_job_status


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
    job's retry decision (Snakemake asks ``restart_times`` as soon as it hears of the failure; xmen.retry) reads
    SLURM's verdict. (When the next check comes is xmen.slurm_poll's decision.)
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
        from xmen.slurm.queue import HOOKS

        HOOKS.following.discard(str(getattr(job_info, "external_jobid", "")))  # an adopted job: asked about no more
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
        from xmen.run import rule_job

        precommand = self.workflow.spawned_job_args_factory.precommand(executor_common_settings=self.common_settings)
        before = [self.get_job_exec_prefix(job), self.get_envvar_declarations(), precommand]
        xmen_path = os.path.dirname(os.path.dirname(os.path.abspath(rule_job.__file__)))
        line = rule_job.command(spec, self.get_python_executable(), xmen_path, before)
        return format_job_exec(self, job) if line is None else line

    setattr(direct, _MARK, True)
    return direct


def install() -> bool:
    """Patch the imported slurm plugin (see the module docstring); True when it is patched (now or before).

    Idempotent: a second call (a second Snakefile in the same process) changes nothing.
    """
    try:
        import snakemake_executor_plugin_slurm as plugin
    except ImportError:
        return False
    if hasattr(plugin, "query_job_status"):
        plugin.query_job_status = _normalising(plugin.query_job_status)
    executor = plugin.Executor
    for name in ("report_job_success", "report_job_error"):
        setattr(executor, name, _reporting(getattr(executor, name)))
    executor.check_active_jobs = _checking(executor.check_active_jobs)
    executor.format_job_exec = _direct_jobs(executor.format_job_exec)
    from xmen.host import poll as slurm_poll

    slurm_poll.install()  # outermost: decides the next status check after the verdicts are recorded
    return True


def executor_in_use(frame: Any, dry_run: bool = False) -> str | None:
    """The executor this Snakemake runs the workflow with (``slurm``, ``local``, ``dryrun`` for ``-n``...), or None.
    With ``dry_run``, a dry run (``-n``) names the executor it would run with (the planner's verdicts say what that
    run would do).

    The Snakefile is parsed before the workflow knows its executor plugin: from the command line inside
    snakemake.cli's ``args_to_api`` (its ``args``), from the API possibly inside snakemake.api's
    ``execute_workflow``; the frame of that call holds it.
    """
    while frame is not None:
        code = frame.f_code
        if code.co_name == "args_to_api" and code.co_filename.endswith(os.path.join("snakemake", "cli.py")):
            args = frame.f_locals.get("args")
            if getattr(args, "dryrun", False) and not dry_run:
                return "dryrun"
            if getattr(args, "touch", False):
                return "touch"
            return str(getattr(args, "executor", None) or "local")
        if code.co_name == "execute_workflow" and code.co_filename.endswith(os.path.join("snakemake", "api.py")):
            local = frame.f_locals
            if dry_run:
                return str(local.get("executor") or "") or None
            return str(local.get("actual_executor") or local.get("executor") or "") or None
        frame = frame.f_back
    return None


# ---------------------------------------------------------------------------------------------- the verdict
def query(job_ids: Iterable[str], run: Callable[..., Any] = subprocess.run) -> dict[str, dict[str, str]]:
    """One ``sacct`` call for jobs: per job id, :data:`SACCT_FIELDS` of the job itself, MaxRSS its largest step's.

    xmen's one sacct reader: SLURM's verdict here, and what ``xmen list`` says of a job that left the queue
    (xmen.slurm_queue.ended_states). A job sacct does not know (yet), or every job when sacct is missing or fails
    (no accounting), is left out.
    """
    ids = list(dict.fromkeys(str(i) for i in job_ids if str(i).strip()))
    if not ids:
        return {}
    try:
        proc = run(["sacct", "-j", ",".join(ids), "-P", "-n", "-o", ",".join(SACCT_FIELDS)],
                   capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return {}
    if proc.returncode != 0:
        return {}
    rows = sacct_rows(proc.stdout)
    found = {job: _job_row(job, rows) for job in ids}
    return {job: row for job, row in found.items() if row is not None}


def sacct_rows(text: str) -> list[dict[str, str]]:
    """``sacct -P -n -o`` :data:`SACCT_FIELDS` output as rows (jobs and their steps)."""
    return [dict(zip(SACCT_FIELDS, line.split("|"))) for line in text.splitlines() if line.strip()]


def parse_sacct(job_id: str, text: str) -> dict[str, str] | None:
    """The job's row of ``sacct -P -n -o`` :data:`SACCT_FIELDS` output, MaxRSS the largest of its steps' (the
    experiment runs in a step of its own, xmen.rule_job or the plugin's job step in the batch step)."""
    return _job_row(job_id, sacct_rows(text))


def _job_row(job_id: str, rows: list[dict[str, str]]) -> dict[str, str] | None:
    main = next((r for r in rows if job_id in (r.get("JobIDRaw"), r.get("JobID"))), None)  # JobID: array 12_3
    if main is None:
        return None
    main = dict(main)
    prefix = f"{main.get('JobID') or job_id}."
    steps = [r.get("MaxRSS", "") for r in rows if r.get("JobID", "").startswith(prefix)]
    main["MaxRSS"] = max((m for m in steps if _bytes(m) is not None), key=_bytes, default=main.get("MaxRSS") or "")
    return main


_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4, "P": 1024 ** 5}


def _bytes(size: str) -> float | None:
    """sacct's ``2048K``, ``1.5M``... in bytes; None for an empty or unreadable size."""
    text = str(size).strip().upper()
    unit = text[-1:] if text[-1:] in _UNITS else ""
    try:
        return float(text[: len(text) - len(unit)]) * _UNITS[unit] if text else None
    except ValueError:
        return None


def job_record(job_id: str, attempt: int | None, row: Mapping[str, str]) -> dict[str, Any]:
    """The ``_slurm`` entry of one attempt, from its sacct row."""
    node = row.get("NodeList") or ""
    return {
        "job_id": str(job_id),
        "attempt": attempt,
        "state": normalise_state(row.get("State", "")),
        "exit_code": row.get("ExitCode") or None,
        "node": None if node in ("", "None assigned") else node,
        "partition": row.get("Partition") or None,
        "elapsed": row.get("Elapsed") or None,
        "max_rss": row.get("MaxRSS") or None,
    }


def apply_verdict(data: dict[str, Any], record: Mapping[str, Any]) -> None:
    """Append ``record`` to ``data['_slurm']`` and let SLURM's state decide ``_status`` / ``_error``.

    An experiment that finished in this very job stays finished (a pack's job ends CANCELLED or TIMEOUT for
    all its experiments, also those that were done). FAILED and COMPLETED keep the runner's status, unless the runner never recorded an end (still ``running``,
    or ``registered``: the job failed before the runner started), which is then an ``error``. A cancellation
    ``xmen cancel`` already recorded keeps its own ``_error``.
    """
    records = data.get(st.SLURM_KEY)
    records = [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
    records = [r for r in records if str(r.get("job_id")) != str(record["job_id"])]  # a repeated report
    records.append(dict(record))
    data[st.SLURM_KEY] = records[-KEEP_RECORDS:]
    state = str(record.get("state") or "")
    current = data.get("_status")
    run = data.get("_run") if isinstance(data.get("_run"), dict) else {}
    running_job = str(run.get("slurm_job_id") or "")
    if current == st.RUNNING and (running_job or run.get("host")) and running_job != str(record["job_id"]):
        return  # an earlier job's end, told after a retry (or a local run) started: the record only, it goes on
    if current == st.FINISHED and str(run.get("slurm_job_id") or "") == str(record["job_id"]):
        return  # it finished in this job before the job ended (a pack's later member was cancelled, timed out)
    verdict = VERDICTS.get(state)
    if verdict is not None:
        status, error = verdict
        error = error.format(**record)
        if status == st.CANCELLED and current == st.CANCELLED and data.get("_error"):
            return
        previous = data.get("_error") if current in st.FAILED else None
        data["_status"] = status
        if previous and previous.startswith(error):  # recorded before (update_yaml may apply a change twice)
            error = previous
        elif previous:
            error = f"{error}; {previous}"
        data["_error"] = error
    elif state != "COMPLETED" and current in (st.RUNNING, st.REGISTERED, st.DEFAULT, None):
        data["_status"] = st.ERROR
        ended = state.lower() or "ended"
        data["_error"] = f"SLURM job {record['job_id']} {ended} (exit code {record.get('exit_code')})"


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
    experiments got one. A group job records in each of its experiments."""
    from xmen.store import files

    targets: list[tuple[str, str, Any]] = []  # (job id, experiment folder, attempt)
    for info in job_infos:
        job_id, job = getattr(info, "external_jobid", None), getattr(info, "job", None)
        if not job_id or job is None:
            continue
        jobs = list(job.jobs) if getattr(job, "is_group", lambda: False)() else [job]
        targets += [(str(job_id), exp, getattr(j, "attempt", None)) for j in jobs if (exp := experiment_of(j))]
    rows = query(list(dict.fromkeys(job_id for job_id, _, _ in targets)))
    recorded = 0
    for job_id, exp, attempt in targets:
        params = os.path.join(exp, "params.yml")
        if job_id not in rows or not os.path.isfile(params):
            continue
        record = job_record(job_id, attempt, rows[job_id])
        files.update_yaml(params, lambda data, record=record: apply_verdict(data, record))
        recorded += 1
    return recorded
