"""The retry policy per failure cause with real Snakemake (local, ``snakemake --cores 1`` on a registered set): an
exception is retried only when asked, a lost runner and a time limit follow the policy, and an out-of-memory retry
gets the next ``mem_mb`` of the list. Snakemake asks ``restart_times`` when a job failed; xmen answers from the
experiment's params.yml (xmen.retry). The SLURM TIMEOUT is in tests/slurm/test_slurm_retry.py."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xmen.store import files
from xmen.cli import main

# Attempt 1 fails the way its `mode` says; every later attempt finishes.
SCRIPT = r"""#!/bin/bash
exp="$(dirname "$1")"
mode=$(sed -n 's/^mode: *\([a-z]*\).*/\1/p' "$1")
echo "attempt=${XMEN_ATTEMPT:-?} mem=${XMEN_MEM_MB:-?}" >> "$exp/attempts.txt"
[ "${XMEN_ATTEMPT:-1}" != 1 ] && exit 0
case "$mode" in
  error) exit 3 ;;
  lost) kill -9 $PPID; exit 0 ;;  # the runner dies without recording an end
  timeout) kill -TERM $PPID; sleep 0.5 & wait ;;  # what a time limit sends the runner
  oom) "$XMEN_TEST_PYTHON" "$XMEN_TEST_VERDICT" "$1" OUT_OF_MEMORY; exit 1 ;;
esac
exit 0
"""
# What the main Snakemake process records when a SLURM job ran out of memory (xmen.slurm), written by the job itself
# here: OUT_OF_MEMORY cannot be provoked without cgroups, nor SLURM run by a local Snakemake.
VERDICT = """import os, sys
from xmen.store import files
from xmen.slurm import sacct as slurm
record = slurm.job_record(os.environ["SLURM_JOB_ID"], 1, {"State": sys.argv[2], "ExitCode": "0:125"})
files.update_yaml(sys.argv[1], lambda data: slurm.apply_verdict(data, record))
"""
NOT_RETRIED_ERROR = "not retried: exceptions and error exits are retried only with --retry-on error"


@pytest.fixture
def new_set(xmen_home, tmp_path, monkeypatch) -> Path:
    (tmp_path / "defaults.yml").write_text("mode: none  # (str) How attempt 1 fails\n")
    (tmp_path / "script.sh").write_text(SCRIPT)
    (tmp_path / "verdict.py").write_text(VERDICT)
    root = tmp_path / "set"
    assert main(["init", "-s", str(tmp_path / "script.sh"), "-d", str(tmp_path / "defaults.yml"), "-r", str(root)]) == 0
    monkeypatch.chdir(root)
    return root


def register(*args: str) -> None:
    assert main(["register", *args]) == 0


def snakemake(root: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    environ.update(SLURM_CONF="/dev/null", XMEN_TEST_PYTHON=sys.executable,
                   XMEN_TEST_VERDICT=str(root.parent / "verdict.py"), **env)
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--keep-going"], cwd=root,
                          capture_output=True, text=True, timeout=180, env=environ)


def attempts(root: Path, exp: str) -> list[str]:
    return (root / exp / "attempts.txt").read_text().split()[::2]


def params(root: Path, exp: str) -> dict[str, Any]:
    return files.read_yaml(root / exp / "params.yml")


def test_an_exception_is_retried_only_when_asked(new_set, capsys):
    register("{mode: error}", "-n", "plain", "--retries", "2")
    register("{mode: error}", "-n", "asked", "--retries", "2", "--retry-on", "error")
    run = snakemake(new_set)
    assert run.returncode != 0
    assert attempts(new_set, "plain") == ["attempt=1"]
    assert attempts(new_set, "asked") == ["attempt=1", "attempt=2"]
    assert params(new_set, "asked")["_status"] == "finished"
    failed = params(new_set, "plain")
    assert failed["_status"] == "error" and failed["_error"] == f"exit code 3; {NOT_RETRIED_ERROR}"
    assert (run.stdout + run.stderr).count("Trying to restart job") == 1
    capsys.readouterr()
    assert main(["list"]) == 0
    assert NOT_RETRIED_ERROR in capsys.readouterr().out  # xmen list says why it was not retried


def test_an_experiment_registered_before_policies_retries_every_failure(new_set):
    """experiment.yml without `retry_on` (written before policies): its retries keep the meaning they had."""
    register("{mode: error}", "-n", "old", "--retries", "1")
    def forget_policy(data: dict[str, Any]) -> None:
        del data["experiments"]["old"]["retry_on"]

    files.update_yaml(new_set / "experiment.yml", forget_policy)
    assert snakemake(new_set).returncode == 0
    assert attempts(new_set, "old") == ["attempt=1", "attempt=2"]


def test_a_lost_runner_is_retried_by_default_but_not_when_the_policy_leaves_it_out(new_set):
    register("{mode: lost}", "-n", "plain", "--retries", "1")
    register("{mode: lost}", "-n", "errors_only", "--retries", "1", "--retry-on", "error")
    assert snakemake(new_set).returncode != 0
    assert attempts(new_set, "plain") == ["attempt=1", "attempt=2"]
    assert params(new_set, "plain")["_status"] == "finished"
    assert attempts(new_set, "errors_only") == ["attempt=1"]
    assert params(new_set, "errors_only")["_error"] == "not retried: a lost runner is not in its --retry-on (error)"


def test_a_time_limit_is_retried_with_a_longer_runtime_or_when_asked(new_set):
    register("{mode: timeout}", "-n", "longer", "--retries", "1", "--resources", "runtime=5,10")
    register("{mode: timeout}", "-n", "same", "--retries", "1", "--resources", "runtime=5")
    register("{mode: timeout}", "-n", "asked", "--retries", "1", "--resources", "runtime=5", "--retry-on", "timeout")
    assert snakemake(new_set).returncode != 0
    assert attempts(new_set, "longer") == ["attempt=1", "attempt=2"]
    assert attempts(new_set, "asked") == ["attempt=1", "attempt=2"]
    assert attempts(new_set, "same") == ["attempt=1"]
    same = params(new_set, "same")
    assert same["_status"] == "timeout"
    assert same["_error"].endswith("; not retried: a time limit is retried when the next attempt asks for a longer "
                                   "runtime (a runtime list) or with --retry-on timeout"), same["_error"]


def test_out_of_memory_is_retried_with_the_next_memory_of_the_list(new_set):
    register("{mode: oom}", "-n", "growing", "--retries", "2", "--resources", "mem_mb=1000,2000")
    register("{mode: oom}", "-n", "same", "--retries", "2", "--resources", "mem_mb=1000")
    assert snakemake(new_set, SLURM_JOB_ID="4242").returncode != 0
    assert (new_set / "growing" / "attempts.txt").read_text() == "attempt=1 mem=1000\nattempt=2 mem=2000\n"
    assert params(new_set, "growing")["_status"] == "finished"
    assert attempts(new_set, "same") == ["attempt=1"]
    same = params(new_set, "same")
    assert same["_slurm"][-1]["state"] == "OUT_OF_MEMORY"
    assert same["_error"].startswith("out of memory (SLURM)")
    assert same["_error"].endswith("; not retried: out of memory is retried when the next attempt asks for more "
                                   "memory (a mem_mb list) or with --retry-on oom"), same["_error"]


def test_the_job_refuses_an_attempt_its_policy_does_not_retry(new_set):
    """The rule's own check (where Snakemake's restart_times could not be hooked): the same decision."""
    from snakemake.exceptions import WorkflowError

    from xmen.host.glue import XmenWorkflow

    register("{mode: error}", "-n", "plain", "--retries", "2")
    def failed(data: dict[str, Any]) -> None:
        data.update(_status="error", _error="exit code 3", _run={"attempt": 1, "ended": "2026-12-03 12:00:00"})

    files.update_yaml(new_set / "plain" / "params.yml", failed)
    glue = object.__new__(XmenWorkflow)
    glue.experiments = {"plain": {"retries": 2, "retry_on": ["default"]}}
    wildcards = type("W", (), {"exp": "plain"})()
    with pytest.raises(WorkflowError, match="not run again, attempt 1 ended by error: exceptions and error exits"):
        glue.run_experiment(wildcards, 1, {"xmen_attempt": 2}, ["plain/xmen.done"])
    assert not (new_set / "plain" / "attempts.txt").exists()


def test_register_refuses_an_unknown_cause_and_writes_nothing(new_set, capsys):
    before = (new_set / "experiment.yml").read_text()
    assert main(["register", "{mode: error}", "--retries", "1", "--retry-on", "oom,nodes"]) != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "Error: --retry-on: unknown cause 'nodes'; known: error, oom, timeout, node, preempted, lost, default, all"]
    assert (new_set / "experiment.yml").read_text() == before
    assert not (new_set / "mode=error").exists()


def test_the_readme_retry_command_stores_its_policy(xmen_home, tmp_path, monkeypatch):
    """The README's `xmen register ... --retry-on default,error`, as written there."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    command = re.search(r"`(xmen register [^`]*--retry-on[^`]*)`", readme).group(1)
    words = shlex.split(" ".join(command.split()))
    (tmp_path / "defaults.yml").write_text("lr: 0.01  # (float) Learning rate\n")
    (tmp_path / "script.sh").write_text("#!/bin/bash\n")
    root = tmp_path / "set"
    assert main(["init", "-s", str(tmp_path / "script.sh"), "-d", str(tmp_path / "defaults.yml"), "-r", str(root)]) == 0
    monkeypatch.chdir(root)
    assert words[:2] == ["xmen", "register"] and main(words[1:]) == 0
    assert files.read_yaml(root / "experiment.yml")["experiments"]["lr=0.1"] == {
        "retries": 2, "retry_on": ["default", "error"]}
