"""The direct job step on the real cluster (tests/slurm/up.sh): a SLURM job of xmen's rule runs xmen.rule_job, not
two Snakemake processes, and means the same: its CPUs, a job step SLURM accounts for, the experiment's log, its
failure. Helpers and fixtures come from test_slurm."""
from __future__ import annotations

import tempfile

import pytest

from test_slurm import (  # noqa: F401  (fixtures: slurm, env)
    README, all_done, env, pack_args, params, run_fields, runs, sh, slurm, slurm_job_id, statuses, wait_for_sacct,
)

from cli_helpers import wait_until

SWEEP = ("{a: one | two, sleep: 1}", "--threads", "2", "--resources", "mem_mb=100 runtime=2")


def batch_script(job_id: str) -> str:
    proc = sh("scontrol", "write", "batch_script", job_id, "-")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def steps(job_id: str) -> list[str]:
    """The job's steps as sacct lists them (``batch``, ``0``...)."""
    wait_for_sacct("now-10minutes", all_done(1), jobs=[job_id])
    proc = sh("sacct", "-n", "-P", "-j", job_id, "-o", "JobID")
    return sorted(line.split(".", 1)[1] for line in proc.stdout.split() if "." in line)


@pytest.mark.slurm
@pytest.mark.timeout(150)
def test_a_job_runs_the_experiment_without_snakemake_inside(slurm, env):
    """Each job's batch script runs xmen.rule_job (no Snakemake on the node); the experiment runs in one ``srun``
    step with the job's 2 CPUs, its thread variables say 2, and the previous attempt's log is kept as before."""
    root = env.make_set("set_d", SWEEP)
    run = env.snakemake(root, timeout=120)
    assert run.returncode == 0, run.tail()
    assert statuses(root) == {"a=one__sleep=1": "finished", "a=two__sleep=1": "finished"}, run.tail()
    for name in statuses(root):
        job = slurm_job_id(root, name)
        script = batch_script(job)
        assert "from xmen.rule_job import main" in script and "-m snakemake" not in script, script
        assert steps(job) == ["0", "batch", "extern"] or steps(job) == ["0", "batch"], steps(job)
        assert run_fields(runs(root, name)[-1])["threads"] == "2"
        assert "done a=" in (root / name / "xmen.log").read_text()
        assert params(root, name)["_slurm"][-1]["state"] == "COMPLETED"


@pytest.mark.slurm
@pytest.mark.timeout(150)
def test_the_plugins_own_job_step_on_request(slurm, env):
    """``--config xmen_slurm_step=snakemake`` gives every job the plugin's job step (Snakemake on the node), as the
    README says."""
    assert "`--config xmen_slurm_step=snakemake` gives it to every job" in README.read_text()
    root = env.make_set("set_s", ("{a: one}", "--resources", "mem_mb=100 runtime=2"))
    run = env.snakemake(root, "--config", "xmen_slurm_step=snakemake", timeout=120)
    assert run.returncode == 0, run.tail()
    assert statuses(root) == {"a=one": "finished"}, run.tail()
    assert "-m snakemake" in batch_script(slurm_job_id(root, "a=one"))


@pytest.mark.slurm
@pytest.mark.timeout(150)
def test_a_failing_direct_job_says_why_in_its_slurm_log(slurm, env):
    """The job fails with the experiment's exit code, its SLURM log names the experiment, the code and the end of
    the experiment's log, and a retry keeps the first attempt's log."""
    root = env.make_set("set_f", ("{a: bad, fail: 3}", "--retries", "1", "--retry-on", "error",
                                  "--resources", "mem_mb=100 runtime=2"))
    run = env.snakemake(root, timeout=120)
    assert run.returncode != 0, run.tail()
    data = params(root, "a=bad__fail=3")
    assert data["_status"] == "error" and "exit code 3" in data["_error"], data
    assert [r["state"] for r in data["_slurm"]] == ["FAILED", "FAILED"], data["_slurm"]
    assert (root / "a=bad__fail=3" / "logs" / "attempt-1.log").is_file()
    logs = sorted((root / ".snakemake" / "slurm_logs").rglob("*.log"))
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert "a=bad__fail=3 failed with exit code 3" in text and "failing with exit code 3" in text, text[-3000:]


# Waits for USR1 (a checkpoint request, as `--signal=USR1@60` sends before the time limit), notes it, finishes.
CHECKPOINTING = r"""#!/bin/bash
trap 'echo usr1 >> "$(dirname "$1")/signals.txt"' USR1
echo started > "$(dirname "$1")/started.txt"
for i in $(seq 1 100); do
    [ -s "$(dirname "$1")/signals.txt" ] && break
    sleep 0.2
done
echo "done"
"""


@pytest.mark.slurm
@pytest.mark.timeout(150)
def test_slurms_signal_to_the_job_steps_reaches_the_experiment(slurm, env):
    """``scancel --signal=USR1 JOB`` (what ``--signal=USR1@60`` does before a time limit: signal the job's steps) reaches
    the experiment in a direct job, which takes it as a checkpoint request and finishes."""
    (env.path / "script.sh").write_text(CHECKPOINTING)
    root = env.make_set("set_u", ("{a: ckpt}", "--resources", "mem_mb=100 runtime=2"))
    proc, log = env.start_snakemake(root)
    wait_until((root / "a=ckpt" / "started.txt").exists, 90, "the experiment started", interval=0.2, proc=proc,
               details=lambda: log.read_text()[-3000:])
    job = slurm_job_id(root, "a=ckpt")
    assert sh("scancel", "--signal=USR1", job).returncode == 0
    assert proc.wait(timeout=90) == 0, log.read_text()[-3000:]
    assert "usr1" in (root / "a=ckpt" / "signals.txt").read_text()
    assert statuses(root) == {"a=ckpt": "finished"}


# Fails on its first attempt when asked to (`flaky: 1`), or always (`fail: N`); notes each run.
FLAKY = r"""#!/bin/bash
params="$1"
get() { sed -n "s/^$1: *\([^ #]*\).*/\1/p" "$params" | tr -d "'"; }
echo "attempt=${XMEN_ATTEMPT:-?} job=${SLURM_JOB_ID:-none}" >> "$(dirname "$params")/runs.txt"
if [ "$(get flaky)" = "1" ] && [ "${XMEN_ATTEMPT:-1}" = "1" ]; then exit 5; fi
fail=$(get fail)
exit "${fail:-0}"
"""


@pytest.mark.slurm
@pytest.mark.timeout(200)
@pytest.mark.parametrize("targets", ["default", "explicit"])
def test_a_retried_pack_runs_only_what_has_a_retry_left(slurm, env, targets):
    """Snakemake retries a failed pack whole. In the retry, the experiment that finished is not run again, the one
    with a retry runs its second attempt and finishes, the one without retries is not run again: each experiment's
    runs are its own (README: packs and retries)."""
    (env.path / "script.sh").write_text(FLAKY)
    (env.path / "defaults.yml").write_text("a: h  # (str) Name\nfail: 0  # (int) Exit code\nflaky: 0  # (int) Fails once\n")
    root = env.make_set("set_r", ("{a: ok}", "--resources", "mem_mb=100 runtime=2"),
                        ("{a: flaky, flaky: 1}", "--retries", "1", "--retry-on", "error",
                         "--resources", "mem_mb=100 runtime=2"),
                        ("{a: bad, fail: 3}", "--resources", "mem_mb=100 runtime=2"))
    explicit = [f"{name}/xmen.done" for name in statuses(root)] if targets == "explicit" else []
    run = env.snakemake(root, *pack_args(3), *explicit, timeout=150)
    assert run.returncode != 0, run.tail()
    assert statuses(root) == {"a=ok": "finished", "a=flaky__flaky=1": "finished", "a=bad__fail=3": "error"}, run.tail()
    attempts = {name: [line.split()[0] for line in (root / name / "runs.txt").read_text().splitlines()]
                for name in statuses(root)}
    assert attempts == {"a=ok": ["attempt=1"], "a=flaky__flaky=1": ["attempt=1", "attempt=2"],
                        "a=bad__fail=3": ["attempt=1"]}, attempts
    readme = " ".join(README.read_text().split())
    assert "in the retry, the experiments that finished are not run again, and neither are those without" in readme


@pytest.mark.slurm
@pytest.mark.timeout(150)
def test_a_direct_job_gets_its_temporary_folder(slurm, env, tmp_path):
    """``tmpdir`` is evaluated where the job runs (Snakemake leaves it ``<TBD>`` in the submitting process): the
    experiment sees the one given with ``--default-resources`` (created), else the node's own."""
    (env.path / "script.sh").write_text('#!/bin/bash\necho "$XMEN_TMPDIR" > "$(dirname "$1")/tmpdir.txt"\n')
    root = env.make_set("set_t", ("{a: one}", "--resources", "mem_mb=100 runtime=2"))
    run = env.snakemake(root, timeout=120)
    assert run.returncode == 0, run.tail()
    assert (root / "a=one" / "tmpdir.txt").read_text().strip() == tempfile.gettempdir()
    scratch = tmp_path / "scratch" / "job"
    rerun = env.snakemake(root, "--forceall", "--default-resources", f"tmpdir='{scratch}'", timeout=120)
    assert rerun.returncode == 0, rerun.tail()
    assert (root / "a=one" / "tmpdir.txt").read_text().strip() == str(scratch) and scratch.is_dir()
