"""Never say green when it is not: an experiment blocked for ever (its required set was removed) is named with its
reason at the end of every run (``xmen run``, ``xmen run -n``, plain ``snakemake`` through the glue, ``xmen ci``),
and ``xmen ci`` fails on it instead of exiting 0 with Snakemake's "Nothing to be done". Local runs only."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import make_set, run_xmen, xmen
from xmen.store import files

BLOCKED_LINE = "not run (blocked): a=y: requirement ../b/* matches no linked experiment"


@pytest.fixture
def orphan(xmen_home: Path, tmp_path: Path) -> Path:
    """Sets ``a`` (``a=y`` requires ``../b/*``, ``a=z`` requires nothing, both finished) and ``b`` removed
    afterwards with ``xmen rm --force``: ``a=z`` is done, ``a=y`` is blocked for ever. The folder holding both."""
    top = tmp_path / "top"
    top.mkdir()
    (top / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (top / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    make_set(top, "b", "{a: x}")
    root = make_set(top, "a", "{a: y}", "--requires", "../b/*")
    assert xmen(None, "register", "{a: z}", "-r", str(root))[0] == 0
    run_xmen("run", cwd=root)  # b's a=x, then a=y and a=z: all finished
    code, _, err = xmen(None, "rm", "-y", "--force", str(top / "b"))
    assert code == 0, err
    return top


def _tail(text: str, lines: int = 2) -> list[str]:
    return text.strip().splitlines()[-lines:]


def test_xmen_run_names_the_blocked_experiment_at_its_end(orphan: Path) -> None:
    proc = run_xmen("run", cwd=orphan / "a")
    assert _tail(proc.stderr) == [
        BLOCKED_LINE, "1 blocked: not run, and no run starts them until what stops them changes"
    ], proc.stderr
    proc = run_xmen("run", "-n", cwd=orphan / "a")
    assert BLOCKED_LINE in _tail(proc.stderr), proc.stdout + proc.stderr


def test_plain_snakemake_names_the_blocked_experiment_after_nothing_to_be_done(orphan: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-c1"], cwd=orphan / "a", capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300)
    said = proc.stdout + proc.stderr
    assert "Nothing to be done" in said
    assert _tail(proc.stderr)[0] == f"xmen: {BLOCKED_LINE}", said


def test_xmen_ci_fails_on_a_blocked_experiment_and_names_it(orphan: Path) -> None:
    proc = run_xmen("ci", ".", cwd=orphan, check=False)
    assert proc.returncode != 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == "Error: 1 experiment(s) blocked, never run: a/a=y (xmen list shows why)", proc.stderr
    assert "xmen: not run (blocked): a/a=y: requirement ../b/* matches no linked experiment" in lines
    assert "Traceback" not in proc.stderr


def test_xmen_ci_is_green_when_nothing_is_left_out(orphan: Path) -> None:
    code, _, err = xmen(None, "unlink", "a=y", "-r", str(orphan / "a"))
    assert code == 0, err
    proc = run_xmen("ci", ".", cwd=orphan)
    assert "not run (" not in proc.stderr


PLANTED = {
    "an empty file": lambda folder: (folder / "xmen.done").write_text(""),
    "a symlink": lambda folder: (folder / "xmen.done").symlink_to("params.yml"),
    "a copy of a real one": lambda folder: (folder / "xmen.done").write_text("finished\nrun: node01 42 2020-03-09\n"),
}
WHY = {
    "an empty file": "its status file xmen.done was not written by xmen (it does not say 'finished')",
    "a symlink": "its status file xmen.done is a symlink (xmen never writes one)",
    "a copy of a real one": "its status file xmen.done says finished, but params.yml says registered",
}


@pytest.mark.parametrize("planted", list(PLANTED))
def test_a_planted_status_file_is_named_at_the_end_of_the_run_and_in_the_list(planted: str, xmen_home: Path,
                                                                              tmp_path: Path) -> None:
    """A file or symlink named xmen.done in a registered experiment made it silently never run: Snakemake takes any
    file of that name as done. It is named as inconsistent (xmen deletes nothing it did not write)."""
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    root = make_set(tmp_path, "set", "{a: x | y}")
    PLANTED[planted](root / "a=x")
    line = f"not run (blocked): a=x: inconsistent: {WHY[planted]}; remove it to run the experiment"
    proc = run_xmen("run", cwd=root)
    assert "Summary: 1 finished" in proc.stderr and line in _tail(proc.stderr), proc.stderr
    assert (root / "a=x" / "xmen.done").is_symlink() == (planted == "a symlink")  # left as it was
    code, out, err = xmen(None, "list", str(root))
    assert code == 0, err
    assert f"! blocked: inconsistent: {WHY[planted]}" in out, out
    proc = run_xmen("ci", ".", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and _tail(proc.stderr, 1) == [
        "Error: 1 experiment(s) blocked, never run: set/a=x (xmen list shows why)"], proc.stderr


def test_xmen_run_verbose_names_a_blocked_experiment_once(orphan: Path) -> None:
    """xmen run -v shows Snakemake's own output: the glue's left-out lines (for a plain snakemake) are not said a
    second time beside xmen's own at the end."""
    assert xmen(None, "register", "{a: w}", "-r", str(orphan / "a"))[0] == 0  # something to run
    proc = run_xmen("run", "-v", cwd=orphan / "a")
    said = (proc.stdout + proc.stderr).splitlines()
    assert [line for line in said if "not run (blocked): a=y" in line] == [BLOCKED_LINE], proc.stdout + proc.stderr
    assert _tail(proc.stderr) == [
        BLOCKED_LINE, "1 blocked: not run, and no run starts them until what stops them changes"
    ], proc.stderr


@pytest.mark.parametrize("planted", ["an empty file", "a symlink"])
def test_reset_never_removes_a_status_file_xmen_did_not_write(planted: str, xmen_home: Path, tmp_path: Path) -> None:
    """xmen reset removes the status files xmen wrote; a planted one (a link, a file without xmen's first line) is
    the user's: it stays, the experiment is not reset, and the error names it. The other experiments are reset."""
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    root = make_set(tmp_path, "set", "{a: x | y}")
    PLANTED[planted](root / "a=x")
    before = (root / "a=x" / "params.yml").read_bytes()
    code, _, err = xmen(None, "reset", "-r", str(root))
    assert code != 0 and "Traceback" not in err
    assert f"a=x: {WHY[planted]}: remove it yourself" in err, err
    assert os.path.lexists(root / "a=x" / "xmen.done") and (root / "a=x" / "params.yml").read_bytes() == before
    assert "_reset" in files.read_yaml(root / "a=y" / "params.yml")


CYCLES = {
    "a self-requirement": ({"a=y": ["a=y"]}, {"a=y": "a=y -> a=y"}),
    "two requiring each other": ({"a=x": ["a=y"], "a=y": ["a=x"]}, {"a=x": "a=x -> a=y -> a=x",
                                                                    "a=y": "a=y -> a=x -> a=y"}),
}


@pytest.mark.parametrize("edit", list(CYCLES))
def test_a_requirement_cycle_written_by_hand_blocks_its_experiments(edit: str, xmen_home: Path,
                                                                   tmp_path: Path) -> None:
    """register refuses a cycle, but experiment.yml can be edited by hand: the planner sees the cycle and blocks the
    experiments on it, named with the cycle at the end of the run, in xmen list and failing xmen ci (it was "1 would
    run", then Snakemake's CyclicGraphException); the others run."""
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    root = make_set(tmp_path, "set", "{a: x | y | z}")
    requires, cycles = CYCLES[edit]

    def add(data: dict) -> dict:
        for name, specs in requires.items():
            data["experiments"][name] = {**(data["experiments"][name] or {}), "requires": specs}
        return data

    files.update_yaml(root / "experiment.yml", add)
    lines = [f"not run (blocked): {name}: requirement cycle: {shown}" for name, shown in cycles.items()]
    proc = run_xmen("run", "-n", cwd=root)
    free = 3 - len(cycles)  # the experiments on no cycle
    assert f"{free} experiment(s) would run." in proc.stdout and "a=z" in proc.stdout, proc.stdout + proc.stderr
    assert all(line in proc.stderr.splitlines() for line in lines), proc.stderr
    proc = run_xmen("run", cwd=root)
    assert f"Summary: {free} finished" in proc.stderr and "Cyclic" not in proc.stderr, proc.stderr
    assert all(line in proc.stderr.splitlines() for line in lines), proc.stderr
    code, out, err = xmen(None, "list", str(root))
    assert code == 0, err
    for shown in cycles.values():
        assert f"! blocked: requirement cycle: {shown}" in out, out
    proc = run_xmen("ci", ".", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and _tail(proc.stderr, 1) == [
        f"Error: {len(cycles)} experiment(s) blocked, never run: "
        f"{', '.join('set/' + name for name in cycles)} (xmen list shows why)"], proc.stderr
    assert "Cyclic" not in proc.stdout + proc.stderr


def test_plain_snakemake_with_the_ci_profile_is_what_the_readme_says(orphan: Path) -> None:
    """README: `snakemake -s "$(xmen workflow)" --profile ci --directory experiments` needs the profile installed,
    exits non-zero on a failed experiment, and names a blocked one with exit code 0 (xmen ci fails on it)."""
    (orphan / "fails.sh").write_text("#!/bin/bash\nexit 3\n")
    failing = make_set(orphan, "c", "{a: f}", script="fails.sh")
    workflow = run_xmen("workflow", cwd=orphan).stdout.strip()
    command = [sys.executable, "-m", "snakemake", "-s", workflow, "--profile", "ci", "--directory", str(orphan),
               "--cores", "1"]

    def snakemake() -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=orphan, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=300)

    proc = snakemake()
    assert proc.returncode != 0 and "ci" in proc.stderr and "profile" in proc.stderr.lower(), proc.stderr
    assert not (failing / "a=f" / "xmen.log").exists()  # it stopped before running anything
    assert xmen(None, "config", "--install-profiles")[0] == 0
    proc = snakemake()
    assert proc.returncode != 0, proc.stdout + proc.stderr  # c/a=f failed
    assert f"xmen: {BLOCKED_LINE.replace('a=y', 'a/a=y', 1)}" in proc.stderr.splitlines(), proc.stderr
    code, _, err = xmen(None, "unlink", "a=f", "-r", str(failing))
    assert code == 0, err
    proc = snakemake()
    assert proc.returncode == 0, proc.stdout + proc.stderr  # only a blocked experiment is left: exit 0
    assert _tail(proc.stderr)[0] == f"xmen: {BLOCKED_LINE.replace('a=y', 'a/a=y', 1)}", proc.stderr


def test_a_status_file_that_starts_like_xmens_is_taken_as_done_by_plain_snakemake_and_reset(xmen_home: Path,
                                                                                           tmp_path: Path) -> None:
    """What the README says of a copied status file beside a registered params.yml: xmen's commands name it (see
    above), plain snakemake, which plans without reading params.yml, takes it as done, and reset removes it."""
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    root = make_set(tmp_path, "set", "{a: x | y}")
    PLANTED["a copy of a real one"](root / "a=x")
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-c1"], cwd=root, capture_output=True, text=True)
    assert dry.returncode == 0 and "a=y/xmen.done" in dry.stdout and "a=x/xmen.done" not in dry.stdout, dry.stdout
    code, _, err = xmen(None, "reset", "a=x", "-r", str(root))
    assert code == 0, err
    assert not os.path.lexists(root / "a=x" / "xmen.done")
