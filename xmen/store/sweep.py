"""The sweep grammar: a YAML mapping whose string values may hold ``|`` alternatives.

``"{a: 1.0 | 2.0, b: None | cat}"`` is four experiments; the first key varies slowest. Each alternative keeps the
text the user typed, which names the experiment folder (``a=1.0``), and its YAML value, which goes into params.yml.
Every spelling of None (``None``, ``none``, ``null``, ``~``) is named ``None``: equal values, one folder.

Parsing is bounded: the document is checked for alias bombs and duplicate keys before any value is built, and
:func:`count` gives the number of combinations without building them, so a caller can refuse a sweep that is too
large before it costs memory.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import yaml

from xmen.store import files
from xmen.errors import UsageError

NONE_TEXT = "None"
_Loader = files.UniqueKeyLoader


@dataclass(frozen=True)
class Choice:
    """One value of one parameter: the text that names it and the value stored."""

    text: str
    value: Any


Combination = dict[str, Choice]


def _load(text: str) -> Any:
    return files.parse_yaml(text, _Loader)


def _problem(exc: yaml.YAMLError) -> str:
    return getattr(exc, "problem", None) or getattr(exc, "context", None) or "syntax error"


def _scalar(text: str, key: str) -> Any:
    """One alternative's value. ``None`` means None, as a Python user writing a sweep expects."""
    if text in ("None", "none"):
        return None
    try:
        value = _load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"cannot parse value {text!r} of parameter {key!r}: {_problem(exc)}") from None
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return NONE_TEXT
    if isinstance(value, (bool, int, float)):
        return str(value)
    return yaml.dump(value, Dumper=yaml.SafeDumper, default_flow_style=True, width=10**6).strip()


def parse(sweep: str | dict[str, Any]) -> dict[str, list[Choice]]:
    """Parse a sweep into the alternatives of each parameter, in the order given."""
    if isinstance(sweep, str):
        if not sweep.strip():
            raise UsageError("empty sweep: give a YAML mapping such as \"{a: 1 | 2}\"")
        try:
            data = _load(sweep)
        except yaml.YAMLError as exc:
            raise UsageError(f"invalid sweep YAML: {_problem(exc)}") from None
    else:
        data = sweep
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"a sweep must be a YAML mapping like \"{{a: 1 | 2}}\", got {type(data).__name__}")
    parsed: dict[str, list[Choice]] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise UsageError(f"parameter names must be non-empty strings, got {key!r}")
        if isinstance(value, str) and "|" in value:
            texts = [part.strip() for part in value.split("|")]
            if any(not part for part in texts):
                raise UsageError(f"empty alternative in {key}: {value!r}")
            choices = []
            for text in texts:
                parsed_value = _scalar(text, key)
                choices.append(Choice(NONE_TEXT if parsed_value is None else text, parsed_value))
        elif isinstance(value, str):
            text = value.strip()
            choices = [Choice(NONE_TEXT, None) if text in ("None", "none") else Choice(text, value)]
        else:
            choices = [Choice(_text(value), value)]
        seen: set[str] = set()
        for choice in choices:
            if choice.text in seen:
                raise UsageError(f"duplicate alternative {choice.text!r} for {key}")
            seen.add(choice.text)
        parsed[key] = choices
    return parsed


def count(parsed: dict[str, list[Choice]]) -> int:
    """How many combinations ``parsed`` makes, without making them."""
    return math.prod(len(choices) for choices in parsed.values())


def combinations(sweep: str | dict[str, Any]) -> list[Combination]:
    """Every combination of the alternatives, first key varying slowest."""
    parsed = parse(sweep)
    keys = list(parsed)
    return [dict(zip(keys, picked)) for picked in itertools.product(*(parsed[k] for k in keys))]
