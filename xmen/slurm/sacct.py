"""SLURM's verdict on an experiment's job, from sacct: its state, exit code, node, partition, elapsed time and MaxRSS.

- :func:`normalise_state`: sacct reports a cancelled job as ``CANCELLED by <uid>``; the first word is the state
  (the SLURM plugin 2.8.0 compares with ``"CANCELLED"`` exactly: xmen.host.slurm_status wraps its status query
  with :func:`normalise_statuses`).
- :func:`query` asks sacct once about the jobs given; :func:`job_record` makes one job's record of it, and
  :func:`apply_verdict` appends it to the experiment's ``_slurm`` list and turns SLURM's state into xmen's status
  (:data:`VERDICTS`): SLURM knows a cancellation or a lack of memory, the runner inside the job only sees a signal.
  The runner and a python experiment keep that verdict (xmen.store.status.settle).

The hooks that record those verdicts when the SLURM plugin reports a job's end, in the main Snakemake process, are
xmen.host.slurm_status's. Nothing here imports Snakemake or the plugin.
"""
from __future__ import annotations

import subprocess
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


def normalise_state(state: str) -> str:
    """SLURM's state word: ``CANCELLED by 0`` -> ``CANCELLED``; a state already one word is returned as is."""
    words = str(state).split()
    return words[0] if words else ""


def normalise_statuses(statuses: dict[str, str] | None) -> dict[str, str] | None:
    """The plugin's ``{job id: state}`` with every state normalised (``None``, a failed query, stays ``None``)."""
    if statuses is None:
        return None
    return {job: normalise_state(state) for job, state in statuses.items()}


# ---------------------------------------------------------------------------------------------- the verdict
def query(job_ids: Iterable[str], run: Callable[..., Any] = subprocess.run) -> dict[str, dict[str, str]]:
    """One ``sacct`` call for jobs: per job id, :data:`SACCT_FIELDS` of the job itself, MaxRSS its largest step's.

    xmen's one sacct reader: SLURM's verdict here, and what ``xmen list`` says of a job that left the queue
    (xmen.slurm.queue.ended_states). A job sacct does not know (yet), or every job when sacct is missing or fails
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


#: What a pack member's record takes from its own job step's row (the rest is the job's: partition...).
_STEP_FIELDS = ("State", "ExitCode", "NodeList", "Elapsed", "MaxRSS")


def member_row(job: Mapping[str, str], step: Mapping[str, str] | None, finished: bool) -> Mapping[str, str]:
    """The sacct row a pack member's record is made of (a pack: one job running several experiments, each in a job
    step of its own). Its own step's state, exit code, elapsed time and MaxRSS when it finished in the job, or when
    the job ended of itself (COMPLETED, FAILED: each member's outcome is its step's); the job's when SLURM ended the
    job as a whole (CANCELLED, TIMEOUT...: its verdict is the member's that was running), or without a step row."""
    if step is None or not (finished or normalise_state(job.get("State", "")) in ("COMPLETED", "FAILED")):
        return job
    return {**job, **{key: step[key] for key in _STEP_FIELDS if step.get(key)}}


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


