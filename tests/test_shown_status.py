"""What a user sees of an experiment (its status, and why), without a cluster: ``xmen list``, the planner
(``xmen run -n``) and ``xmen cancel`` on experiments with a SLURM queued marker, with canned ``squeue`` and
``sacct`` commands first on PATH. Their words, and the SLURM commands they cost, are pinned here byte for byte; the
real cluster's answers are tested in tests/slurm/test_slurm_queue.py.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from xmen.cli.list import list_command
from xmen.look import listing
from xmen.run import planner
from xmen.run.cancel import target_of
from xmen.store import files, markers
from xmen.store import status as st
from xmen.store.shown import shown_status

from cli_helpers import write_set
from test_listing import settled  # noqa: F401 - fixture

FAKE_SQUEUE = """#!{python}
import json, os, sys
log = os.environ["FAKE_SLURM_DIR"]
with open(os.path.join(log, "calls.txt"), "a") as out:
    out.write(" ".join(sys.argv) + "\\n")
answer = json.load(open(os.path.join(log, "squeue.json")))
if answer is None:
    sys.stderr.write("squeue: error: Unable to contact slurm controller\\n")
    sys.exit(1)
ids = sys.argv[sys.argv.index("-j") + 1].split(",") if "-j" in sys.argv else list(answer)
for job in ids:
    if job in answer:
        print("|".join([job] + answer[job]))
"""
FAKE_SACCT = """#!{python}
import json, os, sys
log = os.environ["FAKE_SLURM_DIR"]
with open(os.path.join(log, "calls.txt"), "a") as out:
    out.write(" ".join(sys.argv) + "\\n")
answer = json.load(open(os.path.join(log, "sacct.json")))
for job in sys.argv[sys.argv.index("-j") + 1].split(","):
    if job in answer:
        print("|".join([job, job, answer[job], "0:0", "n1", "main", "00:00:01", ""]))
"""
SUBMITTED = "2020-01-01T00:00:00"


class FakeSlurm:
    """``squeue`` and ``sacct`` answering from JSON files, logging their command lines."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        for name, text in (("squeue", FAKE_SQUEUE), ("sacct", FAKE_SACCT)):
            path = folder / name
            path.write_text(text.format(python=sys.executable))
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
        self.answer(squeue={}, sacct={})

    def answer(self, squeue: dict[str, list[str]] | None = None, sacct: dict[str, str] | None = None) -> None:
        """``squeue``: {job id: [state, reason, submitted, started, name]} (None: squeue fails); ``sacct``: {id: State}."""
        (self.folder / "squeue.json").write_text(json.dumps(squeue))
        if sacct is not None:
            (self.folder / "sacct.json").write_text(json.dumps(sacct))

    def calls(self) -> list[str]:
        path = self.folder / "calls.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [" ".join([os.path.basename(line.split()[0]), *line.split()[1:]]) for line in lines]


@pytest.fixture
def fake(tmp_path, monkeypatch) -> FakeSlurm:
    slurm = FakeSlurm(tmp_path / "fake-slurm")
    monkeypatch.setenv("PATH", f"{slurm.folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(slurm.folder))
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    return slurm


STATUSES = {0: "registered", 1: "error", 2: "registered", 3: "registered", 4: "cancelled", 5: "finished",
            6: "registered", 7: "registered"}


@pytest.fixture
def queued_set(tmp_path, fake, settled) -> Path:
    """Eight experiments with a queued marker each (job 100+i, named ``job-i``); i=4's last run was that job."""
    root = write_set(tmp_path, 8, status=STATUSES.__getitem__)
    for i in range(8):
        markers.mark(root / f"i={i}", str(100 + i), f"job-{i}")
    files.update_yaml(root / "i=4" / "params.yml", lambda d: d.update(_run={"slurm_job_id": "104"}))
    fake.answer(
        squeue={
            "100": ["PENDING", "Priority", SUBMITTED, "N/A", "job-0"],
            "101": ["RUNNING", "None", SUBMITTED, SUBMITTED, "job-1"],
            "105": ["PENDING", "Priority", SUBMITTED, "N/A", "job-5"],
            "106": ["PENDING", "Priority", SUBMITTED, "N/A", "another-job"],  # the id, reused for another job
            "107": ["PENDING", "None", SUBMITTED, "N/A", "job-7"],
        },
        sacct={"102": "CANCELLED", "104": "COMPLETED", "106": "CANCELLED by 0"},
    )
    return root


def rows(result: listing.ListResult) -> dict[str, tuple[str, str]]:
    return {row["name"]: (row["status"], row["plan"]) for row in result.rows}


def test_xmen_list_shows_queued_jobs_and_jobs_that_left_the_queue(queued_set, fake, tmp_path):
    assert rows(listing.collect(cwd=tmp_path)) == {
        "i=0": ("queued", "SLURM job 100 (Priority)"),
        "i=1": ("queued", "SLURM job 101 (running)"),
        "i=2": ("registered", "! SLURM job 102 left the queue without starting it (CANCELLED)"),
        "i=3": ("registered", "! SLURM job 103 left the queue without starting it"),
        "i=4": ("cancelled", ""),  # its job started it: the marker outlived the start by an instant
        # finished: never queued; no xmen.done, so the planner's word (it asks squeue itself)
        "i=5": ("finished", "! pending: queued as SLURM job 105 (Priority), not submitted again"),
        "i=6": ("registered", "! SLURM job 106 left the queue without starting it (CANCELLED)"),
        "i=7": ("queued", "SLURM job 107"),
    }
    # ONE squeue call for every marker, ONE sacct call for the jobs that left the queue
    assert fake.calls() == [
        "squeue -h -j 105 -o %i|%T|%r|%V|%S|%j",
        "squeue -h -j 100,101,102,103,104,106,107 -o %i|%T|%r|%V|%S|%j",
        "sacct -j 102,103,104,106 -P -n -o JobIDRaw,JobID,State,ExitCode,NodeList,Partition,Elapsed,MaxRSS",
    ]


def test_xmen_list_status_filter_with_queued_markers(queued_set, fake, tmp_path):
    assert rows(listing.collect(cwd=tmp_path, status=["queued"])) == {
        "i=0": ("queued", "SLURM job 100 (Priority)"),
        "i=1": ("queued", "SLURM job 101 (running)"),
        "i=7": ("queued", "SLURM job 107"),
    }
    result = listing.collect(cwd=tmp_path, status=["registered", "queued"])
    assert sorted(rows(result)) == ["i=0", "i=1", "i=2", "i=3", "i=6", "i=7"]
    assert [(s.root, s.names) for s in result.sets] == [(str(queued_set), ["i=0", "i=1", "i=2", "i=3", "i=6", "i=7"])]
    assert sorted(rows(listing.collect(cwd=tmp_path, status=["registered"]))) == ["i=2", "i=3", "i=6"]
    before = len(fake.calls())
    assert rows(listing.collect(cwd=tmp_path, status=["error"])) == {}  # i=1 is error on disk, but queued
    assert fake.calls()[before:] == ["squeue -h -j 101 -o %i|%T|%r|%V|%S|%j"]  # no job left the queue: no sacct
    before = len(fake.calls())
    listing.collect(cwd=tmp_path, status=["finished"])  # only the planner's own question about i=5
    assert fake.calls()[before:] == ["squeue -h -j 105 -o %i|%T|%r|%V|%S|%j"]


def test_xmen_list_output_is_unchanged(queued_set, fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(list_command, ["-s"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "    root name      status                                                                plan\n"
        "0  set_a  i=0      queued                                            SLURM job 100 (Priority)\n"
        "1  set_a  i=1      queued                                             SLURM job 101 (running)\n"
        "2  set_a  i=2  registered      ! SLURM job 102 left the queue without starting it (CANCELLED)\n"
        "3  set_a  i=3  registered                  ! SLURM job 103 left the queue without starting it\n"
        "4  set_a  i=4   cancelled                                                                    \n"
        "5  set_a  i=5    finished  ! pending: queued as SLURM job 105 (Priority), not submitted again\n"
        "6  set_a  i=6  registered      ! SLURM job 106 left the queue without starting it (CANCELLED)\n"
        "7  set_a  i=7      queued                                                       SLURM job 107\n"
        f"\nRoots relative to: {tmp_path}\n"
    )


def test_xmen_list_when_squeue_cannot_be_asked(queued_set, fake, tmp_path):
    fake.answer(squeue=None)
    shown = rows(listing.collect(cwd=tmp_path))
    unknown = "? SLURM job {} submitted (squeue cannot be asked)"
    assert shown == {
        "i=0": ("registered", unknown.format(100)),
        "i=1": ("error", unknown.format(101)),
        "i=2": ("registered", unknown.format(102)),
        "i=3": ("registered", unknown.format(103)),
        "i=4": ("cancelled", unknown.format(104)),
        "i=5": ("finished", ""),  # the planner cannot tell either: it runs again
        "i=6": ("registered", unknown.format(106)),
        "i=7": ("registered", unknown.format(107)),
    }
    assert [c.split()[0] for c in fake.calls()] == ["squeue", "squeue"]  # no sacct: nobody knows which jobs left


def test_the_planner_skips_queued_experiments_and_says_why(queued_set, fake):
    decide = planner.Planner()
    verdicts = {os.path.basename(v.path): (v.action, v.status, v.reason)
                for v in decide.plan([str(queued_set / f"i={i}") for i in range(8)])}
    assert verdicts == {
        "i=0": (planner.SKIP, "queued", "queued as SLURM job 100 (Priority), not submitted again"),
        "i=1": (planner.SKIP, "queued", "queued as SLURM job 101 (running), not submitted again"),
        "i=2": (planner.RUN, "registered", "new"),
        "i=3": (planner.RUN, "registered", "new"),
        "i=4": (planner.RUN, "cancelled", "failed (cancelled)"),
        "i=5": (planner.SKIP, "queued", "queued as SLURM job 105 (Priority), not submitted again"),  # no xmen.done
        "i=6": (planner.RUN, "registered", "new"),
        "i=7": (planner.SKIP, "queued", "queued as SLURM job 107, not submitted again"),
    }
    assert fake.calls() == ["squeue -h -j 100,101,102,103,104,105,106,107 -o %i|%T|%r|%V|%S|%j"]  # no sacct


def test_xmen_run_dry_run_output_is_unchanged(queued_set, fake):
    proc = subprocess.run([sys.executable, "-m", "xmen.cli", "run", "-n"], cwd=queued_set, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "name  status      reason\n"
        "i=2  registered  new\n"
        "i=3  registered  new\n"
        "i=4  cancelled   failed (cancelled)\n"
        "i=6  registered  new\n"
        "\n"
        "4 experiment(s) would run.\n"
    )
    assert proc.stderr == (
        "Skipping i=0: queued as SLURM job 100 (Priority), not submitted again\n"
        "Skipping i=1: queued as SLURM job 101 (running), not submitted again\n"
        "Skipping i=5: queued as SLURM job 105 (Priority), not submitted again\n"
        "Skipping i=7: queued as SLURM job 107, not submitted again\n"
    )
    assert fake.calls() == ["squeue -h -j 100,101,102,103,104,105,106,107 -o %i|%T|%r|%V|%S|%j"]


def test_a_dependent_quotes_its_queued_requirement(queued_set, fake):
    def requires(data):
        data["experiments"]["i=2"] = {"requires": ["i=0"]}

    files.update_yaml(queued_set / "experiment.yml", requires)
    verdict = planner.Planner().verdict(str(queued_set / "i=2"))
    assert (verdict.action, verdict.reason) == (
        planner.SKIP, "waits for requirement i=0 queued as SLURM job 100 (Priority); run again once it finished")


def test_inside_its_own_job_the_planner_does_not_ask_squeue(queued_set, fake, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "100")
    verdict = planner.Planner(reasons=False).plan([str(queued_set / "i=0")])[0]
    assert (verdict.action, verdict.reason) == (planner.RUN, "pending")
    assert fake.calls() == []


def test_cancel_takes_the_job_from_the_marker_whatever_squeue_says(queued_set, fake):
    for i, job in ((0, "100"), (2, "102"), (4, "104")):
        exp_dir = queued_set / f"i={i}"
        found = target_of(f"i={i}", exp_dir, files.read_yaml(exp_dir / "params.yml"))
        assert not isinstance(found, str) and found.job_id == job
    exp_dir = queued_set / "i=5"
    assert target_of("i=5", exp_dir, files.read_yaml(exp_dir / "params.yml")) == "nothing to cancel (finished)"
    assert fake.calls() == []
def test_shown_status_without_a_queue_is_the_recorded_status_or_lost(tmp_path):
    assert shown_status({"_status": "error", "_error": "exit code 1"}) == st.Status("error")
    assert shown_status({}) == st.Status(st.DEFAULT) and shown_status({"_status": None}).value == st.DEFAULT
    assert shown_status(None) == st.Status(st.UNKNOWN)
    old = time.time() - 3600
    (tmp_path / ".xmen-heartbeat").touch()
    os.utime(tmp_path / ".xmen-heartbeat", (old, old))
    assert shown_status({"_status": "running"}) == st.Status(st.RUNNING)  # no folder: nothing to look at
    assert shown_status({"_status": "running"}, tmp_path) == st.Status(st.LOST)
    assert str(shown_status({"_status": "running"}, tmp_path)) == "lost"
