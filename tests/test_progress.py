"""The progress line and summary of ``xmen run`` (xmen.progress), on real files."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

from xmen.store import files
from xmen.run.progress import Counts, ProgressLine, RunWatcher, format_line, summary_lines, tail


def _experiment(root: Path, name: str, status: str = "registered") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    files.write_yaml(folder / "params.yml", {"a": 1, "_status": status})
    return folder


def _later(path: Path) -> None:
    """Make sure a rewrite changes the file's signature even on a coarse clock."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))


def test_watcher_counts_from_the_files_relative_to_the_start(tmp_path):
    names = ["done", "run", "fail", "wait", "stale"]
    for name in names:
        _experiment(tmp_path, name)
    (tmp_path / "stale" / "xmen.done").write_text("finished\n")  # from an earlier run: not done by this one
    watcher = RunWatcher(tmp_path, names)
    assert watcher.counts() == Counts(done=0, running=0, failed=0, pending=5)

    (tmp_path / "done" / "xmen.done").write_text("finished\n")
    files.update_yaml(tmp_path / "run" / "params.yml", lambda d: d.update(_status="running"))
    _later(tmp_path / "run" / "params.yml")
    files.update_yaml(tmp_path / "fail" / "params.yml", lambda d: d.update(_status="error", _error="exit code 3"))
    _later(tmp_path / "fail" / "params.yml")
    counts = watcher.counts()
    assert counts == Counts(done=1, running=1, failed=1, pending=2) and counts.total == 5

    # The rerun of the stale one rewrites its status file: now it is done by this run.
    (tmp_path / "stale" / "xmen.done").unlink()
    (tmp_path / "stale" / "xmen.done").write_text("finished again\n")
    assert watcher.counts().done == 2


def test_line_reads_as_counts_and_elapsed_time():
    assert format_line(Counts(3, 2, 1, 7), 3725.4) == "3/13 done, 2 running, 1 failed, 7 pending  [1:02:05]"


def test_on_a_terminal_the_line_is_rewritten_in_place():
    out = io.StringIO()
    line = ProgressLine(out, tty=True)
    line.show("one")
    line.show("two")
    line.finish("three")
    assert out.getvalue() == "\rone\x1b[K\rtwo\x1b[K\rthree\x1b[K\n"


def test_without_a_terminal_lines_are_sparse_and_the_last_is_always_printed():
    out = io.StringIO()
    line = ProgressLine(out, tty=False, interval=3600)
    line.show("first")
    for i in range(100):
        line.show(f"update {i}")  # within the interval: not printed
    line.finish("final")
    assert out.getvalue() == "first\nfinal\n"

    out = io.StringIO()
    line = ProgressLine(out, tty=False, interval=0)
    line.show(format_line(Counts(1, 1, 0, 0), 1))
    line.show(format_line(Counts(1, 1, 0, 0), 2))  # only the time changed: not repeated
    line.show(format_line(Counts(2, 0, 0, 0), 3))
    line.finish(format_line(Counts(2, 0, 0, 0), 4))
    assert out.getvalue() == (
        "1/2 done, 1 running, 0 failed, 0 pending  [0:00:01]\n2/2 done, 0 running, 0 failed, 0 pending  [0:00:03]\n"
    )


def test_summary_lists_each_failure_with_reason_and_log_but_only_counts_the_rest():
    grouped = {"finished": ["a"], "error": ["b"], "stopped": ["c"], "registered": [f"r{i}" for i in range(1000)]}
    lines = summary_lines(grouped, reasons={"b": "exit code 3", "c": ""}.get, log_of=lambda n: f"/set/{n}/xmen.log")
    assert lines == [
        "Summary: 1 error, 1 finished, 1000 registered, 1 stopped",
        "  error: b: exit code 3",
        "    log: /set/b/xmen.log",
        "  stopped: c",
        "    log: /set/c/xmen.log",
    ]


def test_summary_of_many_failures_is_capped():
    grouped = {"error": [f"e{i}" for i in range(120)]}
    lines = summary_lines(grouped, reasons=lambda n: "boom", log_of=lambda n: n)
    assert len(lines) == 1 + 2 * 50 + 1 and lines[-1].startswith("  ... and 70 more")


def test_tail_keeps_the_last_lines(tmp_path):
    log = tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3) == ["line 97", "line 98", "line 99"]
    assert tail(tmp_path / "missing") == []


def test_a_second_interrupt_forces_a_command_that_ignores_the_first(tmp_path):
    """run_quietly passes the first SIGINT on to the command's process group, then SIGTERM (then SIGKILL)."""
    code = (
        "import os, signal, sys, threading, time\n"
        "from xmen.run.progress import RunWatcher, run_quietly\n"
        "class Stderr:  # stderr, noting what run_quietly said\n"
        "    said = ''\n"
        "    def write(self, text): Stderr.said += text; return sys.stderr.write(text)\n"
        "    def flush(self): sys.stderr.flush()\n"
        "def wait(condition):  # no pytest in this process: when it gives up, the asserts below show what happened\n"
        "    end = time.monotonic() + 20\n"
        "    while not condition() and time.monotonic() < end: time.sleep(0.02)\n"
        "def interrupt():  # Ctrl-C once the command runs, and again once the first one was reported\n"
        "    wait(lambda: os.path.exists('snakemake.log') and 'started' in open('snakemake.log').read())\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    wait(lambda: 'Interrupted (SIGINT)' in Stderr.said)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "threading.Thread(target=interrupt, daemon=True).start()\n"
        "out = run_quietly(['bash', '-c', \"trap '' INT; echo started; sleep 60\"], '.', RunWatcher('.', []),\n"
        "                  log_path='snakemake.log', tty=False, stream=Stderr())\n"
        "print(out.returncode, out.signals)\n"
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["-15", "[2,", "2]"]  # SIGTERM ended it; two SIGINTs received
    assert "Interrupted (SIGINT): stopping the running experiments (Ctrl-C again to force)" in proc.stderr
    assert "Interrupted (SIGINT): forcing" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "snakemake.log").read_text() == "started\n"


def test_ctrl_c_before_anything_ran_says_nothing_ran_not_finished(xmen_home, tmp_path):
    """An experiment finished before but missing its status file runs again; a Ctrl-C while Snakemake starts
    (before the experiment ran) said "Summary: 1 finished", the status from before, as if this run had finished it."""
    import signal

    from cli_helpers import make_set, wait_until

    (tmp_path / "script.sh").write_text("#!/bin/bash\nsleep 60\n")
    (tmp_path / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    root = make_set(tmp_path, "set", "{a: x}")
    files.update_yaml(root / "a=x" / "params.yml", lambda p: {**p, "_status": "finished"})
    before = (root / "a=x" / "params.yml").read_bytes()
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "xmen.cli", "run"], cwd=root, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        # The log is opened just before Snakemake starts; Snakemake takes seconds to import before it runs a job.
        wait_until(lambda: "Snakemake's output" in err_path.read_text() and (root / ".xmen" / "last-run.log").exists(),
                   60, "xmen run to start Snakemake", proc=proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    said = err_path.read_text()
    assert (root / "a=x" / "params.yml").read_bytes() == before, said  # it did not run
    summary = [line for line in said.splitlines() if line.startswith("Summary:")]
    assert summary == ["Summary: 1 not run"], said
    assert "Error: interrupted" in said
