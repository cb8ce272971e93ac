"""Retries are per experiment: in a set where one experiment has `--retries 1`, a failing experiment without retries
is not started again (Snakemake's `retries:` is one number per rule; xmen answers per job). Real Snakemake, local;
the SLURM figure (sbatch submissions) is in tests/slurm/test_resources_slurm.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xmen.cli import main

SCRIPT = '#!/bin/bash\necho "attempt ${XMEN_ATTEMPT:-?}" >> "$(dirname "$1")/attempts.txt"\nexit 3\n'


@pytest.fixture
def failing_set(xmen_home, tmp_path, monkeypatch) -> Path:
    (tmp_path / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    (tmp_path / "script.sh").write_text(SCRIPT)
    root = tmp_path / "set"
    assert main(["init", "-s", str(tmp_path / "script.sh"), "-d", str(tmp_path / "defaults.yml"), "-r", str(root)]) == 0
    monkeypatch.chdir(root)
    assert main(["register", "{a: again}", "--retries", "1", "--retry-on", "error"]) == 0  # exit 3 is an error
    assert main(["register", "{a: once}"]) == 0
    return root


def test_an_experiment_without_retries_is_not_started_again(failing_set):
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=failing_set, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "SLURM_CONF": "/dev/null"})
    assert run.returncode != 0
    assert (failing_set / "a=again" / "attempts.txt").read_text().split("\n")[:2] == ["attempt 1", "attempt 2"]
    assert (failing_set / "a=once" / "attempts.txt").read_text() == "attempt 1\n"
    log = run.stdout + run.stderr
    assert log.count("Trying to restart job") == 1, log[-3000:]
    assert "not run again" not in log  # the runner's refusal of an attempt beyond its retries was never needed
