"""The runner enforces an experiment's time limit (XMEN_RUNTIME, minutes: Snakemake's runtime resource, which the rule
exports) when it runs outside SLURM: SIGTERM at the limit, XMEN_KILL_GRACE, SIGKILL, ``timeout`` naming the limit.

Snakemake gives runtime in whole minutes (``"5s"`` becomes 1): these tests hand the runner a fraction of a minute
directly, which is what XMEN_RUNTIME means, instead of waiting a minute through Snakemake.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xmen.store import files
from xmen.store import status as st
from xmen.run.runner import ENV_RUNTIME, time_limit
from xmen.host.glue import experiment_command

from test_job import _python_job, make_experiment

pytestmark = pytest.mark.usefixtures("xmen_home")

LIMIT = "time limit of 0.05 min reached (runtime), stopped with SIGTERM"


def run_limited(params: Path, script: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    environ = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    environ.update({ENV_RUNTIME: "0.05", "XMEN_KILL_GRACE": "2", **env})  # 3 s
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "xmen.job", str(params), str(script)], capture_output=True,
                          text=True, timeout=60, env=environ)
    return proc, time.monotonic() - started


def test_a_script_running_past_its_limit_is_stopped_and_recorded_timeout(tmp_path: Path) -> None:
    params, script = make_experiment(tmp_path, "sleep 20\n")
    proc, took = run_limited(params, script)
    assert proc.returncode == 128 + 15, proc.stderr
    assert 2.5 < took < 10, took
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT
    assert data["_error"] == LIMIT + "; killed by signal 15"
    assert "time limit of 0.05 min reached" in proc.stderr and not (params.parent / "xmen.done").exists()


def test_an_experiment_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    params, script = make_experiment(tmp_path, "trap '' TERM\nfor i in $(seq 200); do sleep 0.1; done\n")
    proc, took = run_limited(params, script)
    assert 4.5 < took < 12, took  # 3 s limit + 2 s grace
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT and data["_error"].startswith(LIMIT), data["_error"]
    assert "ignored SIGTERM for 2 s; killing it" in proc.stderr


def test_an_experiment_that_exits_cleanly_at_the_limit_is_still_a_timeout(tmp_path: Path) -> None:
    params, script = make_experiment(tmp_path, "trap 'exit 0' TERM\nsleep 20 &\nwait $!\n")
    proc, _ = run_limited(params, script)
    assert proc.returncode != 0
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT and data["_error"] == LIMIT + "; exit code 0"


def test_a_python_experiment_at_its_limit(tmp_path: Path) -> None:
    params, script = _python_job(tmp_path, 30.0)
    proc, took = run_limited(params, script)
    assert took < 10 and proc.returncode == 128 + 15, proc.stderr
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT and data["_error"].startswith(LIMIT), data["_error"]


def test_within_its_limit_an_experiment_finishes(tmp_path: Path) -> None:
    params, script = make_experiment(tmp_path, "sleep 0.5\n")
    proc, _ = run_limited(params, script)
    assert proc.returncode == 0, proc.stderr
    assert files.read_yaml(params)["_status"] == st.FINISHED


def test_under_slurm_the_limit_is_slurms(tmp_path: Path) -> None:
    params, script = make_experiment(tmp_path, "sleep 4\n")
    proc, took = run_limited(params, script, SLURM_JOB_ID="4242")
    assert proc.returncode == 0 and took >= 4, proc.stderr
    assert files.read_yaml(params)["_status"] == st.FINISHED


@pytest.mark.parametrize("value, slurm, expected", [
    ("1", None, 60.0), ("0.05", None, 3.0), ("90", None, 5400.0), ("0", None, None), ("", None, None),
    ("soon", None, None), ("-1", None, None), ("inf", None, None), ("1", "77", None),
])
def test_time_limit(monkeypatch, value, slurm, expected):
    monkeypatch.setenv(ENV_RUNTIME, value)
    if slurm:
        monkeypatch.setenv("SLURM_JOB_ID", slurm)
    else:
        monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert time_limit() == expected


def test_the_rule_hands_runtime_to_the_runner():
    """The rule exports Snakemake's runtime resource (minutes) as XMEN_RUNTIME for every run, local or SLURM."""
    assert "XMEN_RUNTIME=1 " in experiment_command("e", 1, {"runtime": 1, "xmen_attempt": 1})
