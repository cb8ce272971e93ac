"""Patches on Snakemake's Job (snakemake.jobs.Job), in the main Snakemake process: two of its properties answer for
a job of xmen's rule what xmen decided (xmen.host.patches names them; installed by the Snakefile glue).

- ``Job.restart_times``: each experiment its own retries (:func:`install_per_experiment_retries`).
- ``Job.group``: an experiment the SLURM preflight refused, or whose job this run adopted, is in no pack
  (:func:`install_refused_alone`).

Every other rule and workflow keeps Snakemake's answer. Nothing here imports Snakemake at import time.
"""
from __future__ import annotations

from typing import Any, Callable

#: The rule that runs experiments (rules/xmen_rule.smk).
RULE = "xmen_experiment"
_RETRIES_MARK = "_xmen_per_experiment"
_ALONE_MARK = "_xmen_refused_alone"


def install_per_experiment_retries() -> bool:
    """Give each job of xmen's rule its experiment's own retries; True when installed (now or before).

    Snakemake's ``retries:`` is one number per rule and a rule's ``retries:`` cannot be a function, so the rule says
    the most any experiment asked for. Snakemake asks a job's ``restart_times`` (its rule's number) when the job
    failed: for a job of xmen's rule in a workflow xmen set up, this answers with the experiment's own retries
    when its retry policy retries the failure's cause (xmen.store.retry), else 0, so an experiment is not submitted
    again for nothing (on SLURM that was an empty job: its runner refuses an attempt beyond its retries). Every
    other rule and workflow keeps Snakemake's answer.
    """
    return _patch_job_property("restart_times", _RETRIES_MARK, lambda glue, job, times: glue.experiment_retries(
        job.wildcards, times, getattr(job, "attempt", None)))


def install_refused_alone() -> bool:
    """Keep an experiment the SLURM preflight refused, or whose job this run adopted, out of every pack; True when
    installed (now or before).

    A pack is one Snakemake group job, and Snakemake submits, fails or finishes a group job as a whole: the hooked
    plugin could only refuse the whole pack of a refused member (its other experiments never ran). Snakemake forms
    the packs after it built the DAG, so after the preflight (the default target's input); a job of xmen's rule
    whose experiment was refused then answers ``group`` with None: it stays a job of its own, refused alone, and
    the others are packed without it. An adopted experiment (a rerun after Snakemake was killed) is a job of its
    own too: Snakemake would pack the rerun's experiments otherwise than the killed run did, and a new pack could
    follow no old job (it was submitted again); alone, each follows its old pack's job. Every other job keeps
    Snakemake's answer.
    """
    return _patch_job_property("group", _ALONE_MARK, lambda glue, job, found: (
        None if found is not None and glue.alone(job.wildcards) else found))


def _patch_job_property(name: str, mark: str, answer: Callable[[Any, Any, Any], Any]) -> bool:
    """Wrap Snakemake's ``Job.<name>`` property: for a job of xmen's rule in a workflow xmen set up (its glue),
    ``answer(glue, job, snakemake_value)`` is the value; every other rule and workflow keeps Snakemake's. True when
    installed (now or before: ``mark`` makes it idempotent); False when Snakemake has no such property (which
    xmen.host.patches checks first, and refuses)."""
    try:
        from snakemake.jobs import Job
    except ImportError:
        return False
    current = Job.__dict__.get(name)
    if not isinstance(current, property) or current.fget is None:
        return False
    if getattr(current.fget, mark, False):
        return True
    snakemakes = current.fget

    def patched(job: Any) -> Any:
        value = snakemakes(job)
        rule = getattr(job, "rule", None)
        glue = getattr(getattr(rule, "workflow", None), "_xmen_glue", None)
        if glue is None or getattr(rule, "name", None) != RULE:
            return value
        return answer(glue, job, value)

    setattr(patched, mark, True)
    setattr(Job, name, property(patched, current.fset))
    return True
