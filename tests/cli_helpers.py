"""Helpers of the tests that drive the CLI in-process (``xmen.cli.main`` and capsys) on a plain shell experiment
(the ``shell_experiment`` fixture of conftest.py writes its files). A module, not conftest.py: tests/ and
tests/slurm/ each have a conftest.py, and ``import conftest`` gets whichever one pytest loaded last."""
from __future__ import annotations

from pathlib import Path

from xmen.cli import main


def xmen(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``xmen ARGS`` in this process: (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def make_set(env: Path, capsys, name: str = "set_a", sweep: str | None = "{a: x | y | z}",
             script: str = "script.sh") -> Path:
    """``xmen init`` a set ``env/name`` of ``script`` with defaults.yml, and register ``sweep`` (None: nothing)."""
    root = env / name
    code, _, err = xmen(capsys, "init", "-s", script, "-d", "defaults.yml", "-r", str(root))
    assert code == 0, err
    if sweep:
        code, _, err = xmen(capsys, "register", sweep, "-r", str(root))
        assert code == 0, err
    return root
