"""Experiment folder names: deterministic from the overrides, and always a single safe path component.

Changing this naming orphans users' folders, so tests pin known examples.
"""
from __future__ import annotations

import os
import re
import unicodedata
from typing import Iterable

from xmen.errors import UsageError

SEPARATOR = "__"
# Characters a folder name may not hold: path separators, shell and glob syntax, quotes and control characters.
# Values holding them still register under an explicit name (-n NAME); the values themselves are only data.
_UNSAFE = re.compile(r"[/\\$`'\"*?\[\]{}()<>|;&!#\x00-\x1f\x7f]")
MAX_NAME_BYTES = 255
#: Names Snakemake reads as something else in the set's folder: ``default`` is the set's workflow profile, and
#: Snakemake takes a folder of that name beside the Snakefile for it (every run of the set then stops).
RESERVED = frozenset(["default"])


#: Unicode categories no name may hold: control characters (C0 and C1), format characters (the bidirectional
#: overrides and isolates, zero-width characters) and line or paragraph separators. A terminal shows them as
#: nothing, or turns the text around them (``a=\u202ecod.exe``), so a name is not what it looks like.
_HIDDEN_CATEGORIES = frozenset(["Cc", "Cf", "Zl", "Zp"])


def not_utf8(args: Iterable[str]) -> str | None:
    """Why the first of ``args`` (command-line arguments) that is not UTF-8 text is refused, naming its bytes
    (``b'\\x9b'``); None when all are. Python hands such bytes of argv over as lone surrogates, which no file xmen
    writes (YAML, UTF-8) can hold: every command line checks its arguments here before it writes anything."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            from_bytes = all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in arg)
            shown = repr(arg.encode("utf-8", "surrogateescape")) if from_bytes else repr(arg)
            return f"argument {shown} is not UTF-8 text (xmen keeps names, notes and paths as UTF-8)"
    return None


def hidden_char(text: str) -> str | None:
    """The first character of ``text`` that a terminal would hide or that reorders the text around it, shown as
    ``\\xNN``/``\\uNNNN``; None if there is none."""
    for char in text:
        if unicodedata.category(char) in _HIDDEN_CATEGORIES:
            return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    return None


def check_visible(what: str, text: str) -> str:
    """Return ``text`` unless it holds a control, format (bidi) or separator character: UsageError naming it."""
    hidden = hidden_char(text)
    if hidden is not None:
        raise UsageError(f"{what} {text!r} contains the control or formatting character {hidden}")
    return text


def check_new_folder(what: str, path: str | os.PathLike[str], itself: bool = True) -> None:
    """UsageError if a folder xmen is about to make at ``path`` (a set, a demo's or a sync's folder) would be named
    with a leading ``-`` (every later command line would read it as an option) or hold a control or bidi character (``xmen init -r -x`` made a set
    named ``-x``). Checked: ``path``'s own name (``itself``: also when it exists, as a set is made of it) and
    every missing folder on the way to it. ``-n NAME`` of an experiment is refused the same way (check_name)."""
    current = os.path.abspath(os.fspath(path))
    names = [os.path.basename(current)] if itself else []
    while current != os.path.dirname(current) and not os.path.lexists(current):
        names.append(os.path.basename(current))
        current = os.path.dirname(current)
    for name in names:
        if name.startswith("-"):
            raise UsageError(f"{what} {name!r} may not start with '-' (command lines would read it as an option)")
        check_visible(what, name)  # nor hold a character that hides or reorders what a listing shows


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe single folder name, else raise UsageError saying why."""
    if not name:
        raise UsageError("experiment name is empty")
    if name in (".", "..") or name.startswith("."):
        raise UsageError(f"experiment name {name!r} may not start with '.'")
    if name.startswith("-"):
        raise UsageError(f"experiment name {name!r} may not start with '-'")
    if name in RESERVED:
        raise UsageError(f"experiment name {name!r} is what Snakemake looks up as the set's profile; choose another")
    bad = _UNSAFE.search(name)
    if bad:
        char = bad.group(0)
        shown = repr(char) if char.isprintable() else f"\\x{ord(char):02x}"
        raise UsageError(f"experiment name {name!r} contains the unsafe character {shown}; use -n NAME")
    check_visible("experiment name", name)
    if name != name.strip():
        raise UsageError(f"experiment name {name!r} has leading or trailing spaces")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UsageError(f"experiment name is longer than {MAX_NAME_BYTES} bytes; use -n NAME")
    return name


def check_part(key: str, text: str) -> None:
    """Refuse a parameter whose ``key=text`` would make generated names ambiguous (two sweeps, one folder).

    A name ``k=v__k=v`` reads back into one set of values only if no key holds ``=``, no value holds ``__`` and
    no parameter is called ``rep`` (the repeat suffix): ``{a: 'x__b=5'}`` would otherwise be ``{a: x, b: 5}``.
    """
    if "=" in key:
        raise UsageError(f"parameter name {key!r} holds '=', which ends parameter names in folder names; use -n NAME")
    if key == REPEAT:
        raise UsageError(f"a parameter called {REPEAT!r} clashes with the repeat suffix of folder names; use -n NAME")
    if SEPARATOR in text:
        raise UsageError(
            f"value {text!r} of {key!r} holds {SEPARATOR!r}, which separates parameters in folder names; "
            "register it under a name of its own with -n NAME"
        )


def experiment_name(texts: dict[str, str]) -> str:
    """``k=v__k=v`` from the overridden values' texts, in the order given (register gives the declared order)."""
    return SEPARATOR.join(f"{key}={text}" for key, text in texts.items())


REPEAT = "rep"


def repeat_name(base: str, index: int) -> str:
    """Name of the ``index``-th repeat (1-based) of an experiment."""
    return f"{base}{SEPARATOR}{REPEAT}={index}" if base else f"{REPEAT}={index}"
