"""Packs (several experiments in one SLURM job, README "packs") on a real cluster: ``xmen cancel`` of one member,
a rerun after ``kill -9`` of Snakemake, and what ``xmen list --slurm`` and the logs say about a pack's members;
and messages that must agree with the status: the SLURM columns during a retry, the preflight in a dry run."""
from __future__ import annotations

import os
import re
import signal

import pytest
import test_slurm
from test_slurm import pack_args, params, runs, sh, statuses

from cli_helpers import wait_until

slurm, env = test_slurm.slurm, test_slurm.env  # the cluster and the world fixtures

SLOW = ("{a: p1 | p2 | p3 | p4, sleep: 6}", "--resources", "runtime=2 mem_mb=100")
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")


def started(root, name: str) -> bool:
    return bool(runs(root, name))


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_a_rerun_after_kill_9_adopts_the_packs_and_submits_nothing(slurm, env, slurm_report):
    """Four experiments packed two to a job; Snakemake is killed (-9) once a pack runs. The rerun adopts both
    packs' jobs (one running, one running or queued) and submits no job: every experiment runs once."""
    root = env.make_set("set_k", SLOW)
    names = sorted(statuses(root))
    proc, log = env.start_snakemake(root, *pack_args(2))
    wait_until(lambda: len(SUBMITTED.findall(log.read_text())) == 2 and any(started(root, n) for n in names), 120,
               "both packs submitted and one running", interval=0.2, proc=proc, details=lambda: log.read_text()[-3000:])
    first_jobs = set(SUBMITTED.findall(log.read_text()))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    env.job_ids.extend(first_jobs)
    rerun = env.snakemake(root, *pack_args(2), timeout=200)
    again = SUBMITTED.findall(rerun.text)
    slurm_report.append(f"kill -9 and rerun with packs: {len(again)} job(s) submitted again")
    assert rerun.returncode == 0, rerun.tail()
    assert again == [], rerun.tail()
    assert statuses(root) == {name: "finished" for name in names}, rerun.tail()
    assert {name: len(runs(root, name)) for name in names} == {name: 1 for name in names}
    assert {params(root, name)["_run"]["slurm_job_id"] for name in names} == first_jobs


def running_member(root, names: list[str]) -> str | None:
    """The pack member whose runner reports it running."""
    return next((n for n in names if params(root, n).get("_status") == "running"), None)


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_xmen_cancel_of_one_pack_member_cancels_only_that_member(slurm, env, slurm_report):
    """Three experiments in one pack. ``xmen cancel`` of a member the pack has not started marks it: the pack
    skips it. ``xmen cancel`` of the running member stops its own job step. The third runs and finishes; the job
    is not cancelled as a whole."""
    root = env.make_set("set_c", ("{a: q1 | q2 | q3, sleep: 15}", "--resources", "runtime=3 mem_mb=100"))
    names = sorted(statuses(root))
    proc, log = env.start_snakemake(root, *pack_args(3))
    first = wait_until(lambda: running_member(root, names), 120, "a pack member running", interval=0.2, proc=proc,
                       details=lambda: log.read_text()[-3000:])
    job_id = params(root, first)["_run"]["slurm_job_id"]
    waiting = [n for n in names if n != first]
    out = env.xmen("cancel", waiting[0], cwd=root).stderr
    assert f"Cancelled {waiting[0]} (not started in SLURM job {job_id}" in out, out
    assert params(root, first)["_status"] == "running", "the running member goes on"
    out = env.xmen("cancel", first, cwd=root).stderr
    assert f"Cancelled {first} (SLURM job {job_id} step" in out, out
    proc.wait(timeout=150)
    final = statuses(root)
    cancelled = sorted(n for n, s in final.items() if s == "cancelled")
    slurm_report.append(f"xmen cancel of 2 pack members one at a time: {len(cancelled)} cancelled, "
                        f"{sum(s == 'finished' for s in final.values())} finished")
    assert final == {first: "cancelled", waiting[0]: "cancelled", waiting[1]: "finished"}, (final, log.read_text()[-3000:])
    assert runs(root, waiting[0]) == [], "the pack skipped the member cancelled before it started"
    assert len(runs(root, first)) == 1 and len(runs(root, waiting[1])) == 1
    assert params(root, waiting[1])["_run"]["slurm_job_id"] == job_id, "the same job ran the third member"
    assert params(root, first)["_cancelled"]["job_id"] == job_id


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_a_pack_in_the_plugins_job_step_is_never_cancelled_for_one_member(slurm, env):
    """With ``--config xmen_slurm_step=snakemake`` a pack's members share the plugin's one job step: xmen cancel of
    one running member refuses, naming the pack (it cancelled the whole job), and both members finish."""
    root = env.make_set("set_p", ("{a: p1 | p2, sleep: 8}", "--resources", "runtime=3 mem_mb=100"))
    names = sorted(statuses(root))
    proc, log = env.start_snakemake(root, *pack_args(2), "--config", "xmen_slurm_step=snakemake")
    first = wait_until(lambda: running_member(root, names), 120, "a pack member running", interval=0.2, proc=proc,
                       details=lambda: log.read_text()[-3000:])
    job_id = params(root, first)["_run"]["slurm_job_id"]
    out = env.xmen("cancel", first, cwd=root).stderr
    assert f"runs in SLURM job {job_id} with 1 other experiment(s) of its pack and in no job step of its own" in out, out
    proc.wait(timeout=200)
    assert statuses(root) == {name: "finished" for name in names}, log.read_text()[-3000:]


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_the_preflight_speaks_in_a_dry_run_and_records_nothing(slurm, env):
    """``snakemake --profile slurm -n`` says what the preflight found, as the real run would, and changes nothing."""
    root = env.make_set("set_n", ("{a: nopart}", "--resources", "slurm_partition=nope"))
    run = env.snakemake(root, "-n", timeout=100)
    assert run.returncode == 0, run.tail()
    assert re.search(r"SLURM would reject 1 experiment\(s\) \(unknown partition 'nope'.*would be recorded as error "
                     r"and not submitted: a=nopart", run.text), run.tail()
    assert params(root, "a=nopart")["_status"] == "registered"


def listed_line(env, root, name: str) -> str:
    table = env.xmen("list", "--slurm", cwd=root).stdout
    return next((line for line in table.splitlines() if name in line), table)


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_scancel_of_a_pack_leaves_what_finished_finished_in_every_message(slurm, env):
    """A pack of two: the first finishes, the second runs when the pack's job is scancelled. ``xmen list --slurm``
    shows the first COMPLETED (its own step), not the pack's CANCELLED; the second is cancelled, and its
    ``xmen.log`` does not end saying ``timeout``."""
    root = env.make_set("set_s", ("{a: s1, sleep: 1}", "--resources", "runtime=2 mem_mb=100"),
                        ("{a: s2, sleep: 90}", "--resources", "runtime=2 mem_mb=100"))
    names = sorted(statuses(root))
    proc, log = env.start_snakemake(root, *pack_args(2))
    running = wait_until(lambda: next((n for n in names if params(root, n).get("_status") == "running"
                                       and any(params(root, o).get("_status") == "finished" for o in names)), None),
                         120, "one member finished and the other running", interval=0.2, proc=proc,
                         details=lambda: log.read_text()[-3000:])
    done = next(n for n in names if n != running)
    job_id = params(root, running)["_run"]["slurm_job_id"]
    assert sh("scancel", job_id).returncode == 0
    proc.wait(timeout=90)
    assert statuses(root) == {done: "finished", running: "cancelled"}, log.read_text()[-3000:]
    finished_line, cancelled_line = listed_line(env, root, done), listed_line(env, root, running)
    assert "COMPLETED" in finished_line and "CANCELLED" not in finished_line, finished_line
    assert "CANCELLED" in cancelled_line and job_id in cancelled_line, cancelled_line
    last = (root / running / "xmen.log").read_text().strip().splitlines()[-1]
    assert "timeout" not in last, last


# Fails its first attempt at once; the second sleeps, then finishes.
RETRIED = r"""#!/bin/bash
echo "attempt=${XMEN_ATTEMPT:-?} job=${SLURM_JOB_ID:-none}" >> "$(dirname "$1")/runs.txt"
[ "${XMEN_ATTEMPT:-1}" = "1" ] && exit 5
sleep 8
"""


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_during_a_retry_the_slurm_columns_show_the_retry_job(slurm, env):
    """While the second attempt runs, ``xmen list --slurm`` shows its job RUNNING, not the failed first job."""
    (env.path / "script.sh").write_text(RETRIED)
    root = env.make_set("set_r", ("{a: r}", "--retries", "1", "--retry-on", "error",
                                  "--resources", "runtime=2 mem_mb=100"))
    proc, log = env.start_snakemake(root)
    second = wait_until(lambda: len(runs(root, "a=r")) == 2 and params(root, "a=r").get("_status") == "running"
                        and params(root, "a=r")["_run"]["slurm_job_id"], 120, "the second attempt running",
                        interval=0.2, proc=proc, details=lambda: log.read_text()[-3000:])
    first = runs(root, "a=r")[0].split("job=")[1]
    assert first != second
    line = listed_line(env, root, "a=r")
    assert second in line and "RUNNING" in line and first not in line, line
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_a_queued_retry_shows_its_own_job(slurm, env):
    """An experiment whose first job failed and whose retry's job is pending: ``xmen list --slurm`` shows the
    pending job, not the failed one. (The retry's job is a held job, its marker written as the hook writes it.)"""
    from xmen.store import files, markers

    root = env.make_set("set_q", ("{a: q}",))
    failed = {"job_id": "1", "attempt": 1, "state": "FAILED", "exit_code": "5:0", "node": "localhost",
              "partition": "main", "elapsed": "00:00:01", "max_rss": None}
    files.update_yaml(root / "a=q" / "params.yml", lambda d: d.update(_status="error", _slurm=[failed]))
    held = sh("sbatch", "--parsable", "--hold", "-t", "1", "--mem", "50", "-A", "root", "-o", "/dev/null",
              "--wrap", "true")
    assert held.returncode == 0, held.stderr
    job_id = held.stdout.strip().split(";")[0]
    env.job_ids.append(job_id)
    markers.mark(root / "a=q", job_id)
    line = listed_line(env, root, "a=q")
    assert "queued" in line and job_id in line and "PENDING" in line and "FAILED" not in line, line
