"""xmen: an experiment manager for researchers, built on Snakemake.

Only light modules are imported here (stdlib + PyYAML): experiments import xmen on cluster nodes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xmen._version import __version__
from xmen.errors import XmenError

__all__ = ["Experiment", "ExperimentSet", "Root", "XmenError", "__version__", "autodoc", "functional_experiment"]

if TYPE_CHECKING:  # pragma: no cover
    from xmen.define.experiment import Experiment
    from xmen.sets.expset import ExperimentSet


def __getattr__(name: str) -> Any:
    # Lazy for import weight: `import xmen` costs almost nothing (it runs on cluster nodes) and `from xmen import
    # Experiment` pulls in only what it needs.
    if name == "Experiment":
        from xmen.define.experiment import Experiment  # import weight: see above

        return Experiment
    if name in ("Root", "autodoc", "functional_experiment"):
        from xmen.define import functional  # import weight: see above

        return getattr(functional, name)
    if name == "ExperimentSet":
        from xmen.sets.expset import ExperimentSet  # import weight: see above

        return ExperimentSet
    raise AttributeError(f"module 'xmen' has no attribute {name!r}")
