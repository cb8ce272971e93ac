"""Before submitting: what SLURM would reject for certain, from one ``sinfo`` call.

An unknown partition, more memory or CPUs than any node of the partition has, a runtime above its time limit, a
GRES no node has: such experiments are recorded as ``error`` (``not submitted, SLURM would reject it: ...``) and not
submitted, while the others run.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

_TIMEOUT = 20.0  # seconds sinfo may take


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
