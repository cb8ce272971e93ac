"""xmen.slurm_queue without a cluster: the marker, the runner removing it, what sinfo text means, sbatch's words.

What SLURM itself answers (squeue, sacct, sbatch, the plugin's hooks) is tested on the real cluster in
tests/slurm/test_slurm_queue.py.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xmen.store import files
from xmen.run import planner
from xmen.slurm import queue as slurm_queue
from xmen.store import status as st
from xmen.sets.expset import ExperimentSet
from xmen.slurm import partitions
from xmen.store import markers

SINFO = "main*|8000|2|(null)\nother|8000|2|(null)\nother|16000|8|gpu:2(S:0),tmpdisk:100\n"


def test_marker_round_trip_and_unmark(tmp_path: Path) -> None:
    assert slurm_queue.marker(tmp_path) is None
    markers.mark(tmp_path, "123_4")
    found = slurm_queue.marker(tmp_path)
    assert found is not None and found.job_id == "123_4" and found.submitted
    markers.unmark(tmp_path)
    markers.unmark(tmp_path)  # twice is fine
    assert not (tmp_path / markers.MARKER_FILE).exists()
    (tmp_path / markers.MARKER_FILE).write_text("[not, a, mapping]\n")
    assert slurm_queue.marker(tmp_path) is None


def test_sinfo_partitions() -> None:
    parts = partitions.parse_sinfo(SINFO)
    assert sorted(parts) == ["main", "other"]
    assert parts["main"].default and not parts["other"].default
    assert (parts["other"].memory_mb, parts["other"].cpus, parts["other"].gres) == (16000, 8, {"gpu", "tmpdisk"})
    assert parts["main"].gres == set()


@pytest.mark.parametrize("options, expected", [
    ({}, []),
    ({"resources": {"slurm_partition": "gpu"}}, ["unknown partition 'gpu' (this cluster has: main, other)"]),
    ({"resources": {"mem_mb": 9000}}, ["mem_mb=9000 is more than any node of partition 'main' has (8000 MB)"]),
    ({"resources": {"mem_mb": [1000, 9000]}}, []),  # a retry asking for more is rejected when it is submitted
    ({"threads": 4}, ["threads=4 is more than any node of partition 'main' has (2 CPUs)"]),
    ({"resources": {"gpu": 1}}, ["no node of partition 'main' has GRES 'gpu'"]),
    ({"resources": {"gres": "gpu:1"}}, ["no node of partition 'main' has GRES 'gpu'"]),
    ({"resources": {"gpu": 1, "mem_mb": 9000, "slurm_partition": "other"}, "threads": 4}, []),
    ({"resources": {"gpu": 0}}, []),
])
def test_what_the_cluster_would_reject(options, expected) -> None:
    assert partitions.problems(options, partitions.parse_sinfo(SINFO)) == expected


def test_one_line_per_problem_naming_its_experiments() -> None:
    names = [f"e{i}" for i in range(7)]
    lines = partitions.preflight_lines({"unknown partition 'x'": names, "GRES": ["g"]}, dry_run=False)
    assert lines == [
        "xmen: SLURM would reject 7 experiment(s) (unknown partition 'x'); recorded as error, not submitted: "
        "e0, e1, e2, e3, e4 and 2 more",
        "xmen: SLURM would reject 1 experiment(s) (GRES); recorded as error, not submitted: g",
    ]
    assert "would be recorded as error" in partitions.preflight_lines({"p": ["a"]}, dry_run=True)[0]


def test_sbatch_message_is_taken_from_the_plugin_report() -> None:
    report = ("SLURM sbatch failed. The error message was 'sbatch: error: Invalid account\nsbatch: error: Batch job "
              "submission failed: Invalid account or account/partition combination specified'.\n    sbatch call:\n"
              "        sbatch --parsable ...\n")
    assert slurm_queue.sbatch_message(report) == ("sbatch: error: Invalid account sbatch: error: Batch job "
                                                  "submission failed: Invalid account or account/partition "
                                                  "combination specified")


@pytest.fixture
def one_experiment(xmen_home, tmp_path):
    (tmp_path / "script.sh").write_text("#!/bin/bash\necho ran\n")
    (tmp_path / "defaults.yml").write_text("k: 0  # (int) K\n")
    exp_set = ExperimentSet.init(tmp_path / "s", script=tmp_path / "script.sh", defaults=tmp_path / "defaults.yml")
    exp_set.register({"k": 1}, name="e")
    return exp_set.root / "e"


def test_rejection_is_recorded_as_error(one_experiment: Path) -> None:
    markers.record_rejected(one_experiment, "sbatch: error: invalid partition specified: nope")
    data = files.read_yaml(one_experiment / "params.yml")
    assert data["_status"] == st.ERROR
    assert data["_error"] == "submission rejected by SLURM: sbatch: error: invalid partition specified: nope"
    assert planner.Planner().verdict(str(one_experiment)).reason == "failed (error)"  # runs again once fixed


def test_the_runner_removes_the_marker_when_the_experiment_starts(one_experiment: Path) -> None:
    markers.mark(one_experiment, "42")
    proc = subprocess.run([sys.executable, "-m", "xmen.job", str(one_experiment / "params.yml"),
                           str(one_experiment.parent / "script.sh")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not (one_experiment / markers.MARKER_FILE).exists()


def test_a_marker_of_no_live_job_does_not_hold_the_experiment_back(one_experiment: Path) -> None:
    """Without SLURM, or with a job squeue does not show: the experiment is what its status says."""
    markers.mark(one_experiment, "999999999")
    for reasons in (True, False):
        verdict = planner.Planner(reasons=reasons).plan([str(one_experiment)])[0]
        assert verdict.action == planner.RUN, verdict


def test_inside_its_own_job_a_marker_is_no_reason_to_skip(one_experiment: Path, monkeypatch) -> None:
    markers.mark(one_experiment, "77_3")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    view = slurm_queue.QueueView()
    assert view.queued(str(one_experiment)) is None and view.squeue_calls == 0


def test_one_squeue_call_per_plan(one_experiment: Path) -> None:
    exp_set = ExperimentSet(one_experiment.parent)
    exp_set.register("{k: 2 | 3 | 4}")
    paths = [str(one_experiment.parent / name) for name in ("e", "k=2", "k=3", "k=4")]
    for number, path in enumerate(paths):
        markers.mark(path, str(999999990 + number))
    decide = planner.Planner(reasons=False)
    assert [v.action for v in decide.plan(paths)] == [planner.RUN] * 4
    assert decide.queue().squeue_calls == 1



def test_dry_run_with_every_experiment_skipped_does_not_call_them_finished(one_experiment: Path) -> None:
    """A dry run whose only experiment is skipped (here running: its run lock held; queued ones on the cluster)
    does not say "the others are finished": there are none."""
    from xmen.run.runner import release, try_lock

    files.update_yaml(one_experiment / "params.yml", lambda data: data.update(_status=st.RUNNING))
    fd = try_lock(one_experiment)
    try:
        proc = subprocess.run([sys.executable, "-m", "xmen.cli", "run", "-n"], cwd=one_experiment.parent,
                              capture_output=True, text=True, timeout=60)
    finally:
        release(fd)
    assert proc.returncode == 0, proc.stderr
    assert "Skipping e: running now" in proc.stderr, proc.stderr
    assert proc.stdout == "Nothing to run: every matching experiment is skipped (see above).\n", proc.stdout
