"""xmen.rule_job: what xmen's rule runs for one experiment, and the direct SLURM job that runs it without Snakemake
(the cluster tests are in tests/slurm/test_slurm_step.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xmen import rule_job
from xmen.rule_job import JobSpec


def spec(tmp_path: Path, script: str, **changes) -> JobSpec:
    exp = tmp_path / "a=1"
    exp.mkdir(exist_ok=True)
    (exp / "run.sh").write_text(script)
    values = dict(workdir=str(tmp_path), exp="a=1", attempt=1, retries=0, env={"XMEN_THREADS": "1"}, step=[])
    values.update(changes)
    return JobSpec(**values)


def test_the_spec_is_one_shell_safe_word_and_comes_back_whole():
    original = JobSpec(workdir="/w d", exp="a=x y'\"", attempt=2, retries=1,
                       env={"XMEN_SLURM_EXTRA": "--mail-user='two words' $(touch x) `id`"}, step=["srun", "-n1"])
    word = original.encode()
    assert set(word) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert JobSpec.decode(word) == original
    line = rule_job.command(original, "/usr/bin/python3", ["export A=1 &&", "", None])
    assert line == f"export A=1 && exec /usr/bin/python3 -m xmen.rule_job {word}"


@pytest.mark.parametrize("text", ["", "not base64!", "e30", "eyJ2IjogMX0", "WzFd"])
def test_anything_else_is_not_a_spec(text):
    with pytest.raises(ValueError):
        JobSpec.decode(text)


def test_environment_has_the_threads_for_every_thread_library_and_each_resource():
    env = rule_job.environment(4, {"xmen_attempt": 2, "mem_mb": 100, "_cores": 8, "gres": None, "slurm-extra": "x"},
                               expect="missing;0")
    assert env["XMEN_THREADS"] == env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "4"
    assert all(env[name] == "4" for name in rule_job.THREAD_VARIABLES)
    assert env["XMEN_ATTEMPT"] == "2" and env["XMEN_MEM_MB"] == "100" and env["XMEN_SLURM_EXTRA"] == "x"
    assert env["XMEN_EXPECT_DONE"] == "missing;0"
    assert "XMEN__CORES" not in env and "XMEN_GRES" not in env


def test_an_attempt_beyond_the_retries_is_refused():
    assert rule_job.refusal("e", 2, 1) is None
    assert "attempt 3 is beyond its 1 retries" in rule_job.refusal("e", 3, 1)


def test_a_job_that_succeeds_gets_its_status_file_and_keeps_the_previous_log(tmp_path):
    job = spec(tmp_path, 'echo "threads=$XMEN_THREADS params=$1"\n')
    (tmp_path / "a=1" / "xmen.log").write_text("the first attempt\n")
    assert rule_job.run(job) == 0
    assert (tmp_path / "a=1" / "xmen.done").read_text() == "finished\n"
    assert (tmp_path / "a=1" / "xmen.log").read_text() == "threads=1 params=\n"
    assert (tmp_path / "a=1" / "logs" / "attempt-1.log").read_text() == "the first attempt\n"


def test_a_job_that_fails_says_why_and_writes_no_status_file(tmp_path, capfd):
    assert rule_job.run(spec(tmp_path, "echo 'out of patience' >&2\nexit 3\n")) == 3
    err = capfd.readouterr().err
    assert "a=1 failed with exit code 3 (see a=1/xmen.log" in err and "out of patience" in err
    assert not (tmp_path / "a=1" / "xmen.done").exists()


def test_a_refused_attempt_runs_nothing(tmp_path, capfd):
    assert rule_job.run(spec(tmp_path, "touch ran\n", attempt=2, retries=0)) == 1
    assert "beyond its 0 retries" in capfd.readouterr().err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "a=1" / "xmen.done").exists()


def test_the_job_step_does_not_inherit_the_allocations_slurm_defaults(tmp_path, monkeypatch):
    """With a launcher (srun on a cluster; ``env`` here runs the rest as it is) the allocation's SLURM_* values and
    SRUN_/SBATCH_ defaults stay out, as the plugin's job step keeps them out of its srun; the job id stays."""
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "100")
    monkeypatch.setenv("SBATCH_PARTITION", "main")
    job = spec(tmp_path, 'env | grep -E "^(SLURM|SBATCH|XMEN_THREADS)" | sort > "$(dirname "$0")/env.txt"\n',
               step=["env"])
    assert rule_job.run(job) == 0
    assert (tmp_path / "a=1" / "env.txt").read_text().split() == ["SLURM_JOB_ID=77", "XMEN_THREADS=1"]


def test_a_signal_to_the_job_waits_for_the_experiment_to_end(tmp_path):
    """SLURM signals every step of a job it cancels: the batch shell (this module) must not end before the
    experiment's runner recorded the outcome, or SLURM kills the runner with it."""
    job = spec(tmp_path, 'touch "$(dirname "$0")/started"; sleep 1; echo ended > "$(dirname "$0")/ended"\n')
    proc = subprocess.Popen([sys.executable, "-m", "xmen.rule_job", job.encode()], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "a=1" / "started").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert (tmp_path / "a=1" / "ended").read_text() == "ended\n"
    assert "waiting for the experiment's runner to end" in err


@pytest.mark.parametrize("argv", [[], ["a", "b"], ["garbage"]])
def test_bad_arguments_get_one_line_and_exit_2(argv):
    proc = subprocess.run([sys.executable, "-m", "xmen.rule_job", *argv], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_missing_working_directory_is_one_line(tmp_path):
    job = JobSpec(workdir=os.fspath(tmp_path / "gone"), exp="a=1", attempt=1, retries=0)
    proc = subprocess.run([sys.executable, "-m", "xmen.rule_job", job.encode()], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1 and proc.stderr.startswith("Error: a=1:") and "Traceback" not in proc.stderr
