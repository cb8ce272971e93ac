"""`xmen cancel GLOB` without a cluster: a local run (xmen run, Snakemake's local executor) is signalled through
its runner and ends `cancelled`, not `timeout`; refusals are one line and change nothing. On SLURM:
tests/slurm/test_slurm_cancel.py."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from xmen.store import files
from xmen.store import status as st

from cli_helpers import make_set, wait_until, xmen

pytestmark = pytest.mark.timeout(120)

DEFAULTS = "a: h  # (str) A parameter (default='h')\n"
# Saves its state for half a second on SIGTERM, like an experiment should, then exits 143.
SCRIPT = """#!/bin/bash
trap 'echo term >> "$(dirname "$1")/signals.txt"; sleep 0.5; exit 143' TERM
touch "$(dirname "$1")/started"
sleep 60 & wait $!
"""


@pytest.fixture
def env(shell_experiment):
    return shell_experiment({"script.sh": SCRIPT, "defaults.yml": DEFAULTS})


def test_cancel_of_a_local_run(env, capsys):
    """`xmen run` (Snakemake, local) runs a=x; `xmen cancel a=x` SIGTERMs its runner: the run ends, a=x is
    `cancelled` with the pid it signalled, and the runner's own record (timeout, before) did not replace it."""
    root = make_set(env, "set_c", "{a: x}")
    run = subprocess.Popen([sys.executable, "-m", "xmen.cli", "run", "*", "-r", str(root)], cwd=root,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_until((root / "a=x" / "started").exists, 60, "a=x started", proc=run)
        pid = files.read_yaml(root / "a=x" / "params.yml")["_run"]["pid"]
        code, _, err = xmen(capsys, "cancel", "a=*", "-r", str(root))
        assert code == 0 and f"Cancelled a=x (pid {pid})" in err, err
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, 9)
    assert run.returncode != 0, out
    data = files.read_yaml(root / "a=x" / "params.yml")
    assert data["_status"] == st.CANCELLED, (data.get("_error"), out)
    assert data["_error"].startswith(f"cancelled with xmen cancel (pid {pid})"), data["_error"]
    assert data["_cancelled"]["pid"] == pid and data["_run"]["returncode"] == 143
    assert (root / "a=x" / "signals.txt").read_text() == "term\n"  # the experiment itself got the SIGTERM
    assert not (root / "a=x" / st.DONE_FILE).exists()
    # Listed as cancelled, filterable, and pending again for the next run.
    code, out, _ = xmen(capsys, "list", "--status-is", "cancelled", str(root))
    assert code == 0 and "a=x" in out and "cancelled" in out, out
    code, out, err = xmen(capsys, "run", "-n", "*", "-r", str(root))
    assert "failed (cancelled)" in out + err, out + err


def test_nothing_matches_is_one_line(env, capsys):
    root = make_set(env, "set_c", "{a: x | y}")
    before = (root / "a=x" / "params.yml").read_text()
    code, out, err = xmen(capsys, "cancel", "nope*", "-r", str(root))
    assert code != 0 and err.strip() == "Error: no linked experiment matches 'nope*'", err
    assert (root / "a=x" / "params.yml").read_text() == before


def test_nothing_running_is_said(env, capsys):
    root = make_set(env, "set_c", "{a: x | y}")
    files.update_yaml(root / "a=y" / "params.yml", lambda d: d.update(_status=st.FINISHED))
    code, _, err = xmen(capsys, "cancel", "*", "-r", str(root))
    assert code == 0, err
    assert "Not cancelled a=y: nothing to cancel (finished)" in err
    assert "Not cancelled a=x: nothing to cancel (registered: no job or process recorded)" in err
    assert err.strip().endswith("Nothing to cancel")
    assert files.read_yaml(root / "a=y" / "params.yml")["_status"] == st.FINISHED


def test_a_failed_experiment_without_a_queued_retry_has_nothing_to_cancel(env, capsys):
    """A failed experiment may have a retry queued (xmen.status.cancellable): without its marker, nothing is
    recorded to cancel, and that is what is said."""
    root = make_set(env, "set_c", "{a: x | y}")
    files.update_yaml(root / "a=x" / "params.yml", lambda d: d.update(_status=st.ERROR, _error="boom"))
    code, _, err = xmen(capsys, "cancel", "a=x", "-r", str(root))
    assert code == 0, err
    assert "Not cancelled a=x: nothing to cancel (error: no job or process recorded)" in err, err
    assert files.read_yaml(root / "a=x" / "params.yml")["_status"] == st.ERROR


@pytest.mark.parametrize("marker, job", [
    ("job_id: '12345'\n", "12345"), ("job_id: '12_3'\nsubmitted: 2026-12-03-09-00-00\n", "12_3"),
    ("job_id: [1]\n", None), ("job_id: 1; rm -rf /\n", None), ("12345\n", None), ("", None),
])
def test_queued_marker(tmp_path, marker, job):
    from xmen.run.cancel import queued_job_id

    (tmp_path / ".xmen-queued").write_text(marker)
    assert queued_job_id(tmp_path) == job


def test_scancel_missing_is_one_line_and_changes_nothing(env, capsys, monkeypatch):
    """A queued experiment (its `.xmen-queued` marker names the job) on a machine without scancel."""
    root = make_set(env, "set_c", "{a: x | y}")
    (root / "a=x" / ".xmen-queued").write_text("job_id: '12345'\n")
    before = (root / "a=x" / "params.yml").read_text()
    monkeypatch.setenv("PATH", str(env / "empty-bin"))
    code, _, err = xmen(capsys, "cancel", "*", "-r", str(root))
    assert code != 0 and err.count("\n") == 1 and err.startswith("Error: scancel not found"), err
    assert (root / "a=x" / "params.yml").read_text() == before


def test_a_link_at_one_experiment_stops_cancel_before_any_signal(env, capsys, tmp_path):
    """A link at one matching experiment's params.yml lock: cancel refuses naming it before it signals any (it
    signalled a=x, then could not record a=y's cancel)."""
    root = make_set(env, "set_l", "{a: x | y}")
    run = subprocess.Popen([sys.executable, "-m", "xmen.cli", "run", "*", "-j", "2", "-r", str(root)], cwd=root,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        for name in ("a=x", "a=y"):
            wait_until((root / name / "started").exists, 60, f"{name} started", proc=run)
        mine = tmp_path / "mine.txt"
        mine.write_text("the user's own\n")
        lock = root / "a=y" / ".params.yml.lock"
        lock.unlink()
        lock.symlink_to(mine)
        code, _, err = xmen(capsys, "cancel", "a=*", "-r", str(root))
        assert code != 0 and err.strip().splitlines() == [
            f"Error: {lock} is a symbolic link; xmen never writes its own files through one (move the link away)"]
        assert not (root / "a=x" / "signals.txt").exists() and not (root / "a=y" / "signals.txt").exists()
        assert [files.read_yaml(root / n / "params.yml")["_status"] for n in ("a=x", "a=y")] == [st.RUNNING] * 2
        assert mine.read_text() == "the user's own\n" and lock.is_symlink()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, 9)
            run.wait()
