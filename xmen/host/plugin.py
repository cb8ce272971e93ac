"""Installs xmen's hooks on the SLURM executor plugin (xmen.host.slurm_status, xmen.host.slurm_submit,
xmen.host.poll), and tells which executor this Snakemake runs with."""
from __future__ import annotations

import os
from typing import Any

from xmen.host import poll as slurm_poll
from xmen.host.slurm_status import _checking, _normalising, _reporting
from xmen.host.slurm_submit import _direct_jobs
def install() -> bool:
    """Patch the imported slurm plugin (see the module docstring); True when it is patched (now or before).

    Idempotent: a second call (a second Snakefile in the same process) changes nothing.
    """
    try:  # imported here for import weight: only a run with the slurm executor loads the plugin
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
