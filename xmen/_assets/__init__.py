"""Snakemake assets shipped with xmen: the top-level ``rules/``, ``workflow/`` and ``config/`` folders.

setup.py installs them as the subpackages ``xmen._assets.rules`` etc., so they are found through
importlib.resources in editable and regular installs alike.
"""
from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def asset(kind: str, *parts: str) -> Traversable:
    """A file or folder of one asset kind: ``rules``, ``workflow`` or ``config``."""
    node = resources.files(f"xmen._assets.{kind}")
    for part in parts:
        node = node / part
    return node


def read_text(kind: str, *parts: str) -> str:
    return asset(kind, *parts).read_text(encoding="utf-8")
