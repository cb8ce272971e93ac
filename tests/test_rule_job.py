"""xmen.rule_job: what xmen's rule runs for one experiment, and the direct SLURM job that runs it without Snakemake
(the cluster tests are in tests/slurm/test_slurm_step.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xmen.run import rule_job
from xmen.run.rule_job import JobSpec

from cli_helpers import wait_until


def spec(tmp_path: Path, script: str, **changes) -> JobSpec:
    exp = tmp_path / "a=1"
    exp.mkdir(exist_ok=True)
    (exp / "run.sh").write_text(script)
    values = dict(workdir=str(tmp_path), exp="a=1", attempt=1, env={"XMEN_THREADS": "1"}, step=[])
    values.update(changes)
    return JobSpec(**values)


def test_the_spec_is_one_shell_safe_word_and_comes_back_whole():
    original = JobSpec(workdir="/w d", exp="a=x y'\"", attempt=2, refused="",
                       env={"XMEN_SLURM_EXTRA": "--mail-user='two words' $(touch x) `id`"}, step=["srun", "-n1"])
    other = JobSpec(workdir="/w d", exp="b", attempt=2, refused="b: not run again", inputs=["a=x y'\"/xmen.done"])
    word = rule_job.encode([original, other])
    assert set(word) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert rule_job.decode(word) == [original, other]
    line = rule_job.command([original, other], "/usr/bin/python3", "/opt/x", ["export A=1 &&", "", None])
    assert line == f"export A=1 && exec /usr/bin/python3 -c '{rule_job._BOOT}' /opt/x {word}"
    assert rule_job.command([original], "/my python/bin/python", "/opt/x") is None  # the plugin's step, then
    assert rule_job.command([original], "/usr/bin/python3", "/opt/$HOME") is None


def test_the_job_finds_xmen_where_the_submitting_process_found_it(tmp_path):
    """A Snakemake installed apart from xmen (pipx) imports xmen from the path the Snakefile appends: so does the
    job, whose python is Snakemake's."""
    import yaml
    import xmen

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                          text=True, check=True).stdout.strip()
    Path(site, "deps.pth").write_text(str(Path(yaml.__file__).resolve().parents[1]) + "\n")  # yaml, not xmen
    no_xmen = subprocess.run([str(python), "-c", "import xmen"], capture_output=True, cwd=tmp_path)
    if no_xmen.returncode == 0:
        pytest.skip("xmen is installed where yaml is: cannot make a python without it here")
    job = spec(tmp_path, "echo ran\n")
    line = rule_job.command([job], str(python), str(Path(xmen.__file__).resolve().parents[1]))
    proc = subprocess.run(["sh", "-c", line], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a=1" / "xmen.log").read_text() == "ran\n" and (tmp_path / "a=1" / "xmen.done").is_file()


def test_the_job_makes_its_temporary_folder(tmp_path):
    job = spec(tmp_path, 'echo "$XMEN_TMPDIR" > "$(dirname "$0")/tmp.txt"\n',
               env={"XMEN_TMPDIR": str(tmp_path / "scratch" / "x")})
    assert rule_job.run(job) == 0
    assert (tmp_path / "scratch" / "x").is_dir()
    default = spec(tmp_path, 'echo "$XMEN_TMPDIR" > "$(dirname "$0")/tmp.txt"\n')
    assert rule_job.run(default) == 0
    assert (tmp_path / "a=1" / "tmp.txt").read_text().strip() == __import__("tempfile").gettempdir()


def _packed(data) -> str:
    import base64, json, zlib

    return base64.urlsafe_b64encode(zlib.compress(json.dumps(data).encode())).decode()


@pytest.mark.parametrize("text", ["", "not base64!", "e30", "eyJ2IjogMX0", _packed([1]), _packed({"v": 2}),
                                  _packed({"v": 2, "jobs": []}), _packed({"v": 2, "jobs": [1]}),
                                  _packed({"v": 2, "jobs": [{"workdir": "w", "exp": "e", "attempt": 1,
                                                             "env": {"A": 1}}]}),
                                  _packed({"v": 2, "jobs": [{"workdir": "w", "exp": "e", "attempt": 1,
                                                             "refused": 0}]}),
                                  _packed({"v": 2, "jobs": [{"workdir": "w", "exp": "e", "attempt": 1,
                                                             "rm": "-rf"}]})])
def test_anything_else_is_not_a_spec(text):
    with pytest.raises(ValueError):
        rule_job.decode(text)


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
    refused = rule_job.refusal("a=1", 2, 0)
    assert rule_job.run(spec(tmp_path, "touch ran\n", attempt=2, refused=refused)) == 1
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


def sigterm_once_started(specs: list[JobSpec], started: Path) -> tuple[int, str]:
    """Run the job (``python -m xmen.rule_job``), SIGTERM it alone once ``started`` exists: its exit code and stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "xmen.rule_job", rule_job.encode(specs)], stderr=subprocess.PIPE,
                            text=True, cwd=started.parent.parent)
    wait_until(started.exists, 30, f"{started.parent.name} started", proc=proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_a_signal_to_the_job_waits_for_the_experiment_to_end(tmp_path):
    """SLURM signals every step of a job it cancels: the batch shell (this module) must not end before the
    experiment's runner recorded the outcome, or SLURM kills the runner with it."""
    job = spec(tmp_path, 'touch "$(dirname "$0")/started"; sleep 1; echo ended > "$(dirname "$0")/ended"\n')
    returncode, err = sigterm_once_started([job], tmp_path / "a=1" / "started")
    assert returncode == 0, err
    assert (tmp_path / "a=1" / "ended").read_text() == "ended\n"
    assert "waiting for the experiment's runner to end" in err


@pytest.mark.parametrize("argv", [[], ["a", "b"], ["garbage"]])
def test_bad_arguments_get_one_line_and_exit_2(argv):
    proc = subprocess.run([sys.executable, "-m", "xmen.rule_job", *argv], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_missing_working_directory_is_one_line(tmp_path):
    job = JobSpec(workdir=os.fspath(tmp_path / "gone"), exp="a=1", attempt=1)
    proc = subprocess.run([sys.executable, "-m", "xmen.rule_job", rule_job.encode([job])], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1 and proc.stderr.startswith("Error: ") and "gone" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def pack(tmp_path: Path, scripts: dict[str, str], **changes) -> list[JobSpec]:
    specs = []
    for name, script in scripts.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.sh").write_text(script)
        values = dict(workdir=str(tmp_path), exp=name, attempt=1, env={"XMEN_THREADS": "1"})
        values.update(changes.get(name, {}))
        specs.append(JobSpec(**values))
    return specs


def test_a_pack_runs_every_experiment_and_one_failure_fails_alone(tmp_path, capfd):
    specs = pack(tmp_path, {"a": "exit 4\n", "b": "echo b\n", "c": "echo c\n"},
                 c={"inputs": ["b/xmen.done"]})
    assert rule_job.run_all(specs) == 4
    assert not (tmp_path / "a" / "xmen.done").exists()
    assert (tmp_path / "b" / "xmen.done").is_file() and (tmp_path / "c" / "xmen.done").is_file()
    assert "a failed with exit code 4" in capfd.readouterr().err


def test_a_pack_member_whose_requirement_failed_in_it_is_not_run(tmp_path, capfd):
    specs = pack(tmp_path, {"a": "exit 1\n", "b": "touch ran\n"}, b={"inputs": ["a/xmen.done"]})
    assert rule_job.run_all(specs) == 1
    assert not (tmp_path / "ran").exists() and not (tmp_path / "b" / "xmen.done").exists()
    assert "b: not run, its requirement a/xmen.done is not there" in capfd.readouterr().err


def test_a_packs_retry_does_not_refuse_what_its_first_attempt_finished(tmp_path):
    """Snakemake retries a failed pack whole: an experiment of it without retries that finished in the first
    attempt is not refused (that would fail the retry) and not run again."""
    from xmen.run import runner

    specs = pack(tmp_path, {"a": "touch ran\n"})
    (tmp_path / "a" / "params.yml").write_text("_status: registered\n")
    token = runner.done_token(tmp_path / "a")
    (tmp_path / "a" / "xmen.done").write_text("finished\n")  # the first attempt finished it
    retry = JobSpec(**{**specs[0].__dict__, "attempt": 2, "env": {"XMEN_EXPECT_DONE": token},
                       "refused": rule_job.refusal("a", 2, 0)})
    (tmp_path / "a" / "xmen.log").write_text("the first attempt's output\n")
    assert rule_job.run_all([retry]) == 0
    assert not (tmp_path / "ran").exists()
    assert (tmp_path / "a" / "xmen.log").read_text() == "the first attempt's output\n"  # its log stays
    assert rule_job.run_all([JobSpec(**{**retry.__dict__, "env": {}})]) == 1  # nothing says it finished since


def test_a_member_whose_folder_broke_fails_alone(tmp_path, capfd):
    specs = pack(tmp_path, {"a": "echo a\n", "b": "echo b\n"})
    (tmp_path / "a" / "xmen.log").write_text("old\n")
    (tmp_path / "a" / "logs").write_text("a file where the kept logs go: keeping the old log fails")
    assert rule_job.run_all(specs) == 1
    assert (tmp_path / "b" / "xmen.done").is_file()
    assert "Error: a: " in capfd.readouterr().err


def test_a_stopped_pack_starts_no_other_experiment(tmp_path):
    scripts = {"a": 'touch "$(dirname "$0")/started"; sleep 1\n', "b": "touch ran\n"}
    specs = pack(tmp_path, scripts)
    returncode, err = sigterm_once_started(specs, tmp_path / "a" / "started")
    assert returncode == 128 + signal.SIGTERM, err
    assert (tmp_path / "a" / "xmen.done").is_file()  # it ran to its end
    assert not (tmp_path / "ran").exists() and "not started: b" in err
