"""Queued, restarted, rejected: xmen on the real cluster of tests/slurm/up.sh (see xmen/slurm_queue.py).

Reuses the fixtures and helpers of test_slurm.py (``slurm``, ``env``, the plain shell experiment that appends a
line to runs.txt per run). A job is kept pending with ``slurm_extra: --begin=now+N`` written into the test set's
experiment.yml (xmen's --resources does not take values with ``=`` yet).
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_slurm import (  # noqa: F401
    env, experiments, params, read_yaml, runs, sh, slurm, slurm_job_id, statuses, submitted_tasks, wait_for_sacct)

from cli_helpers import wait_until

# Job arrays as a user may still ask for them (the README no longer recommends them; see tests/slurm/test_slurm.py).
ARRAYS = ("--slurm-array-jobs", "xmen_experiment", "--slurm-array-limit", "20")

MARKER = ".xmen-queued"
# Seconds to wait for SLURM jobs. Each test takes 3-45 s on a free node; the test cluster is shared (2 CPUs), and
# other runs' jobs can hold these back for a minute or more.
SHARED = 150


def set_resources(root: Path, name: str, **resources: object) -> None:
    """Test-only edit of experiment.yml: extra resources of one experiment."""
    data = read_yaml(root / "experiment.yml")
    options = data["experiments"][name] = dict(data["experiments"][name] or {})
    options["resources"] = {**(options.get("resources") or {}), **resources}
    (root / "experiment.yml").write_text(yaml.safe_dump(data, sort_keys=False))


def marker_job(root: Path, name: str) -> str:
    path = root / name / MARKER
    return str(read_yaml(path).get("job_id")) if path.exists() else ""


@pytest.mark.slurm
@pytest.mark.timeout(400)
def killed_after_submitting(env, root: Path, name: str) -> str:
    """Start `snakemake --profile slurm` in ``root`` and kill it (-9) once it submitted ``name``: that job's id (the
    test's end cancels it)."""
    proc, _ = env.start_snakemake(root)
    wait_until(lambda: marker_job(root, name), 40, f"snakemake submitted {name}", interval=0.2)
    env.stop(proc)
    job = marker_job(root, name)
    env.job_ids.append(job)
    return job


def test_queued_jobs_are_listed_and_never_submitted_twice_after_a_kill(slurm, env):
    """Snakemake submits two experiments (one held in the queue by --begin, one that starts at once) and is killed
    with kill -9. `xmen list` shows the held one `queued` with its job id and SLURM's reason, `xmen run -n` says it
    is not submitted again (`xmen run -n --profile slurm`: adopted), a plain `snakemake --profile slurm` (no
    --unlock) submits nothing, and in the end each experiment ran exactly once, by its first job."""
    root = env.make_set("set_q", ("{a: held | now, sleep: 4}",))
    held, now = "a=held__sleep=4", "a=now__sleep=4"
    set_resources(root, held, slurm_extra="--begin=now+15")
    proc, log = env.start_snakemake(root)
    wait_until(lambda: marker_job(root, held) and (marker_job(root, now) or runs(root, now)), 40,
               "snakemake submitted both experiments", interval=0.2)
    env.stop(proc)  # kill -9 of the submitting Snakemake, jobs still queued / running
    job_held = marker_job(root, held)
    env.job_ids.append(job_held)

    listing = env.xmen("list", cwd=root).stdout
    line = next(row for row in listing.splitlines() if held in row)
    assert "queued" in line and f"SLURM job {job_held} (BeginTime)" in line, listing
    dry = env.xmen("run", "-n", cwd=root)
    assert f"queued as SLURM job {job_held} (BeginTime), not submitted again" in dry.stdout + dry.stderr, dry
    dry = env.xmen("run", "-n", "--profile", "slurm", cwd=root)  # a run that would adopt it says so
    assert f"adopts SLURM job {job_held} (queued: BeginTime), not submitted again" in dry.stdout, dry
    assert "queued" in env.xmen("list", "--status-is", "queued", cwd=root).stdout

    again = env.snakemake(root, timeout=SHARED)
    assert again.returncode == 0, again.tail()
    assert "has been submitted" not in again.text, again.tail()

    # The first run's jobs still run, and record their own status.
    job_now = str((params(root, now).get("_run") or {}).get("slurm_job_id") or marker_job(root, now))
    env.job_ids.append(job_now)
    rows = wait_for_sacct(env.since, lambda r: len(r) == 2 and all(x["State"] == "COMPLETED" for x in r),
                          jobs=[job_held, job_now], timeout=SHARED)
    wait_until(lambda: statuses(root) == {held: "finished", now: "finished"}, 20, "the experiments finished",
               interval=0.2)
    assert [len(runs(root, name)) for name in (held, now)] == [1, 1], rows
    assert str(params(root, held)["_run"]["slurm_job_id"]) == job_held
    assert not (root / held / MARKER).exists() and not (root / now / MARKER).exists()


@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_rejected_submissions_are_recorded_and_the_others_run(slurm, env):
    """An unknown partition, a GPU on this GPU-less cluster and memory per CPU beyond the node are found before
    submitting (one line per problem, recorded as error, never submitted); a feature sbatch refuses (no node has it)
    is recorded from sbatch's own message, an account the plugin's sacctmgr check refuses from the plugin's; the
    healthy experiment finishes and the run ends non-zero."""
    root = env.make_set(
        "set_x",
        ("{a: ok}",),
        ("{a: nopart}", "--resources", "slurm_partition=nope"),
        ("{a: gpu}", "--resources", "gpu=1"),
        ("{a: greedy}", "--resources", "mem_mb_per_cpu=100000"),
        ("{a: feature}", "--resources", "constraint=nosuch"),
        ("{a: account}", "--resources", "slurm_account=nobody"),
    )
    run = env.snakemake(root, timeout=SHARED)
    assert run.returncode != 0, run.tail()
    found = {name: (params(root, name).get("_status"), str(params(root, name).get("_error"))) for name in
             experiments(root)}
    assert found["a=ok"] == ("finished", "None"), found
    assert found["a=nopart"][0] == "error" and "unknown partition 'nope'" in found["a=nopart"][1], found
    assert found["a=gpu"][0] == "error" and "GRES 'gpu'" in found["a=gpu"][1], found
    assert found["a=greedy"] == ("error", "not submitted, SLURM would reject it: mem_mb_per_cpu=100000 x 1 CPU(s) is more "
                                 "than any node of partition 'main' has (8000 MB)"), found
    assert found["a=feature"][0] == "error", found
    assert found["a=feature"][1].startswith("submission rejected by SLURM: sbatch: error:"), found
    assert found["a=account"][0] == "error" and "account nobody" in found["a=account"][1], found
    assert found["a=account"][1].startswith("submission rejected by SLURM: "), found
    assert re.search(r"SLURM would reject 1 experiment\(s\) \(unknown partition 'nope'.*a=nopart", run.text), run.tail()
    assert re.search(r"SLURM would reject 1 experiment\(s\) \(no node of partition 'main' has GRES 'gpu'\).*a=gpu",
                     run.text), run.tail()
    # The refused ones never reached SLURM, and SLURM keeps no record of a submission it refused for a feature no
    # node has (it does for one beyond a node's memory: a FAILED job that never ran): sacct shows the healthy job.
    wait_for_sacct(env.since, lambda r: len(r) >= 1, name=run.uuid)
    time.sleep(2)  # time for slurmdbd to list a refused submission, were there one: an absence has no event to wait for
    rows = wait_for_sacct(env.since, lambda r: len(r) >= 1, name=run.uuid)
    assert [(r["State"], r["ReqMem"]) for r in rows] == [("COMPLETED", "1000M")], rows
    listing = env.xmen("list", "--status-is", "error", cwd=root).stdout
    assert all(name in listing for name in ("a=nopart", "a=gpu", "a=greedy", "a=feature", "a=account")), listing
    assert "a=ok" not in listing, listing


@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_a_cancelled_queued_job_is_shown_for_what_it_is_and_runs_again(slurm, env):
    """A queued job cancelled before it started its experiment (Snakemake killed first): `xmen list` keeps the
    experiment `registered` and says the job left the queue (CANCELLED per sacct); the planner runs it again."""
    root = env.make_set("set_c", ("{a: gone}",))
    name = "a=gone"
    set_resources(root, name, slurm_extra="--begin=now+600")
    job = killed_after_submitting(env, root, name)
    cancelled = env.xmen("list", cwd=root)
    assert "queued" in cancelled.stdout, cancelled.stdout
    assert sh("scancel", job).returncode == 0

    def listed() -> str:
        nonlocal cancelled
        cancelled = env.xmen("list", cwd=root)
        return cancelled.stdout

    wait_until(lambda: f"SLURM job {job} left the queue without starting it (CANCELLED)" in listed(), 30,
               "xmen list flagging the cancelled job", interval=0.2)
    line = next(row for row in cancelled.stdout.splitlines() if name in row)
    assert "registered" in line and "queued" not in line, cancelled.stdout
    dry = env.xmen("run", "-n", cwd=root)
    assert "queued" not in dry.stdout + dry.stderr and name in dry.stdout, dry


@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_refused_experiments_stay_out_of_job_arrays(slurm, env):
    """With job arrays as the README documents them, an experiment refused before submission is not a task of
    the array (the plugin would give it the array's first resources and run it)."""
    root = env.make_set("set_ax", ("{a: ok1 | ok2}",), ("{a: nopart}", "--resources", "slurm_partition=nope"))
    run = env.snakemake(root, *ARRAYS, timeout=SHARED)
    assert run.returncode != 0, run.tail()
    assert statuses(root) == {"a=ok1": "finished", "a=ok2": "finished", "a=nopart": "error"}, run.tail()
    assert runs(root, "a=nopart") == []
    rows = wait_for_sacct(env.since, lambda r: len(r) >= 2 and all(x["State"] == "COMPLETED" for x in r),
                          name=run.uuid)
    assert len(rows) == 2, rows


@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_a_dependent_of_a_queued_experiment_waits_instead_of_resubmitting_it(slurm, env):
    """B requires A; A's job is queued when Snakemake is killed. A local `xmen run -n` (it would not follow SLURM
    jobs) skips B, naming A's job; the next plain `snakemake --profile slurm` adopts A's job (never submits A again),
    runs B once A's first job finished (once), and exits 0."""
    root = env.make_set("set_d", ("{a: first}", "-n", "first"), ("{a: then}", "-n", "then", "--requires", "first"))
    set_resources(root, "first", slurm_extra="--begin=now+10")
    job = killed_after_submitting(env, root, "first")
    dry = env.xmen("run", "-n", cwd=root)
    assert f"Skipping then: waits for requirement first queued as SLURM job {job}" in dry.stderr, dry
    # Plain local Snakemake has nothing to do here ("Nothing to be done"), and says who waits for what at its end.
    local = subprocess.run([sys.executable, "-m", "snakemake", "-c1"], cwd=root, capture_output=True, text=True,
                           timeout=120)
    assert local.returncode == 0, local.stdout + local.stderr
    assert re.search(rf"not run \(waiting\): then: .*first queued as SLURM job {job}", local.stdout + local.stderr), \
        local.stdout + local.stderr
    assert runs(root, "then") == []
    again = env.snakemake(root, timeout=SHARED)
    assert again.returncode == 0 and submitted_tasks(again.text) == 1, again.tail()
    assert f"first: adopts SLURM job {job}" in again.text, again.tail()
    assert statuses(root) == {"first": "finished", "then": "finished"}, again.tail()
    assert [len(runs(root, name)) for name in ("first", "then")] == [1, 1]
    assert str(params(root, "first")["_run"]["slurm_job_id"]) == job


@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_the_next_run_adopts_the_jobs_a_killed_snakemake_left_and_waits_for_them(slurm, env):
    """Snakemake is killed (kill -9) while one job waits in the queue (--begin; on a busy cluster it may have
    started) and one runs; a third experiment requires the first. A dry run with the slurm executor says it adopts
    both jobs; the next plain
    `snakemake --profile slurm` (no --unlock) submits only the dependent, exits only after both adopted jobs ended
    (their status files exist when it exits), runs the dependent after them, exits 0; each experiment ran once."""
    root = env.make_set("set_k", ("{a: held, sleep: 2}", "-n", "held"), ("{a: now, sleep: 10}", "-n", "now"),
                        ("{a: then}", "-n", "then", "--requires", "held"))
    set_resources(root, "held", slurm_extra="--begin=now+10")
    proc, _ = env.start_snakemake(root)
    wait_until(lambda: marker_job(root, "held") and runs(root, "now"), SHARED, "snakemake submitted and started both",
               interval=0.2)
    env.stop(proc)
    job_held = marker_job(root, "held") or slurm_job_id(root, "held")
    job_now = slurm_job_id(root, "now")
    env.job_ids += [job_held, job_now]
    assert job_held and job_now and not (root / "now" / "xmen.done").exists()

    dry = env.snakemake(root, "-n", timeout=SHARED)
    assert dry.returncode == 0, dry.tail()
    # SLURM's reason is "None" for a moment after the submission, then "BeginTime".
    assert re.search(rf"held: adopts SLURM job {job_held} \((queued(: BeginTime)?|running)\), not submitted again",
                     dry.text), dry.tail()
    assert f"now: adopts SLURM job {job_now} (running), not submitted again" in dry.text, dry.tail()

    started = time.monotonic()
    again = env.snakemake(root, timeout=SHARED)
    took = time.monotonic() - started
    assert again.returncode == 0, again.tail()
    assert submitted_tasks(again.text) == 1 and "adopts SLURM job" in again.text, again.tail()
    assert statuses(root) == {"held": "finished", "now": "finished", "then": "finished"}, again.tail()
    assert [len(runs(root, name)) for name in ("held", "now", "then")] == [1, 1, 1]
    assert str(params(root, "held")["_run"]["slurm_job_id"]) == job_held
    assert str(params(root, "now")["_run"]["slurm_job_id"]) == job_now
    assert params(root, "held")["_slurm"][-1]["state"] == "COMPLETED"  # SLURM's verdict recorded as for any job
    assert all((root / name / "xmen.done").is_file() for name in ("held", "now", "then"))
    assert not (root / "held" / MARKER).exists()
    print(f"adopting run took {took:.1f}s")


# The experiment of the test below: `first` ends only once `early`'s status file exists (so `early`'s job ended).
WAITING_SCRIPT = r"""#!/bin/bash
name=$(sed -n "s/^a: *\([^ #]*\).*/\1/p" "$1" | tr -d "'")
echo "job=${SLURM_JOB_ID:-none}" >> runs.txt
if [ "$name" = first ]; then
    for _ in $(seq 240); do [ -e ../early/xmen.done ] && exit 0; sleep 0.5; done
    exit 1
fi
sleep 1
"""


@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_an_adopted_job_that_ended_before_its_turn_is_reported_as_it_ended(slurm, env):
    """The adopted job is alive when the next run plans, and ends before that run gets to it (`--jobs 1`, a new
    experiment prioritised that ends only after it): the run reports it as sacct says it ended (COMPLETED:
    success, its status file is there), records SLURM's verdict, submits it no second time and exits 0."""
    (env.path / "waiting.sh").write_text(WAITING_SCRIPT)
    root = env.path / "set_e"
    env.xmen("init", "-s", str(env.path / "waiting.sh"), "-d", str(env.path / "defaults.yml"), "-r", str(root))
    env.xmen("register", "{a: early}", "-n", "early", cwd=root)
    set_resources(root, "early", slurm_extra="--begin=now+8")
    job = killed_after_submitting(env, root, "early")
    env.xmen("register", "{a: first}", "-n", "first", cwd=root)
    again = env.snakemake(root, "--jobs", "1", "--prioritize", "first/xmen.done", timeout=SHARED)
    assert again.returncode == 0, again.tail()
    assert f"early: adopts SLURM job {job}" in again.text and submitted_tasks(again.text) == 1, again.tail()
    # The adopted job ended while the new one ran, before the run took it on as its own.
    assert again.text.index("Finished jobid") < again.text.index(f"adopts SLURM job {job} of an earlier run")
    assert statuses(root) == {"early": "finished", "first": "finished"}, again.tail()
    assert len(runs(root, "early")) == 1 and params(root, "early")["_slurm"][-1]["state"] == "COMPLETED"
