"""Adopting the SLURM jobs a killed Snakemake left, without a cluster: the planner's verdict, stale markers and job
ids SLURM reused, the extra status query, and the hooked ``run_job`` (xmen.slurm_queue, xmen.planner, xmen.slurm).

squeue's answers here are canned text in squeue's own format (``-o %i|%T|%r|%V|%S|%j``); the real cluster's
answers are tested in tests/slurm/test_slurm_queue.py.
"""
from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xmen.store import files
from xmen.run import planner
from xmen.slurm import sacct as slurm, queue as slurm_queue
from xmen.store import status as st
from xmen.sets.expset import ExperimentSet
from xmen.host import slurm_status
from xmen.host import slurm_submit
from xmen.store import markers

UUID = "0b7c7c1e-1111-4222-8333-444455556666"


def when(seconds: float = 0) -> datetime:
    return datetime.now().replace(microsecond=0) + timedelta(seconds=seconds)


def slurm_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class Squeue:
    """A canned ``squeue`` answer: {job id: (state, reason, submitted, started, name)}; counts its calls."""

    def __init__(self, jobs: dict[str, tuple[str, str, datetime, datetime | None, str]]) -> None:
        self.jobs = jobs
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], **_: Any) -> subprocess.CompletedProcess:
        self.calls.append(command)
        lines = [f"{job}|{state}|{reason}|{slurm_time(submitted)}|{slurm_time(started) if started else 'N/A'}|{name}"
                 for job, (state, reason, submitted, started, name) in self.jobs.items()]
        return subprocess.CompletedProcess(command, 0, "\n".join(lines) + "\n", "")


@pytest.fixture
def sweep(xmen_home, tmp_path: Path) -> Path:
    """A set with ``first`` and ``then`` (which requires ``first``)."""
    (tmp_path / "script.sh").write_text("#!/bin/bash\necho ran\n")
    (tmp_path / "defaults.yml").write_text("k: 0  # (int) K\n")
    exp_set = ExperimentSet.init(tmp_path / "s", script=tmp_path / "script.sh", defaults=tmp_path / "defaults.yml")
    exp_set.register({"k": 1}, name="first")
    exp_set.register({"k": 2}, name="then", requires=["first"])
    return exp_set.root


def plan(root: Path, squeue: Squeue, adopt: bool, reasons: bool = True) -> dict[str, planner.Verdict]:
    decide = planner.Planner(reasons=reasons, adopt=adopt)
    decide._queue = slurm_queue.QueueView(run=squeue)
    return {Path(v.path).name: v for v in decide.plan([str(root / "first"), str(root / "then")])}


def test_a_queued_job_is_adopted_by_a_slurm_run_and_skipped_by_others(sweep: Path) -> None:
    markers.mark(sweep / "first", "123", UUID)
    squeue = Squeue({"123": ("PENDING", "BeginTime", when(-1), None, UUID)})
    for reasons in (True, False):
        adopted = plan(sweep, squeue, adopt=True, reasons=reasons)
        assert adopted["first"] == planner.Verdict(
            str(sweep / "first"), planner.RUN, "adopts SLURM job 123 (queued: BeginTime), not submitted again",
            st.QUEUED, job_id="123")
        assert adopted["then"].action == planner.RUN and not adopted["then"].job_id  # waits for it in the DAG
    skipped = plan(sweep, squeue, adopt=False)
    assert skipped["first"].action == planner.SKIP and not skipped["first"].job_id
    assert skipped["first"].reason == "queued as SLURM job 123 (BeginTime), not submitted again"
    assert skipped["then"].action == planner.SKIP


@pytest.mark.parametrize("job", [
    ("RUNNING", "None", when(-1), when(0), "another-run"),  # the id now names another run's job
    ("PENDING", "Priority", when(3600), None, UUID),  # same name, but submitted an hour after the marker's job
    ("COMPLETED", "None", when(-1), when(0), UUID),  # ended (squeue still shows it for MinJobAge)
    ("CANCELLED", "None", when(-1), None, UUID),  # cancelled while pending
])
def test_a_marker_whose_job_is_not_alive_holds_nothing_back(sweep: Path, job) -> None:
    state, reason, submitted, started, name = job
    markers.mark(sweep / "first", "123", UUID if state != "PENDING" else "")  # an old marker has no name
    for adopt in (True, False):
        verdicts = plan(sweep, Squeue({"123": (state, reason, submitted, started, name)}), adopt=adopt)
        assert (verdicts["first"].action, verdicts["first"].reason, verdicts["first"].job_id) == (
            planner.RUN, "new", ""), verdicts["first"]


def test_same_job_compares_the_name_then_the_submit_time() -> None:
    marker = slurm_queue.Marker("7", slurm_time(when()), UUID)
    assert slurm_queue.same_job(marker, slurm_queue.JobState("PENDING", "", slurm_time(when(-2)), "N/A", UUID))
    assert not slurm_queue.same_job(marker, slurm_queue.JobState("PENDING", "", slurm_time(when(-2)), "N/A", "x"))
    unnamed = slurm_queue.Marker("7", when().strftime("%Y-%m-%d-%H-%M-%S"))
    assert slurm_queue.same_job(unnamed, slurm_queue.JobState("PENDING", "", slurm_time(when(-1)), "N/A", "x"))
    assert not slurm_queue.same_job(unnamed, slurm_queue.JobState("PENDING", "", slurm_time(when(60)), "N/A", "x"))
    assert slurm_queue.same_job(slurm_queue.Marker("7"), slurm_queue.JobState("PENDING"))  # nothing to compare


def running(root: Path, job_id: str, started: datetime) -> None:
    """``first`` is running in SLURM job ``job_id`` on another host (its heartbeat fresh), as the runner records."""
    def change(data: dict[str, Any]) -> None:
        data["_status"] = st.RUNNING
        data["_run"] = {"host": "node-elsewhere", "pid": 1234, "started": started.strftime("%Y-%m-%d-%H-%M-%S"),
                        "slurm_job_id": job_id}

    files.update_yaml(root / "first" / "params.yml", change)
    (root / "first" / st.HEARTBEAT_FILE).touch()


def test_a_running_experiment_is_adopted_while_its_job_is_alive(sweep: Path) -> None:
    running(sweep, "55", when())
    squeue = Squeue({"55": ("RUNNING", "None", when(-9), when(-3), "old-run")})
    for reasons in (True, False):
        verdicts = plan(sweep, squeue, adopt=True, reasons=reasons)
        assert (verdicts["first"].action, verdicts["first"].reason, verdicts["first"].status,
                verdicts["first"].job_id) == (planner.RUN, "adopts SLURM job 55 (running), not submitted again",
                                              st.RUNNING, "55"), verdicts["first"]
        assert verdicts["then"].action == planner.RUN
    assert len(squeue.calls) == 2 and all("-u" in call for call in squeue.calls)  # one squeue call per plan
    assert plan(sweep, squeue, adopt=False)["first"].reason == "running now"
    assert len(squeue.calls) == 2  # without adopting, a running experiment is not asked about


def test_a_running_experiment_is_not_adopted_when_its_job_id_names_a_later_job(sweep: Path) -> None:
    running(sweep, "55", when(-600))
    squeue = Squeue({"55": ("RUNNING", "None", when(-9), when(-3), "old-run")})  # started after the run did
    verdicts = plan(sweep, squeue, adopt=True)
    assert verdicts["first"].action == planner.SKIP and verdicts["first"].reason == "running now"
    assert plan(sweep, squeue, adopt=True, reasons=False)["first"].job_id == ""


def test_the_status_query_asks_about_adopted_jobs_by_id() -> None:
    plugin = ("sacct -X --parsable2 --clusters all --noheader --format=JobIdRaw,State --starttime 2026-12-01T12:00 "
              "--endtime now --name 704ad2cf")
    assert slurm_status.adopted_query(plugin, []) is None
    assert slurm_status.adopted_query(plugin, ["12", "13_2"]) == (
        "sacct -X --parsable2 --noheader --format=JobID,State -j 12,13_2")
    assert slurm_status.adopted_query("squeue --format='%i|%T' --states=all --noheader --name x", ["12"]) == (
        "squeue '--format=%i|%T' --states=all --noheader --jobs 12")
    assert slurm_status.adopted_query("something else", ["12"]) is None


class Job:
    """What the hooks read of a Snakemake job."""

    name = "xmen_experiment"
    jobid = 4
    wildcards: list[str] = []

    def __init__(self, exp: str) -> None:
        self.wildcards_dict = {"exp": exp}

    def is_group(self) -> bool:
        return False


def test_the_hooked_run_job_reports_an_adopted_job_without_submitting(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("snakemake_interface_executor_plugins")
    calls: list[tuple[str, Any]] = []

    class Logger:
        def info(self, text: str) -> None:
            calls.append(("info", text))

    class Executor:  # the plugin's methods the hooks wrap
        logger = Logger()
        slurm_logdir = tmp_path / "logs"
        run_uuid = UUID

        def _report_job_submission_threadsafe(self, info: Any) -> None:
            calls.append(("submitted", info))

        def _report_job_error_threadsafe(self, info: Any, msg: str) -> None:
            calls.append(("error", msg))

        def run_job(self, job: Any) -> None:
            calls.append(("sbatch", job))

    monkeypatch.setattr(slurm_submit, "HOOKS", slurm_submit._Hooks())
    assert slurm_submit.install(Executor, str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    slurm_submit.adopt({str(tmp_path / "a"): "321"})
    slurm_submit.HOOKS.refused[str(tmp_path / "a")] = "a problem"  # its job is in SLURM already: followed anyway
    Executor().run_job(Job("a"))
    slurm_submit.HOOKS.refused.clear()
    Executor().run_job(Job("b"))
    Executor().run_job(Job("a"))  # a retry, after the adopted job failed: submitted
    kinds = [kind for kind, _ in calls]
    assert kinds == ["info", "submitted", "sbatch", "sbatch"], calls
    info = calls[1][1]
    assert info.external_jobid == "321" and info.job.wildcards_dict == {"exp": "a"}
    assert str(info.aux["slurm_logfile"]).endswith("321.log")
    assert slurm_submit.HOOKS.following == {"321"}
    assert not (tmp_path / "a" / markers.MARKER_FILE).exists()  # its marker is the earlier run's, if any


def test_xmen_run_plans_adoption_only_for_the_slurm_executor(tmp_path: Path, monkeypatch) -> None:
    from xmen.run.engine import runs_on_slurm

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name, executor in (("slurm", "slurm"), ("local", "local")):
        (tmp_path / "xdg" / "snakemake" / name).mkdir(parents=True)
        (tmp_path / "xdg" / "snakemake" / name / "config.yaml").write_text(f"executor: {executor}\njobs: 4\n")
    assert runs_on_slurm("slurm", [], tmp_path) and not runs_on_slurm("local", [], tmp_path)
    assert not runs_on_slurm(None, [], tmp_path) and not runs_on_slurm("missing", [], tmp_path)
    assert runs_on_slurm(None, ["--executor", "slurm"], tmp_path) and runs_on_slurm("local", ["-e", "slurm"], tmp_path)
    assert not runs_on_slurm("slurm", ["--executor=local"], tmp_path)


def test_a_dry_run_names_the_executor_it_would_run_with(tmp_path: Path) -> None:
    """The planner adopts in a dry run with the slurm executor too (it says what that run would do): the glue asks
    for the executor behind ``-n``."""
    import sys
    import textwrap

    (tmp_path / "Snakefile").write_text(textwrap.dedent("""\
        from xmen.host import plugin as slurm
        def seen(wildcards):  # Snakemake chooses its executor after it parsed the Snakefile
            open("seen.txt", "w").write(f"{slurm.executor_in_use(workflow)} "
                                        f"{slurm.executor_in_use(workflow, dry_run=True)}")
            return []
        rule all:
            input: seen
            output: "x"
            shell: "touch {output}"
        """))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-c1", "-q", "-n"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "seen.txt").read_text() == "dryrun local"
