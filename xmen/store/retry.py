"""Why an experiment's attempt failed, and whether its retry policy retries that cause: one decision, one place.

An experiment registered with ``--retries N`` gets up to N more attempts, but only for the failure causes its
policy names (``--retry-on``, stored as the run option ``retry_on``):

- ``error``: the experiment raised or exited non-zero. Not by default (``--retry-on error``): it would fail again.
- ``oom``: SLURM says out of memory. By default when the next attempt asks for more memory (``mem_mb=4000,8000``).
- ``timeout``: its time limit (SLURM's, or ``runtime`` enforced locally). By default when the next attempt asks for a
  longer ``runtime``.
- ``node``, ``preempted``: SLURM says node failure (NODE_FAIL, BOOT_FAIL) or preempted. Yes by default.
- ``lost``: the runner died without recording an end (``kill -9``). Yes by default.
- ``cancelled`` (``scancel``, ``xmen cancel``, Ctrl-C's ``stopped``) and ``rejected`` (sbatch refused the
  submission): never; a cancel must stick, and the same submission would be rejected again.

``--retry-on`` names the causes retried (always, also with unchanged resources), replacing the default; ``default``
stands for the default above and ``all`` for every cause but ``cancelled`` and ``rejected``:
``--retry-on default,error``. An experiment registered before policies existed (``retries`` without ``retry_on``)
keeps the meaning it was registered with: every failure is retried (:data:`LEGACY`) but a cancellation and a
rejected submission (one was retried before, in vain).

Snakemake asks for a job's ``restart_times`` when the job failed (xmen.snakemake_glue answers with
:func:`decide`), and xmen's rule refuses an attempt whose previous one is not to be retried (the same call),
so a run where the hook could not be installed still behaves the same.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from xmen.store import status as st
from xmen.errors import UsageError
from xmen.store.markers import REFUSED as REFUSED_ERROR, REJECTED as REJECTED_ERROR

#: Run option (experiment.yml) holding an experiment's policy: a list of :data:`WORDS`.
POLICY_KEY = "retry_on"

ERROR = "error"
OOM = "oom"
TIMEOUT = "timeout"
NODE = "node"
PREEMPTED = "preempted"
LOST = "lost"
CANCELLED = "cancelled"
REJECTED = "rejected"
#: Every cause of a failed attempt.
CAUSES = (ERROR, OOM, TIMEOUT, NODE, PREEMPTED, LOST, CANCELLED, REJECTED)
#: Causes a policy may name; ``cancelled`` and ``rejected`` are never retried.
RETRYABLE = (ERROR, OOM, TIMEOUT, NODE, PREEMPTED, LOST)
DEFAULT = "default"
ALL = "all"
#: Words of ``--retry-on``.
WORDS = (*RETRYABLE, DEFAULT, ALL)
#: Retried by the default policy whatever the next attempt's resources.
DEFAULT_ALWAYS = (NODE, PREEMPTED, LOST)
#: Retried by the default policy when the next attempt asks for more of these resources (a per-attempt list).
GROWING = {OOM: ("mem_mb", "mem_mib", "mem"), TIMEOUT: ("runtime",)}
#: The policy of an experiment registered before policies existed: every failure but a cancellation was retried.
#: (A rejected submission was too, and was rejected again: no longer.)
LEGACY = (ALL,)

#: SLURM's state of an attempt's job -> cause (states not here leave the runner's record to decide).
SLURM_CAUSES = {
    "OUT_OF_MEMORY": OOM,
    "TIMEOUT": TIMEOUT,
    "DEADLINE": TIMEOUT,
    "NODE_FAIL": NODE,
    "BOOT_FAIL": NODE,
    "PREEMPTED": PREEMPTED,
    "CANCELLED": CANCELLED,
}
#: What the ``_error`` of an experiment whose failure is not retried ends with.
NOT_RETRIED = "not retried"

_WHY_NOT = {
    ERROR: "exceptions and error exits are retried only with --retry-on error",
    OOM: "out of memory is retried when the next attempt asks for more memory (a mem_mb list) or with --retry-on oom",
    TIMEOUT: "a time limit is retried when the next attempt asks for a longer runtime (a runtime list) "
             "or with --retry-on timeout",
    NODE: "node failures are not in its --retry-on",
    PREEMPTED: "preemptions are not in its --retry-on",
    LOST: "a lost runner is not in its --retry-on",
    CANCELLED: "a cancellation is never retried",
    REJECTED: "a rejected submission is never retried (it would be rejected again)",
}


def parse_policy(text: str | list[Any] | tuple[Any, ...]) -> list[str]:
    """``"oom,node"`` (commas or spaces) -> ``["oom", "node"]``; an unknown word is a UsageError naming the known."""
    words = [str(w) for w in text] if isinstance(text, (list, tuple)) else re.split(r"[,\s]+", str(text))
    words = [w.strip().lower() for w in words if w and w.strip()]
    if not words:
        raise UsageError(f"--retry-on: name at least one cause ({', '.join(WORDS)})")
    for word in words:
        if word in (CANCELLED, REJECTED):
            raise UsageError(f"--retry-on: {word!r} is never retried; causes that can be: {', '.join(WORDS)}")
        if word not in WORDS:
            raise UsageError(f"--retry-on: unknown cause {word!r}; known: {', '.join(WORDS)}")
    return list(dict.fromkeys(words))


def policy_of(options: Mapping[str, Any]) -> list[str]:
    """The experiment's policy words: its ``retry_on``, else :data:`LEGACY` (registered before policies)."""
    value = options.get(POLICY_KEY)
    if value is None:
        return list(LEGACY)
    try:
        return parse_policy(value if isinstance(value, (list, tuple)) else str(value))
    except UsageError:
        return [DEFAULT]  # a hand-edited policy xmen cannot read: the documented default


def cause_of(data: Mapping[str, Any], attempt: int | None = None) -> str | None:
    """The cause of the failure ``data`` (a params.yml) records for ``attempt``; None when it records no failure.

    A cancellation sticks first; then a rejected submission; then SLURM's verdict on this attempt's job (the last
    ``_slurm`` record, when its attempt is this one); then the runner's record: a run it started and never ended is
    ``lost``, ``timeout`` a time limit, ``stopped`` (Ctrl-C) a cancellation, any other failure an ``error``.
    """
    status = data.get("_status")
    error = str(data.get("_error") or "")
    if status == st.CANCELLED or data.get(st.CANCEL_KEY) or status == st.STOPPED:
        return CANCELLED
    if status == st.ERROR and error.startswith((REJECTED_ERROR, REFUSED_ERROR)):
        return REJECTED
    records = data.get(st.SLURM_KEY)
    record = records[-1] if isinstance(records, list) and records and isinstance(records[-1], Mapping) else None
    if record is not None and (attempt is None or record.get("attempt") in (None, attempt)):
        cause = SLURM_CAUSES.get(str(record.get("state") or "").split(" ")[0])
        if cause is not None:
            return cause
    run = data.get("_run") if isinstance(data.get("_run"), Mapping) else {}
    ran_now = bool(run) and (attempt is None or run.get("attempt") in (None, attempt))
    if ran_now and "ended" not in run and status in (st.RUNNING, st.LOST, st.ERROR):
        return LOST  # the runner started this attempt and never recorded its end (SLURM may have said FAILED)
    if status in (st.RUNNING, st.LOST):
        return LOST
    if status == st.TIMEOUT:
        return TIMEOUT
    if status == st.FINISHED:
        return None
    return ERROR


@dataclass(frozen=True)
class Decision:
    """Whether the failed ``attempt`` is retried, its cause, and (when not) why, for ``_error``."""

    cause: str | None
    retry: bool
    why: str = ""


def _number(value: Any, units: Mapping[str, float]) -> float | None:
    """``4000``, ``"4GB"``, ``"90m"`` -> a number in the smallest unit of ``units``; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", str(value))
    if not match:
        return None
    try:
        number = float(match.group(1))
    except ValueError:
        return None
    unit = match.group(2).lower()
    return number * units[unit] if unit in units else None


_SIZES = {"": 1.0, "b": 1.0, "k": 1e3, "kb": 1e3, "kib": 1024.0, "m": 1e6, "mb": 1e6, "mib": 1024.0**2,
          "g": 1e9, "gb": 1e9, "gib": 1024.0**3, "t": 1e12, "tb": 1e12, "tib": 1024.0**4}
_TIMES = {"": 60.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0}


def attempt_value(options: Mapping[str, Any], name: str, attempt: int) -> Any:
    """The resource ``name`` an attempt gets: a value, or a per-attempt list whose last value repeats."""
    value = (options.get("resources") or {}).get(name)
    if isinstance(value, list):
        return value[min(attempt, len(value)) - 1] if value else None
    return value


def asks_for_more(options: Mapping[str, Any], cause: str, attempt: int) -> bool:
    """True when attempt ``attempt + 1`` asks for more of what ``cause`` ran out of (memory, runtime)."""
    units = _TIMES if cause == TIMEOUT else _SIZES
    for name in GROWING.get(cause, ()):
        now, then = attempt_value(options, name, attempt), attempt_value(options, name, attempt + 1)
        if now is None or then is None:
            continue
        a, b = _number(now, units), _number(then, units)
        if a is not None and b is not None and b > a:
            return True
    return False


def decide(options: Mapping[str, Any], data: Mapping[str, Any], attempt: int) -> Decision:
    """Whether the experiment (run ``options``, params.yml ``data``) is retried after failed attempt ``attempt``.

    Only the cause and the policy count here; whether retries are left is the caller's (``retries`` option).
    """
    cause = cause_of(data, attempt)
    if cause is None:
        return Decision(None, True)
    if cause in (CANCELLED, REJECTED):
        return Decision(cause, False, _WHY_NOT[cause])
    policy = policy_of(options)
    if ALL in policy or cause in policy:
        return Decision(cause, True)
    if DEFAULT in policy:
        if cause in DEFAULT_ALWAYS:
            return Decision(cause, True)
        if cause in GROWING and asks_for_more(options, cause, attempt):
            return Decision(cause, True)
    why = _WHY_NOT[cause]
    if cause in (NODE, PREEMPTED, LOST):
        why = f"{why} ({','.join(policy)})"
    return Decision(cause, False, why)


def note(data: dict[str, Any], decision: Decision) -> None:
    """Add ``; not retried: <why>`` to ``_error`` (once): ``xmen list`` and the run summary then say why."""
    if decision.retry or not decision.why:
        return
    text = f"{NOT_RETRIED}: {decision.why}"
    error = str(data.get("_error") or "")
    if text in error:
        return
    data["_error"] = f"{error}; {text}" if error else text
