"""Resources that mean what they say on the real cluster (tests/slurm/up.sh): threads not capped by the submitting
host, sbatch words with spaces, `=` and commas in ``slurm_extra``, retries per experiment (no empty retry jobs), the
SLURM preflight (a list of partitions runs, a refused experiment of a pack is refused alone); and the shipped profile
ends a run within seconds of its last job. Helpers and fixtures come from test_slurm."""
from __future__ import annotations

import shutil
import time

import pytest

from test_slurm import (  # noqa: F401  (fixtures: slurm, env)
    all_done, env, pack_args, params, run_fields, runs, sh, slurm, slurm_job_id, statuses, submitted_tasks,
    wait_for_sacct,
)

TWO_THREADS = ("{a: two, sleep: 1}", "--threads", "2", "--resources", "mem_mb=100 runtime=2")


def alloc_cpus(job_id: str) -> str:
    rows = wait_for_sacct("now-10minutes", all_done(1), jobs=[job_id])
    return rows[0]["AllocCPUS"]


@pytest.mark.slurm
@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset")
def test_threads_are_not_capped_by_the_submitting_host(slurm, env):
    """`snakemake --profile slurm` on a login node with fewer cores than an experiment's threads (one core here,
    taskset): the job still asks SLURM for the experiment's 2 CPUs, and the experiment sees XMEN_THREADS=2
    (the set's profile says `cores: all`, which Snakemake uses to cap threads, remote jobs included)."""
    root = env.make_set("set_t", TWO_THREADS)
    proc = sh("taskset", "-c", "0", *env.snakemake_command(), cwd=root, timeout=90)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    job = slurm_job_id(root, "a=two__sleep=1")
    assert alloc_cpus(job) == "2"
    assert run_fields(runs(root, "a=two__sleep=1")[-1])["threads"] == "2"


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_xmen_run_j1_on_slurm_gives_a_job_its_threads(slurm, env):
    """`xmen run --profile slurm -j 1` means one experiment at a time, not one CPU per job."""
    root = env.make_set("set_j", TWO_THREADS)
    extra = env.snakemake_command()[env.snakemake_command().index("--default-resources"):]
    env.xmen("run", "--profile", "slurm", "-j", "1", "--", *extra, cwd=root, timeout=90)
    assert statuses(root) == {"a=two__sleep=1": "finished"}
    assert alloc_cpus(slurm_job_id(root, "a=two__sleep=1")) == "2"
    assert run_fields(runs(root, "a=two__sleep=1")[-1])["threads"] == "2"


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_slurm_extra_with_spaces_equals_and_commas_reaches_sbatch(slurm, env):
    """`--resources "slurm_extra='--mail-type=END,FAIL --mail-user=\\"two words\\"'"`: both flags reach sbatch
    whole (scontrol shows them), the comma is not an attempt separator and nothing of the value runs in a shell."""
    extra = "slurm_extra='--mail-type=END,FAIL --mail-user=\"two words\"' mem_mb=100 runtime=2"
    root = env.make_set("set_x", ("{a: mail}", "--resources", extra))
    run = env.snakemake(root, timeout=90)
    assert run.returncode == 0, run.tail()
    job = slurm_job_id(root, "a=mail")
    shown = sh("scontrol", "show", "job", job).stdout
    assert "MailUser=two words MailType=END,FAIL" in shown, shown
    assert params(root, "a=mail")["_status"] == "finished"


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_shipped_profile_ends_within_seconds_of_the_last_job(slurm, env):
    """A job that runs alone for several status polls (the plugin's interval grows by 10 s after each poll that
    sees no job end): snakemake with the profile as installed still exits within a few seconds of the job's end
    (benchmarks/bench_slurm_end.py measures the figure; sacct's End is in whole seconds)."""
    root = env.make_set("set_e", ("{a: lone, sleep: 12}", "--resources", "mem_mb=100 runtime=2"))
    command = env.snakemake_command()
    assert "--slurm-init-seconds-before-status-checks" not in command  # the profile's own polling
    run = env.snakemake(root, timeout=100)
    exited = time.time()
    assert run.returncode == 0, run.tail()
    row = wait_for_sacct("now-10minutes", all_done(1), jobs=[slurm_job_id(root, "a=lone__sleep=12")])[0]
    end = sh("sacct", "-n", "-P", "-X", "-j", row["JobIDRaw"], "-o", "End").stdout.strip()
    lag = exited - time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S"))
    assert lag <= 7, f"snakemake exited {lag:.1f} s after its last job ended"


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_only_an_experiment_with_retries_gets_a_retry_job(slurm, env):
    """Two failing experiments, one with `--retries 1`: three sbatch submissions (two for it, one for the other),
    not four (Snakemake's `retries:` is per rule; the fourth was an empty job refusing the attempt)."""
    res = ("--resources", "mem_mb=100 runtime=2")
    root = env.make_set("set_y", ("{a: again, fail: 3}", "--retries", "1", "--retry-on", "error", *res),
                        ("{a: once, fail: 3}", *res))  # exit 3 is an error: retried only when asked
    run = env.snakemake(root, timeout=100)
    assert run.returncode != 0, run.tail()
    assert submitted_tasks(run.text) == 3, run.tail()
    rows = wait_for_sacct("now-10minutes", all_done(3), name=run.uuid)
    assert len(rows) == 3 and {row["State"] for row in rows} == {"FAILED"}, rows
    assert statuses(root) == {"a=again__fail=3": "error", "a=once__fail=3": "error"}
    assert [line.split()[0] for line in runs(root, "a=again__fail=3")] == ["attempt=1", "attempt=2"]
    assert [line.split()[0] for line in runs(root, "a=once__fail=3")] == ["attempt=1"]


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_a_list_of_partitions_runs(slurm, env):
    """`slurm_partition='main,other'` (sbatch's comma list: the job runs in whichever starts it first) passes the
    preflight and runs in one of them (it was refused as an unknown partition 'main,other')."""
    root = env.make_set("set_pl", ("{a: either}", "--resources", "slurm_partition='main,other' mem_mb=100 runtime=2"))
    run = env.snakemake(root, timeout=90)
    assert run.returncode == 0, run.tail()
    assert statuses(root) == {"a=either": "finished"}, run.tail()
    row = wait_for_sacct("now-10minutes", all_done(1), jobs=[slurm_job_id(root, "a=either")])[0]
    assert row["Partition"] in ("main", "other"), row


@pytest.mark.slurm
@pytest.mark.timeout(150)
def test_a_refused_experiment_of_a_pack_is_refused_alone(slurm, env):
    """Three experiments packed three to a job (the README's command), one of them on a partition this cluster
    does not have: it alone is recorded as error and never runs; the other two run in one pack and finish (the
    whole pack was refused, and its healthy experiments never ran)."""
    res = ("--resources", "mem_mb=100 runtime=1")
    root = env.make_set("set_pr", ("{a: ok1 | ok2}", *res), ("{a: nopart}", "--resources", "slurm_partition=nope"))
    run = env.snakemake(root, *pack_args(3), timeout=120)
    assert run.returncode != 0, run.tail()
    assert statuses(root) == {"a=ok1": "finished", "a=ok2": "finished", "a=nopart": "error"}, run.tail()
    assert "unknown partition 'nope'" in params(root, "a=nopart")["_error"]
    assert runs(root, "a=nopart") == [] and len(runs(root, "a=ok1")) == len(runs(root, "a=ok2")) == 1
    assert slurm_job_id(root, "a=ok1") == slurm_job_id(root, "a=ok2"), "the two healthy experiments share a pack"
    rows = wait_for_sacct(env.since, all_done(1), name=run.uuid)
    assert [r["State"] for r in rows] == ["COMPLETED"], rows


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_cpus_per_task_within_the_node_runs_whatever_the_threads(slurm, env):
    """`--threads 4 --resources cpus_per_task=2` on this 2-CPU node: the plugin sends --cpus-per-task=2 (it takes
    cpus_per_task before threads), so the preflight lets it through and the job gets 2 CPUs (it was refused for its
    4 threads)."""
    root = env.make_set("set_cpt", ("{a: four}", "--threads", "4",
                                    "--resources", "cpus_per_task=2 mem_mb=100 runtime=2"))
    run = env.snakemake(root, timeout=90)
    assert run.returncode == 0, run.tail()
    assert statuses(root) == {"a=four": "finished"}, run.tail()
    assert alloc_cpus(slurm_job_id(root, "a=four")) == "2"
