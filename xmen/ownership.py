"""What xmen made: the marker that lets destructive commands delete only xmen's own folders.

``register`` writes :data:`EXPERIMENT_MARKER` into each experiment folder right after creating it, before any
other file, so every folder xmen created carries it, even one a kill -9 left half-written. ``clean`` and ``rm``
delete a folder only when it carries the marker; a folder a user made (a ``configs/`` holding its own
``params.yml``) never does.
"""
from __future__ import annotations

import os

from . import files

#: File in each experiment folder xmen created.
EXPERIMENT_MARKER = ".xmen-experiment"


def mark_experiment(folder: str | os.PathLike[str]) -> None:
    """Mark ``folder`` (just created by xmen) as an experiment folder xmen owns."""
    files.write_new_file(os.path.join(os.fspath(folder), EXPERIMENT_MARKER), "created by xmen\n")


def is_marked_experiment(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` carries xmen's experiment marker."""
    return os.path.isfile(os.path.join(os.fspath(folder), EXPERIMENT_MARKER))
