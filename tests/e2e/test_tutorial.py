"""The tutorial flow, exactly as users know it, with a temporary HOME and XMEN, then run by Snakemake."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import xmen.examples.experiment as example

pytestmark = pytest.mark.timeout(300)

SET_ROOT = Path("/tmp/experiments/set_a")  # the tutorial's own path


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "xmen" / "python").mkdir(parents=True)
    (home / "xmen" / "examples").mkdir(parents=True)
    shutil.copy(example.__file__, home / "xmen" / "examples" / "experiment.py")
    shutil.rmtree(SET_ROOT, ignore_errors=True)
    yield home
    shutil.rmtree(SET_ROOT, ignore_errors=True)


def shell(command: str, home: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """One tutorial line, run by bash as a user would type it (so ~ and cd work)."""
    env = dict(os.environ, HOME=str(home), XMEN=str(tmp_path / "xmen-config"))
    bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=240,
                          cwd=tmp_path)


def test_the_tutorial_flow_as_written(home, tmp_path):
    def run(line: str) -> subprocess.CompletedProcess:
        proc = shell(f"cd {SET_ROOT} 2>/dev/null; {line}", home, tmp_path)
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
        return proc

    run("xmen config --disable_prompt")
    run("xmen config --add_path ~/xmen/python")
    run("xmen config --add ~/xmen/examples/experiment.py")
    run("xmen config -H ''")
    run("mkdir -p /tmp/experiments/set_a && cd /tmp/experiments/set_a")
    init = run("xmen init -n AnExperiment")
    assert f"Experiment root created at {SET_ROOT}" in init.stdout + init.stderr
    assert sorted(p.name for p in SET_ROOT.iterdir()) == [
        "Snakefile", "defaults.yml", "experiment.yml", "profiles", "script.sh"]
    defaults = (SET_ROOT / "defaults.yml").read_text()
    assert "a: h" in defaults and "A parameter (default='h')" in defaults
    assert "b: 17" in defaults and "Another parameter (default=17)" in defaults

    empty = run("xmen list")
    assert empty.stdout.startswith("No experiments found")

    run('xmen register "{a: 1.0 | 2.0, b: None | cat}"')
    names = ["a=1.0__b=None", "a=1.0__b=cat", "a=2.0__b=None", "a=2.0__b=cat"]
    assert sorted(p.name for p in SET_ROOT.iterdir() if (p / "params.yml").exists()) == sorted(names)

    table = run('xmen list -v -p ".*"').stdout
    header = table.splitlines()[0].split()
    for column in ["root", "name", "created", "type", "purpose", "mac", "host", "user", "home", "status", "commit",
                   "a", "b"]:
        assert column in header, (column, header)
    assert header.index("a") > header.index("status")
    for name in names:
        assert name in table
    assert table.count("registered") == 4 and table.count("AnExperiment") == 4

    run('xmen note "A test of the xmen experiment suite"')
    notebook = run("xmen list -l").stdout
    assert str(SET_ROOT) in notebook
    for name in names:
        assert f"|- {name}" in notebook
    for label in ["Purpose:", "Created:", "Type: AnExperiment", "Notes:", "A test of the xmen experiment suite"]:
        assert label in notebook

    status = run("xmen list -sm").stdout
    assert status.split("\n")[0].split() == ["root", "name", "status"]
    assert status.count("registered") == 4
    assert "Roots relative to: /tmp/experiments" in status

    # Running, the tutorial's launcher way, then the Snakemake way on a new sweep.
    ran = run('xmen run "*" sh')
    assert ran.stdout.count("Running: sh ") == 4
    assert "The experiment state inside run is running" in ran.stdout
    messages = run("xmen list -m --csv").stdout
    frame = pd.read_csv(io.StringIO(messages))
    assert list(frame["name"]) == names and frame["time"].notna().all()
    for name in names:
        assert (SET_ROOT / name / "logs.txt").read_text() == "This was written from a running experiment"

    run('xmen register "{a: 3.0, b: 5}"')
    run("snakemake --cores 2")
    csv = pd.read_csv(io.StringIO(run("xmen list -s --csv").stdout))
    assert set(csv["status"]) == {"finished"} and len(csv) == 5
