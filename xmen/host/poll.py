"""SLURM status polls that keep Snakemake's ``--seconds-between-status-checks`` as their longest interval.

snakemake-executor-plugin-slurm (2.8) polls every job of a run with one ``sacct --name <run>`` call. It waits
``--slurm-init-seconds-before-status-checks`` between polls while jobs keep ending, and 10 s longer after each poll
that saw none, up to 180 s, ignoring Snakemake's own ``--seconds-between-status-checks`` ("seconds to wait between
two rounds of status checks"). A run whose last job ran alone for a few polls then idled up to that long after it
ended (measured on the test cluster: 9-17 s with the interval starting at 2 s), and after a job that failed or was
cancelled the plugin does not go back to its initial interval (it does only after a success). The patch "check job
status at least every --seconds-between-status-checks" (xmen.host.patches; main Snakemake process, acting when the
slurm executor runs), :func:`install`, brings the interval back to the initial one whenever a job ended, and keeps
it never longer than ``--seconds-between-status-checks`` (Snakemake's default 10 s; the shipped ``slurm`` profile
says 2 s: one sacct call every 2 s for the whole run, however many jobs it has). While no job of the run is in
SLURM (after the last one ended) the loop sleeps only :data:`IDLE_INTERVAL`: Snakemake's exit waits for that sleep,
and such a poll asks SLURM nothing.

Light: nothing here imports the plugin; :func:`install` patches the plugin module it is given, or the one Snakemake
has already imported (it imports every installed executor plugin before it reads the Snakefile).
"""
from __future__ import annotations

import functools
import sys
from typing import Any, AsyncIterator, Callable

PLUGIN = "snakemake_executor_plugin_slurm"
#: Seconds between polls while the run has no job in SLURM: such a poll asks nothing (the plugin returns at once),
#: and Snakemake's end waits for the poll loop's current sleep (it joins that thread), so it stays short.
IDLE_INTERVAL = 0.5
_MARK = "_xmen_capped_interval"


def capped_interval(interval: float | None, cap: float | None) -> float | None:
    """The plugin's next interval, at most ``cap`` (no cap when it is unset or not positive)."""
    if interval is None or not cap or cap <= 0:
        return interval
    return min(interval, cap)


def capping(check: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """The plugin's async generator ``check_active_jobs`` whose next interval is capped (idempotent)."""
    if getattr(check, _MARK, False):
        return check

    @functools.wraps(check)
    async def check_active_jobs(self: Any, active_jobs: list[Any]) -> AsyncIterator[Any]:
        still_active = 0
        async for job_info in check(self, active_jobs):
            still_active += 1
            yield job_info
        interval = self.next_seconds_between_status_checks
        initial = getattr(getattr(self.workflow, "executor_settings", None), "init_seconds_before_status_checks", None)
        if still_active < len(active_jobs) and isinstance(initial, (int, float)) and isinstance(interval, (int, float)):
            interval = min(interval, initial)  # a job ended, failed or not (the plugin resets only after a success)
        settings = getattr(self.workflow, "remote_execution_settings", None)
        cap = getattr(settings, "seconds_between_status_checks", None)
        if not still_active:
            cap = min(cap, IDLE_INTERVAL) if cap and cap > 0 else IDLE_INTERVAL
        self.next_seconds_between_status_checks = capped_interval(interval, cap)

    setattr(check_active_jobs, _MARK, True)
    return check_active_jobs


def install(plugin: Any = None) -> bool:
    """Cap the slurm plugin's poll interval (``plugin``, else the imported one); True when it is patched (now or
    before), False when there is no such plugin or executor."""
    plugin = plugin if plugin is not None else sys.modules.get(PLUGIN)
    executor = getattr(plugin, "Executor", None)
    if executor is None or not hasattr(executor, "check_active_jobs"):
        return False
    executor.check_active_jobs = capping(executor.check_active_jobs)
    return True
