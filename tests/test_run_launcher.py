"""`xmen run GLOB LAUNCHER...`: every word from the launcher on reaches the launcher unchanged.

Real screen/sbatch/docker/srun are not needed: fake launchers on PATH record the argv they were given.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from xmen.cli import main
from xmen.cli.run import split_launcher

DEFAULTS = "a: h  # (str) A parameter (default='h')\n"
FAKE = """#!/bin/sh
out=$(mktemp "$FAKE_LOG/$(basename "$0").XXXXXX")
for word in "$@"; do printf '%s\\0' "$word"; done > "$out"
"""
VALUE_OPTIONS = {"--profile", "-j", "--jobs", "-r", "--root"}


@pytest.fixture
def exp_set(xmen_home, tmp_path, monkeypatch):
    """A set of two registered shell experiments, and fake launchers on PATH logging into tmp_path/log."""
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text(DEFAULTS)
    bindir, log = tmp_path / "bin", tmp_path / "log"
    bindir.mkdir()
    log.mkdir()
    for name in ("screen", "sbatch", "docker", "srun"):
        (bindir / name).write_text(FAKE)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "set_a"
    assert main(["init", "-s", "script.sh", "-d", "defaults.yml", "-r", str(root)]) == 0
    assert main(["register", "{a: x | y}", "-r", str(root)]) == 0
    monkeypatch.chdir(tmp_path / "log")  # not in the set: -r or the current folder decides, as each test says
    return root


def calls(log: Path, launcher: str) -> list[list[str]]:
    found = sorted(log.glob(f"{launcher}.*"))
    return sorted(path.read_bytes().decode().split("\0")[:-1] for path in found)


@pytest.mark.parametrize(
    "launcher",
    [
        ["screen", "-dm", "bash"],
        ["sbatch", "--partition=gpu"],
        ["sbatch", "--partition", "gpu", "-J", "job", "--", "x"],
        ["docker", "run", "--rm", "image", "bash"],
        ["srun"],
        ["srun", "-n", "1", "-j", "2", "--profile", "p", "-r", "r", "-h"],  # xmen's own flags, but the launcher's here
    ],
)
def test_launcher_words_pass_unchanged(exp_set, tmp_path, capsys, launcher):
    os.chdir(exp_set)
    assert main(["run", "*", *launcher]) == 0, capsys.readouterr().err
    runs = [str(exp_set / name / "run.sh") for name in ("a=x", "a=y")]
    assert calls(tmp_path / "log", launcher[0]) == [[*launcher[1:], run] for run in runs]
    out = capsys.readouterr().out
    assert out.count(f"Running: {' '.join(launcher)} ") == 2 or out.count("Running: ") == 2


def test_xmen_options_still_work_before_the_launcher(exp_set, tmp_path, capsys):
    # -r before the glob, and between the glob and the launcher word
    assert main(["run", "-r", str(exp_set), "a=x", "screen", "-dm", "bash"]) == 0
    assert main(["run", "a=y", "-r", str(exp_set), "sbatch", "--partition=gpu"]) == 0
    assert calls(tmp_path / "log", "screen") == [["-dm", "bash", str(exp_set / "a=x" / "run.sh")]]
    assert calls(tmp_path / "log", "sbatch") == [["--partition=gpu", str(exp_set / "a=y" / "run.sh")]]
    capsys.readouterr()
    # -n: a dry run names what would run and launches nothing
    os.chdir(exp_set)
    assert main(["run", "-n", "*", "srun"]) == 0
    assert "2 experiment(s) would run" in capsys.readouterr().out and calls(tmp_path / "log", "srun") == []
    # Snakemake options and a launcher do not mix
    assert main(["run", "*", "-j", "2", "srun"]) != 0
    assert "launcher" in capsys.readouterr().err


def test_help_documents_the_launcher_forms(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for line in ('xmen run "*" screen -dm bash', 'xmen run "*" sbatch --partition=gpu', 'xmen run "*" srun',
                 'xmen run "*" docker run --rm image bash', "passed unchanged"):
        assert line in out


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], ([], [], [])),
        (["-n"], (["-n"], [], [])),
        (["*", "sh"], (["*"], ["sh"], [])),
        (["*", "screen", "-dm", "bash"], (["*"], ["screen", "-dm", "bash"], [])),
        (["-j", "4", "a=1*"], (["-j", "4", "a=1*"], [], [])),
        (["a=1*", "-j", "4"], (["a=1*", "-j", "4"], [], [])),
        (["-j4", "*", "--profile=slurm"], (["-j4", "*", "--profile=slurm"], [], [])),
        (["--", "--keep-going"], ([], [], ["--keep-going"])),
        (["*", "-n", "--", "-F"], (["*", "-n"], [], ["-F"])),
        (["*", "sbatch", "--", "x"], (["*"], ["sbatch", "--", "x"], [])),
        (["-r", "root", "*", "srun", "-n", "2"], (["-r", "root", "*"], ["srun", "-n", "2"], [])),
    ],
)
def test_split_launcher(args, expected):
    assert split_launcher(args, VALUE_OPTIONS) == expected
