"""Finding and loading experiment classes: ``SCRIPT.py:ClassName`` imported by path (classes and functional
experiments), the classes of a script found without importing it, and ``python -m xmen.experiment``."""
from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from xmen.define.experiment import Experiment
from xmen.define.functional import functional_experiment, is_functional
from xmen.errors import UsageError, XmenError


def find_experiment_classes(script_path: str | os.PathLike[str]) -> list[str]:
    """Names of the top-level classes of a script deriving from ``Experiment``, and of its functional experiments
    (functions whose first argument is annotated ``Root``), found by AST (no import).

    A base counts when it is spelled ``Experiment`` / ``something.Experiment``, or is another class of the same
    file that counts (subclasses of classes imported from elsewhere cannot be seen without importing).
    """
    try:
        source = Path(script_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{script_path}: cannot read: {exc}") from None
    try:
        tree = ast.parse(source, filename=os.fspath(script_path))
    except SyntaxError as exc:
        raise UsageError(f"{script_path}: invalid Python (line {exc.lineno}): {exc.msg}") from None
    found: list[str] = []
    known = {"Experiment", "Root"}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.posonlyargs + node.args.args
            annotation = args[0].annotation if args else None
            if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
                spelled = annotation.value.split(".")[-1]
            else:
                spelled = annotation.attr if isinstance(annotation, ast.Attribute) else getattr(annotation, "id", None)
            if spelled == "Root":  # a functional experiment (xmen.functional)
                found.append(node.name)
            continue
        if not isinstance(node, ast.ClassDef):
            continue
        for base in node.bases:
            name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else None
            if name in known:
                found.append(node.name)
                known.add(node.name)
                break
    return found


def _module_name_for(path: str) -> str:
    """A module name for a script imported by path: its stem, unless that would shadow another module."""
    stem = Path(path).stem
    if stem.isidentifier():
        loaded = sys.modules.get(stem)
        if loaded is not None:
            if getattr(loaded, "__file__", None) and os.path.abspath(loaded.__file__) == path:
                return stem
        else:
            try:
                spec = importlib.util.find_spec(stem)
            except (ImportError, ValueError):
                spec = None
            if spec is None or (spec.origin and os.path.abspath(spec.origin) == path):
                return stem
    return f"_xmen_script_{abs(hash(path)):x}_{''.join(c if c.isalnum() else '_' for c in stem)}"


def load_class(spec: str) -> type["Experiment"]:
    """Import ``SCRIPT.py:ClassName`` by path and return that Experiment subclass.

    The script's folder goes first on ``sys.path`` (as when it runs as a script); its module is registered in
    ``sys.modules`` so that ``inspect`` finds its source. Errors in the user's module propagate with their traceback.
    """
    path_text, sep, qualname = spec.rpartition(":")
    if not sep or not path_text or not qualname:
        raise UsageError(f"expected SCRIPT.py:ClassName, got {spec!r}")
    path = os.path.abspath(path_text)
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = _module_name_for(path)
    module = sys.modules.get(name)
    if module is None:
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise UsageError(f"{path}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            available = ", ".join(find_experiment_classes(path)) or "none found"
            raise UsageError(f"{path} has no class {qualname!r} (Experiment classes: {available})")
    if inspect.isfunction(obj):
        if not is_functional(obj):
            raise UsageError(f"{path}:{qualname} is a function, but its first argument is not annotated Root")
        return functional_experiment(obj)
    if not (isinstance(obj, type) and issubclass(obj, Experiment)):
        raise UsageError(f"{path}:{qualname} is not a subclass of xmen.experiment.Experiment")
    return obj


def main(argv: list[str] | None = None) -> None:
    """``python -m xmen.experiment SCRIPT.py:ClassName [flags]``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0].startswith("-"):
        print("error: usage: python -m xmen.experiment SCRIPT.py:ClassName [--execute PARAMS | --to_root DIR | "
              "--register ROOT NAME | --debug [DIR] | --help ...]", file=sys.stderr)
        raise SystemExit(2)
    try:
        cls = load_class(args[0])
    except XmenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    exp = cls()
    exp.main(exp.parse_args(args[1:], prog=f"python -m xmen.experiment {args[0]}"))
