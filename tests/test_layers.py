"""The package's layers, read from the source: every import of every module (also those inside functions) goes to
the same layer or one below it, nothing imports in a circle, and a function-local import of xmen's own modules
exists only for import weight and says so.

Layers, bottom to top (a package imports only from its own layer and those below it)::

    xmen._version, xmen.errors, xmen._assets    the bottom
    xmen.store     the on-disk model
    xmen.slurm     talking to SLURM (squeue, sacct, sinfo)
    xmen.define    what users write: experiments, parameters, the Monitor
    xmen.sets      the ExperimentSet verbs, the generated Snakefile and run.sh
    xmen.run       the planner, the runner, the rule's job, xmen run, cancel
    xmen.look      list, compare, plot, report
    xmen.host      the only package that touches Snakemake's or the plugin's internals
    xmen.cli       the click commands
    xmen, xmen.examples and the old public paths (xmen.job, xmen.experiment, ...)   the top
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xmen"
LAYERS = [
    ("xmen._version", "xmen.errors", "xmen._assets"),
    ("xmen.store",),
    ("xmen.slurm",),
    ("xmen.define",),
    ("xmen.sets",),
    ("xmen.run",),
    ("xmen.look",),
    ("xmen.host",),
    ("xmen.cli",),
]
#: The most function-local imports of xmen's own modules (each one there for import weight).
MAX_LOCAL_IMPORTS = 40
#: The module whose command table names the modules of the commands (imported when a command runs).
LAZY_COMMANDS = "xmen.cli.command"
#: Only the layout module names state files.
LAYOUT = "xmen.store.layout"
#: Lines a module may have unless its docstring says it holds one concept ("One concept").
MAX_LINES = 900


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def layer(module: str) -> int:
    """The layer of a module: its index in LAYERS, or the top."""
    for index, names in enumerate(LAYERS):
        if any(module == name or module.startswith(name + ".") for name in names):
            return index
    return len(LAYERS)


def _target(module: str, node: ast.ImportFrom | ast.Import, alias: ast.alias) -> str | None:
    """The xmen module an import names (a submodule when ``from package import submodule``), else None."""
    if isinstance(node, ast.Import):
        name = alias.name
    else:
        base = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        if node.level:
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        name = f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in MODULES else prefix
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported xmen module, line, inside a function) for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                target = _target(module, node, alias)
                if target and target.split(".")[0] == "xmen" and target != module:
                    found.append((target, node.lineno, id(node) in local))
    if module == LAZY_COMMANDS:  # click's lazy subcommands: ``"module:object"`` strings, imported on first use
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("xmen."):
                found.append((node.value.partition(":")[0], node.lineno, False))
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def test_no_import_goes_up_a_layer():
    upward = [f"{m}:{line} imports {t} (layer {layer(m)} -> {layer(t)})"
              for m, found in GRAPH.items() for t, line, _ in found if layer(t) > layer(m)]
    assert upward == []


def test_nothing_below_the_top_imports_the_top():
    """xmen/__init__.py and the old public paths re-export the layers; nothing inside imports them."""
    top = [f"{m}:{line} imports {t}" for m, found in GRAPH.items() if layer(m) < len(LAYERS)
           for t, line, _ in found if layer(t) == len(LAYERS)]
    assert top == []


def test_no_import_cycle():
    edges = {m: sorted({t for t, _, _ in found}) for m, found in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in edges:
        if module not in index:
            visit(module)
    assert cycles == []


def test_function_local_imports_are_few_and_for_import_weight():
    local = [(m, line) for m, found in GRAPH.items() for _, line, inside in found if inside]
    lines = {m: MODULES[m].read_text(encoding="utf-8").splitlines() for m in MODULES}
    unexplained = sorted({f"{m}:{line}" for m, line in local
                          if "import weight" not in lines[m][line - 1] and "import weight" not in lines[m][line - 2]})
    assert unexplained == []
    assert len({(m, line) for m, line in local}) <= MAX_LOCAL_IMPORTS


def test_only_the_layout_module_defines_state_file_names():
    defined = []
    for module, path in MODULES.items():
        if module == LAYOUT:
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            for target in targets:
                if isinstance(target, ast.Name) and target.id.endswith(("_FILE", "_DIR", "_LOG")):
                    defined.append(f"{module}: {target.id}")
    assert defined == []


def _layout_file_names() -> dict[str, str]:
    """The layout's file and folder names that are only names of xmen's files (value -> constant): ``"xmen"`` (the
    cache folder) is also the program's name, so it is left out."""
    from xmen.store import layout

    return {value: name for name, value in vars(layout).items()
            if name.isupper() and name.endswith(("_FILE", "_DIR", "_LOG", "_LOCK", "_MARKER"))
            and isinstance(value, str) and value != "xmen"}


def test_no_module_spells_out_a_state_file_name():
    """A file name is written once, in the layout: ``os.path.join(exp, "params.yml")`` elsewhere is a second home
    (docstrings may name files; code uses the constants)."""
    names = _layout_file_names()
    spelled = []
    for module, path in MODULES.items():
        if module == LAYOUT:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        spelled += [f"{module}:{node.lineno}: {node.value!r} (layout.{names[node.value]})" for node in ast.walk(tree)
                    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
                    and id(node) not in docstrings]
    assert spelled == []


def test_modules_stay_small_unless_they_hold_one_concept():
    large = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_LINES and "One concept" not in (ast.get_docstring(ast.parse(text)) or ""):
            large.append(f"{module}: {len(text.splitlines())} lines")
    assert large == []


def test_the_layer_packages_import_nothing_themselves():
    """``import xmen.store.layout`` must not load the whole store: each package's __init__ is a docstring."""
    for names in LAYERS[1:-1]:  # xmen.cli is the console script's entry: it imports its commands
        for name in names:
            tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
            assert [type(n).__name__ for n in tree.body] == ["Expr"], name


#: What each entry point must not load (measured on the flat package before the layers: none of these).
NOT_LOADED = {
    "import xmen": {"yaml", "json", "hashlib", "xmen.store", "xmen.define", "xmen.sets", "xmen.run"},
    # every run.sh execs the runner, once per experiment
    "import xmen.job": {"json", "hashlib", "xmen.run.planner", "xmen.slurm", "xmen.sets", "xmen.define"},
    # it starts every direct SLURM job
    "import xmen.rule_job": {"yaml", "hashlib", "datetime", "uuid", "socket", "xmen.store.files",
                             "xmen.run.runner"},
}
HEAVY = ("pandas", "snakemake", "click", "numpy", "matplotlib", "snakemake_executor_plugin_slurm")


@pytest.mark.parametrize("statement", sorted(NOT_LOADED))
def test_entry_points_stay_light(statement):
    code = f"{statement}; import sys; print(' '.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(proc.stdout.split())
    assert sorted(m for m in loaded if m.split(".")[0] in HEAVY) == []
    assert sorted(NOT_LOADED[statement] & loaded) == []


def test_setup_py_ships_every_package():
    """A regular (non-editable) install has every subpackage: setup.py lists them by name."""
    listed = set(re.findall(r'"(xmen(?:\.\w+)*)"', (PACKAGE.parent / "setup.py").read_text(encoding="utf-8")))
    packages = {m for m, path in MODULES.items() if path.name == "__init__.py"}
    assert sorted(packages - listed) == []
