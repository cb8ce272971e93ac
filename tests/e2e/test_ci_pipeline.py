"""A research repository's CI: fresh clone, one command, exit code checked.

The repository keeps an experiment script and small smoke sets (defaults.yml, script.sh, experiment.yml and the
registered folders) in git. CI clones it and runs `xmen ci experiments`, which runs every pending experiment of
every set below that folder with the ci profile and fails when any experiment fails, after running the rest.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

DEFAULTS = "lr: 0.1  # (float) Learning rate (default=0.1)\nbroken: 0  # (int) Fail on purpose (default=0)\n"
SCRIPT = """#!/bin/bash
set -e
grep -q '^broken: 1' "$1" && { echo "this experiment is broken" >&2; exit 3; }
echo "trained with $(grep '^lr:' "$1")" > result.txt
"""


def run(*args: str, cwd: Path, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def research_repo(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path / "home"), XMEN=str(tmp_path / "xmen-config"),
               GIT_AUTHOR_NAME="r", GIT_AUTHOR_EMAIL="r@example.invalid",
               GIT_COMMITTER_NAME="r", GIT_COMMITTER_EMAIL="r@example.invalid")
    (tmp_path / "home").mkdir()
    repo = tmp_path / "research"
    (repo / "code").mkdir(parents=True)
    (repo / "code" / "train.sh").write_text(SCRIPT)
    (repo / "code" / "defaults.yml").write_text(DEFAULTS)
    xmen = [sys.executable, "-m", "xmen.cli"]
    for name, sweep in [("train", "{lr: 0.1 | 0.01}"), ("finetune", "{lr: 0.001}")]:
        root = repo / "experiments" / name
        assert run(*xmen, "init", "-s", "code/train.sh", "-d", "code/defaults.yml", "-r", str(root),
                   cwd=repo, env=env).returncode == 0
        proc = run(*xmen, "register", sweep, cwd=root, env=env)
        assert proc.returncode == 0, proc.stderr
    proc = run(*xmen, "register", "{lr: 0.5}", "--requires", "../train/lr=0.1", cwd=repo / "experiments" / "finetune",
               env=env)
    assert proc.returncode == 0, proc.stderr
    assert run("git", "init", "-q", cwd=repo, env=env).returncode == 0
    assert run("git", "add", ".", cwd=repo, env=env).returncode == 0
    assert run("git", "commit", "-qm", "smoke sweep", cwd=repo, env=env).returncode == 0
    return repo, env


def ci_job(repo: Path, env: dict[str, str], tmp: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """What a CI job does: a fresh clone, then one command."""
    clone = tmp / "clone"
    assert run("git", "clone", "-q", str(repo), str(clone), cwd=tmp, env=env).returncode == 0
    # The one command (xmen is installed in this environment, as a CI image would have it from `pip install`).
    return run(sys.executable, "-m", "xmen.cli", "ci", "experiments", "-j", "2", cwd=clone, env=env), clone


def test_ci_passes_on_a_fresh_clone(research_repo, tmp_path):
    repo, env = research_repo
    proc, clone = ci_job(repo, env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for exp in ["train/lr=0.1", "train/lr=0.01", "finetune/lr=0.001", "finetune/lr=0.5"]:
        folder = clone / "experiments" / exp
        assert (folder / "xmen.done").is_file(), exp
        assert "trained with lr" in (folder / "result.txt").read_text()
    # The clone is not where the sets were registered; xmen ci relinked them, so everything ran in the clone.
    assert not (repo / "experiments" / "train" / "lr=0.1" / "result.txt").exists()


def test_ci_fails_when_an_experiment_fails_after_running_the_rest(research_repo, tmp_path):
    repo, env = research_repo
    root = repo / "experiments" / "train"
    proc = run(sys.executable, "-m", "xmen.cli", "register", "{broken: 1}", cwd=root, env=env)
    assert proc.returncode == 0, proc.stderr
    run("git", "add", ".", cwd=repo, env=env)
    run("git", "commit", "-qm", "a broken experiment", cwd=repo, env=env)
    proc, clone = ci_job(repo, env, tmp_path)
    assert proc.returncode != 0
    assert "this experiment is broken" in proc.stdout + proc.stderr  # the ci profile shows the failed log
    for exp in ["train/lr=0.1", "train/lr=0.01", "finetune/lr=0.001", "finetune/lr=0.5"]:
        assert (clone / "experiments" / exp / "xmen.done").is_file(), exp
    assert not (clone / "experiments" / "train" / "broken=1" / "xmen.done").exists()
