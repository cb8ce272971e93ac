"""Experiments waiting in SLURM's queue, and submissions SLURM rejects.

Between ``sbatch`` and the start of its job an experiment is neither ``registered`` (a run would submit it again)
nor ``running`` (nothing runs yet). When the SLURM executor plugin submits an experiment's job, the hooks installed
here (by :mod:`xmen.snakemake_glue`, in the main Snakemake process) write a marker file :data:`MARKER_FILE` in the
experiment folder with the job id and the submission time; the job runner (:mod:`xmen.job`) removes it when the
experiment starts. Readers then ask SLURM, one ``squeue`` call for all the markers they found:

- the job is still in the queue (or starting): the experiment is ``queued``; the planner skips it (never a
  second submission, also after the submitting Snakemake was killed), ``xmen list`` shows the job id and SLURM's
  pending reason. A Snakemake running the workflow with the slurm executor adopts it instead (planner verdict
  "adopts SLURM job N"): the hooked ``run_job`` reports the existing job id to the plugin without calling sbatch,
  and the plugin's status loop follows that job (xmen.slurm asks sacct about it by id: its job name is the old
  run's). So does it for a ``running`` experiment whose job (``_run.slurm_job_id``) is still alive;
- the job is gone and the experiment never started: the marker is only history (``xmen list`` says so, with the
  job's end state per ``sacct``); the planner treats the experiment as what its status says. A job id squeue shows
  is only the marker's job when it is the same job (:func:`same_job`: the job name the marker recorded, the run
  uuid the plugin names jobs by, or else a submit time not after the marker's): a cluster that reused the id for
  another job never holds the experiment back.

A submission ``sbatch`` rejects is recorded in the experiment's ``params.yml`` (``_status: error``, ``_error:
submission rejected by SLURM: <sbatch's message>``). What the cluster would reject for certain (an unknown
partition, more memory or CPUs than any node of the partition has, a runtime above its time limit, a GRES no node
has) is found before anything is submitted, from one ``sinfo`` call (:func:`preflight`); such experiments are
recorded the same way and not submitted, while the others run (also the others of a pack:
xmen.snakemake_glue.install_refused_alone).

Nothing here imports Snakemake or the plugin: :func:`install` patches the plugin's executor class it is given.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

import yaml

from xmen.store import files
from xmen.store import status as st

#: Marker file of an experiment whose SLURM job is submitted and has not started it yet.
MARKER_FILE = ".xmen-queued"
#: squeue states of a job that may still start (or is starting) its experiment.
ALIVE = frozenset(["PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                   "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"])
#: Prefix of the ``_error`` of an experiment whose submission SLURM rejected (or would reject).
REJECTED = "submission rejected by SLURM"
_TIMEOUT = 20.0
#: Seconds two clocks (this host's and slurmctld's, both in local time) may disagree when times are compared.
_CLOCK_SLACK = 5.0
#: A SLURM job id: ``123``, or an array task ``123_4``.
_JOB_ID = re.compile(r"[0-9]+(?:_[0-9]+)?")
_SBATCH_MESSAGE = re.compile(r"The error message was '(.*?)'\.\s*(?:\n|$)", re.S)


# ------------------------------------------------------------------------------------------------ the marker
@dataclass(frozen=True)
class Marker:
    """What :data:`MARKER_FILE` says: the SLURM job id (``123`` or an array task ``123_4``) and when it was
    submitted."""

    job_id: str
    submitted: str = ""
    #: The job's name (the plugin's run uuid), to tell it from another job that got the same id later.
    name: str = ""


def is_job_id(text: str) -> bool:
    """Whether ``text`` is a SLURM job id (``123`` or ``123_4``), not an option or anything else."""
    return bool(_JOB_ID.fullmatch(text))


def mark(exp_dir: str | os.PathLike[str], job_id: str, name: str = "") -> None:
    """Record that ``exp_dir``'s job ``job_id`` (job name ``name``, when known) was submitted (atomically: a reader
    sees the old or the new)."""
    from xmen.store.provenance import now_time

    record = {"job_id": str(job_id), "submitted": now_time()}
    if name:
        record["name"] = str(name)
    text = yaml.safe_dump(record, sort_keys=False)
    files.write_text_atomic(os.path.join(os.fspath(exp_dir), MARKER_FILE), text)


def marker(exp_dir: str | os.PathLike[str]) -> Marker | None:
    """The experiment's marker, or None (no marker, or an unreadable one)."""
    try:
        with open(os.path.join(os.fspath(exp_dir), MARKER_FILE), encoding="utf-8") as handle:
            data = yaml.safe_load(handle.read())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    job_id = str(data.get("job_id") or "").strip() if isinstance(data, dict) else ""
    if not is_job_id(job_id):  # a hand-edited or damaged marker names no job
        return None
    return Marker(job_id, str(data.get("submitted") or ""), str(data.get("name") or ""))


def unmark(exp_dir: str | os.PathLike[str]) -> None:
    """Remove the marker (the runner does when the experiment starts)."""
    try:
        os.unlink(os.path.join(os.fspath(exp_dir), MARKER_FILE))
    except FileNotFoundError:
        pass


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
    one sacct reader, xmen.slurm.query); empty when sacct cannot answer (no accounting)."""
    from xmen.slurm.sacct import normalise_state, query

    states = {job: normalise_state(row.get("State", "")) for job, row in query(job_ids, run).items()}
    return {job: state for job, state in states.items() if state}  # "CANCELLED by 0" -> CANCELLED


class QueueView:
    """Markers of some experiments and what squeue says of their jobs, asked once for all of them.

    ``prefetch(paths)`` reads the markers of many experiments and asks squeue once; :meth:`queued` answers for one
    experiment (asking squeue alone only for an experiment that was not prefetched).
    """

    def __init__(self, run: Callable[..., Any] = subprocess.run) -> None:
        self._run = run
        self._markers: dict[str, Marker | None] = {}
        self._states: dict[str, JobState] = {}
        self._asked: set[str] = set()
        self._asked_all = False
        self.squeue_calls = 0

    def prefetch(self, paths: Iterable[str]) -> None:
        """Read the markers of ``paths``; squeue is asked, for all of them at once, when a state is first needed."""
        for path in paths:
            if path not in self._markers:
                self._markers[path] = marker(path)

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

    def marker(self, path: str) -> Marker | None:
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


def _this_job(job_id: str) -> bool:
    """True inside SLURM job ``job_id`` itself (a plain job, or an array task ``123_4``)."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return job_id == os.environ.get("SLURM_JOB_ID") or bool(array and task and job_id == f"{array}_{task}")


def describe(job: Marker, state: JobState) -> str:
    """``queued as SLURM job 123 (Priority)``: what the planner and ``xmen list`` say of a queued experiment."""
    reason = _reason(state)
    return f"queued as SLURM job {job.job_id}" + (f" ({reason})" if reason else "")


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


def record_rejected(exp_dir: str | os.PathLike[str], reason: str) -> None:
    """Record in the experiment's params.yml that its submission was (or would be) rejected: ``error`` with
    ``_error: submission rejected by SLURM: <reason>``; no run started, so ``_run`` is left alone."""
    from xmen.run.runner import RUN_COMMENTS

    def change(data: dict[str, Any]) -> None:
        data["_status"] = st.ERROR
        data["_error"] = f"{REJECTED}: {reason}"

    files.update_yaml(os.path.join(os.fspath(exp_dir), "params.yml"), change, RUN_COMMENTS)


# ------------------------------------------------------------------------------------------------ before submitting
#: ``sinfo`` columns read by :func:`cluster_partitions`: partition, memory (MB), CPUs, GRES, time limit.
SINFO_FORMAT = "%P|%m|%c|%G|%l"


@dataclass
class Partition:
    """What ``sinfo`` says of one partition: the most memory (MB) and CPUs one of its nodes has, its GRES, and its
    time limit in minutes (None: unlimited, or not said)."""

    name: str
    default: bool = False
    memory_mb: int = 0
    cpus: int = 0
    gres: set[str] = field(default_factory=set)
    max_minutes: float | None = None


def cluster_partitions(run: Callable[..., Any] = subprocess.run) -> dict[str, Partition] | None:
    """Partitions from ONE ``sinfo`` call; None when sinfo cannot answer (no check is made then)."""
    try:
        proc = run(["sinfo", "-h", "-o", SINFO_FORMAT], capture_output=True, text=True, timeout=_TIMEOUT,
                   stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return parse_sinfo(proc.stdout)


def parse_sinfo(text: str) -> dict[str, Partition]:
    """``sinfo -h -o`` :data:`SINFO_FORMAT` lines (one per partition and node kind) as partitions (a line without
    the time limit column leaves the limit unknown)."""
    found: dict[str, Partition] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 4 or not parts[0]:
            continue
        name = parts[0].rstrip("*")
        part = found.setdefault(name, Partition(name))
        part.default = part.default or parts[0].endswith("*")
        part.memory_mb = max(part.memory_mb, _int(parts[1]))
        part.cpus = max(part.cpus, _int(parts[2]))
        for gres in parts[3].split(","):
            gres = gres.strip()
            if gres and gres != "(null)":
                part.gres.add(gres.split(":")[0].split("(")[0])
        limit = slurm_minutes(parts[4]) if len(parts) > 4 else None
        if limit is not None:
            part.max_minutes = max(part.max_minutes or 0.0, limit)
    return found


_SLURM_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")


def slurm_minutes(text: str) -> float | None:
    """A SLURM time (``sinfo %l``, ``sbatch --time``) in minutes: ``30``, ``30:00`` (min:s), ``1:00:00``,
    ``2-00:00:00``, ``2-12``; None for ``infinite``, ``UNLIMITED``, ``n/a`` or anything else."""
    found = _SLURM_TIME.fullmatch(text.strip())
    if found is None:
        return None
    days, first, second, third = found.groups()
    numbers = [int(n) for n in (first, second, third) if n is not None]
    if days is not None:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = (numbers + [0, 0])[:3]
        return int(days) * 1440 + hours * 60 + minutes + seconds / 60
    if len(numbers) == 3:
        return numbers[0] * 60 + numbers[1] + numbers[2] / 60
    if len(numbers) == 2:
        return numbers[0] + numbers[1] / 60
    return float(numbers[0])


def _int(text: str) -> int:
    digits = re.match(r"\d+", text.strip())
    return int(digits.group()) if digits else 0


def _first(value: Any) -> Any:
    """The first attempt's value of a resource (a list holds one value per attempt)."""
    return value[0] if isinstance(value, list) and value else value


def _number(value: Any) -> float | None:
    try:
        return float(_first(value))
    except (TypeError, ValueError):
        return None


def partition_names(value: Any) -> list[str]:
    """The partitions of a first attempt's ``slurm_partition``: sbatch takes a comma list (``a,b``: the job runs
    in whichever can start it first)."""
    value = _first(value)
    if value is None:
        return []
    return [name.strip() for name in str(value).split(",") if name.strip()]


def job_cpus(options: Mapping[str, Any], max_threads: int | None = None) -> tuple[str, int] | None:
    """(what asked, how many) CPUs the experiment's job asks SLURM for, as the SLURM plugin (2.8) decides:
    ``cpus_per_task`` when it is set (xmen's rule gives it the experiment's threads otherwise, within
    ``--max-threads``); a negative ``cpus_per_task`` sends none (SLURM's default, 1)."""
    resources = options.get("resources") if isinstance(options.get("resources"), Mapping) else {}
    explicit = _number(resources.get("cpus_per_task"))
    if explicit is not None and explicit < 0:
        return None
    if explicit:
        return "cpus_per_task", max(1, int(explicit))
    threads = _number(options.get("threads"))
    if threads is None:
        return None
    if max_threads:
        threads = min(threads, max_threads)
    return "threads", int(threads)


def _partition_problems(resources: Mapping[str, Any], cpus: tuple[str, int] | None, part: Partition) -> list[str]:
    """Why ``part`` would not take the job (empty: it would)."""
    found: list[str] = []
    where = f"partition {part.name!r}"
    if cpus is not None and part.cpus and cpus[1] > part.cpus:
        found.append(f"{cpus[0]}={cpus[1]} is more than any node of {where} has ({part.cpus} CPUs)")
    per_cpu = _number(resources.get("mem_mb_per_cpu"))
    memory = _number(resources.get("mem_mb"))
    if per_cpu:  # the plugin then sends --mem-per-cpu and no --mem
        count = cpus[1] if cpus is not None else 1
        if part.memory_mb and per_cpu * count > part.memory_mb:
            found.append(f"mem_mb_per_cpu={per_cpu:g} x {count} CPU(s) is more than any node of {where} has "
                         f"({part.memory_mb} MB)")
    elif memory is not None and part.memory_mb and memory > part.memory_mb:
        found.append(f"mem_mb={memory:g} is more than any node of {where} has ({part.memory_mb} MB)")
    runtime = _number(resources.get("runtime"))
    if runtime is not None and part.max_minutes is not None and runtime > part.max_minutes:
        found.append(f"runtime={runtime:g} min is above the time limit of {where} ({part.max_minutes:g} min): "
                     f"SLURM rejects the job or, with EnforcePartLimits=NO, keeps it pending for ever")
    gpus = [key for key in ("gpu", "gpus") if _number(resources.get(key))]
    gres = _first(resources.get("gres"))
    wanted = set()
    if gpus:
        wanted.add("gpu")
    if gres:
        wanted.update(str(g).split(":")[0].strip() for g in str(gres).split(",") if str(g).strip())
    for kind in sorted(wanted - part.gres):
        found.append(f"no node of {where} has GRES {kind!r}")
    return found


def problems(options: Mapping[str, Any], partitions: Mapping[str, Partition], max_threads: int | None = None
             ) -> list[str]:
    """Why SLURM would reject an experiment with these run options (threads, resources) on this cluster.

    Checked: an unknown ``slurm_partition`` (sbatch refuses a comma list naming any unknown one); the CPUs the job
    asks for (:func:`job_cpus`), ``mem_mb`` (or ``mem_mb_per_cpu`` times those CPUs, which the plugin then sends
    instead) beyond every node of the partition; a ``runtime`` (minutes) above the partition's time limit; a
    ``gpu``, ``gpus`` or ``gres`` that no node of the partition has. With a list of partitions, only when none of
    them would take the job. Only the first attempt's values (a retry asking for more is rejected when it is
    submitted, and recorded then).
    """
    resources = options.get("resources") if isinstance(options.get("resources"), Mapping) else {}
    names = partition_names(resources.get("slurm_partition"))
    unknown = [name for name in names if name not in partitions]
    if unknown:
        listed = "" if len(names) == 1 else f" in {','.join(names)!r} (sbatch refuses a list naming one)"
        return [f"unknown partition {unknown[0]!r}{listed} (this cluster has: {', '.join(sorted(partitions))})"]
    candidates = [partitions[name] for name in names] or [p for p in partitions.values() if p.default][:1]
    if not candidates:
        return []
    cpus = job_cpus(options, max_threads)
    found = [_partition_problems(resources, cpus, part) for part in candidates]
    if any(not one for one in found):
        return []
    if len(found) == 1:
        return found[0]
    return [f"no partition of {','.join(names)!r} would take it: " + "; ".join(p for one in found for p in one)]


def preflight(experiments: Mapping[str, Mapping[str, Any]], run: Callable[..., Any] = subprocess.run,
              max_threads: int | None = None) -> dict[str, list[str]]:
    """``{problem: [experiment, ...]}`` for the experiments SLURM would reject, from one ``sinfo`` call; empty
    when there is no problem or sinfo cannot answer."""
    partitions = cluster_partitions(run)
    if not partitions:
        return {}
    grouped: dict[str, list[str]] = {}
    for name, options in experiments.items():
        for problem in problems(options, partitions, max_threads):
            grouped.setdefault(problem, []).append(name)
    return grouped


def preflight_lines(grouped: Mapping[str, list[str]], dry_run: bool) -> list[str]:
    """One line per distinct problem, naming its experiments (the first five, then a count)."""
    lines = []
    verb = "would be recorded as error and not submitted" if dry_run else "recorded as error, not submitted"
    for problem, names in grouped.items():
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        lines.append(f"xmen: SLURM would reject {len(names)} experiment(s) ({problem}); {verb}: {shown}")
    return lines


# ------------------------------------------------------------------------------------------------ the hooks
class _Hooks:
    """State of the hooks installed in this (main Snakemake) process."""

    def __init__(self) -> None:
        self.workdir = os.getcwd()
        #: experiment dir (absolute) -> why it is not submitted (found by :func:`preflight`)
        self.refused: dict[str, str] = {}
        #: experiment dir (absolute) -> the SLURM job still alive from an earlier run that this run adopts (the
        #: planner's verdict, see :func:`adopt`)
        self.adopted: dict[str, str] = {}
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
    print(f"xmen: {text}", file=sys.stderr, flush=True)


def adopt(jobs: Mapping[str, str]) -> None:
    """``{experiment dir (absolute): SLURM job id}``: the planner's adopted experiments (in a real run with the slurm
    executor); the hooked ``run_job`` follows each one's job instead of submitting it."""
    HOOKS.adopted.update({os.path.normpath(path): str(job_id) for path, job_id in jobs.items() if job_id})


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
    for exp_dir in experiment_dirs(job, HOOKS.workdir):
        try:
            mark(exp_dir, str(job_id), name)
        except OSError as exc:  # never fail the submission for the marker
            _warn(f"cannot mark {exp_dir} as queued: {exc}")


def on_rejected(job: Any, message: str) -> None:
    """The plugin reports that ``job`` could not be submitted (it reports nothing else this way): sbatch rejected
    it, or the plugin's own checks did (an account sacctmgr does not know). Recorded in params.yml."""
    if message.startswith("not submitted: "):
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


def install(executor_class: Any, workdir: str, module: Any = None) -> bool:
    """Wrap the SLURM executor's submission report, error report and ``run_job`` (once per class).

    The plugin (2.8) learns a job's id in ``run_job`` (a worker thread) and passes it to
    ``_report_job_submission_threadsafe(SubmittedJobInfo)``; a rejected ``sbatch`` goes to
    ``_report_job_error_threadsafe(SubmittedJobInfo, msg)``. ``run_job`` of an experiment :func:`preflight` refused
    reports an error without calling sbatch; ``run_job`` of an adopted experiment (:func:`adopt`) reports the
    submission of its existing job without calling sbatch (and array submissions leave both out). False when the
    class does not have these methods (another plugin version): nothing is patched then.

    With the plugin's ``module``, its ``clean_old_logs`` (at the end of every run) keeps empty log folders: the
    plugin deletes them, among them the folder of a job still pending from a run that was killed, whose job then
    fails at its start, unable to open its log (measured: State FAILED, Elapsed 0).
    """
    HOOKS.workdir = workdir
    names = ("_report_job_submission_threadsafe", "_report_job_error_threadsafe", "run_job")
    if getattr(executor_class, "_xmen_hooked", False):
        return True
    if not all(callable(getattr(executor_class, n, None)) for n in names):
        return False
    submitted, errored, run_job = (getattr(executor_class, n) for n in names)

    def report_submission(self: Any, job_info: Any) -> Any:
        try:
            on_submitted(job_info.job, getattr(job_info, "external_jobid", None), str(getattr(self, "run_uuid", "")))
        except Exception as exc:  # noqa: BLE001
            _warn(f"cannot record a submission: {exc}")
        return submitted(self, job_info)

    def report_error(self: Any, job_info: Any, msg: str) -> Any:
        on_rejected(job_info.job, str(msg))
        return errored(self, job_info, msg)

    def refuse_job(self: Any, job: Any) -> bool:
        """Report a job preflight refused as failed (never submitted); False for the others."""
        refused = [HOOKS.refused[d] for d in experiment_dirs(job, HOOKS.workdir) if d in HOOKS.refused]
        if not refused:
            return False
        from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

        errored(self, SubmittedJobInfo(job), f"not submitted: {REJECTED}: {refused[0]}")
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
        submitted(self, SubmittedJobInfo(job, external_jobid=job_id, aux={"slurm_logfile": log}))
        return True

    def refusing_run_job(self: Any, job: Any) -> Any:
        if not adopt_job(self, job) and not refuse_job(self, job):
            return run_job(self, job)
        return None

    run_array_jobs = getattr(executor_class, "run_array_jobs", None)
    if callable(run_array_jobs):

        def refusing_run_array_jobs(self: Any, jobs: list[Any]) -> Any:
            kept = [job for job in jobs if not adopt_job(self, job) and not refuse_job(self, job)]
            return run_array_jobs(self, kept) if kept else None

        executor_class.run_array_jobs = refusing_run_array_jobs

    cleaner = getattr(executor_class, "clean_old_logs", None)
    if module is not None and callable(getattr(module, "delete_empty_dirs", None)) and callable(cleaner):

        def clean_old_logs(self: Any) -> Any:
            deleter = module.delete_empty_dirs
            module.delete_empty_dirs = lambda path: None
            try:
                return cleaner(self)
            finally:
                module.delete_empty_dirs = deleter

        executor_class.clean_old_logs = clean_old_logs
    executor_class._report_job_submission_threadsafe = report_submission
    executor_class._report_job_error_threadsafe = report_error
    executor_class.run_job = refusing_run_job
    executor_class._xmen_hooked = True
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
        print(line, file=sys.stderr, flush=True)
    if dry_run:
        return
    for problem, names in grouped.items():
        for name in names:
            exp_dir = os.path.normpath(os.path.join(workdir, name))
            HOOKS.refused.setdefault(exp_dir, problem)
            try:
                record_rejected(exp_dir, problem)
            except Exception as exc:  # noqa: BLE001
                _warn(f"cannot record the rejection in {exp_dir}: {exc}")
