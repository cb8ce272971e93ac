"""xmen.slurm without a cluster: the ``CANCELLED by <uid>`` normalisation over the plugin's real status query,
sacct parsing, SLURM's verdict in params.yml, and its order against the runner's own write (xmen.status.settle).
The same on a real cluster: tests/slurm/test_slurm_cancel.py."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xmen.store import files
from xmen.slurm import sacct as slurm
from xmen.store import status as st
from xmen.host import plugin as slurm_plugin
from xmen.host import slurm_status

from cli_helpers import wait_until

plugin = pytest.importorskip("snakemake_executor_plugin_slurm")


# ------------------------------------------------------------------------------------------ the normalisation
@pytest.mark.parametrize("raw, state", [
    ("CANCELLED by 0", "CANCELLED"),  # what sacct says after scancel (the plugin 2.8 waits for it forever)
    ("CANCELLED by 1234", "CANCELLED"),
    ("CANCELLED", "CANCELLED"),  # the fixed form, and a second pass: idempotent
    ("COMPLETED", "COMPLETED"),
    ("RUNNING", "RUNNING"),
    ("OUT_OF_MEMORY", "OUT_OF_MEMORY"),
    ("", ""),
])
def test_normalise_state_buggy_and_fixed_forms(raw, state):
    assert slurm.normalise_state(raw) == state
    assert slurm.normalise_state(slurm.normalise_state(raw)) == state


def _query(query, rows: str) -> dict[str, str] | None:
    command = f"printf {rows!r}"  # the plugin runs the status command itself (shlex.split, no shell)
    statuses, _ = asyncio.run(query(command, logging.getLogger("test")))
    return statuses


def test_plugin_query_reports_cancelled_by_uid_and_the_wrapper_normalises_it():
    """The plugin's real query function passes sacct's text through; the wrapper xmen installs normalises it,
    twice wrapped as once, and a failed query stays None."""
    rows = "1|CANCELLED by 0\n2|COMPLETED\n3|CANCELLED\n"
    assert _query(plugin.query_job_status, rows) == {"1": "CANCELLED by 0", "2": "COMPLETED", "3": "CANCELLED"}
    wrapped = slurm_status._normalising(plugin.query_job_status)
    assert slurm_status._normalising(wrapped) is wrapped
    assert _query(wrapped, rows) == {"1": "CANCELLED", "2": "COMPLETED", "3": "CANCELLED"}
    statuses, duration = asyncio.run(wrapped("false", logging.getLogger("test")))
    assert (statuses, duration) == (None, None)


def test_install_is_idempotent(monkeypatch):
    monkeypatch.setattr(plugin, "query_job_status", plugin.query_job_status)
    for name in ("report_job_success", "report_job_error", "check_active_jobs"):
        monkeypatch.setattr(plugin.Executor, name, getattr(plugin.Executor, name))
    original = plugin.Executor.check_active_jobs
    assert slurm_plugin.install()
    once = plugin.Executor.check_active_jobs
    assert slurm_plugin.install()
    assert plugin.Executor.check_active_jobs is once  # a second install wraps nothing again
    assert plugin.query_job_status.__wrapped__.__module__.endswith("job_status_query")
    assert not getattr(plugin.Executor.report_job_error.__wrapped__, slurm_status._MARK, False)
    assert once.__wrapped__.__wrapped__ is original  # slurm_poll's decision around the verdicts, around the plugin's


def test_executor_in_use_reads_snakemakes_api_frame(tmp_path):
    """The Snakefile is parsed inside snakemake.api's execute_workflow: the glue sees the executor there."""
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(textwrap.dedent("""\
        from xmen.host import plugin as slurm
        def seen(wildcards):  # Snakemake chooses its executor after it parsed the Snakefile
            open("seen.txt", "w").write(str(slurm.executor_in_use(workflow)))
            return []
        rule all:
            input: seen
            output: "x"
            shell: "touch {output}"
        """))
    for flags, seen in (([], "local"), (["-n"], "dryrun")):
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-c1", "-q", *flags], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "seen.txt").read_text() == seen
    assert slurm_plugin.executor_in_use(sys._getframe(0)) is None


# ------------------------------------------------------------------------------------------ sacct and the verdict
SACCT = """\
804|804|CANCELLED by 0|0:0|localhost|main|00:00:02|
804.batch|804.batch|CANCELLED|0:15|localhost||00:00:02|2048K
804.0|804.0|CANCELLED|0:15|localhost||00:00:01|1024K
"""
ARRAY_TASK = """\
903|901_2|COMPLETED|0:0|localhost|main|00:00:03|
903.batch|901_2.batch|COMPLETED|0:0|localhost||00:00:03|4096K
"""


def test_parse_sacct_takes_the_largest_steps_max_rss():
    """The experiment runs in a job step of its own (its srun step), not in the batch step: the job's MaxRSS is its
    largest step's."""
    row = slurm.parse_sacct("804", SACCT)
    assert row is not None and row["MaxRSS"] == "2048K" and row["State"] == "CANCELLED by 0"
    direct = "810|810|COMPLETED|0:0|n1|main|00:00:09|\n810.batch|810.batch|COMPLETED|0:0|n1||00:00:09|20480K\n" \
             "810.extern|810.extern|COMPLETED|0:0|n1||00:00:09|0\n810.0|810.0|COMPLETED|0:0|n1||00:00:08|1.5G\n"
    assert slurm.parse_sacct("810", direct)["MaxRSS"] == "1.5G"
    record = slurm.job_record("804", 1, row)
    assert record == {"job_id": "804", "attempt": 1, "state": "CANCELLED", "exit_code": "0:0", "node": "localhost",
                      "partition": "main", "elapsed": "00:00:02", "max_rss": "2048K"}
    never_ran = "805|805|CANCELLED by 0|0:0|None assigned|main|00:00:00|\n"
    pending = slurm.job_record("805", 1, slurm.parse_sacct("805", never_ran))
    assert pending["node"] is None and pending["max_rss"] is None
    assert slurm.parse_sacct("9", SACCT) is None
    task = slurm.parse_sacct("901_2", ARRAY_TASK)  # the plugin's id of an array task
    assert task is not None and task["MaxRSS"] == "4096K" and task["State"] == "COMPLETED"


def test_one_sacct_reader_answers_the_verdict_and_the_listing():
    """SLURM's verdict (xmen.slurm.query) and `xmen list`'s word on a job that left the queue
    (xmen.slurm_queue.ended_states) ask sacct the same way, once per question, and read the same rows."""
    from xmen.slurm import queue as slurm_queue

    calls: list[list[str]] = []
    answer = {"code": 0}

    def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
        calls.append(command)
        return subprocess.CompletedProcess(command, answer["code"], SACCT + ARRAY_TASK, "sacct: error")

    rows = slurm.query(["804", "901_2", "9", "804"], run=run)
    assert sorted(rows) == ["804", "901_2"] and (rows["804"]["MaxRSS"], rows["901_2"]["MaxRSS"]) == ("2048K", "4096K")
    assert slurm_queue.ended_states(["804", "901_2", "9"], run=run) == {"804": "CANCELLED", "901_2": "COMPLETED"}
    assert len(calls) == 2 and calls[0][:3] == calls[1][:3] == ["sacct", "-j", "804,901_2,9"], calls
    assert calls[0][3:] == calls[1][3:]
    answer["code"] = 1  # no accounting: nothing known, nothing raised
    assert slurm.query(["804"], run=run) == {} and slurm_queue.ended_states(["804"], run=run) == {}

    def missing(command: list[str], **kwargs) -> subprocess.CompletedProcess:
        raise FileNotFoundError(command[0])

    assert slurm.query(["804"], run=missing) == {} and slurm_queue.ended_states(["804"], run=missing) == {}
    assert slurm.query([], run=missing) == {}


def record(state: str, job_id: str = "7") -> dict:
    return {"job_id": job_id, "attempt": 1, "state": state, "exit_code": "0:0", "node": "n1", "partition": "main",
            "elapsed": "00:00:05", "max_rss": None}


@pytest.mark.parametrize("state, before, status, error", [
    ("CANCELLED", {"_status": st.RUNNING}, st.CANCELLED, "cancelled (SLURM job 7)"),
    ("CANCELLED", {"_status": st.REGISTERED}, st.CANCELLED, "cancelled (SLURM job 7)"),  # pending, never started
    ("CANCELLED", {"_status": st.TIMEOUT, "_error": "received SIGTERM; exit code 143"}, st.CANCELLED,
     "cancelled (SLURM job 7); received SIGTERM; exit code 143"),
    ("CANCELLED", {"_status": st.CANCELLED, "_error": "cancelled with xmen cancel (SLURM job 7)"}, st.CANCELLED,
     "cancelled with xmen cancel (SLURM job 7)"),
    ("TIMEOUT", {"_status": st.TIMEOUT, "_error": "received SIGTERM; exit code 143"}, st.TIMEOUT,
     "time limit (SLURM job 7); received SIGTERM; exit code 143"),
    ("OUT_OF_MEMORY", {"_status": st.ERROR, "_error": "killed by signal 9"}, st.ERROR,
     "out of memory (SLURM); killed by signal 9"),
    ("NODE_FAIL", {"_status": st.RUNNING}, st.ERROR, "node failure"),
    ("PREEMPTED", {"_status": st.RUNNING}, st.ERROR, "preempted"),
    ("FAILED", {"_status": st.ERROR, "_error": "exit code 3"}, st.ERROR, "exit code 3"),  # the runner's stays
    ("FAILED", {"_status": st.REGISTERED}, st.ERROR, "SLURM job 7 failed (exit code 0:0)"),
    ("COMPLETED", {"_status": st.FINISHED}, st.FINISHED, None),
])
def test_slurm_state_decides_the_status(state, before, status, error):
    data = {"a": 1, **before}
    slurm.apply_verdict(data, record(state))
    assert (data["_status"], data.get("_error")) == (status, error)
    assert data["_slurm"][-1]["state"] == state and data["a"] == 1
    slurm.apply_verdict(data, record(state))  # the same report again: one record, same verdict
    assert len(data["_slurm"]) == 1 and (data["_status"], data.get("_error")) == (status, error)


def test_an_earlier_jobs_end_does_not_touch_the_run_of_its_retry():
    data = {"_status": st.RUNNING, "_run": {"slurm_job_id": "8"}}
    slurm.apply_verdict(data, record("OUT_OF_MEMORY", "7"))
    assert data["_status"] == st.RUNNING and "_error" not in data and data["_slurm"][-1]["job_id"] == "7"
    local = {"_status": st.RUNNING, "_run": {"host": "laptop", "pid": 12}}  # a local run started meanwhile
    slurm.apply_verdict(local, record("TIMEOUT", "7"))
    assert local["_status"] == st.RUNNING and "_error" not in local


@pytest.mark.parametrize("state", ["CANCELLED", "TIMEOUT", "FAILED", "OUT_OF_MEMORY"])
def test_an_experiment_that_finished_in_the_job_stays_finished(state):
    """A pack (many experiments, one job): the job's end state is not the verdict on the ones it finished."""
    data = {"_status": st.FINISHED, "_run": {"slurm_job_id": "7"}}
    slurm.apply_verdict(data, record(state, "7"))
    assert data["_status"] == st.FINISHED and "_error" not in data and data["_slurm"][-1]["state"] == state
    earlier = {"_status": st.FINISHED, "_run": {"slurm_job_id": "6"}}  # finished by an earlier job: SLURM decides
    slurm.apply_verdict(earlier, record("CANCELLED", "7"))
    assert earlier["_status"] == st.CANCELLED


def test_records_accumulate_per_attempt_and_keep_the_last_twenty():
    data: dict = {}
    for job in range(25):
        slurm.apply_verdict(data, record("COMPLETED", str(job)))
    assert [r["job_id"] for r in data["_slurm"]] == [str(j) for j in range(5, 25)]


def test_runner_write_after_slurms_verdict_keeps_it():
    """scancel: the main process may record CANCELLED before the runner, still stopping, writes its timeout."""
    run = {"host": "h", "pid": 1, "slurm_job_id": "7"}
    data = {"_status": st.RUNNING, "_run": run}
    slurm.apply_verdict(data, record("CANCELLED"))
    assert st.settle(data, run, st.TIMEOUT, "received SIGTERM; exit code 143") == st.CANCELLED
    assert data["_error"] == "cancelled (SLURM job 7); received SIGTERM; exit code 143"
    # A verdict of an earlier job (the last attempt's) does not hold for this run.
    later = {"host": "h", "pid": 2, "slurm_job_id": "8"}
    assert st.settle(data, later, st.TIMEOUT, "received SIGTERM") == st.TIMEOUT


def test_shell_runner_adds_its_reason_to_a_verdict_written_while_it_stops(tmp_path: Path):
    """The runner of a shell script: SLURM's TIMEOUT lands while the script handles SIGTERM; the status stays
    SLURM's and the runner's own reason (what the script saw) is added to it."""
    folder = tmp_path / "exp"
    folder.mkdir()
    params = folder / "params.yml"
    files.write_yaml(params, {"_name": "exp", "_status": st.REGISTERED, "a": 1})
    script = tmp_path / "script.sh"
    script.write_text(textwrap.dedent("""\
        #!/bin/bash
        trap 'touch "$(dirname "$1")/term"; sleep 1; exit 143' TERM
        touch "$(dirname "$1")/started"
        sleep 30 & wait $!
        """))
    proc = subprocess.Popen([sys.executable, "-m", "xmen.job", str(params), str(script)],
                            env={**os.environ, "SLURM_JOB_ID": "7"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until((folder / "started").exists, 30, "the experiment started", proc=proc)
    proc.send_signal(signal.SIGTERM)
    wait_until((folder / "term").exists, 30, "the experiment handling the SIGTERM", proc=proc)
    files.update_yaml(params, lambda data: slurm.apply_verdict(data, record("TIMEOUT")))
    proc.communicate(timeout=30)
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT
    assert data["_error"] == "time limit (SLURM job 7); received SIGTERM; exit code 143"


# ------------------------------------------------------------------------------------------ order with real runners
SAVING_EXPERIMENT = """\
import os
import time
from xmen.experiment import Experiment


class Saving(Experiment):
    def __init__(self):
        \"\"\"Sleeps; on SIGTERM takes a second to save its state, like a training loop.\"\"\"
        super().__init__()
        self.a: int = 1  # @p A parameter

    def run(self):
        try:  # 'started' inside the try: a SIGTERM once it exists always ends in the finally
            open(os.path.join(self.directory, 'started'), 'w').close()
            time.sleep(30)
        finally:
            open(os.path.join(self.directory, 'term'), 'w').close()
            time.sleep(1)


if __name__ == '__main__':
    exp = Saving()
    exp.main(exp.parse_args())
"""


def test_python_experiment_keeps_a_verdict_written_while_it_stops(tmp_path: Path, xmen_home):
    """A python experiment in a (fake) SLURM job: SLURM's CANCELLED lands while it saves its state after SIGTERM;
    its own record, then the runner's, keep it (before, the experiment wrote `timeout` over it)."""
    script_py = tmp_path / "saving.py"
    script_py.write_text(SAVING_EXPERIMENT)
    root = tmp_path / "root"
    subprocess.run([sys.executable, str(script_py), "--to_root", str(root)], check=True)
    subprocess.run([sys.executable, str(script_py), "--register", str(root), "e1"], check=True)
    params, folder = root / "e1" / "params.yml", root / "e1"
    env = {**os.environ, "SLURM_JOB_ID": "7"}
    proc = subprocess.Popen([sys.executable, "-m", "xmen.job", str(params), str(root / "script.sh")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until((folder / "started").exists, 30, "the experiment started", proc=proc)  # in run(): the trap is armed
    proc.send_signal(signal.SIGTERM)
    wait_until((folder / "term").exists, 30, "the experiment handling the SIGTERM", proc=proc)
    files.update_yaml(params, lambda data: slurm.apply_verdict(data, record("CANCELLED")))
    _, err = proc.communicate(timeout=30)
    data = files.read_yaml(params)
    assert data["_status"] == st.CANCELLED, (data.get("_error"), err)
    assert data["_error"] == f"cancelled (SLURM job 7); received SIGTERM; exit code {data['_run']['returncode']}", (
        data["_error"])
    assert data["_run"]["slurm_job_id"] == "7" and data["_run"]["returncode"] != 0


def test_a_preempted_job_slurm_did_not_requeue_has_ended():
    """The plugin waits for a PREEMPTED job to resume; one that is not back in the queue (PreemptMode=CANCEL) ended:
    it is reported failed (its verdict, from sacct, stays `preempted`), a requeued one is left to SLURM."""
    from xmen.slurm.queue import JobState

    asked: list[list[str]] = []

    def alive(ids):
        asked.append(sorted(ids))
        return {"2": JobState("PENDING", "BeginTime"), "3": JobState("PREEMPTED")}

    statuses = {"1": "PREEMPTED", "2": "PREEMPTED", "3": "PREEMPTED", "4": "RUNNING"}
    assert slurm_status.ended_preemptions(statuses, alive) == {"1": "FAILED", "2": "PREEMPTED", "3": "FAILED",
                                                        "4": "RUNNING"}
    assert asked == [["1", "2", "3"]]
    assert slurm_status.ended_preemptions({"4": "RUNNING"}, alive) == {"4": "RUNNING"} and len(asked) == 1  # no call
    assert slurm_status.ended_preemptions(statuses, lambda ids: None) == statuses  # squeue cannot answer
    assert slurm_status.ended_preemptions(None, alive) is None
