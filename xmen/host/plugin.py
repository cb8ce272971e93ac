"""The SLURM executor plugin in a run of an xmen workflow: whether this Snakemake uses it, and xmen's patches on it
(xmen.host.patches.SLURM_PATCHES: xmen.host.slurm_status, xmen.host.slurm_submit, xmen.host.poll), checked
against the versions xmen supports (xmen.host.versions) before any is applied.

The patches must be in place before Snakemake makes its executor (the plugin's executor registers its
``clean_old_logs`` with ``atexit`` then), so they are applied while Snakemake parses the Snakefile
(:func:`install_if_fits`), when the plugin Snakemake loaded fits them: they act only when the slurm executor runs.
Which executor runs is known only when Snakemake first evaluates the rules' input (:func:`prepare`, through
xmen.host.snakemake_run): a run with the slurm executor is refused there when the plugin does not fit (it is
patched otherwise), so is a dry run for it; any other run or command does not depend on the plugin's version.
"""
from __future__ import annotations

import sys
from typing import Any

from xmen.host import patches, slurm_submit
from xmen.host.snakemake_run import executor_in_use
from xmen.host.versions import HostRefusal

SLURM = "slurm"


def install(workdir: str | None = None) -> bool:
    """Check the SLURM plugin, then patch it (every patch of xmen.host.patches.SLURM_PATCHES); True.

    :class:`~xmen.host.versions.HostRefusal` when a patch cannot apply (a plugin version xmen does not support, or
    one that lacks what a patch replaces): nothing is patched then. Idempotent: a second call (a second Snakefile in
    the same process) changes nothing. ``workdir``: the folder the submission hooks find experiments in.
    """
    patches.install(patches.SLURM_PATCHES)
    if workdir is not None:
        slurm_submit.HOOKS.workdir = workdir
    return True


def install_if_fits(workdir: str) -> bool:
    """While Snakemake parses the Snakefile: patch the plugin Snakemake loaded (every installed executor plugin is
    loaded by then) when it fits xmen's patches; True when it is patched. A plugin that does not fit is left alone
    (this run may not use it: :func:`prepare` refuses it when it does), and one that is not loaded is patched by
    :func:`prepare` if this run uses it."""
    if patches.PLUGIN not in sys.modules:
        return False
    try:
        return install(workdir)
    except HostRefusal:
        return False


def check() -> None:
    """Refuse (HostRefusal) a SLURM plugin xmen's patches do not fit, patching nothing (a dry run for SLURM)."""
    patches.check(patches.SLURM_PATCHES)


def prepare(workflow: Any, workdir: str) -> tuple[bool, bool]:
    """What the SLURM plugin does in this run, once Snakemake chose its executor: ``(patched, adopts)``.

    ``patched``: this Snakemake runs the workflow with the slurm executor, and xmen's patches are installed (they
    follow the adopted jobs' status). ``adopts``: the planner adopts the jobs an earlier, killed run left in SLURM;
    in such a run, and in a dry run for the slurm executor (it says what that run would do). HostRefusal when the
    plugin is not one xmen's patches fit. Patching again what :func:`install_if_fits` patched changes nothing.
    """
    if executor_in_use(workflow, dry_run=True) != SLURM:
        return False, False
    executor = executor_in_use(workflow)
    if executor == SLURM:
        return install(workdir), True
    if executor == "dryrun":
        check()
        return False, True
    return False, False  # --touch: nothing is submitted, nothing adopted
