"""The SLURM executor plugin in a run of an xmen workflow: whether this Snakemake uses it, and xmen's patches on it
(xmen.host.patches.SLURM_PATCHES: xmen.host.slurm_status, xmen.host.slurm_submit, xmen.host.poll), checked
against the versions xmen supports (xmen.host.versions) before any is applied.

Which executor runs is known only when Snakemake first evaluates the rules' input (:func:`prepare`, through
xmen.host.snakemake_run). A run with the slurm executor is patched there, or refused when the plugin does not fit;
a dry run for it is only checked (refused, or left unpatched: it submits nothing); any other run or command does
not depend on the plugin's version. A patch Snakemake takes when it makes its executor, which in a run given explicit
targets comes first ("keep empty SLURM log folders": the executor registers its ``clean_old_logs`` with
``atexit``), is applied while Snakemake parses the Snakefile, when the plugin fits (:func:`install_if_fits`); it
acts only when the slurm executor runs.
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
    """While Snakemake parses the Snakefile: apply the early patches to the plugin Snakemake loaded (every installed
    executor plugin is loaded by then) when it fits all of xmen's; True when they are applied. A plugin that does
    not fit is left alone (this run may not use it: :func:`prepare` refuses it when it does), and one that is not
    loaded is patched by :func:`prepare` if this run uses it."""
    if patches.PLUGIN not in sys.modules:
        return False
    try:
        patches.install(patches.SLURM_PATCHES, early=True)
    except HostRefusal:
        return False
    slurm_submit.HOOKS.workdir = workdir
    return True


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
