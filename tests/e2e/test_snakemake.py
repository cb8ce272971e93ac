"""Real Snakemake runs of generated sets: targets, dry runs, reruns, dependencies, retries, kills, CI profile."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xmen.store import files
from xmen.sets.expset import ExperimentSet
from xmen.store.locks import flock_held

from cli_helpers import make_set, run_xmen as xmen, wait_until

pytestmark = pytest.mark.timeout(300)

DEFAULTS = """\
a: h  # (str) A parameter (default='h')
b: 17  # (int) Another parameter (default=17)
fail: 0  # (int) Exit code to fail with on the first attempts (default=0)
sleep: 0  # (float) Seconds to sleep (default=0)
"""
# A plain shell experiment: appends to runs.txt (to count runs), can sleep, and fails while
# XMEN_MEM_MB < 2000 when fail is set (to show retries with growing memory).
SCRIPT = r"""#!/bin/bash
params="$1"
value() { sed -n "s/^$1: *\([^ #]*\).*/\1/p" "$params" | tr -d "'"; }
echo "attempt=${XMEN_ATTEMPT:-?} mem=${XMEN_MEM_MB:-?} a=$(value a)" >> runs.txt
sleep "$(value sleep)"
if [ "$(value fail)" != "0" ] && [ "${XMEN_MEM_MB:-0}" -lt 2000 ]; then
    echo "not enough memory: ${XMEN_MEM_MB:-none}" >&2
    exit "$(value fail)"
fi
echo "done a=$(value a)"
"""


def snakemake(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def env(xmen_home, tmp_path, monkeypatch):
    """A temporary HOME/XMEN/XDG_CONFIG_HOME and a plain shell experiment (script.sh, defaults.yml) in tmp_path."""
    (tmp_path / "script.sh").write_text(SCRIPT)
    (tmp_path / "defaults.yml").write_text(DEFAULTS)
    return tmp_path


def statuses(root: Path) -> dict[str, str]:
    exp_set = ExperimentSet(root)
    return {name: exp_set.status_of(name) for name in exp_set.experiments}


def runs(root: Path, name: str) -> list[str]:
    path = root / name / "runs.txt"
    return path.read_text().splitlines() if path.exists() else []


def dry_run_jobs(root: Path, *args: str) -> set[str]:
    """Experiments `snakemake -n` would run."""
    proc = snakemake("-n", *args, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return set(re.findall(r"wildcards: exp=(.+)", proc.stdout + proc.stderr))


def summary_pending(root: Path) -> set[str]:
    """Experiments `snakemake --summary` (which sees every experiment) plans to update."""
    proc = snakemake("--summary", cwd=root)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines() if line.endswith("/xmen.done") or "\t" in line]
    return {r[0][: -len("/xmen.done")] for r in rows if r[0].endswith("/xmen.done") and r[-1] != "no update"}


def xmen_dry_run(root: Path, *args: str) -> dict[str, str]:
    proc = xmen("run", "-n", *args, cwd=root)
    rows = {}
    for line in proc.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and not line.endswith("would run."):
            rows[parts[0]] = " ".join(parts[2:])
    return rows


def test_sweep_runs_with_snakemake_and_status_agrees(env):
    root = make_set(env, "set_a", "{a: 1.0 | 2.0, b: None | cat}")
    proc = snakemake("--cores", "2", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert set(statuses(root).values()) == {"finished"}
    for name in ExperimentSet(root).experiments:
        assert (root / name / "xmen.done").read_text().startswith("finished\nrun: ")  # which run: see test_three_stage
        assert files.read_yaml(root / name / "params.yml")["_status"] == "finished"
        assert "done a=" in (root / name / "xmen.log").read_text()
        assert len(runs(root, name)) == 1
    # Nothing pending afterwards, for both views.
    assert dry_run_jobs(root) == set()
    assert "Nothing to run" in xmen("run", "-n", cwd=root).stdout


def test_lint_finds_only_the_deliberately_missing_log_directive(env):
    # The rule writes each experiment's log (xmen.log) itself and names it in its error message: a `log:`
    # directive would cost a dry run of 10,000 pending experiments 1.2x a minimal Snakefile (see rules/xmen.smk).
    root = make_set(env, "set_a", "{a: x | y}")
    xmen("register", "{a: z}", "--requires", "a=x", "--resources", "mem_mb=100,200 runtime=3", cwd=root)
    proc = snakemake("--lint", cwd=root)
    output = proc.stdout + proc.stderr
    assert re.findall(r"^Lints for (.*?) \(", output, re.MULTILINE) == ["rule xmen_experiment"], output
    assert re.findall(r"^    \* (.+):$", output, re.MULTILINE) == ["No log directive defined"], output


def test_dry_runs_agree_and_list_exactly_the_pending(env):
    root = make_set(env, "set_a", "{a: 1 | 2 | 3}")
    assert dry_run_jobs(root) == {"a=1", "a=2", "a=3"}
    assert set(xmen_dry_run(root)) == {"a=1", "a=2", "a=3"}
    assert set(xmen_dry_run(root).values()) == {"new"}
    xmen("run", "a=1", cwd=root)
    assert statuses(root) == {"a=1": "finished", "a=2": "registered", "a=3": "registered"}
    assert dry_run_jobs(root) == {"a=2", "a=3"}
    assert set(xmen_dry_run(root)) == {"a=2", "a=3"}
    # The glob narrows both.
    assert set(xmen_dry_run(root, "a=2")) == {"a=2"}


def test_reregister_reset_unlink_change_only_what_they_should(env):
    root = make_set(env, "set_a", "{a: 1 | 2}")
    assert snakemake("--cores", "2", cwd=root).returncode == 0
    done_before = {n: (root / n / "xmen.done").stat().st_mtime_ns for n in ("a=1", "a=2")}
    snakefile_before = (root / "Snakefile").read_bytes()

    # Adding experiments regenerates the Snakefile; the finished ones are not rerun ("Code has changed" etc.).
    xmen("register", "{a: 3 | 4}", cwd=root)
    assert (root / "Snakefile").read_bytes() == snakefile_before  # rule text is byte-stable
    assert dry_run_jobs(root) == {"a=3", "a=4"}
    assert summary_pending(root) == {"a=3", "a=4"}  # Snakemake's own check of every experiment agrees
    assert snakemake("--cores", "2", cwd=root).returncode == 0
    assert {n: (root / n / "xmen.done").stat().st_mtime_ns for n in ("a=1", "a=2")} == done_before
    assert [len(runs(root, n)) for n in ("a=1", "a=2", "a=3", "a=4")] == [1, 1, 1, 1]

    # Reset makes exactly that one pending again, with the reason.
    xmen("reset", "a=2", cwd=root)
    assert statuses(root)["a=2"] == "registered"
    assert xmen_dry_run(root) == {"a=2": "reset"}
    assert dry_run_jobs(root) == {"a=2"}

    # Unlink removes it from the workflow but keeps its folder.
    xmen("unlink", "a=2", cwd=root)
    assert dry_run_jobs(root) == set()
    assert (root / "a=2" / "params.yml").exists()
    assert "a=2" not in ExperimentSet(root).experiments
    xmen("relink", "-e", "a=2", cwd=root)
    assert dry_run_jobs(root) == {"a=2"}
    assert snakemake("--cores", "2", cwd=root).returncode == 0
    assert len(runs(root, "a=2")) == 2 and len(runs(root, "a=1")) == 1


def test_dependency_chain_across_two_sets(env):
    train = make_set(env, "train", "{a: t1 | t2}")
    evaluate = make_set(env, "eval", "{a: e1}", "--requires", "../train/a=t*")
    proc = snakemake("--cores", "2", cwd=evaluate)
    assert proc.returncode == 0, proc.stderr
    assert statuses(train) == {"a=t1": "finished", "a=t2": "finished"}
    assert statuses(evaluate) == {"a=e1": "finished"}
    t_done = max((train / n / "xmen.done").stat().st_mtime_ns for n in ("a=t1", "a=t2"))
    e_started = (evaluate / "a=e1" / "runs.txt").stat().st_mtime_ns
    assert e_started >= t_done
    # Rerunning a requirement makes the dependent pending again.
    xmen("reset", "a=t1", cwd=train)
    # Both name the requirement that runs first (xmen run -n used to leave it out: issue 11).
    assert xmen_dry_run(evaluate) == {"a=e1": "requirement ../train/a=t1 pending", "../train/a=t1": "reset"}
    assert dry_run_jobs(evaluate) == {"a=e1", "../train/a=t1"}
    assert snakemake("--cores", "1", cwd=evaluate).returncode == 0
    assert len(runs(evaluate, "a=e1")) == 2 and len(runs(train, "a=t2")) == 1


def test_retries_with_growing_memory(env):
    """The experiment's own exit code says it lacked memory: an error, retried because it asks (--retry-on error)."""
    root = make_set(env, "set_a", "{a: flaky, fail: 3}", "--resources", "mem_mb=1000,2000", "--retries", "2",
                    "--retry-on", "error")
    proc = snakemake("--cores", "1", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert runs(root, "a=flaky__fail=3") == ["attempt=1 mem=1000 a=flaky", "attempt=2 mem=2000 a=flaky"]
    assert statuses(root) == {"a=flaky__fail=3": "finished"}


def test_retries_are_per_experiment(env):
    """Snakemake retries per rule; an experiment registered without retries runs only once and its job is not
    started again (no empty retry job)."""
    root = make_set(env, "set_a", "{a: flaky, fail: 3}", "--resources", "mem_mb=1000,2000", "--retries", "2",
                    "--retry-on", "error")
    xmen("register", "{a: once, fail: 5}", cwd=root)  # no retries, fails whatever its memory
    proc = snakemake("--cores", "1", cwd=root)
    assert proc.returncode != 0
    assert runs(root, "a=flaky__fail=3") == ["attempt=1 mem=1000 a=flaky", "attempt=2 mem=2000 a=flaky"]
    assert runs(root, "a=once__fail=5") == ["attempt=1 mem=1000 a=once"]
    assert statuses(root) == {"a=flaky__fail=3": "finished", "a=once__fail=5": "error"}
    assert files.read_yaml(root / "a=once__fail=5" / "params.yml")["_error"] == "exit code 5"
    assert (proc.stdout + proc.stderr).count("Trying to restart job") == 1  # the flaky one's second attempt only
    assert "beyond its 0 retries" not in proc.stdout + proc.stderr


def test_hand_written_run_sh_still_gets_its_status_file(env):
    """A run.sh that does not go through xmen's runner: the rule writes the status file after it succeeded."""
    root = make_set(env, "set_a", "{a: 1 | 2}")
    (root / "a=1" / "run.sh").write_text("#!/bin/bash\necho by hand\n")
    (root / "a=2" / "run.sh").write_text("#!/bin/bash\nexit 4\n")
    proc = snakemake("--cores", "1", cwd=root)
    assert proc.returncode != 0
    assert (root / "a=1" / "xmen.done").read_text() == "finished\n"
    assert (root / "a=1" / "xmen.log").read_text() == "by hand\n"
    assert not (root / "a=2" / "xmen.done").exists()
    assert not list(root.glob("*/xmen.done.tmp*"))


def test_failure_is_reported_and_the_rest_still_run(env):
    root = make_set(env, "set_a", "{a: ok1 | ok2}")
    xmen("register", "{a: bad, fail: 4}", cwd=root)
    proc = xmen("run", cwd=root, check=False)
    assert proc.returncode != 0
    assert statuses(root) == {"a=ok1": "finished", "a=ok2": "finished", "a=bad__fail=4": "error"}
    assert "exit code 4" in files.read_yaml(root / "a=bad__fail=4" / "params.yml")["_error"]
    assert "error: a=bad__fail=4" in proc.stderr
    assert xmen_dry_run(root) == {"a=bad__fail=4": "failed (error)"}


def test_snakemake_error_names_the_experiment_log_and_shows_it_on_request(env):
    root = make_set(env, "set_a", "{a: bad, fail: 4}")
    proc = snakemake("--cores", "1", cwd=root)
    assert proc.returncode != 0
    assert "a=bad__fail=4 failed with exit code 4 (see a=bad__fail=4/xmen.log" in proc.stderr
    assert "not enough memory: none" not in proc.stderr  # the log itself only with --show-failed-logs

    proc = snakemake("--cores", "1", "--show-failed-logs", cwd=root)
    assert proc.returncode != 0
    assert "Logfile a=bad__fail=4/xmen.log:" in proc.stderr
    assert "not enough memory: none" in proc.stderr
    assert (root / "a=bad__fail=4" / "xmen.log").read_text().startswith("not enough memory: none\n")


def test_ci_profile_fails_after_running_the_others(env):
    root = make_set(env, "set_a", "{a: bad, fail: 2}")
    xmen("register", "{a: ok1 | ok2 | ok3}", cwd=root)
    xmen("config", "--install-profiles", cwd=root)
    assert (env / "xdg" / "snakemake" / "ci" / "config.yaml").is_file()
    proc = snakemake("--profile", "ci", "--cores", "1", cwd=root)
    assert proc.returncode != 0
    assert statuses(root) == {"a=bad__fail=2": "error", "a=ok1": "finished", "a=ok2": "finished", "a=ok3": "finished"}


def test_kill_9_of_a_running_experiment_then_a_new_run_finishes_it(env):
    root = make_set(env, "set_a", "{a: slow, sleep: 30}")
    xmen("register", "{a: quick}", cwd=root)
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=root,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    params = root / "a=slow__sleep=30" / "params.yml"
    wait_until(lambda: "_run" in files.read_yaml(params) and runs(root, "a=slow__sleep=30"), 60,
               "the experiment started", interval=0.2)
    pid = files.read_yaml(params)["_run"]["pid"]
    os.killpg(run.pid, signal.SIGKILL)  # the whole run: snakemake, the job runner, the experiment
    run.wait()
    subprocess.run(["pkill", "-9", "-s", str(run.pid)], check=False)
    assert pid
    wait_until(lambda: statuses(root)["a=slow__sleep=30"] == "lost", 20,  # SIGKILL lands asynchronously
               "a=slow__sleep=30 shown lost", interval=0.2)
    assert statuses(root)["a=slow__sleep=30"] == "lost"  # the runner's pid is gone on this host
    # The next run (its sleep cut short) picks it up again and finishes it.
    text = params.read_text().replace("sleep: 30", "sleep: 0")
    files.write_text_atomic(params, text)
    proc = xmen("run", cwd=root)
    assert statuses(root)["a=slow__sleep=30"] == "finished", proc.stderr


def test_two_xmen_runs_never_run_an_experiment_twice(env):
    root = make_set(env, "set_a", "{a: 1 | 2 | 3, sleep: 1}")
    first = subprocess.Popen([sys.executable, "-m", "xmen.cli", "run", "-j", "2"], cwd=root,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: flock_held(root / ".xmen" / "run.lock"), 60, "the first xmen run holding the set's run lock",
               proc=first)
    second = xmen("run", cwd=root, check=False)
    # A plain snakemake at the same time, on the same targets, is stopped by the job runner's lock.
    third = snakemake("--cores", "2", cwd=root)
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert second.returncode != 0 and "another xmen run" in second.stderr
    for name in ExperimentSet(root).experiments:
        assert len(runs(root, name)) == 1, (name, runs(root, name), third.stderr[-2000:])
    assert set(statuses(root).values()) == {"finished"}


def test_launcher_form_runs_each_pending_run_sh(env):
    root = make_set(env, "set_a", "{a: 1 | 2}")
    proc = xmen("run", "*", "bash", cwd=root)
    assert proc.stdout.count("Running: bash ") == 2
    assert statuses(root) == {"a=1": "finished", "a=2": "finished"}
    # Finished by a launcher is finished for Snakemake too: the status file agrees.
    assert dry_run_jobs(root) == set()


def test_run_says_when_nothing_matches(env):
    """An empty set is nothing to do (exit 0); a glob that matches no experiment is a mistake (exit 1, one line)."""
    root = make_set(env, "set_e", None)
    proc = xmen("run", cwd=root)
    assert "the set has no experiments yet" in proc.stderr
    assert "the set has no experiments yet" in xmen("run", "-n", cwd=root).stdout
    make_set(env, "set_g", "{a: 1 | 2}")
    proc = xmen("run", "zzz*", cwd=env / "set_g", check=False)
    assert proc.returncode == 1
    assert proc.stderr == f"Error: no linked experiment matches 'zzz*' in {env / 'set_g'}\n"
    proc = xmen("run", "-j", "0", cwd=env / "set_g", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "-j" in proc.stderr
    assert set(statuses(env / "set_g").values()) == {"registered"}  # nothing ran
