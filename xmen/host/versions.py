"""The versions of Snakemake and of its SLURM executor plugin that xmen's patches were written against, and the one
line xmen refuses with when the installed ones are not among them.

xmen.host changes internals of Snakemake and of snakemake-executor-plugin-slurm (xmen.host.patches lists every
change). Those internals are not an interface: the patches were written against, and CI tests, the ranges below,
which setup.py pins too. When a patch cannot apply (a version outside its range, or one inside it that lacks what
a patch replaces or reads), xmen refuses with one line naming the found and the supported versions
(:class:`HostRefusal`, printed by :func:`refuse`; Snakemake then exits non-zero) instead of running without it.
Snakemake is checked in every main Snakemake process of an xmen workflow; the SLURM plugins only when that
Snakemake runs or dry-runs with the slurm executor, so a local run does not depend on them.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from typing import NoReturn

from xmen.errors import XmenError


@dataclass(frozen=True)
class Supported:
    """A distribution and the versions of it xmen supports, as a pip specifier (``>=2.8,<2.9``)."""

    distribution: str
    specifier: str

    @property
    def requirement(self) -> str:
        """What setup.py pins and pip installs: ``snakemake-executor-plugin-slurm>=2.8,<2.9``."""
        return f"{self.distribution}{self.specifier}"

    def admits(self, version: str | None) -> bool:
        """Whether ``version`` is one of these (a pre-release inside the range is)."""
        if not version:
            return False
        # imported here for import weight (packaging comes with Snakemake)
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version

        try:
            return SpecifierSet(self.specifier).contains(Version(version), prereleases=True)
        except InvalidVersion:
            return False


#: Written against 9.27.1: its Workflow exposes the executor plugin and the scheduler when the DAG is built, and
#: its DAGApi.execute_workflow keeps the executor a dry run stands in for apart from the dry run's own
#: (``pseudo_executor``); Job.restart_times and Job.group are properties. Snakemake 10 may change any of it.
SNAKEMAKE = Supported("snakemake", ">=9.27,<10")
#: Written against 2.8.0: the status loop, the submission methods and the sacct status query of its Executor are
#: private and change between minor versions (xmen.host.patches).
SLURM_PLUGIN = Supported("snakemake-executor-plugin-slurm", ">=2.8,<2.9")
#: The plugin's job step: xmen's direct job step takes the same srun options from its functions. What the plugin
#: 2.8 itself requires.
SLURM_JOBSTEP = Supported("snakemake-executor-plugin-slurm-jobstep", ">=0.6,<1")


class HostRefusal(XmenError):
    """Snakemake or its SLURM plugin is not a version xmen's patches fit: one line naming the versions."""


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, None when none is installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _found(supported: Supported, version: str | None) -> str:
    return f"{supported.distribution} {version}" if version else f"{supported.distribution} (version unknown)"


def check(supported: Supported) -> str:
    """The installed version of ``supported``'s distribution; :class:`HostRefusal` when it is not supported."""
    version = installed_version(supported.distribution)
    if not supported.admits(version):
        raise HostRefusal(f"xmen: {_found(supported, version)} is not a version xmen supports "
                          f"({supported.requirement}); install one: pip install '{supported.requirement}'")
    return str(version)


def unfit(supported: Supported, patch: str, problem: str) -> HostRefusal:
    """The refusal for a supported version that a patch does not fit (``problem``: what it lacks)."""
    version = installed_version(supported.distribution)
    return HostRefusal(f"xmen: {_found(supported, version)} does not fit xmen's patch \"{patch}\" ({problem}); "
                       f"xmen supports {supported.requirement}")


def refuse(refusal: HostRefusal) -> NoReturn:
    """Print the refusal's line and end this Snakemake with exit code 1.

    A SystemExit, not an exception Snakemake reports: Snakemake wraps an exception from the Snakefile or an input
    function into several lines (rule, file, traceback), and the line is all a user needs.
    """
    print(str(refusal), file=sys.stderr, flush=True)
    raise SystemExit(refusal.exit_code)
