"""The ``-p`` grammar of ``xmen list``: a column regex, or a predicate on one parameter.

A value holding a comparison operator (``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``; a lone ``=`` means ``==``) is a
predicate: ``lr<0.01``, ``0.01>lr``, ``1<a<=2``, ``b==cat``, ``b!='1.0'``. A predicate shows its parameter's column
and keeps only the experiments that have the parameter and satisfy every comparison. Anything else is a regular
expression selecting parameter columns by full match (``.*``, ``w_.*``); a value starting with ``(?`` is always a
regex, so look-behinds and named groups stay usable.

Comparisons are numeric when both sides are numbers (a string parameter such as ``"1e-3"`` counts as a number),
otherwise ``==``/``!=`` compare text and the ordering operators do not match. A quoted right-hand side (``'1.0'``)
is always text. Nothing here evaluates user input.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from xmen.errors import UsageError

__all__ = ["ColumnPattern", "Comparison", "ParamFilter", "Predicate", "parse_param_filter", "parse_param_filters"]

# Longest operators first so that ``<=`` is never read as ``<`` followed by ``=``.
_OPERATOR = re.compile(r"(<=|>=|==|!=|<|>|=)")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
# How YAML spells null and booleans, so that ``b==null`` and ``flag==true`` do what a user expects.
_NULL_TEXTS = frozenset({"None", "none", "null", "Null", "NULL", "~"})
_TRUE_TEXTS = frozenset({"True", "true", "TRUE"})
_FALSE_TEXTS = frozenset({"False", "false", "FALSE"})


def _parse_number(text: str) -> int | float | None:
    """``text`` as an int or float when it is written as a plain decimal number (never ``nan``/``inf``/``1_0``)."""
    if not _NUMBER.fullmatch(text):
        return None
    return int(text) if _INTEGER.fullmatch(text) else float(text)


def _as_number(value: Any) -> int | float | None:
    """A parameter value as a number: ints and floats (not bools), or strings written as numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return _parse_number(value.strip())
    return None


def _text_matches(value: Any, text: str) -> bool:
    """Text equality between a parameter value and the right-hand side, knowing YAML's null/bool spellings."""
    if value is None:
        return text in _NULL_TEXTS
    if value is True:
        return text in _TRUE_TEXTS
    if value is False:
        return text in _FALSE_TEXTS
    return str(value) == text


@dataclass(frozen=True)
class Comparison:
    """``<parameter> op value``; ``quoted`` values are compared as text only."""

    op: str
    value: str
    quoted: bool = False

    def holds(self, actual: Any) -> bool:
        """Whether the parameter value ``actual`` satisfies this comparison."""
        right = None if self.quoted else _parse_number(self.value)
        left = _as_number(actual) if right is not None else None
        if left is not None and right is not None:
            if isinstance(left, float) and math.isnan(left):
                return self.op == "!="
            if self.op == "<":
                return left < right
            if self.op == "<=":
                return left <= right
            if self.op == ">":
                return left > right
            if self.op == ">=":
                return left >= right
            return (left == right) == (self.op == "==")
        if self.op in ("==", "!="):
            return _text_matches(actual, self.value) == (self.op == "==")
        return False  # ordering a non-number: no match


@dataclass(frozen=True)
class Predicate:
    """A filter on one parameter: every comparison must hold; experiments without the parameter never match."""

    name: str
    comparisons: tuple[Comparison, ...]
    text: str

    def names(self, params: Iterable[str]) -> list[str]:
        """The parameters this predicate is about: ``name`` itself, else (the original xmen's ``a.*==cat``) every
        parameter the name fully matches as a regex."""
        params = list(params)
        if self.name in params:
            return [self.name]
        pattern = _name_regex(self.name)
        return [p for p in params if pattern is not None and pattern.fullmatch(p)]

    def matches(self, params: Mapping[str, Any]) -> bool:
        """Whether an experiment with parameters ``params`` passes (with a regex name: every matching parameter
        satisfies the comparisons, and there is at least one)."""
        if self.name in params:
            return self.holds(params[self.name])
        names = self.names(params)
        return bool(names) and all(self.holds(params[n]) for n in names)

    def holds(self, value: Any) -> bool:
        """Whether ``value`` (of this predicate's parameter or message) satisfies every comparison."""
        return all(c.holds(value) for c in self.comparisons)


_REGEX_CHARS = frozenset("*+?[](){}|^$\\.")


def _name_regex(name: str) -> re.Pattern[str] | None:
    """``name`` as a regex when it is written as one (a plain name never is), else None."""
    if not any(ch in _REGEX_CHARS for ch in name):
        return None
    try:
        return re.compile(name)
    except re.error:
        return None


@dataclass(frozen=True)
class ColumnPattern:
    """A regex choosing the parameter columns it fully matches."""

    pattern: re.Pattern[str]
    text: str

    def selects(self, column: str) -> bool:
        return self.pattern.fullmatch(column) is not None


ParamFilter = ColumnPattern | Predicate


def _operand(text: str, whole: str) -> tuple[str, bool]:
    """A stripped operand and whether it was quoted; empty operands are a usage error."""
    value = text.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1], True
    if not value:
        raise UsageError(f"bad parameter filter {whole!r}: missing operand (expected e.g. 'lr<0.01' or '1<a<=2')")
    return value, False


def _name(text: str, quoted: bool, whole: str) -> str:
    if quoted or _parse_number(text) is not None:
        raise UsageError(f"bad parameter filter {whole!r}: no parameter name (expected e.g. 'lr<0.01')")
    return text


def parse_param_filter(text: str) -> ParamFilter:
    """Parse one ``-p`` value into a :class:`ColumnPattern` or a :class:`Predicate` (UsageError if malformed)."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError("bad parameter filter '': expected a regex such as 'w_.*' or a predicate such as 'lr<0.01'")
    parts = _OPERATOR.split(text)
    if len(parts) == 1 or text.lstrip().startswith("(?"):
        try:
            return ColumnPattern(re.compile(text), text)
        except re.error as exc:
            raise UsageError(f"bad parameter regex {text!r}: {exc}") from None
    if len(parts) not in (3, 5):
        raise UsageError(f"bad parameter filter {text!r}: use at most two comparisons, as in '1<a<=2'")
    operands = [_operand(p, text) for p in parts[0::2]]
    ops = ["==" if op == "=" else op for op in parts[1::2]]
    if len(operands) == 2:
        (left, left_quoted), (right, right_quoted) = operands
        # ``0.01>lr`` is ``lr<0.01``: the name is the side that is not a number.
        if not left_quoted and _parse_number(left) is not None and _parse_number(right) is None and not right_quoted:
            name = _name(right, False, text)
            comparisons = (Comparison(_FLIPPED[ops[0]], left, False),)
        else:
            name = _name(left, left_quoted, text)
            comparisons = (Comparison(ops[0], right, right_quoted),)
    else:
        (low, low_quoted), (middle, middle_quoted), (high, high_quoted) = operands
        name = _name(middle, middle_quoted, text)
        comparisons = (Comparison(_FLIPPED[ops[0]], low, low_quoted), Comparison(ops[1], high, high_quoted))
    return Predicate(name, comparisons, text)


def parse_param_filters(texts: Iterable[str]) -> list[ParamFilter]:
    """Parse every ``-p`` value, in order."""
    return [parse_param_filter(t) for t in texts]
