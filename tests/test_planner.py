"""xmen.planner, xmen.snakemake_glue and the run-time provenance, on real files (no Snakemake start)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from xmen.store import files, provenance
from xmen.run import planner, rule_job
from xmen.host import glue as snakemake_glue
from xmen.errors import UsageError
from xmen.sets.expset import ExperimentSet
from xmen.store import attempts, setfile
from xmen.store import logs

from cli_helpers import make_set


@pytest.fixture
def new_set(xmen_home, tmp_path):
    """Makes an empty set ``tmp_path/NAME`` of a plain shell experiment (make_set): its ExperimentSet."""
    (tmp_path / "script.sh").write_text("#!/bin/bash\necho ran\n")
    (tmp_path / "defaults.yml").write_text("k: 0  # (int) K\n")

    def make(name: str) -> ExperimentSet:
        return ExperimentSet(make_set(tmp_path, name, None))

    return make


def finish(exp_set: ExperimentSet, name: str, stamp: int, **record) -> None:
    """What a finished run leaves: status, the run record (with its parameters' hash), the status file last."""
    folder = exp_set.root / name

    def update(data):
        run = {"params_hash": planner.params_hash(data), "params": planner.public_params(data)}
        run.update(record)
        data.update(_status="finished", _run=run)

    files.update_yaml(folder / "params.yml", update)
    os.utime(folder / "params.yml", (stamp - 1, stamp - 1))
    (folder / "xmen.done").write_text(f"finished\nrun: {stamp}\n")
    os.utime(folder / "xmen.done", (stamp, stamp))


def verdicts(exp_set: ExperimentSet, reasons: bool = True) -> dict[str, tuple[str, str]]:
    decide = planner.Planner(reasons=reasons)
    return {n: (v.action, v.reason) for n in exp_set.experiments
            for v in [decide.verdict(str(exp_set.root / n))]}


def test_staleness_is_transitive_across_sets(new_set):
    train, evaluate, summary = new_set("train"), new_set("eval"), new_set("summary")
    train.register("{k: 1 | 2}")
    evaluate.register({"k": 1}, name="e1", requires=["../train/k=1"])
    summary.register({"k": 0}, name="s", requires=["../eval/*"])
    for exp_set, name, stamp in ((train, "k=1", 100), (train, "k=2", 100), (evaluate, "e1", 200), (summary, "s", 300)):
        finish(exp_set, name, stamp, requires=[] if name != "s" else ["../eval/e1"])
    assert verdicts(summary) == {"s": ("done", "")}
    os.utime(train.root / "k=1" / "xmen.done", (250, 250))  # the training run reran
    assert verdicts(evaluate) == {"e1": ("run", "requirement ../train/k=1 reran")}
    assert verdicts(summary) == {"s": ("run", "requirement ../eval/e1 pending")}
    plan = planner.Planner().plan([str(summary.root / "s")])
    assert [os.path.relpath(v.path, summary.root) for v in plan] == ["../eval/e1", "s"]  # requirements first


def test_globs_are_kept_and_resolved_when_planning(new_set):
    evaluate, summary = new_set("eval"), new_set("summary")
    evaluate.register("{k: 1 | 2}")
    summary.register({"k": 0}, name="s", requires=["../eval/*"])
    assert files.read_yaml(summary.set_file)["experiments"]["s"]["requires"] == ["../eval/*"]
    s = str(summary.root / "s")
    assert [r for _, r in planner.Planner().requirements(s)] == [str(evaluate.root / "k=1"), str(evaluate.root / "k=2")]
    evaluate.register({"k": 3})  # a new eval joins
    assert len(planner.Planner().requirements(s)) == 3
    evaluate.unlink("k=1")  # an unlinked one leaves
    assert [r for _, r in planner.Planner().requirements(s)] == [str(evaluate.root / "k=2"), str(evaluate.root / "k=3")]
    evaluate.unlink("*")
    assert verdicts(summary) == {"s": ("blocked", "requirement ../eval/* matches no linked experiment")}


def test_a_glob_that_changed_since_the_run_reruns_the_dependent(new_set):
    evaluate, summary = new_set("eval"), new_set("summary")
    evaluate.register("{k: 1 | 2}")
    summary.register({"k": 0}, name="s", requires=["../eval/*"])
    finish(evaluate, "k=1", 100), finish(evaluate, "k=2", 100)
    finish(summary, "s", 200, requires=["../eval/k=1", "../eval/k=2"])
    assert verdicts(summary) == {"s": ("done", "")}
    evaluate.unlink("k=2")
    assert verdicts(summary) == {"s": ("run", "requirements changed (-../eval/k=2)")}


def test_an_unlinked_or_unreadable_requirement_blocks_its_dependents(new_set):
    train = new_set("train")
    train.register("{k: 1 | 2}")
    train.register({"k": 3}, name="eval", requires=["k=1"])
    train.register({"k": 4}, name="summary", requires=["eval"])
    train.unlink("k=1")
    assert verdicts(train)["eval"] == ("blocked", "requirement k=1 unlinked")
    assert verdicts(train)["summary"] == ("blocked", "requirement eval blocked (requirement k=1 unlinked)")
    assert planner.Planner().plan([str(train.root / "summary")])[0].action == "blocked"
    (train.root / "k=2" / "params.yml").write_text("[broken")
    train.register({"k": 5}, name="other", requires=["k=2"])
    assert verdicts(train)["other"] == ("blocked", "requirement k=2 corrupt")


def test_a_failed_requirement_runs_first_and_its_dependent_waits(new_set):
    train = new_set("train")
    train.register({"k": 1})
    train.register({"k": 2}, name="eval", requires=["k=1"])
    finish(train, "eval", 100)
    files.update_yaml(train.root / "k=1" / "params.yml", lambda d: d.update(_status="error"))
    assert verdicts(train) == {"k=1": ("run", "failed (error)"), "eval": ("run", "requirement k=1 pending (error)")}
    assert verdicts(train, reasons=False)["eval"] == ("run", "requirement k=1 pending (error)")


def test_changed_params_and_code_are_flagged_not_rerun(new_set):
    train = new_set("train")
    train.register("{k: 1 | 2}")
    train.register({"k": 3}, name="eval", requires=["k=1"])
    code = setfile.code_record(setfile.load_set(str(train.root)))
    for name, stamp in (("k=1", 100), ("k=2", 100), ("eval", 200)):
        finish(train, name, stamp, code={"files": code})
    os.utime(train.root / "script.sh", (50, 50))
    assert set(verdicts(train).values()) == {("done", "")}
    params = train.root / "k=1" / "params.yml"
    params.write_text(params.read_text().replace("k: 1", "k: 7", 1))
    assert verdicts(train)["k=1"] == ("changed", "params changed (k: 1 -> 7)")
    assert verdicts(train)["eval"] == ("changed", "requirement k=1 changed")
    assert verdicts(train)["k=2"] == ("done", "")
    # A note (or any write that leaves the parameters alone) is no change.
    files.update_yaml(train.root / "k=2" / "params.yml", lambda d: d.update(_notes=["fine"]))
    assert verdicts(train)["k=2"] == ("done", "")
    (train.root / "script.sh").write_text("#!/bin/bash\necho faster\n")
    assert verdicts(train)["k=2"] == ("changed", "code changed (script.sh)")
    # xmen run --changed: pending again for both xmen and Snakemake, with what depends on them.
    plan = planner.Planner().plan([str(train.root / "eval")], changed=True)
    assert [os.path.basename(v.path) for v in plan] == ["k=1", "eval"]
    planner.release_for_rerun(v.path for v in plan)
    assert verdicts(train)["eval"] == ("run", "status file missing, after requirement k=1 pending")


def test_register_keeps_globs_and_refuses_cycles_through_them(new_set):
    a = new_set("a")
    a.register({"k": 1})
    a.register({"k": 2}, name="b", requires=["k=*"])
    assert files.read_yaml(a.set_file)["experiments"]["b"]["requires"] == ["k=*"]
    with pytest.raises(UsageError, match="requirement cycle"):
        a.register({"k": 3}, name="k=3", requires=["b"])  # b requires k=* which would now match k=3
    with pytest.raises(UsageError, match="matches no linked experiment"):
        a.register({"k": 4}, name="c", requires=["zz*"])


# ---------------------------------------------------------------------- the Snakefile's module
def test_everything_is_asked_for_by_force_flags_and_by_commands_other_than_a_run():
    def call_from(name: str, settings):
        namespace: dict = {}
        code = f"def {name}():\n    return check(settings)\n"
        exec(compile(code, os.path.join("site-packages", "snakemake", "workflow.py"), "exec"), namespace)
        namespace["check"] = lambda s: snakemake_glue.asks_for_everything(s)
        namespace["settings"] = settings
        return namespace[name]()

    plain = SimpleNamespace(forceall=False, forcerun=frozenset(), forcetargets=False)
    assert call_from("execute", plain) is False
    assert call_from("execute", SimpleNamespace(forceall=True, forcerun=(), forcetargets=False)) is True
    assert call_from("execute", SimpleNamespace(forceall=False, forcerun={"xmen_experiment"}, forcetargets=False))
    assert call_from("execute", SimpleNamespace(forceall=False, forcerun=(), forcetargets=True)) is True
    for command in ("summary", "list_changes", "delete_output", "create_report", "printdag", "archive"):
        assert call_from(command, plain) is True


def test_experiment_command_quotes_everything():
    command = snakemake_glue.experiment_command("a b/c'd", 2, {"xmen_attempt": 1, "mem_mb": 100, "_cores": 1})
    threads = " ".join(f"{name}=2" for name in rule_job.THREAD_VARIABLES)
    assert command == (f"XMEN_THREADS=2 {threads} XMEN_ATTEMPT=1 XMEN_MEM_MB=100 "
                       "bash 'a b/c'\"'\"'d/run.sh' > 'a b/c'\"'\"'d/xmen.log' 2>&1")


def test_failed_log_text_keeps_only_the_end(tmp_path):
    log = tmp_path / "xmen.log"
    log.write_text("".join(f"line {i}\n" for i in range(500)))
    text = snakemake_glue.failed_log_text(str(log), max_lines=3)
    assert "(last 3 of 500 lines)" in text and text.rstrip().splitlines()[-2] == "line 499"


# ---------------------------------------------------------------------- provenance of each attempt
def test_attempts_are_bounded_and_logs_kept(tmp_path):
    data: dict = {}
    for i in range(attempts.ATTEMPTS_KEPT + 5):
        run = {"pid": i, "started": f"t{i}"}
        attempts.record_end(data, run, "error" if i % 2 else "finished", "exit code 1" if i % 2 else None, -9 if i % 2 else 0)
    assert len(data["_attempts"]) == attempts.ATTEMPTS_KEPT and data["_attempts"][-1]["pid"] == i
    assert data["_attempts"][-2] == {"pid": i - 1, "started": f"t{i - 1}", "status": "error", "signal": 9, "reason": "exit code 1"}
    for i in range(attempts.ATTEMPTS_KEPT + 3):
        (tmp_path / "xmen.log").write_text(f"attempt {i}\n")
        logs.keep_previous_log(tmp_path)
    kept = sorted(os.listdir(tmp_path / "logs"), key=lambda n: int(n[8:-4]))
    assert len(kept) == attempts.ATTEMPTS_KEPT and kept[-1] == f"attempt-{attempts.ATTEMPTS_KEPT + 3}.log"
    assert (tmp_path / "logs" / kept[-1]).read_text() == f"attempt {attempts.ATTEMPTS_KEPT + 2}\n"


def test_a_run_records_the_code_it_ran_now(new_set, tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], cwd=tmp_path, check=True)
    train = new_set("train")
    train.register({"k": 1})
    subprocess.run(git + ["add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(git + ["commit", "-qm", "one"], cwd=tmp_path, check=True)
    (train.root / "script.sh").write_text("#!/bin/bash\necho two\n")
    subprocess.run(git + ["commit", "-qam", "two"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (train.root / "script.sh").write_text("#!/bin/bash\necho three, not committed\n")
    proc = subprocess.run([sys.executable, "-m", "xmen.job", str(train.root / "k=1" / "params.yml"),
                           str(train.root / "script.sh")], capture_output=True, text=True,
                          env={**os.environ, "SLURM_JOB_ID": "42", "SLURMD_NODENAME": "node7"})
    assert proc.returncode == 0, proc.stderr
    params = files.read_yaml(train.root / "k=1" / "params.yml")
    run = params["_run"]
    assert run["code"]["commit"] == head and params["_version"]["git"]["commit"] == head
    assert run["code"]["dirty"] is True and len(run["code"]["diff_hash"]) == 16  # the uncommitted script
    assert run["code"]["files"] == {"script.sh": setfile.file_hash(str(train.root / "script.sh"))}
    assert run["slurm_job_id"] == "42" and run["slurm_node"] == "node7" and run["status"] == "finished"
    assert run["params_hash"] == planner.params_hash(params) and run["params"] == {"k": 1}
    assert run["code"]["python"] == f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    assert [a["status"] for a in params["_attempts"]] == ["finished"]
    assert (train.root / "k=1" / "xmen.done").read_text().startswith("finished\nrun: ")
