"""xmen.slurm_poll: the SLURM plugin's status interval never exceeds Snakemake's --seconds-between-status-checks,
and is short while no job is in SLURM (the real-cluster figure: tests/slurm/test_resources_slurm.py)."""
from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import pytest

from xmen.host import poll as slurm_poll


@pytest.mark.parametrize("interval, cap, expected", [
    (12, 3, 3), (2, 3, 2), (None, 3, None), (40, None, 40), (40, 0, 40), (0.5, 3, 0.5),
])
def test_capped_interval(interval, cap, expected):
    assert slurm_poll.capped_interval(interval, cap) == expected


class Plugin:
    """The plugin's shape: an async generator yielding the jobs still active, then setting the next interval as
    snakemake-executor-plugin-slurm 2.8 does (init after a poll that saw a job end, else 10 s more)."""

    def __init__(self, cap: float | None) -> None:
        self.workflow = SimpleNamespace(remote_execution_settings=SimpleNamespace(seconds_between_status_checks=cap))
        self.next_seconds_between_status_checks = 2

    async def check_active_jobs(self, active_jobs):
        ended = [job for job in active_jobs if job.endswith("!")]
        for job in active_jobs:
            if job not in ended:
                yield job
        self.next_seconds_between_status_checks = 2 if ended else self.next_seconds_between_status_checks + 10


def poll(executor: Plugin, jobs: list[str]) -> list[str]:
    async def run() -> list[str]:
        return [job async for job in executor.check_active_jobs(jobs)]

    return asyncio.run(run())


def test_the_interval_stops_growing_at_the_cap(monkeypatch):
    monkeypatch.setattr(Plugin, "check_active_jobs", slurm_poll.capping(Plugin.check_active_jobs))
    executor = Plugin(cap=3)
    assert poll(executor, ["a", "b"]) == ["a", "b"]
    assert executor.next_seconds_between_status_checks == 3  # the plugin said 12
    assert poll(executor, ["a", "b"]) == ["a", "b"]
    assert executor.next_seconds_between_status_checks == 3  # 13
    assert poll(executor, ["a!", "b"]) == ["b"]
    assert executor.next_seconds_between_status_checks == 2  # a job ended: the plugin's own 2
    assert poll(executor, ["b!"]) == []
    assert executor.next_seconds_between_status_checks == slurm_poll.IDLE_INTERVAL  # nothing left in SLURM
    assert poll(executor, []) == []
    assert executor.next_seconds_between_status_checks == slurm_poll.IDLE_INTERVAL


def test_without_a_cap_only_the_idle_interval_applies(monkeypatch):
    monkeypatch.setattr(Plugin, "check_active_jobs", slurm_poll.capping(Plugin.check_active_jobs))
    executor = Plugin(cap=None)
    poll(executor, ["a"])
    assert executor.next_seconds_between_status_checks == 12


def test_capping_is_idempotent():
    once = slurm_poll.capping(Plugin.check_active_jobs)
    assert slurm_poll.capping(once) is once


def test_install_patches_the_imported_plugin_only(monkeypatch):
    fake = SimpleNamespace(Executor=type("Executor", (), {"check_active_jobs": Plugin.check_active_jobs}))
    monkeypatch.setitem(sys.modules, slurm_poll.PLUGIN, fake)
    assert slurm_poll.install() is True
    assert getattr(fake.Executor.check_active_jobs, "_xmen_capped_interval", False)
    monkeypatch.delitem(sys.modules, slurm_poll.PLUGIN)
    assert slurm_poll.install() is False  # not imported: nothing is imported for it
    assert slurm_poll.PLUGIN not in sys.modules


def test_an_ended_job_brings_the_next_status_check_back_to_the_initial_interval():
    """The plugin resets its interval only after a success; after a failure it waits 10 s longer each time, which
    Snakemake then sits out before it exits. The wrapper resets it whenever a job ended."""
    async def check(self, active_jobs):  # the plugin's contract: yield the jobs still active
        for job in active_jobs:
            if job != "ended":
                yield job
        self.next_seconds_between_status_checks += 10

    wrapped = slurm_poll.capping(check)
    assert slurm_poll.capping(wrapped) is wrapped

    def run(jobs):
        executor = type("E", (), {})()
        settings = type("S", (), {"init_seconds_before_status_checks": 2})
        executor.workflow = type("W", (), {"executor_settings": settings, "remote_execution_settings": None})
        executor.next_seconds_between_status_checks = 12

        async def collect():
            return [j async for j in wrapped(executor, jobs)]

        return asyncio.run(collect()), executor.next_seconds_between_status_checks

    assert run(["a", "ended"]) == (["a"], 2)
    assert run(["a", "b"]) == (["a", "b"], 22)  # nothing ended: the plugin's back-off stays
