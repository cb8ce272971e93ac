"""``xmen list --watch``: the table is redrawn until Ctrl-C, which ends it quietly."""
from __future__ import annotations

import io
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from xmen.store import files
from xmen.look.watch import CLEAR, watch

from cli_helpers import write_tutorial_set

pytestmark = pytest.mark.timeout(120)


def _read_until(proc: subprocess.Popen, needle: bytes, seen: bytearray, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while needle not in seen:
        assert time.time() < deadline, f"{needle!r} not in {bytes(seen)[-2000:]!r}"
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"xmen list ended early: {bytes(seen)[-2000:]!r}"
            seen += chunk


def test_watch_redraws_the_table_until_interrupted(xmen_home, tmp_path):
    root = write_tutorial_set(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "xmen.cli", "list", str(root), "-s", "--watch", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = bytearray()
        _read_until(proc, b"Roots relative to", seen)
        assert seen.count(b"registered") == 4 and b"Every 0.2s: xmen list" in seen
        files.update_yaml(root / "a=2.0__b=cat" / "params.yml", lambda d: d.update(_status="finished"))
        _read_until(proc, b"finished", seen)  # a later refresh shows the change
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert b"Traceback" not in out + err and err == b""


def test_watch_clears_the_screen_on_a_terminal_and_stamps_each_refresh_otherwise():
    printed = iter(["one\n", "two\n"])
    out = io.StringIO()
    watch(lambda: print(next(printed), end=""), 0.01, "xmen list", stream=out, tty=True, rounds=2)
    frames = out.getvalue().split(CLEAR)
    assert frames[0] == "" and len(frames) == 3
    assert frames[1].startswith("Every 0.01s: xmen list") and frames[1].endswith("one\n")
    assert frames[2].endswith("two\n")

    out = io.StringIO()
    watch(lambda: print("table"), 0.01, "xmen list", stream=out, tty=False, rounds=2)
    assert CLEAR not in out.getvalue() and out.getvalue().count("Every 0.01s: xmen list") == 2


def test_watch_rejects_a_bad_interval(xmen_home, tmp_path):
    root = write_tutorial_set(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "xmen.cli", "list", str(root), "--watch", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr
