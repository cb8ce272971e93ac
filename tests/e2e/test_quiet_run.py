"""``xmen run`` with real Snakemake: one progress line, Snakemake's output in a log, a summary of failures with
their reasons and logs, and Ctrl-C ending with that summary instead of a traceback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from xmen.store import files

from cli_helpers import make_set, run_xmen as xmen, wait_until

pytestmark = pytest.mark.timeout(300)

DEFAULTS = """\
x: 0  # (int) A label (default=0)
fail: 0  # (int) Exit code to fail with (default=0)
sleep: 0  # (float) Seconds to sleep (default=0)
"""
SCRIPT = r"""#!/bin/bash
value() { sed -n "s/^$1: *\([^ #]*\).*/\1/p" "$2" | tr -d "'"; }
sleep "$(value sleep "$1")"
echo "ran"
exit "$(value fail "$1")"
"""


@pytest.fixture
def env(xmen_home, tmp_path, monkeypatch):
    """The plain shell experiment in tmp_path, under a temporary home (make_set makes its sets there)."""
    monkeypatch.setenv("SLURM_CONF", "/dev/null")  # no 10 s wait for a SLURM controller at each Snakemake start
    (tmp_path / "script.sh").write_text(SCRIPT)
    (tmp_path / "defaults.yml").write_text(DEFAULTS)
    return tmp_path


def test_run_shows_progress_and_a_summary_and_keeps_snakemake_output_in_a_log(env):
    root = make_set(env, "set", "{x: 1 | 2 | 3, fail: 0 | 3}")
    proc = xmen("run", "-j", "2", cwd=root, check=False)
    assert proc.returncode == 1  # Snakemake's exit code, as before
    err = proc.stderr
    # No per-job blocks of Snakemake: a header, a few progress lines, the summary with two lines per failure.
    assert "rule xmen_experiment" not in err and "Finished job" not in err and "jobid" not in err
    assert len(err.splitlines()) <= 2 + 3 + 1 + 2 * 3 + 1, err
    assert "6/6 done" not in err and "3/6 done, 0 running, 3 failed, 0 pending" in err
    log = root / ".xmen" / "last-run.log"
    assert f"Snakemake's output: {log}" in err
    assert "Error in rule xmen_experiment" in log.read_text()
    assert "Summary: 3 error, 3 finished" in err
    for x in (1, 2, 3):
        name = f"x={x}__fail=3"
        assert f"  error: {name}: exit code 3" in err
        assert f"    log: {root / name / 'xmen.log'}" in err
        assert (root / name / "xmen.log").read_text().startswith("ran\n")
    assert proc.stdout == ""


def test_verbose_run_shows_snakemake_output(env):
    root = make_set(env, "set", "{x: 1}")
    proc = xmen("run", "-v", cwd=root, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "xmen_experiment" in proc.stdout + proc.stderr and "Summary: 1 finished" in proc.stderr
    assert not (root / ".xmen" / "last-run.log").exists()


def test_progress_is_redrawn_in_place_on_a_terminal(env):
    root = make_set(env, "set", "{x: 1 | 2, sleep: 1.5}")
    controller, terminal = os.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "xmen.cli", "run", "-j", "2"], cwd=root, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=terminal, timeout=240)
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
    out = b"".join(chunks).decode()
    assert proc.returncode == 0, out
    assert "\r0/2 done" in out and "\x1b[K" in out
    assert "\r2/2 done, 0 running, 0 failed, 0 pending" in out
    assert "running, 0 failed" in out and "Summary: 2 finished" in out


def test_ctrl_c_ends_with_the_summary_not_a_traceback(env):
    root = make_set(env, "set", "{x: 1 | 2 | 3, sleep: 120}")

    def two_running() -> list[str]:
        running = [n for n in ("x=1__sleep=120", "x=2__sleep=120", "x=3__sleep=120")
                   if files.read_yaml(root / n / "params.yml").get("_status") == "running"]
        return running if len(running) >= 2 else []

    proc = subprocess.Popen([sys.executable, "-m", "xmen.cli", "run", "-j", "2"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        running = wait_until(two_running, 120, "two experiments running", interval=0.2, proc=proc)
        assert len(running) == 2
        started = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.time() - started < 60
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err and "RuleException" not in out + err
    assert "Summary: 1 not run, 2 stopped" in err, err  # the third never started: not run (its status: registered)
    for name in running:
        assert f"  stopped: {name}: received SIGINT" in err
        assert files.read_yaml(root / name / "params.yml")["_status"] == "stopped"
    assert err.rstrip().splitlines()[-1].startswith("Error: interrupted")


def test_snakemake_failing_before_any_experiment_shows_the_end_of_its_log(env):
    root = make_set(env, "set", "{x: 1}")
    proc = xmen("run", "--", "--no-such-snakemake-option", cwd=root, check=False)
    assert proc.returncode != 0
    assert "Snakemake failed (exit code" in proc.stderr and "no-such-snakemake-option" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ctrl_c_on_a_terminal_stops_the_run_once_and_killing_the_group_ends_everything(env):
    """A Ctrl-C typed on the terminal reaches the whole foreground group (Snakemake and the experiments share
    xmen's group): xmen does not pass that first one on again, so the experiments stop cleanly, recorded `stopped`
    with the one SIGINT they got."""
    import pty

    root = make_set(env, "set", "{x: 1 | 2 | 3, sleep: 120}")
    pid, controller = pty.fork()  # the child leads a new session whose controlling terminal is the pty
    if pid == 0:  # pragma: no cover - the child
        os.chdir(root)
        os.execv(sys.executable, [sys.executable, "-m", "xmen.cli", "run", "-j", "2"])
    output = bytearray()

    def drain(seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            import select

            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    output.extend(os.read(controller, 65536))
                except OSError:
                    return

    names = ("x=1__sleep=120", "x=2__sleep=120", "x=3__sleep=120")
    deadline = time.time() + 120
    running: list[str] = []
    while len(running) < 2 and time.time() < deadline:
        drain(0.2)
        running = [n for n in names if files.read_yaml(root / n / "params.yml").get("_status") == "running"]
    assert len(running) == 2
    os.write(controller, b"\x03")  # Ctrl-C, as typed
    end = time.time() + 60
    status = None
    while time.time() < end:
        drain(0.2)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
    os.close(controller)
    text = output.decode(errors="replace")
    assert status is not None and os.waitstatus_to_exitcode(status) == 130, text
    assert "Traceback" not in text and "RuleException" not in text
    for name in running:
        params = files.read_yaml(root / name / "params.yml")
        assert params["_status"] == "stopped", (name, params.get("_error"))
        assert "received SIGINT" in str(params.get("_error"))
