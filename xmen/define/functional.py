"""Functional experiments: a plain function whose first argument is the experiment's ``Root``.

As in the original xmen (2021)::

    def hello_world(
        root: Root,        # the experiment: root.directory, root.message(...)
        a: str = 'Hello',  # the first
        # argument
        b: str = 'World',  # the second argument
    ):
        \"\"\"A hello world experiment.\"\"\"
        root.message({'a': a, 'b': b})

The other arguments are its parameters; the comment after each (continued on comment-only lines) is its help.
:func:`functional_experiment` turns the function into an :class:`~xmen.experiment.Experiment` subclass with those
parameters and docs, whose ``run()`` calls the function; ``xmen config --add``, ``xmen init -n hello_world``,
``--help``, ``register`` and ``run`` do so themselves (see :func:`xmen.experiment.load_class`).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from xmen.errors import ExperimentError
from xmen.define.experiment import Experiment
from xmen.define.parameters import ClassTable, Param, parse_function_source, render_block, with_block

_ORIGINAL_DOC = "__xmen_doc__"


class Root(Experiment):
    """The first argument of a functional experiment: the running experiment itself (``root.directory``,
    ``root.message(...)``, ``root.status``...)."""


def read_params(fn: Callable[..., Any]) -> dict[str, Param]:
    """The parameter table of ``fn`` (its arguments after the first), read from its source; empty without one."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return {}
    try:
        return parse_function_source(source, getattr(fn, "__qualname__", ""))
    except SyntaxError:
        return {}


def _check(fn: Callable[..., Any]) -> inspect.Signature:
    if not inspect.isfunction(fn):
        raise ExperimentError(f"a functional experiment must be a function, got {type(fn).__name__}")
    signature = inspect.signature(fn)
    if not signature.parameters:
        raise ExperimentError(f"{fn.__qualname__} needs a first argument (the Root) to be an experiment")
    for param in list(signature.parameters.values())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ExperimentError(f"{fn.__qualname__}: *{param.name} cannot be a parameter (name each one)")
    return signature


def is_functional(obj: Any) -> bool:
    """Is ``obj`` a function whose first argument is annotated ``Root``?"""
    if not inspect.isfunction(obj):
        return False
    try:
        first = next(iter(inspect.signature(obj).parameters.values()), None)
    except (TypeError, ValueError):
        return False
    if first is None:
        return False
    annotation = first.annotation
    if isinstance(annotation, str):
        return annotation.strip("\"' ").split(".")[-1] == "Root"
    return isinstance(annotation, type) and issubclass(annotation, Root)


def functional_experiment(fn: Callable[..., Any]) -> type[Experiment]:
    """The Experiment class of a functional experiment: named like ``fn``, its parameters ``fn``'s arguments
    after the first (defaults as class attributes, copied per instance), its docs ``fn``'s docstring and the
    ``Parameters:`` block, its ``run()`` ``fn(self, **parameters)``."""
    signature = _check(fn)
    table = read_params(fn)
    namespace: dict[str, Any] = {
        "__module__": fn.__module__,
        "__qualname__": fn.__qualname__,
        "xmen_function": staticmethod(fn),
    }
    for param in list(signature.parameters.values())[1:]:
        if param.default is not param.empty:
            namespace[param.name] = param.default
        table.setdefault(param.name, Param(name=param.name, owner=fn.__qualname__))

    def run(self: Experiment) -> Any:
        return fn(self, **self.parameters())

    run.__doc__ = f"Calls {fn.__qualname__}(root, **parameters)."
    namespace["run"] = run
    cls = type(fn.__name__, (Root,), namespace)
    Experiment._adopt_table(cls, table, getattr(fn, _ORIGINAL_DOC, fn.__doc__), own=ClassTable(dict(table), {}))
    return cls


def autodoc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding the ``Parameters:`` block of a functional experiment to its docstring (``help(fn)``)."""
    table = read_params(fn)
    setattr(fn, _ORIGINAL_DOC, fn.__doc__)
    if table:
        fn.__doc__ = with_block(fn.__doc__, table) or render_block(table)
    return fn


__all__ = ["Root", "autodoc", "functional_experiment", "is_functional", "read_params"]
