"""xmen: an experiment manager for researchers, built on Snakemake.

Only light modules are imported here (stdlib + PyYAML): experiments import xmen on cluster nodes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import XmenError

__version__ = "0.1.0"

__all__ = ["Experiment", "ExperimentSet", "Root", "XmenError", "__version__", "autodoc", "functional_experiment"]

if TYPE_CHECKING:  # pragma: no cover
    from .experiment import Experiment
    from .expset import ExperimentSet


def __getattr__(name: str) -> Any:
    # Lazy so that `import xmen` costs almost nothing and `from xmen import Experiment` pulls in only what it needs.
    if name == "Experiment":
        from .experiment import Experiment

        return Experiment
    if name in ("Root", "autodoc", "functional_experiment"):
        from . import functional

        return getattr(functional, name)
    if name == "ExperimentSet":
        from .expset import ExperimentSet

        return ExperimentSet
    raise AttributeError(f"module 'xmen' has no attribute {name!r}")
