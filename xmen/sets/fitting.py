"""Fitting a sweep to the parameters of defaults.yml: each value checked against (or coerced to) its declared
type, with a warning or an error when it does not fit."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xmen.define.parameters import check_value, coerce_value, parse_comment
from xmen.errors import UsageError
from xmen.store import naming, sweep


@dataclass
class _Param:
    type: str | None
    default: Any


def parameter_table(defaults: dict[str, Any], comments: dict[str, str]) -> dict[str, _Param]:
    """Parameters of a set: the non-underscore keys of defaults.yml, typed by their ``(type)`` comment."""
    table: dict[str, _Param] = {}
    for key, value in defaults.items():
        key = str(key)
        if key.startswith("_"):
            continue
        declared = None
        if key in comments:
            declared = parse_comment(comments[key])[0]
        table[key] = _Param(declared, value)
    return table


_INFERRED = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


def _fit(key: str, choice: sweep.Choice, param: _Param) -> tuple[Any, str | None, bool]:
    """The value to store for ``choice``, a warning if it does not fit the parameter's type, and whether that
    misfit is an error.

    ``1e-3`` for a float parameter is the float 0.001 (YAML 1.1 reads it as text). A value outside a
    ``Literal[...]`` parameter's choices is an error (a typo ``adm`` would run as the default); any other misfit
    is a warning, kept as given: the tutorial sweeps ``b: None | cat`` on an int.
    """
    declared = param.type or (_INFERRED.get(type(param.default)) if param.default is not None else None)
    value = choice.value
    if declared is None:
        return value, None, False
    if declared == "str" and isinstance(value, (int, float, bool)) and not isinstance(value, str):
        return choice.text, None, False  # what the user typed, e.g. a: 1.0 for a str parameter is '1.0'
    try:
        return coerce_value(declared, value, key), None, False
    except UsageError:
        pass
    return value, f"parameter {key!r} is declared {declared} but gets {value!r}", "Literal" in declared


def fit_sweep(
    parsed: dict[str, list[sweep.Choice]],
    table: dict[str, _Param],
    strict: bool,
    warnings: list[str],
    generated_names: bool,
) -> dict[str, list[tuple[str, Any]]]:
    """Each parameter's alternatives as (``key=text`` name part, value to store), checked once per alternative.

    Checks what can be checked on the grammar, before any combination is built: unknown parameters, types,
    alternatives that differ only in spelling (``1e-3 | 0.001``: equal values, two folders) and, for generated
    names, the parts that would make two sweeps name one folder.
    """
    fitted: dict[str, list[tuple[str, Any]]] = {}
    for key, choices in parsed.items():
        if key not in table:
            known = ", ".join(table) or "none"
            raise UsageError(f"unknown parameter {key!r} (parameters: {known})")
        entries: list[tuple[str, Any]] = []
        spelled: dict[str, str] = {}
        for choice in choices:
            value, problem, fatal = _fit(key, choice, table[key])
            if problem:
                if strict or fatal:
                    raise UsageError(problem)
                if problem not in warnings:
                    warnings.append(problem)
            if generated_names:
                naming.check_part(key, choice.text)
            same = f"{type(value).__name__}:{value!r}"
            if same in spelled:
                raise UsageError(f"{key}: {spelled[same]!r} and {choice.text!r} are the same value")
            spelled[same] = choice.text
            entries.append((f"{key}={choice.text}", value))
        fitted[key] = entries
    return fitted


def check_seed_param(seed_param: str, parsed: dict[str, list[sweep.Choice]], table: dict[str, _Param]) -> None:
    """``--seed-param NAME`` sets NAME to each repeat's index: it must be an int-like parameter not swept."""
    if seed_param not in table:
        known = ", ".join(table) or "none"
        raise UsageError(f"--seed-param: unknown parameter {seed_param!r} (parameters: {known})")
    if seed_param in parsed:
        raise UsageError(f"--seed-param {seed_param} sets {seed_param} to the repeat index; do not sweep it too")
    param = table[seed_param]
    declared = param.type or (_INFERRED.get(type(param.default)) if param.default is not None else None)
    if declared is not None and not check_value(declared, 1):
        raise UsageError(f"--seed-param: parameter {seed_param!r} is declared {declared}, not an int")
