"""Every change xmen makes to Snakemake's and to the SLURM executor plugin's internals, by name, in one registry.

Each :class:`Patch` says what it does for a user (its name), what of the host it replaces, what else of it it
relies on, and the module of xmen.host that holds the replacement.

On Snakemake (:data:`SNAKEMAKE_PATCHES`):

- "give each experiment its own retries": ``Job.restart_times`` (xmen.host.jobs);
- "keep refused and adopted experiments out of packs": ``Job.group`` (xmen.host.jobs).

On snakemake-executor-plugin-slurm (:data:`SLURM_PATCHES`):

- "report cancelled and preempted jobs as ended, follow adopted jobs": ``query_job_status`` (xmen.host.slurm_status);
- "record SLURM's verdict before Snakemake hears of a job's end": ``Executor.check_active_jobs``,
  ``report_job_success``, ``report_job_error`` (xmen.host.slurm_status);
- "check job status at least every --seconds-between-status-checks": ``Executor.check_active_jobs``
  (xmen.host.poll);
- "run xmen's experiments as a direct job step": ``Executor.format_job_exec`` (xmen.host.slurm_submit; it takes the
  srun options of snakemake-executor-plugin-slurm-jobstep);
- "mark submitted experiments queued, record rejected submissions": ``Executor._report_job_submission_threadsafe``,
  ``_report_job_error_threadsafe`` (xmen.host.slurm_submit);
- "follow adopted jobs and refuse what the preflight refused instead of submitting them": ``Executor.run_job``,
  ``run_array_jobs`` (xmen.host.slurm_submit);
- "keep empty SLURM log folders": ``Executor.clean_old_logs`` (xmen.host.slurm_submit).

:func:`install` checks every patch of a list before it applies any (never half a host patched): each distribution
a patch touches must be a version xmen supports (xmen.host.versions), and each thing it replaces or reads must be
there, of the kind it was written for (a property, an async generator...). Otherwise a
:class:`~xmen.host.versions.HostRefusal` names the versions in one line. Applying is idempotent: a second workflow
in the same process changes nothing. :data:`SNAKEMAKE_PATCHES` are installed in every main Snakemake process of an
xmen workflow (by the Snakefile glue), :data:`SLURM_PATCHES` in a run with the slurm executor, or refused there
(xmen.host.plugin); the early ones of them already while Snakemake parses the Snakefile, when the plugin fits.
"""
from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from typing import Any, Callable

from xmen.host import jobs, poll, slurm_status, slurm_submit, versions
from xmen.host.versions import SLURM_JOBSTEP, SLURM_PLUGIN, SNAKEMAKE, Supported

PLUGIN = "snakemake_executor_plugin_slurm"
JOBSTEP = "snakemake_executor_plugin_slurm_jobstep"
#: The distribution of each module a patch names.
HOSTS: dict[str, Supported] = {"snakemake": SNAKEMAKE, PLUGIN: SLURM_PLUGIN, JOBSTEP: SLURM_JOBSTEP}

# What a patched thing must be (what the replacement was written for).
PROPERTY = "a property"
FUNCTION = "a function"
COROUTINE = "an async function"
ASYNC_GENERATOR = "an async generator function"


@dataclass(frozen=True)
class Patch:
    """One change to a host's internals."""

    #: What it does, in a user's words ("report cancelled and preempted jobs as ended, ...").
    name: str
    #: What it replaces: ``module:attribute.path`` -> what that must be (:data:`PROPERTY`...).
    replaces: dict[str, str]
    #: The xmen.host module holding the replacement.
    module: str
    #: Applies it (idempotent); False when it could not (a host :func:`problem` did not see coming).
    apply: Callable[[], bool]
    #: What else of the host it calls or reads, like :attr:`replaces`.
    reads: dict[str, str] | None = None
    #: Applied while Snakemake parses the Snakefile, when the host fits (:func:`install` with ``early``): what
    #: Snakemake takes when it makes the executor, before xmen learns which executor runs.
    early: bool = False


def _plugin() -> Any:
    import snakemake_executor_plugin_slurm as plugin  # imported here for import weight (Snakemake loaded it already)

    return plugin


SNAKEMAKE_PATCHES: tuple[Patch, ...] = (
    Patch("give each experiment its own retries", {"snakemake.jobs:Job.restart_times": PROPERTY}, "xmen.host.jobs",
          jobs.install_per_experiment_retries),
    Patch("keep refused and adopted experiments out of packs", {"snakemake.jobs:Job.group": PROPERTY},
          "xmen.host.jobs", jobs.install_refused_alone),
)

#: In the order they are applied: the verdicts' wrapper of ``check_active_jobs`` goes inside the poll interval's.
SLURM_PATCHES: tuple[Patch, ...] = (
    Patch("report cancelled and preempted jobs as ended, follow adopted jobs",
          {f"{PLUGIN}:query_job_status": COROUTINE}, "xmen.host.slurm_status",
          lambda: slurm_status.report_states(_plugin())),
    Patch("record SLURM's verdict before Snakemake hears of a job's end",
          {f"{PLUGIN}:Executor.check_active_jobs": ASYNC_GENERATOR, f"{PLUGIN}:Executor.report_job_success": FUNCTION,
           f"{PLUGIN}:Executor.report_job_error": FUNCTION}, "xmen.host.slurm_status",
          lambda: slurm_status.record_verdicts(_plugin().Executor)),
    Patch("check job status at least every --seconds-between-status-checks",
          {f"{PLUGIN}:Executor.check_active_jobs": ASYNC_GENERATOR}, "xmen.host.poll",
          lambda: poll.install(_plugin())),
    Patch("run xmen's experiments as a direct job step", {f"{PLUGIN}:Executor.format_job_exec": FUNCTION},
          "xmen.host.slurm_submit", lambda: slurm_submit.run_direct_job_steps(_plugin().Executor),
          reads={f"{PLUGIN}:Executor.get_job_exec_prefix": FUNCTION,
                 f"{PLUGIN}:Executor.get_envvar_declarations": FUNCTION,
                 f"{PLUGIN}:Executor.get_python_executable": FUNCTION,
                 f"{JOBSTEP}:get_cpu_setting": FUNCTION, f"{JOBSTEP}:get_gpu_setting": FUNCTION,
                 f"{JOBSTEP}:get_node_setting": FUNCTION}),
    Patch("mark submitted experiments queued, record rejected submissions",
          {f"{PLUGIN}:Executor._report_job_submission_threadsafe": FUNCTION,
           f"{PLUGIN}:Executor._report_job_error_threadsafe": FUNCTION}, "xmen.host.slurm_submit",
          lambda: slurm_submit.report_submissions(_plugin().Executor)),
    Patch("follow adopted jobs and refuse what the preflight refused instead of submitting them",
          {f"{PLUGIN}:Executor.run_job": FUNCTION, f"{PLUGIN}:Executor.run_array_jobs": FUNCTION},
          "xmen.host.slurm_submit", lambda: slurm_submit.submit_or_follow(_plugin().Executor, _plugin()),
          reads={f"{PLUGIN}:Executor._report_job_submission_threadsafe": FUNCTION,
                 f"{PLUGIN}:Executor._report_job_error_threadsafe": FUNCTION,
                 f"{PLUGIN}:get_job_wildcards": FUNCTION}),
    # Early: the plugin's executor registers its clean_old_logs with atexit when Snakemake makes it, which in a run
    # given explicit targets comes before Snakemake first asks xmen anything.
    Patch("keep empty SLURM log folders",
          {f"{PLUGIN}:Executor.clean_old_logs": FUNCTION, f"{PLUGIN}:delete_empty_dirs": FUNCTION},
          "xmen.host.slurm_submit", lambda: slurm_submit.keep_log_folders(_plugin().Executor, _plugin()),
          early=True),
)


def _kind(value: Any) -> str | None:
    if isinstance(value, property):
        return PROPERTY if value.fget is not None else None
    if inspect.isasyncgenfunction(value):
        return ASYNC_GENERATOR
    if inspect.iscoroutinefunction(value):
        return COROUTINE
    return FUNCTION if callable(value) else None


def _fits(kind: str | None, wanted: str) -> bool:
    # An async function or generator is a function too (a wrapper xmen applied before keeps its kind).
    return kind == wanted or (wanted == FUNCTION and kind in (COROUTINE, ASYNC_GENERATOR))


def _resolve(target: str) -> Any:
    """``module:attribute.path`` -> that object; AttributeError or ImportError when it is not there."""
    module_name, _, path = target.partition(":")
    value: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
    for name in path.split("."):
        value = getattr(value, name)
    return value


def distributions(patch: Patch) -> list[Supported]:
    """The host distributions a patch touches, in the order it names them."""
    found = [HOSTS[target.partition(":")[0].split(".")[0]] for target in {**patch.replaces, **(patch.reads or {})}]
    return list(dict.fromkeys(found))


def problem(patch: Patch) -> tuple[Supported, str] | None:
    """The first thing a patch needs that the installed host lacks: (its distribution, what), else None."""
    for target, wanted in {**patch.replaces, **(patch.reads or {})}.items():
        host = HOSTS[target.partition(":")[0].split(".")[0]]
        try:
            value = _resolve(target)
        except (ImportError, AttributeError):
            return host, f"no {target.partition(':')[2] or target}"
        if not _fits(_kind(value), wanted):
            return host, f"{target.partition(':')[2]} is not {wanted}"
    return None


def check(patches: tuple[Patch, ...]) -> None:
    """Refuse (HostRefusal) unless every distribution the patches touch is supported and every patch fits."""
    for host in dict.fromkeys(host for patch in patches for host in distributions(patch)):
        versions.check(host)
    for patch in patches:
        found = problem(patch)
        if found is not None:
            raise versions.unfit(found[0], patch.name, found[1])


def install(patches: tuple[Patch, ...], early: bool = False) -> None:
    """Check every patch (:func:`check`), then apply them in order (with ``early``, only the early ones);
    HostRefusal when one cannot apply."""
    check(patches)
    for patch in patches:
        if early and not patch.early:
            continue
        if patch.apply() is False:
            found = problem(patch)
            host = found[0] if found else distributions(patch)[0]
            raise versions.unfit(host, patch.name, found[1] if found else "it did not apply")
