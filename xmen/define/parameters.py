"""The parameter table of an experiment class, read from its source; type checks; docstring blocks.

A parameter is an attribute whose assignment carries an ``@p`` comment, in ``__init__`` or in the class body::

    self.b: int = 17  # @p Another parameter
    lr: float = 1e-3  # @p Learning rate

Comments are invisible at run time, so the table is read from the class source: :mod:`tokenize` finds the real
comments (a ``#`` inside a string default is not one) and :mod:`ast` the assignments (name, annotation and default
as *source text*). Nothing a user wrote is ever evaluated: run-time defaults come from the instance after
``__init__``; values given on a command line are checked against the annotation by interpreting the annotation's
syntax tree (:func:`check_value`).

All functions are pure and import nothing beyond the stdlib and xmen.errors, so the CLI can reuse them to validate
``xmen register`` overrides against the comments of a ``defaults.yml`` (:func:`parse_comment`).
"""
from __future__ import annotations

import ast
import enum
import inspect
import io
import os
import re
import tokenize
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from xmen.errors import UsageError

#: ``@p`` as a word of its own inside a comment marks a parameter; the help text follows it.
_MARKER = re.compile(r"(?<!\S)@p(?!\S)")

#: A float written in scientific notation without a dot: PyYAML (YAML 1.1) reads ``1e-3`` as a *string*.
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(inf|nan)$", re.IGNORECASE)


@dataclass(frozen=True)
class Param:
    """One parameter as declared in source.

    ``type`` and ``default`` are source text (``'Optional[int]'``, ``"'h'"``), or ``None`` when absent.
    """

    name: str
    type: str | None = None
    default: str | None = None
    help: str = ""
    owner: str = ""  #: qualified name of the class that declared it (for messages)


# ----------------------------------------------------------------------------------------------------------------
# Reading the table from source
# ----------------------------------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _comments_by_line(source: str) -> dict[int, str]:
    """Line number -> comment text (without ``#``) of every real comment token in ``source``."""
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string[1:].strip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return comments


def _marker_help(comment: str) -> str | None:
    """The help text of an ``@p`` comment, or ``None`` when the comment is not a parameter marker."""
    match = _MARKER.search(comment)
    if match is None:
        return None
    return _normalise(comment[match.end():])


def _annotation_text(source: str, node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a forward reference: 'int'
        return _normalise(node.value)
    segment = ast.get_source_segment(source, node)
    if segment is None or "\n" in segment:  # a multi-line annotation: the canonical one-line spelling
        return ast.unparse(node)
    return _normalise(segment)


def _value_text(source: str, node: ast.expr | None) -> str | None:
    if node is None:
        return None
    segment = ast.get_source_segment(source, node)
    # Keep the author's spelling ('h', 1e-3); a multi-line literal gets its canonical one-line spelling.
    if segment is None or "\n" in segment:
        return ast.unparse(node)
    return segment


def _marker_for(node: ast.stmt, comments: Mapping[int, str]) -> str | None:
    """The ``@p`` help of a statement: a marker comment on its last line, else on any of its lines."""
    end = node.end_lineno or node.lineno
    for line in (end, *range(node.lineno, end)):
        comment = comments.get(line)
        if comment is not None:
            found = _marker_help(comment)
            if found is not None:
                return found
    return None


def _self_targets(node: ast.stmt, self_name: str) -> list[str]:
    """Attribute names assigned on ``self`` by an (annotated) assignment."""
    targets: list[ast.expr]
    if isinstance(node, ast.AnnAssign):
        targets = [node.target]
    elif isinstance(node, ast.Assign):
        targets = list(node.targets)
    else:
        return []
    return [
        t.attr
        for t in targets
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == self_name
    ]


def _body_targets(node: ast.stmt) -> list[str]:
    """Names bound by an (annotated) assignment in a class body."""
    if isinstance(node, ast.AnnAssign):
        return [node.target.id] if isinstance(node.target, ast.Name) else []
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    return []


def _calls_parent_init(stmt: ast.stmt) -> bool:
    """Does ``stmt`` call ``super().__init__(...)`` or ``Base.__init__(self, ...)``?"""
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__":
            return True
    return False


def _walk_function(func: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterable[ast.stmt]:
    """Statements of a function, nested blocks included, but not those of nested functions or classes."""
    stack: list[ast.AST] = list(reversed(func.body))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.stmt):
            yield node
        children = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
        stack.extend(reversed(children))


@dataclass(frozen=True)
class ClassTable:
    """What one class's own source declares: its ``@p`` parameters and plain re-assignments of other names.

    ``reassigned`` (name -> default source text) lets a subclass that writes ``self.b = 20`` (no marker) in its
    ``__init__`` show the inherited parameter ``b`` with its new default in the docs; ``retyped`` (name -> annotation
    source text) the type it gives one it re-annotates there or in its body (``a: float = 0.5``).
    """

    params: dict[str, Param]
    reassigned: dict[str, str]
    retyped: dict[str, str] = field(default_factory=dict)


def parse_class_source(source: str, owner: str = "") -> ClassTable:
    """Parse the source of one ``class`` statement (as returned by :func:`inspect.getsource`).

    Raises ``SyntaxError`` if ``source`` is not a class statement.
    """
    text = source
    offset = 0
    if text[:1] in (" ", "\t"):
        # An indented class (nested, or defined in a function). Wrapping in 'if 1:' keeps the text byte-for-byte,
        # unlike textwrap.dedent, which cannot dedent a docstring whose lines start at column 0.
        text = "if 1:\n" + text
        offset = 1
    tree = ast.parse(text)
    cls_node: ast.ClassDef | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            cls_node = node
            break
    if cls_node is None:
        raise SyntaxError("no class statement in source")
    comments = _comments_by_line(text)
    found: list[tuple[int, Param]] = []
    reassigned: dict[str, str] = {}
    retyped: dict[str, str] = {}

    def consider(node: ast.stmt, names: list[str], unconditional: bool) -> None:
        help_text = _marker_for(node, comments)
        annotation = node.annotation if isinstance(node, ast.AnnAssign) else None
        value = node.value
        for name in names:
            if help_text is not None:
                found.append(
                    (
                        node.lineno - offset,
                        Param(
                            name=name,
                            type=_annotation_text(text, annotation),
                            default=_value_text(text, value),
                            help=help_text,
                            owner=owner,
                        ),
                    )
                )
            elif unconditional and value is not None:
                reassigned[name] = _value_text(text, value) or ""
                if annotation is not None:
                    retyped[name] = _annotation_text(text, annotation) or ""

    for stmt in cls_node.body:
        names = _body_targets(stmt)
        if names:
            consider(stmt, names, unconditional=True)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "__init__":
            args = stmt.args.posonlyargs + stmt.args.args
            if not args:
                continue
            self_name = args[0].arg
            # Plain re-assignments count as a new default only when unconditional and after the parent's
            # __init__ ran (an assignment before super().__init__() is overwritten by the parent).
            first = next((i for i, s in enumerate(stmt.body) if _calls_parent_init(s)), 0)
            top_level = {id(s) for s in stmt.body[first:]}
            for inner in _walk_function(stmt):
                names = _self_targets(inner, self_name)
                if names:
                    consider(inner, names, unconditional=id(inner) in top_level)
    found.sort(key=lambda item: item[0])
    params: dict[str, Param] = {}
    for _, param in found:
        params[param.name] = param  # a later declaration of the same name wins
    for name in params:
        reassigned.pop(name, None)
        retyped.pop(name, None)
    return ClassTable(params=params, reassigned=reassigned, retyped=retyped)


def parse_function_source(source: str, owner: str = "") -> dict[str, Param]:
    """The parameters of a functional experiment: every argument after the first (the ``Root``), in order.

    Help is the comment after the argument, continued by comment-only lines below it (as the original's functional
    examples write it); a leading ``@p`` marker is accepted and dropped. Raises ``SyntaxError`` if ``source`` holds
    no function definition.
    """
    text = "if 1:\n" + source if source[:1] in (" ", "\t") else source
    tree = ast.parse(text)
    func = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if func is None:
        raise SyntaxError("no function definition in source")
    comments = _comments_by_line(text)
    lines = text.splitlines()
    positional = func.args.posonlyargs + func.args.args
    defaults: dict[str, ast.expr | None] = dict.fromkeys(a.arg for a in positional)
    for arg, default in zip(positional[len(positional) - len(func.args.defaults):], func.args.defaults):
        defaults[arg.arg] = default
    for arg, default in zip(func.args.kwonlyargs, func.args.kw_defaults):
        defaults[arg.arg] = default
    args = (positional + func.args.kwonlyargs)[1:]
    body_start = func.body[0].lineno if func.body else len(lines) + 1
    params: dict[str, Param] = {}
    for index, arg in enumerate(args):
        default = defaults.get(arg.arg)
        end = max(arg.end_lineno or arg.lineno, (default.end_lineno or default.lineno) if default else 0)
        stop = args[index + 1].lineno if index + 1 < len(args) else body_start
        parts = [comments[end]] if end in comments else []
        for line in range(end + 1, stop):
            if line in comments and lines[line - 1].strip().startswith("#"):
                parts.append(comments[line])
            else:
                break
        help_text = _normalise(" ".join(parts))
        marker = _MARKER.match(help_text)
        if marker is not None:
            help_text = help_text[marker.end():].strip()
        params[arg.arg] = Param(
            name=arg.arg,
            type=_annotation_text(text, arg.annotation),
            default=_value_text(text, default),
            help=help_text,
            owner=owner,
        )
    return params


def class_table(cls: type) -> ClassTable:
    """The table declared by ``cls``'s own source; empty when the source is unavailable (exec'd, REPL, .pyc)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError, IndentationError, SyntaxError):
        return ClassTable({}, {})
    try:
        return parse_class_source(source, cls.__qualname__)
    except (SyntaxError, ValueError):
        return ClassTable({}, {})


def merge_tables(tables: Iterable[ClassTable]) -> dict[str, Param]:
    """Merge own tables from the most basic class to the most derived (reversed MRO).

    A subclass overrides a parent's parameter in place (its position in the table is kept); an override without
    help or annotation keeps the parent's.
    """
    merged: dict[str, Param] = {}
    for table in tables:
        for name, default in table.reassigned.items():
            if name in merged:
                merged[name] = replace(merged[name], default=default, type=table.retyped.get(name) or merged[name].type)
        for name, param in table.params.items():
            parent = merged.get(name)
            if parent is not None:
                param = replace(param, help=param.help or parent.help, type=param.type or parent.type)
            merged[name] = param
    return merged


# ----------------------------------------------------------------------------------------------------------------
# Docs
# ----------------------------------------------------------------------------------------------------------------


def param_line(param: Param) -> str:
    """``a (str): A parameter (default='h')`` -- one line of the ``Parameters:`` block."""
    head = f"{param.name} ({param.type})" if param.type else param.name
    tail = f"(default={param.default})" if param.default is not None else ""
    body = " ".join(part for part in (param.help, tail) if part)
    return f"{head}: {body}" if body else head


def render_block(table: Mapping[str, Param]) -> str:
    """The ``Parameters:`` block shown by ``help()`` and ``--help``; empty for a table without parameters."""
    if not table:
        return ""
    return "\n".join(["Parameters:", *(f"    {param_line(p)}" for p in table.values())])


def with_block(doc: str | None, table: Mapping[str, Param]) -> str | None:
    """``doc`` (cleaned of its indentation) followed by the block of ``table``."""
    text = inspect.cleandoc(doc) if doc else ""
    block = render_block(table)
    if not block:
        return doc
    return f"{text}\n\n{block}" if text else block


def yaml_comment(param: Param) -> str:
    """The comment written after a parameter in ``defaults.yml``: ``(TYPE) HELP (default=REPR)``."""
    parts = []
    if param.type:
        parts.append(f"({param.type})")
    if param.help:
        parts.append(param.help)
    if param.default is not None:
        parts.append(f"(default={param.default})")
    return " ".join(parts)


def _balanced_end(text: str, start: int) -> int:
    """Index just past the ``)`` matching the ``(`` at ``start``; -1 if unbalanced."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def parse_comment(comment: str | None) -> tuple[str | None, str, str | None]:
    """Split a ``defaults.yml`` comment ``(TYPE) HELP (default=REPR)`` into ``(type, help, default_repr)``.

    Every part is optional: hand-written defaults of shell experiments may carry only a help text. The type is a
    leading balanced ``(...)``; the default the ``(default=...)`` group that ends the comment (of several candidates
    the first whose remainder is a valid Python expression, so a help text may itself mention ``(default=``).
    """
    text = (comment or "").strip()
    if text.startswith("#"):
        text = text[1:].strip()
    type_str: str | None = None
    if text.startswith("("):
        end = _balanced_end(text, 0)
        inner = text[1:end - 1].strip() if end > 0 else ""
        if end > 0 and inner and not inner.startswith("default="):
            type_str = _normalise(inner)
            text = text[end:].strip()
    default: str | None = None
    if text.endswith(")"):
        starts = [m.start() for m in re.finditer(r"\(default=", text)]
        chosen = None
        for start in starts:
            candidate = text[start + len("(default="):-1]
            try:
                ast.parse(candidate.strip(), mode="eval")
            except SyntaxError:
                continue
            chosen = start
            break
        if chosen is None and starts:
            chosen = starts[-1]
        if chosen is not None:
            default = text[chosen + len("(default="):-1].strip()
            text = text[:chosen].strip()
    return type_str, text, default


# ----------------------------------------------------------------------------------------------------------------
# Type checks (interpreting the annotation's syntax tree; never evaluating it)
# ----------------------------------------------------------------------------------------------------------------

_ALIASES = {
    "List": "list", "Sequence": "list", "MutableSequence": "list", "Iterable": "list", "Collection": "list",
    "Tuple": "tuple", "Dict": "dict", "Mapping": "dict", "MutableMapping": "dict", "OrderedDict": "dict",
    "Set": "set", "FrozenSet": "set", "frozenset": "set", "AbstractSet": "set", "Text": "str", "NoneType": "None",
}
_ANY = {"Any", "object"}


class _Unknown(Exception):
    """The annotation names something we cannot check (a user class): accept any value."""


def _name_of(node: ast.expr) -> str | None:
    """``List`` for ``List``, ``typing.List``, ``t.List``; ``None`` for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    return None


def _subscript_args(node: ast.Subscript) -> list[ast.expr]:
    sl = node.slice
    return list(sl.elts) if isinstance(sl, ast.Tuple) else [sl]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _matches(node: ast.expr, value: Any) -> bool:
    """Does ``value`` (as loaded from YAML) fit the annotation ``node``? Raises _Unknown if it cannot tell."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # forward reference 'int'
        return _matches(ast.parse(node.value, mode="eval").body, value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # int | None
        return _union([node.left, node.right], value)
    if isinstance(node, ast.Subscript):
        origin = _name_of(node.value)
        args = _subscript_args(node)
        if origin == "Optional":
            return value is None or _matches(args[0], value)
        if origin == "Union":
            return _union(args, value)
        if origin == "Literal":
            try:
                allowed = [ast.literal_eval(a) for a in args]
            except ValueError:
                raise _Unknown from None
            return any(value == a and type(value) is type(a) for a in allowed)
        if origin in ("Annotated", "Final", "ClassVar"):
            return _matches(args[0], value)
        kind = _ALIASES.get(origin or "", origin)
        if kind in ("list", "set"):
            return isinstance(value, list) and all(_matches(args[0], v) for v in value)
        if kind == "tuple":
            if not isinstance(value, list):
                return False
            if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
                return all(_matches(args[0], v) for v in value)
            if len(args) == 1 and isinstance(args[0], ast.Tuple) and not args[0].elts:  # Tuple[()]
                return not value
            return len(value) == len(args) and all(_matches(a, v) for a, v in zip(args, value))
        if kind == "dict":
            if not isinstance(value, dict):
                return False
            if len(args) != 2:
                return True
            return all(_matches(args[0], k) and _matches(args[1], v) for k, v in value.items())
        raise _Unknown
    name = _name_of(node)
    if name is None:
        raise _Unknown
    if name in _ANY:
        return True
    kind = _ALIASES.get(name, name)
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return _is_int(value)
    if kind == "float":
        return _is_int(value) or isinstance(value, float)
    if kind == "complex":
        return _is_int(value) or isinstance(value, float)
    if kind == "str":
        return isinstance(value, str)
    if kind in ("list", "set", "tuple"):
        return isinstance(value, list)
    if kind == "dict":
        return isinstance(value, dict)
    raise _Unknown


def _union(options: list[ast.expr], value: Any) -> bool:
    unknown = False
    for option in options:
        try:
            if _matches(option, value):
                return True
        except _Unknown:
            unknown = True
    if unknown:
        raise _Unknown
    return False


def check_value(type_str: str | None, value: Any) -> bool:
    """Does ``value`` (as loaded from YAML) fit the annotation ``type_str``?

    Understands builtins and ``typing`` forms (``Optional``, ``Union``, ``X | Y``, ``List``, ``Dict``, ``Tuple``,
    ``Literal``, ...). YAML has no tuples or sets, so those accept lists. ``float`` accepts ints; ``int`` and
    ``float`` refuse booleans. Annotations it cannot interpret (user classes, ``Callable``) accept anything, as does
    a parameter without annotation.
    """
    if not type_str:
        return True
    try:
        tree = ast.parse(type_str.strip(), mode="eval")
    except SyntaxError:
        return True
    try:
        return _matches(tree.body, value)
    except (_Unknown, SyntaxError, IndexError):
        return True


def _float_text(value: Any) -> float | None:
    if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def coerce_value(type_str: str | None, value: Any, name: str = "value") -> Any:
    """``value`` if it fits ``type_str``; a float for a float-typed ``'1e-3'``; else a one-line UsageError.

    PyYAML follows YAML 1.1 and reads ``1e-3`` as the *string* ``'1e-3'``; for parameters declared ``float``
    (or ``Optional[float]``...) such strings are converted instead of refused.
    """
    if check_value(type_str, value):
        return value
    converted = _float_text(value)
    if converted is not None and check_value(type_str, converted):
        return converted
    hint = " (quote it in the YAML to pass a string)" if type_str and "str" in type_str else ""
    raise UsageError(f"{name}: expected {type_str}, got {type(value).__name__} {value!r}{hint}")


# ----------------------------------------------------------------------------------------------------------------
# YAML-safe values
# ----------------------------------------------------------------------------------------------------------------


def to_yaml_safe(value: Any) -> Any:
    """A value PyYAML's safe dumper can write: tuples/sets become lists, numpy scalars and arrays Python values,
    paths and enums their text/value; anything else unknown its ``str``. Keeps it simple on purpose."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, enum.Enum):
        return to_yaml_safe(value.value)
    # Subclasses (numpy.float64 is a float) are not representable by the safe dumper: make them plain.
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, Mapping):
        return {(k if isinstance(k, (str, int, float, bool)) or k is None else str(k)): to_yaml_safe(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_yaml_safe(v) for v in items]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    for method in ("tolist", "item"):  # numpy arrays / scalars, torch tensors, ...
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                return to_yaml_safe(convert())
            except Exception:  # noqa: BLE001 - a failing conversion falls back to str
                break
    return str(value)


__all__ = [
    "ClassTable",
    "Param",
    "check_value",
    "class_table",
    "coerce_value",
    "merge_tables",
    "param_line",
    "parse_class_source",
    "parse_comment",
    "parse_function_source",
    "render_block",
    "to_yaml_safe",
    "with_block",
    "yaml_comment",
]
