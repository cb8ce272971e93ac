"""Experiments waiting in SLURM's queue: what ``squeue`` (and ``sacct``, for jobs that left it) says of a queued
marker (xmen.store.markers).

Between ``sbatch`` and the start of its job an experiment is neither ``registered`` (a run would submit it again)
nor ``running`` (nothing runs yet). The submission hooks (xmen.host.slurm_submit) write a marker in the experiment
folder with the job id and the submission time; the runner removes it when the experiment starts. Readers then ask
SLURM, one ``squeue`` call for all the markers they found (:class:`QueueView`):

- the job is still in the queue (or starting): the experiment is ``queued``; the planner skips it (never a
  second submission, also after the submitting Snakemake was killed), ``xmen list`` shows the job id and SLURM's
  pending reason. A Snakemake running the workflow with the slurm executor adopts it instead (planner verdict
  "adopts SLURM job N"): the hooked ``run_job`` reports the existing job id to the plugin without calling sbatch,
  and the plugin's status loop follows that job (xmen.host.slurm_status asks sacct about it by id: its job name is
  the old run's). So does it for a ``running`` experiment whose job (``_run.slurm_job_id``) is still alive;
- the job is gone and the experiment never started: the marker is only history (``xmen list`` says so, with the
  job's end state per ``sacct``); the planner treats the experiment as what its status says. A job id squeue shows
  is only the marker's job when it is the same job (:func:`same_job`: the job name the marker recorded, the run
  uuid the plugin names jobs by, or else a submit time not after the marker's): a cluster that reused the id for
  another job never holds the experiment back.

A submission ``sbatch`` rejects is recorded in the experiment's ``params.yml`` (``_status: error``, ``_error:
submission rejected by SLURM: <sbatch's message>``). What the cluster would reject for certain (an unknown
partition, more memory or CPUs than any node of the partition has, a runtime above its time limit, a GRES no node
has) is found before anything is submitted, from one ``sinfo`` call (xmen.slurm.partitions.preflight); such
experiments are recorded as ``error`` too (``_error: not submitted, SLURM would reject it: <why>``: SLURM never
saw them) and not submitted, while the others run (also the others of a pack:
xmen.host.jobs.install_refused_alone).

Nothing here imports Snakemake or the plugin.
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

from xmen.store import files
from xmen.store.layout import PARAMS_FILE
from xmen.store.markers import Marker, is_job_id, marker
from xmen.slurm.sacct import normalise_state, query

#: squeue states of a job that may still start (or is starting) its experiment.
ALIVE = frozenset(["PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                   "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"])
_TIMEOUT = 20.0
#: Seconds two clocks (this host's and slurmctld's, both in local time) may disagree when times are compared.
_CLOCK_SLACK = 5.0
_SBATCH_MESSAGE = re.compile(r"The error message was '(.*?)'\.\s*(?:\n|$)", re.S)


# ------------------------------------------------------------------------------------------------ asking SLURM
@dataclass(frozen=True)
class JobState:
    """A job as ``squeue`` shows it: its state (``PENDING``...), SLURM's reason (``Priority``, ``None``...), its
    submit and start times (``2026-12-03T12:00:00``; ``N/A`` before it started) and its name."""

    state: str
    reason: str = ""
    submitted: str = ""
    started: str = ""
    name: str = ""

    @property
    def alive(self) -> bool:
        return self.state in ALIVE


def job_states(job_ids: Iterable[str] | None, run: Callable[..., Any] = subprocess.run
               ) -> dict[str, JobState] | None:
    """``{job id: JobState}`` of the jobs squeue still shows, from ONE ``squeue`` call (``job_ids=None``: every job
    of this user); None when squeue cannot be asked (not installed, no answer): then nobody can tell whether the
    jobs are queued."""
    if job_ids is None:
        which = ["-u", str(os.getuid())]
    else:
        ids = sorted({str(i) for i in job_ids if str(i).strip()})
        if not ids:
            return {}
        which = ["-j", ",".join(ids)]
    try:  # the name last: the only field that may hold a "|"
        proc = run(["squeue", "-h", *which, "-o", "%i|%T|%r|%V|%S|%j"], capture_output=True, text=True,
                   timeout=_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        # squeue -j with only ids it does not know any more: "Invalid job id specified".
        return {} if "invalid job id" in (proc.stderr or "").lower() else None
    found: dict[str, JobState] = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|", 5)
        if len(parts) >= 3:
            found[parts[0]] = JobState(*parts[1:])
    return found


def _slurm_time(text: str) -> datetime | None:
    """squeue's ``2026-12-03T12:00:00`` (or xmen's ``2026-12-03-12-00-00``); None for ``N/A`` and the like."""
    for form in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d-%H-%M-%S"):
        try:
            return datetime.strptime(text.strip(), form)
        except ValueError:
            continue
    return None


def _not_after(first: str, second: str) -> bool:
    """Whether time ``first`` is not after ``second`` (with :data:`_CLOCK_SLACK`); True when one is unknown."""
    one, two = _slurm_time(first), _slurm_time(second)
    return one is None or two is None or (one - two).total_seconds() <= _CLOCK_SLACK


def still_queued(found: Marker, state: JobState | None) -> bool:
    """Whether the marker's job is alive, as squeue shows it (``state``; None: squeue does not show the id): the one
    test of the planner and ``xmen list``."""
    return state is not None and state.alive and same_job(found, state)


def same_job(found: Marker, state: JobState) -> bool:
    """Whether the job squeue shows under the marker's id is the marker's job, not another one that got the same
    id later (a cluster whose job ids started over): the same name when the marker recorded one, else a submit time
    not after the marker's (the marker is written once sbatch returned)."""
    if found.name and state.name:
        return found.name == state.name
    return _not_after(state.submitted, found.submitted)


def ended_states(job_ids: Iterable[str], run: Callable[..., Any] = subprocess.run) -> dict[str, str]:
    """``{job id: sacct State}`` (``CANCELLED``, ``COMPLETED``...) of ended jobs, from one ``sacct`` call (xmen's
    one sacct reader, xmen.slurm.sacct.query); empty when sacct cannot answer (no accounting)."""
    states = {job: normalise_state(row.get("State", "")) for job, row in query(job_ids, run).items()}
    return {job: state for job, state in states.items() if state}  # "CANCELLED by 0" -> CANCELLED


@dataclass(frozen=True)
class QueueAnswer:
    """What SLURM says of one experiment's queued marker (:meth:`QueueView.about`): the marker's ``job_id``, whether
    that job is still in the queue or starting (``queued``), and what ``xmen list`` says of it (``why``)."""

    job_id: str
    queued: bool
    why: str = ""


class QueueView:
    """Markers of some experiments and what squeue says of their jobs, asked once for all of them.

    ``prefetch(paths)`` (or :meth:`marker`) reads the markers of many experiments; squeue is asked about all of
    them at once when a first state is needed. :meth:`about` answers for one experiment: the queue view that
    xmen.store.shown.shown_status takes. :meth:`queued` is the planner's question.

    ``own_job``: whether, inside a SLURM job, a marker naming that very job counts (the planner's view, the
    default, says no: the job is the experiment's own run, never a reason to skip it, and squeue is not asked).
    ``explain``: whether :meth:`about` says what became of a job that left the queue without starting its
    experiment (one ``sacct`` call for all such jobs; ``xmen list``).
    """

    def __init__(self, run: Callable[..., Any] = subprocess.run, *, own_job: bool = False,
                 explain: bool = False) -> None:
        self._run = run
        self.own_job = own_job
        self.explain = explain
        self._markers: dict[str, Marker | None] = {}
        self._states: dict[str, JobState] = {}
        self._asked: set[str] = set()
        self._unanswered: set[str] = set()  # asked, but squeue could not be asked
        self._asked_all = False
        self._ended: dict[str, str] | None = None
        self.squeue_calls = 0

    def prefetch(self, paths: Iterable[str]) -> None:
        """Read the markers of ``paths``; squeue is asked, for all of them at once, when a state is first needed."""
        for path in paths:
            if path not in self._markers:
                self._markers[path] = marker(path)

    def known(self, path: str, found: Marker | None) -> None:
        """Take ``path``'s marker as its caller read it (``xmen list`` reads one per row and keeps those it shows):
        squeue will be asked about its job with the others'."""
        self._markers[path] = found

    def _ask(self, ids: list[str]) -> None:
        ids = [i for i in ids if i not in self._asked]
        if not ids:
            return
        ids += [m.job_id for m in self._markers.values() if m is not None and m.job_id not in self._asked]
        self._asked.update(ids)
        self.squeue_calls += 1
        states = job_states(ids, self._run)
        if states is not None:
            self._states.update(states)
        else:
            self._unanswered.update(ids)

    def marker(self, path: str) -> Marker | None:
        """The experiment's queued marker, read once; squeue will be asked about its job with the others'."""
        if path not in self._markers:
            self._markers[path] = marker(path)
        return self._markers[path]

    def state(self, job_id: str) -> JobState | None:
        """squeue's word on ``job_id``; None when squeue does not show it (ended long enough ago, or unknown)."""
        self._ask([job_id])
        return self._states.get(job_id)

    def queued(self, path: str) -> tuple[Marker, JobState] | None:
        """(marker, job state) when ``path``'s job is submitted and still alive in SLURM, else None.

        Inside that very job (``SLURM_JOB_ID``) the marker is the job itself, never a reason to skip.
        """
        found = self.marker(path)
        if found is None or _this_job(found.job_id):
            return None
        state = self.state(found.job_id)
        return (found, state) if still_queued(found, state) else None

    def about(self, path: str) -> QueueAnswer | None:
        """What SLURM says of ``path``'s queued marker; None without one (or for this very job, see ``own_job``).

        Queued while squeue shows its job alive (``why``: ``SLURM job 123 (Priority)``). Otherwise the experiment is
        what its status says, and ``why`` is ``? SLURM job 123 submitted (squeue cannot be asked)`` when squeue
        could not answer; with ``explain``, ``! SLURM job 123 left the queue without starting it (CANCELLED)``
        (its end state per sacct, when known), or nothing when that job did start it (the marker outlived the
        start by an instant).
        """
        found = self.marker(path)
        if found is None or (not self.own_job and _this_job(found.job_id)):
            return None
        job = found.job_id
        state = self.state(job)
        if still_queued(found, state):
            return QueueAnswer(job, True, _waiting(found, state))  # type: ignore[arg-type]
        if job in self._unanswered:
            return QueueAnswer(job, False, f"? SLURM job {job} submitted (squeue cannot be asked)")
        if not self.explain:
            return QueueAnswer(job, False)
        how = self._ended_state(job)
        if _started_by(path) == job:
            return QueueAnswer(job, False)
        return QueueAnswer(job, False, f"! SLURM job {job} left the queue without starting it"
                                       + (f" ({how})" if how else ""))

    def _ended_state(self, job_id: str) -> str:
        """sacct's end state of a job that left the queue, asked ONCE for every such job among the markers read."""
        if self._ended is None:
            gone = [m.job_id for m in self._markers.values()
                    if m is not None and m.job_id in self._asked and m.job_id not in self._unanswered
                    and not still_queued(m, self._states.get(m.job_id))]
            self._ended = ended_states(gone, self._run)
        return self._ended.get(job_id, "")

    def running(self, job_id: str, started: str) -> JobState | None:
        """squeue's state of job ``job_id`` when it is alive and is the job that started a run at ``started``
        (``_run.started``: the job started before; a job that got the same id later started after); else None.

        The first call asks squeue once for every job of this user (running experiments are found one by one while
        planning): never one call per experiment.
        """
        if not is_job_id(job_id) or _this_job(job_id):
            return None
        if not self._asked_all and job_id not in self._asked:
            self._asked_all = True
            self.squeue_calls += 1
            states = job_states(None, self._run)
            if states is not None:
                self._states.update(states)
        state = self._states.get(job_id)
        if state is None or not state.alive or not _not_after(state.started, started):
            return None
        return state


def _started_by(exp_dir: str) -> str | None:
    """``_run.slurm_job_id`` of the experiment's last run."""
    run = (files.read_mapping(os.path.join(exp_dir, PARAMS_FILE)) or {}).get("_run")
    return str(run.get("slurm_job_id")) if isinstance(run, dict) and run.get("slurm_job_id") else None


def _this_job(job_id: str) -> bool:
    """True inside SLURM job ``job_id`` itself (a plain job, or an array task ``123_4``)."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return job_id == os.environ.get("SLURM_JOB_ID") or bool(array and task and job_id == f"{array}_{task}")


def _waiting(job: Marker, state: JobState) -> str:
    """``SLURM job 123 (Priority)``: why an experiment is queued (the planner says ``queued as`` before it)."""
    reason = _reason(state)
    return f"SLURM job {job.job_id}" + (f" ({reason})" if reason else "")


def _reason(state: JobState) -> str:
    reason = state.reason if state.state == "PENDING" else state.state.lower()
    return "" if reason == "None" else reason


def describe_adopted(job_id: str, state: JobState, queued: bool) -> str:
    """``adopts SLURM job 123 (queued: Priority)`` / ``(running)``: the planner's reason for an experiment whose
    job a run with the slurm executor follows instead of submitting it again."""
    reason = _reason(state)
    shown = ("queued" + (f": {reason}" if reason and reason != "pending" else "")) if queued else "running"
    return f"adopts SLURM job {job_id} ({shown}), not submitted again"


# ------------------------------------------------------------------------------------------------ rejections
def sbatch_message(message: str) -> str:
    """sbatch's own words out of the plugin's "SLURM sbatch failed. The error message was '...'" text."""
    found = _SBATCH_MESSAGE.search(message)
    text = found.group(1) if found else message
    return " ".join(text.split())








