"""The dotted paths users have: those the README shows, those written on users' disks (every run.sh, every
Snakefile, queued SLURM jobs), and the original xmen's imports. They keep working whatever moves inside the
package (tests/test_layers.py checks the layers)."""
from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
#: Dotted names that are files, not Python (``xmen.log``, ``xmen.done``).
NOT_PYTHON = {"xmen.log", "xmen.done", "xmen.yml"}  # file names (xmen.yml: the original's 2021 config)
#: Written on users' disks or typed by users of the original xmen: module -> names it must give.
PATHS = {
    "xmen": ["Experiment", "ExperimentSet", "Root", "XmenError", "__version__", "autodoc", "functional_experiment"],
    "xmen.experiment": ["Experiment", "experiment_parser", "TypedMeta", "load_class", "find_experiment_classes"],
    "xmen.functional": ["functional_experiment", "Root", "autodoc"],
    "xmen.monitor": ["Monitor"],
    "xmen.listing": ["to_dataframe"],
    "xmen.compare": ["compare"],
    "xmen.history": ["read"],
    "xmen.snakemake_glue": ["XmenWorkflow"],
    "xmen.job": ["main"],
    "xmen.rule_job": ["main"],
    "xmen.cli": ["entry_point", "main"],
}


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ImportError(dotted)


def test_every_dotted_path_the_readme_shows_resolves() -> None:
    shown = set(re.findall(r"\bxmen(?:\.[A-Za-z_]\w*)+", README.read_text(encoding="utf-8"))) - NOT_PYTHON
    assert shown, "the README shows no dotted path"
    for dotted in sorted(shown):
        _resolve(dotted)


@pytest.mark.parametrize("module", sorted(PATHS))
def test_the_paths_on_users_disks_give_their_names(module: str) -> None:
    found = importlib.import_module(module)
    assert [name for name in PATHS[module] if not hasattr(found, name)] == []


@pytest.mark.parametrize("module", ["xmen.job", "xmen.rule_job", "xmen.experiment", "xmen.cli"])
def test_the_modules_run_with_python_dash_m(module: str) -> None:
    """``python -m`` of each: a usage error (exit 2, or click's usage) rather than 'No module named'."""
    proc = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True, timeout=60)
    assert "No module named" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
