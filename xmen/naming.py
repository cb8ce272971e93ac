"""Experiment folder names: deterministic from the overrides, and always a single safe path component.

Changing this naming orphans users' folders, so tests pin known examples.
"""
from __future__ import annotations

import re

from .errors import UsageError

SEPARATOR = "__"
# Characters a folder name may not hold: path separators, shell and glob syntax, quotes and control characters.
# Values holding them still register under an explicit name (-n NAME); the values themselves are only data.
_UNSAFE = re.compile(r"[/\\$`'\"*?\[\]{}()<>|;&!#\x00-\x1f\x7f]")
MAX_NAME_BYTES = 255


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe single folder name, else raise UsageError saying why."""
    if not name:
        raise UsageError("experiment name is empty")
    if name in (".", "..") or name.startswith("."):
        raise UsageError(f"experiment name {name!r} may not start with '.'")
    if name.startswith("-"):
        raise UsageError(f"experiment name {name!r} may not start with '-'")
    bad = _UNSAFE.search(name)
    if bad:
        char = bad.group(0)
        shown = repr(char) if char.isprintable() else f"\\x{ord(char):02x}"
        raise UsageError(f"experiment name {name!r} contains the unsafe character {shown}; use -n NAME")
    if name != name.strip():
        raise UsageError(f"experiment name {name!r} has leading or trailing spaces")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UsageError(f"experiment name is longer than {MAX_NAME_BYTES} bytes; use -n NAME")
    return name


def experiment_name(texts: dict[str, str]) -> str:
    """``k=v__k=v`` from the overridden values' texts, in the order given."""
    return SEPARATOR.join(f"{key}={text}" for key, text in texts.items())


def repeat_name(base: str, index: int) -> str:
    """Name of the ``index``-th repeat (1-based) of an experiment."""
    return f"{base}{SEPARATOR}rep={index}" if base else f"rep={index}"
