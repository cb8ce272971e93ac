"""The retry policy per failure cause on the real cluster: the main Snakemake process decides a retry from SLURM's
verdict (recorded before Snakemake hears of the failure, xmen.slurm) and the retry job's own check agrees.

A SLURM TIMEOUT is not provoked here: SLURM's time limits are whole minutes and slurmctld checks them every 30 s, so
one takes 60-90 s (tests/slurm/test_slurm.py::test_time_limit_ends_as_timeout); the time-limit cause is decided the
same way (tests/test_retry_policy.py through apply_verdict, tests/test_retry_causes.py with real Snakemake).
OUT_OF_MEMORY and NODE_FAIL cannot be provoked on this cluster (no cgroups): same tests. PREEMPTED is, by a job of
the cluster's hidden partition `urgent`."""
from __future__ import annotations

import subprocess

import pytest

from test_slurm import (  # noqa: F401  (fixtures: slurm, env)
    all_done, env, params, sh, slurm, submitted_tasks, wait_for_sacct,
)

from cli_helpers import wait_until

# Attempt 1 fails the way its `mode` says (lost: its runner is killed, so SLURM says FAILED and the runner never
# recorded an end); later attempts finish.
SCRIPT = r"""#!/bin/bash
mode=$(sed -n 's/^mode: *\([a-z]*\).*/\1/p' "$1")
echo "attempt=${XMEN_ATTEMPT:-?} job=${SLURM_JOB_ID:-none}" >> runs.txt
[ "${XMEN_ATTEMPT:-1}" != 1 ] && exit 0
[ "$mode" = lost ] && kill -9 $PPID
exit 0
"""
RES = ("--resources", "mem_mb=100 runtime=2")


def attempts(root, name: str) -> list[str]:
    return [line.split()[0] for line in (root / name / "runs.txt").read_text().splitlines()]


@pytest.mark.slurm
@pytest.mark.timeout(150)
def test_slurm_failures_are_retried_by_cause(slurm, env):
    """A runner lost inside its SLURM job is retried by default (a new job runs attempt 2), not under
    `--retry-on error`: three sbatch submissions, not four. (An error exit, not retried by default, is decided the
    same way: tests/test_retry_causes.py.)"""
    (env.path / "script.sh").write_text(SCRIPT)
    (env.path / "defaults.yml").write_text("mode: none  # (str) How attempt 1 fails\n")
    root = env.make_set(
        "set_r",
        ("{mode: lost}", "-n", "lost", "--retries", "1", *RES),
        ("{mode: lost}", "-n", "lost_errors_only", "--retries", "1", "--retry-on", "error", *RES),
    )
    run = env.snakemake(root, timeout=120)
    assert run.returncode != 0, run.tail()
    assert submitted_tasks(run.text) == 3, run.tail()
    assert attempts(root, "lost") == ["attempt=1", "attempt=2"]
    lost = params(root, "lost")
    assert lost["_status"] == "finished" and [r["state"] for r in lost["_slurm"]] == ["FAILED", "COMPLETED"]
    assert attempts(root, "lost_errors_only") == ["attempt=1"]
    not_retried = params(root, "lost_errors_only")
    assert not_retried["_slurm"][-1]["state"] == "FAILED"
    assert not_retried["_error"].endswith("; not retried: a lost runner is not in its --retry-on (error)"), \
        not_retried["_error"]
    assert "not run again" not in run.text  # no job was submitted only to refuse its attempt
    rows = wait_for_sacct(env.since, all_done(3), name=run.uuid)
    assert sorted(row["State"] for row in rows) == ["COMPLETED", "FAILED", "FAILED"], rows


# Attempt 1 holds the node until SLURM takes it away; attempt 2 finishes at once.
PREEMPTIBLE = r"""#!/bin/bash
echo "attempt=${XMEN_ATTEMPT:-?} job=${SLURM_JOB_ID:-none}" >> runs.txt
[ "${XMEN_ATTEMPT:-1}" != 1 ] && exit 0
touch started
sleep 100
"""


@pytest.mark.slurm
@pytest.mark.timeout(200)
def test_a_preempted_experiment_is_recorded_and_retried(slurm, env):
    """A job of the hidden partition `urgent` (tests/slurm/up.sh: PreemptMode=CANCEL) takes the node from a running
    experiment. The plugin alone waits for the preempted job to resume, for ever; now its end is noticed, the
    experiment is recorded preempted (SLURM's verdict), retried by default, and finishes on its second attempt."""
    (env.path / "script.sh").write_text(PREEMPTIBLE)
    (env.path / "defaults.yml").write_text("mode: none  # (str) How attempt 1 fails\n")
    root = env.make_set("set_p", ("{mode: held}", "-n", "held", "--threads", "2", "--retries", "1", *RES))
    proc, log = env.start_snakemake(root)
    wait_until((root / "held" / "started").exists, 90, "the experiment started", interval=0.2, proc=proc,
               details=lambda: log.read_text()[-3000:])
    cpus = sh("sinfo", "-h", "-o", "%c").stdout.split()[0]
    urgent = sh("sbatch", "--parsable", "-p", "urgent", "-c", cpus, "--mem=100", "-t", "1", "-o", "/dev/null",
                "--wrap", "sleep 2")
    assert urgent.returncode == 0, urgent.stderr
    env.job_ids.append(urgent.stdout.strip())
    try:
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    except subprocess.TimeoutExpired:
        pytest.fail("snakemake still waits for the preempted job" + log.read_text()[-3000:])
    data = params(root, "held")
    assert [r["state"] for r in data["_slurm"]] == ["PREEMPTED", "COMPLETED"], data["_slurm"]
    assert data["_status"] == "finished" and attempts(root, "held") == ["attempt=1", "attempt=2"]


# Attempt 1 kills its runner and lives on (no cgroup confinement: SLURM's FAILED comes while it still runs), then
# ends well without anyone to record it; attempt 2 finishes.
LIVES_ON = r"""#!/bin/bash
echo "attempt=${XMEN_ATTEMPT:-?} job=${SLURM_JOB_ID:-none}" >> runs.txt
[ "${XMEN_ATTEMPT:-1}" != 1 ] && exit 0
kill -9 $PPID
sleep 4
echo "orphan=done" >> runs.txt
"""


@pytest.mark.slurm
@pytest.mark.timeout(150)
def test_a_killed_runner_whose_experiment_lives_on(slurm, env):
    """The issue's row: the runner is killed but the experiment's process lives on. SLURM says FAILED and xmen says
    the same (the runner was lost: `error`, never `finished`); the retry (a lost runner is retried by default) waits
    for the process still holding the experiment, then runs attempt 2, which finishes. One attempt at a time."""
    (env.path / "script.sh").write_text(LIVES_ON)
    (env.path / "defaults.yml").write_text("mode: none  # (str) How attempt 1 fails\n")
    root = env.make_set("set_o", ("{mode: orphan}", "-n", "orphan", "--retries", "1", *RES))
    run = env.snakemake(root, timeout=120)
    assert run.returncode == 0, run.tail()
    data = params(root, "orphan")
    assert [r["state"] for r in data["_slurm"]] == ["FAILED", "COMPLETED"], data["_slurm"]
    assert data["_status"] == "finished"
    lines = [line.split()[0] for line in (root / "orphan" / "runs.txt").read_text().splitlines()]
    assert lines[0] == "attempt=1" and lines[-1] == "attempt=2", lines
    if "orphan=done" in lines:  # it lived on: attempt 2 started only after it ended
        assert lines == ["attempt=1", "orphan=done", "attempt=2"], lines
