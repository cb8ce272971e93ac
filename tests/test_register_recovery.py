"""A killed `xmen register` is finished by running it again: kill -9 of a real process at random points, and each
state such a kill can leave, built by hand. Folders a user made are never touched."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xmen.store import files, ownership
from xmen.sets.expset import ExperimentSet

from cli_helpers import make_set, xmen

DEFAULTS = "a: h  # (str) A parameter\nb: 17  # (int) Another parameter\n"
SCRIPT = "#!/bin/bash\necho \"running on $1\"\n"
# 1,000 experiments: long enough to be killed while writing folders, short enough for several trials.
SWEEP = "{a: " + " | ".join(f"v{i}" for i in range(40)) + ", b: " + " | ".join(str(i) for i in range(25)) + "}"
N = 40 * 25


@pytest.fixture(autouse=True)
def experiment(tmp_path: Path) -> None:
    """The plain shell experiment of the sets the tests make (make_set) in tmp_path."""
    (tmp_path / "script.sh").write_text(SCRIPT)
    (tmp_path / "defaults.yml").write_text(DEFAULTS)


def _register(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xmen.cli", "register", SWEEP, "-r", str(root), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _folders(root: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and e.name not in ("profiles",) and e.name[0] != ".")


def _comparable(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in ("_created", "_meta")}


def _kill_when(proc: subprocess.Popen, root: Path, folders: int, timeout: float = 30.0) -> int:
    """kill -9 ``proc`` once ``folders`` experiment folders exist (or it ended); the count seen at the kill."""
    deadline = time.monotonic() + timeout
    seen = 0
    while proc.poll() is None and time.monotonic() < deadline:
        seen = sum(1 for e in os.scandir(root) if e.is_dir()) - 1  # minus profiles/
        if seen >= folders:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return seen


def test_kill_9_then_rerun_leaves_exactly_the_set_of_one_run(xmen_home: Path, tmp_path: Path) -> None:
    reference = make_set(tmp_path, "reference", None)
    proc = _register(reference)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    expected_names = ExperimentSet(reference).experiments
    assert len(expected_names) == N
    expected = {n: _comparable(files.read_yaml(reference / n / "params.yml")) for n in expected_names[:: N // 50]}

    rng = random.Random(10)
    # Kill points: while writing folders (random counts), when every folder exists (sync, experiment.yml), and
    # at once (before any folder).
    points = [rng.randint(1, N - 1) for _ in range(3)] + [N, 0]
    report = []
    for trial, point in enumerate(points):
        root = make_set(tmp_path, f"set{trial}", None)
        seen = _kill_when(_register(root), root, point)
        linked = len(ExperimentSet(root).experiments)
        left_over = len(_folders(root)) - linked
        rerun = subprocess.run(
            [sys.executable, "-m", "xmen.cli", "register", SWEEP, "-r", str(root)], capture_output=True, text=True
        )
        report.append((point, seen, linked, left_over, rerun.returncode))
        assert rerun.returncode == 0, rerun.stderr
        assert "not linked" not in rerun.stderr and "Not registered" not in rerun.stderr
        s = ExperimentSet(root)
        assert s.experiments == expected_names  # the same experiments, in the same order
        assert _folders(root) == sorted(expected_names)  # and nothing else
        for name in expected_names:
            folder = root / name
            assert ownership.is_marked_experiment(folder)
            params = files.read_yaml(folder / "params.yml")
            assert params["_name"] == name and params["_status"] == "registered"
            assert (folder / "run.sh").read_text().endswith(f"{root / 'script.sh'}\n")
            if name in expected:
                assert _comparable(params) == {**expected[name], "_root": str(root)}
        stray = [p for p in root.rglob("*.tmp")]
        assert stray == []
    print("kill -9 trials (kill at folders, seen, linked after kill, unlinked left, rerun rc):", report)


@pytest.fixture
def shell_set(xmen_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_set(tmp_path, "set", None)
    monkeypatch.chdir(root)
    return root


def _half_written(root: Path, name: str, params: str | None, run: str | None, marked: bool = True) -> Path:
    folder = root / name
    folder.mkdir()
    if marked:
        ownership.mark_experiment(folder)
    if params is not None:
        (folder / "params.yml").write_text(params)
    if run is not None:
        (folder / "run.sh").write_text(run)
    return folder


def _marker(folder: Path, name: str, root: str) -> None:
    """The marker xmen writes, as a copy brings it: naming ``name`` in the set at ``root``."""
    record = {"created_by": "xmen", "name": name, "root": root}
    (folder / ownership.EXPERIMENT_MARKER).write_text(files.dump_yaml(record))


def _registered_text(tmp_path: Path, sweep: str) -> tuple[str, str]:
    """params.yml and run.sh that register writes for ``sweep`` (in a scratch set), with the scratch root."""
    scratch = make_set(tmp_path, "scratch", None)
    ExperimentSet(scratch).register(sweep)
    name = ExperimentSet(scratch).experiments[0]
    return (scratch / name / "params.yml").read_text(), str(scratch)


@pytest.mark.parametrize("params, run, marked", [
    ("", None, True),  # killed right after creating params.yml
    (None, None, True),  # killed after the marker
    (None, None, False),  # killed between mkdir and the marker: an empty folder
    ("", "#!/bin/bash\n", True),
    ("_name: a=x\n_root: /x\n_status: regist", None, True),  # a torn write (its first lines)
])
def test_half_written_folder_is_repaired(shell_set: Path, capsys, params, run, marked) -> None:
    folder = _half_written(shell_set, "a=x", params, run, marked)
    if marked:
        (folder / ".params.yml.k2j3.tmp").write_text("_name: a=")  # what a killed atomic write leaves
    (shell_set / ".experiment.yml.zz9.tmp").write_text("root: /x\n")
    code, _, err = xmen(capsys, "register", "{a: x | y}")
    assert code == 0, err
    assert "Skipped" not in err
    assert ExperimentSet(shell_set).experiments == ["a=x", "a=y"]
    written = files.read_yaml(folder / "params.yml")
    assert written["_name"] == "a=x" and written["a"] == "x" and written["b"] == 17
    assert (folder / "run.sh").read_text() == (shell_set / "a=y" / "run.sh").read_text().replace("a=y", "a=x")
    assert ownership.is_marked_experiment(folder)
    assert list(shell_set.rglob("*.tmp")) == []


def test_unlinked_folder_with_the_same_values_is_relinked(shell_set: Path, capsys, tmp_path: Path) -> None:
    assert xmen(capsys, "register", "{a: x}")[0] == 0
    folder = shell_set / "a=x"
    run_text = (folder / "run.sh").read_text()
    # As if the kill came after params.yml but before run.sh and experiment.yml.
    assert xmen(capsys, "unlink", "a=x")[0] == 0
    (folder / "run.sh").write_text(run_text[:20])
    code, _, err = xmen(capsys, "register", "{a: x}")
    assert code == 0, err
    assert "Skipped" not in err
    assert ExperimentSet(shell_set).experiments == ["a=x"]
    assert (folder / "run.sh").read_text() == run_text


def test_unlinked_folder_that_ran_is_skipped_with_its_results(shell_set: Path, capsys) -> None:
    assert xmen(capsys, "register", "{a: x}")[0] == 0
    folder = shell_set / "a=x"
    files.update_yaml(folder / "params.yml", lambda p: p.__setitem__("_status", "finished"))
    (folder / "model.ckpt").write_text("weights")
    assert xmen(capsys, "unlink", "a=x")[0] == 0
    before = (folder / "params.yml").read_text()
    code, _, err = xmen(capsys, "register", "{a: x}")
    assert code == 0
    assert "Skipped a=x: folder exists but is not linked (see xmen relink -e)" in err
    assert (folder / "params.yml").read_text() == before and (folder / "model.ckpt").read_text() == "weights"


@pytest.mark.parametrize("setup, why", [
    (lambda f: (f / "notes.txt").write_text("mine"), "xmen did not make it"),  # a user's folder
    (lambda f: (f / "params.yml").write_text("lr: 1\n"), "xmen did not make it"),  # a user's configs folder
    (lambda f: (ownership.mark_experiment(f), (f / "ckpt").write_text("x")), "no readable params.yml but holds ckpt"),
    (lambda f: (ownership.mark_experiment(f), (f / "params.yml").write_text("_name: a=x\na: x\nb: 3\n")),
     "holds other values (b: 3 there, 17 here)"),
    # A marker is trusted only when it names this folder and this set (the ownership rule): a copy is not a leftover.
    (lambda f: _marker(f, "a=z", str(f.parent)), "is not this set's (a copy of a=z"),  # cp -r a=z a=x
    (lambda f: _marker(f, "a=x", "/elsewhere/set"), "is not this set's (made for another set (/elsewhere/set))"),
])
def test_folder_in_the_way_is_never_touched(shell_set: Path, capsys, setup, why) -> None:
    folder = shell_set / "a=x"
    folder.mkdir()
    setup(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, _, err = xmen(capsys, "register", "{a: x | y}")
    assert code == 1
    assert f"Not registered a=x: " in err and why in err, err
    assert err.strip().splitlines()[-1].startswith("Error: 1 experiment(s) not registered")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert ExperimentSet(shell_set).experiments == ["a=y"]  # the other experiment is registered


def test_a_file_in_the_way_is_never_touched(shell_set: Path, capsys) -> None:
    (shell_set / "a=x").write_text("a file\n")
    code, _, err = xmen(capsys, "register", "{a: x}")
    assert code == 1 and "Not registered a=x: a file of that name is in the way" in err
    assert (shell_set / "a=x").read_text() == "a file\n"


def test_unmarked_experiment_of_an_older_xmen_is_skipped_as_before(shell_set: Path, capsys) -> None:
    assert xmen(capsys, "register", "{a: x}")[0] == 0
    assert xmen(capsys, "unlink", "a=x")[0] == 0
    (shell_set / "a=x" / ownership.EXPERIMENT_MARKER).unlink()  # made before folders were marked
    before = (shell_set / "a=x" / "params.yml").read_text()
    code, _, err = xmen(capsys, "register", "{a: x}")
    assert code == 0 and "Skipped a=x: folder exists but is not linked (see xmen relink -e)" in err
    assert (shell_set / "a=x" / "params.yml").read_text() == before
    assert not (shell_set / "a=x" / ownership.EXPERIMENT_MARKER).exists()


def test_an_empty_marker_is_a_killed_register_and_is_repaired(shell_set: Path, capsys) -> None:
    """A kill between creating the marker and writing it leaves it empty: the folder holds nothing of anyone's, so
    the next register finishes it (a marker naming another folder or set is never trusted: see above)."""
    folder = shell_set / "a=x"
    folder.mkdir()
    (folder / ownership.EXPERIMENT_MARKER).write_text("")
    code, _, err = xmen(capsys, "register", "{a: x}")
    assert code == 0, err
    assert ExperimentSet(shell_set).experiments == ["a=x"]
    assert ownership.marker_record(folder) == {"created_by": "xmen", "name": "a=x", "root": str(shell_set)}
