"""The retry policy per failure cause (xmen.retry): the cause read from a params.yml after a failed attempt, and the
decision for every cause under every policy. SLURM's OUT_OF_MEMORY, NODE_FAIL and PREEMPTED cannot be provoked on the
test cluster (no cgroups): they go through xmen.slurm.apply_verdict, as the main Snakemake process records them."""
from __future__ import annotations

from typing import Any

import pytest

from xmen.store import retry, statecheck
from xmen.store import status as st
from xmen.errors import StateFileError, UsageError
from xmen.slurm.sacct import apply_verdict, job_record
from xmen.host import slurm_status

RUN = {"host": "h", "pid": 7, "started": "2026-12-03 12:00:00", "attempt": 1}
ENDED = {**RUN, "ended": "2026-12-03 12:01:00", "returncode": 1}


def slurm_failed(state: str, attempt: int = 1) -> dict[str, Any]:
    """params.yml after a SLURM job in ``state``: the runner recorded its end, then the main process SLURM's verdict."""
    data: dict[str, Any] = {"_status": st.ERROR, "_error": "received SIGTERM; exit code 143",
                            "_run": {**ENDED, "attempt": attempt, "slurm_job_id": "41"}}
    record = job_record("41", attempt, {"State": state, "ExitCode": "0:9", "NodeList": "localhost"})
    apply_verdict(data, record)
    return data


#: params.yml after a failed attempt 1, per cause.
FAILED = {
    retry.ERROR: {"_status": st.ERROR, "_error": "exit code 3", "_run": ENDED},
    retry.OOM: slurm_failed("OUT_OF_MEMORY"),
    retry.TIMEOUT: {"_status": st.TIMEOUT, "_error": "time limit of 1 min reached (runtime)", "_run": ENDED},
    retry.NODE: slurm_failed("NODE_FAIL"),
    retry.PREEMPTED: slurm_failed("PREEMPTED"),
    retry.LOST: {"_status": st.RUNNING, "_run": RUN},
    retry.CANCELLED: slurm_failed("CANCELLED by 0"),
    retry.REJECTED: {"_status": st.ERROR, "_error": "submission rejected by SLURM: invalid partition specified"},
}

# (policy, resources) -> the causes retried; every other cause is not.
TABLE = [
    ([retry.DEFAULT], {}, {retry.NODE, retry.PREEMPTED, retry.LOST}),
    ([retry.DEFAULT], {"mem_mb": [1000, 2000]}, {retry.NODE, retry.PREEMPTED, retry.LOST, retry.OOM}),
    ([retry.DEFAULT], {"mem": ["1GB", "2GB"], "runtime": [10, "1h"]},
     {retry.NODE, retry.PREEMPTED, retry.LOST, retry.OOM, retry.TIMEOUT}),
    ([retry.DEFAULT], {"mem_mb": [2000, 1000], "runtime": [10, 10]}, {retry.NODE, retry.PREEMPTED, retry.LOST}),
    ([retry.DEFAULT, retry.ERROR], {}, {retry.NODE, retry.PREEMPTED, retry.LOST, retry.ERROR}),
    ([retry.ALL], {}, {retry.ERROR, retry.OOM, retry.TIMEOUT, retry.NODE, retry.PREEMPTED, retry.LOST}),
    ([retry.ERROR], {"mem_mb": [1000, 2000]}, {retry.ERROR}),
    ([retry.OOM], {}, {retry.OOM}),
    ([retry.TIMEOUT], {}, {retry.TIMEOUT}),
    ([retry.NODE, retry.PREEMPTED], {}, {retry.NODE, retry.PREEMPTED}),
    ([retry.LOST], {}, {retry.LOST}),
    (None, {}, {retry.ERROR, retry.OOM, retry.TIMEOUT, retry.NODE, retry.PREEMPTED, retry.LOST}),  # before policies
]


@pytest.mark.parametrize("cause", retry.CAUSES)
def test_each_failure_is_read_as_its_cause(cause):
    assert retry.cause_of(FAILED[cause], 1) == cause


@pytest.mark.parametrize("policy, resources, retried", TABLE)
@pytest.mark.parametrize("cause", retry.CAUSES)
def test_the_decision_for_every_cause_under_every_policy(cause, policy, resources, retried):
    options: dict[str, Any] = {"retries": 2, "resources": resources}
    if policy is not None:
        options[retry.POLICY_KEY] = policy
    decision = retry.decide(options, FAILED[cause], 1)
    assert decision.cause == cause
    assert decision.retry == (cause in retried), (cause, policy, resources)
    assert bool(decision.why) == (not decision.retry)


def test_a_finished_experiment_has_no_cause_and_a_cancellation_sticks():
    assert retry.cause_of({"_status": st.FINISHED, "_run": ENDED}, 1) is None
    cancelled = {"_status": st.ERROR, "_error": "exit code 1", "_run": ENDED, st.CANCEL_KEY: {"by": "xmen cancel"}}
    assert retry.cause_of(cancelled, 1) == retry.CANCELLED
    assert retry.cause_of({"_status": st.STOPPED, "_run": ENDED}, 1) == retry.CANCELLED  # Ctrl-C


def test_slurm_timeout_and_a_runner_killed_inside_a_slurm_job():
    assert retry.cause_of(slurm_failed("TIMEOUT"), 1) == retry.TIMEOUT
    # The runner never recorded its end; SLURM said FAILED, which apply_verdict records as an error: lost.
    data: dict[str, Any] = {"_status": st.RUNNING, "_run": {**RUN, "slurm_job_id": "41"}}
    apply_verdict(data, job_record("41", 1, {"State": "FAILED", "ExitCode": "0:9"}))
    assert data["_status"] == st.ERROR
    assert retry.cause_of(data, 1) == retry.LOST
    # The job failed before its runner started (_run is the previous attempt's): an error.
    data = {"_status": st.ERROR, "_error": "exit code 1", "_run": ENDED}
    apply_verdict(data, job_record("42", 2, {"State": "FAILED", "ExitCode": "1:0"}))
    assert retry.cause_of(data, 2) == retry.ERROR


def test_a_verdict_of_an_earlier_attempt_does_not_decide_this_one():
    data = slurm_failed("NODE_FAIL", attempt=1)
    data.update(_status=st.ERROR, _error="exit code 3", _run={**ENDED, "attempt": 2})
    assert retry.cause_of(data, 2) == retry.ERROR


def test_the_note_says_why_once():
    data = dict(FAILED[retry.ERROR])
    decision = retry.decide({"retries": 1, retry.POLICY_KEY: [retry.DEFAULT]}, data, 1)
    retry.note(data, decision)
    retry.note(data, decision)
    assert data["_error"] == "exit code 3; not retried: exceptions and error exits are retried only with --retry-on error"
    node = retry.decide({"retries": 1, retry.POLICY_KEY: [retry.ERROR]}, FAILED[retry.NODE], 1)
    assert node.why == "node failures are not in its --retry-on (error)"


@pytest.mark.parametrize("text, words", [
    ("oom,node", ["oom", "node"]), ("default, error", ["default", "error"]), ("ALL", ["all"]),
    ("oom oom", ["oom"]),
])
def test_policy_words(text, words):
    assert retry.parse_policy(text) == words


@pytest.mark.parametrize("text, message", [
    ("oom,nodes", "unknown cause 'nodes'"), ("cancelled", "'cancelled' is never retried"),
    ("rejected", "'rejected' is never retried"), (" , ", "name at least one cause"),
])
def test_bad_policy_words(text, message):
    with pytest.raises(UsageError, match=message):
        retry.parse_policy(text)


def test_a_hand_edited_policy_is_checked_with_the_set():
    statecheck.check_run_options("experiment.yml", "x", {"retries": 1, "retry_on": ["oom", "default"]})
    with pytest.raises(StateFileError, match="unknown cause 'memory'"):
        statecheck.check_run_options("experiment.yml", "x", {"retries": 1, "retry_on": ["memory"]})
    with pytest.raises(StateFileError, match="must be a list of failure causes"):
        statecheck.check_run_options("experiment.yml", "x", {"retries": 1, "retry_on": "oom"})


def test_snakemake_hears_of_a_failed_job_only_after_its_verdict_is_recorded(monkeypatch):
    """Snakemake asks ``restart_times`` (the retry decision) as soon as the plugin reports a job's failure; inside a
    status check xmen.slurm passes that report on only once SLURM's verdict is in params.yml."""
    import asyncio

    from xmen.slurm import sacct as slurm

    events: list[str] = []
    monkeypatch.setattr(slurm_status, "record_job_ends", lambda infos: events.append(f"recorded {len(infos)}"))

    class Executor:
        def report_job_error(self, job_info: Any, msg: Any = None, **kwargs: Any) -> None:
            events.append(f"reported {job_info} {msg}")

        report_job_success = report_job_error

        async def check_active_jobs(self, active_jobs: list[Any]) -> Any:
            for job in active_jobs:
                if job == "running":
                    yield job
                else:
                    (self.report_job_error if job == "failed" else self.report_job_success)(job, msg=job)
            events.append("checked")

    Executor.report_job_error = slurm_status._reporting(Executor.report_job_error)
    Executor.report_job_success = slurm_status._reporting(Executor.report_job_success)
    Executor.check_active_jobs = slurm_status._checking(Executor.check_active_jobs)

    async def check() -> list[Any]:
        return [job async for job in Executor().check_active_jobs(["failed", "running", "done"])]

    assert asyncio.run(check()) == ["running"]
    assert events == ["checked", "recorded 2", "reported failed failed", "reported done done"]
    events.clear()
    Executor().report_job_error("rejected", msg="sbatch")  # outside a status check (a submission): at once
    assert events == ["recorded 1", "reported rejected sbatch"]


def test_a_report_from_another_thread_during_a_status_check_goes_on_at_once(monkeypatch):
    """A rejected submission is reported from Snakemake's thread while the poll thread may be checking: it is not
    the check's to hold (the check could end before it was added, and Snakemake would wait for it forever)."""
    import asyncio
    import threading

    from xmen.slurm import sacct as slurm

    events: list[str] = []
    monkeypatch.setattr(slurm_status, "record_job_ends", lambda infos: events.append(f"recorded {list(infos)}"))

    class Executor:
        def report_job_error(self, job_info: Any, msg: Any = None) -> None:
            events.append(f"reported {job_info}")

        async def check_active_jobs(self, active_jobs: list[Any]) -> Any:
            other = threading.Thread(target=self.report_job_error, args=("rejected",))
            other.start()
            other.join()
            yield "running"

    Executor.report_job_error = slurm_status._reporting(Executor.report_job_error)
    Executor.check_active_jobs = slurm_status._checking(Executor.check_active_jobs)

    async def check() -> list[Any]:
        return [job async for job in Executor().check_active_jobs(["running"])]

    assert asyncio.run(check()) == ["running"]
    assert events == ["recorded ['rejected']", "reported rejected"]
