"""``xmen ci`` on Ctrl-C ends like ``xmen run``: Snakemake stops, the running experiments record ``stopped``,
nothing new starts, the summary, ``Error: interrupted`` and exit 130 (never a green 0) (issue 19).

Each ``xmen ci`` runs in its own session, and the SIGINT goes to that whole process group, as a terminal's Ctrl-C
does; or to xmen alone (SIGINT, SIGTERM)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from xmen.store import files

from cli_helpers import make_set, wait_until

pytestmark = pytest.mark.timeout(300)

DEFAULTS = """\
x: 0  # (int) A label (default=0)
sleep: 0  # (float) Seconds to sleep (default=0)
"""
SCRIPT = r"""#!/bin/bash
value() { sed -n "s/^$1: *\([^ #]*\).*/\1/p" "$2" | tr -d "'"; }
sleep "$(value sleep "$1")"
echo "ran"
"""
NAMES = ("x=1__sleep=120", "x=2__sleep=120", "x=3__sleep=120")


@pytest.fixture
def top(xmen_home, tmp_path, monkeypatch) -> Path:
    """A folder holding one set of three pending experiments that each sleep 120 s."""
    monkeypatch.setenv("SLURM_CONF", "/dev/null")  # no 10 s wait for a SLURM controller at each Snakemake start
    (tmp_path / "script.sh").write_text(SCRIPT)
    (tmp_path / "defaults.yml").write_text(DEFAULTS)
    folder = tmp_path / "experiments"
    folder.mkdir()
    make_set(tmp_path, "experiments/set", "{x: 1 | 2 | 3, sleep: 120}")
    return folder


def _ci(top: Path, log: Path, background: bool = False) -> subprocess.Popen:
    """``xmen ci -j 1 .`` in ``top``, in a session of its own, its output into ``log``; with ``background`` as a
    script's ``xmen ci &`` starts it: with SIGINT ignored (a shell does that to its background jobs)."""
    command = [sys.executable, "-m", "xmen.cli", "ci", "-j", "1", "."]
    if background:
        command = ["bash", "-c", 'trap "" INT; exec "$@"', "bash", *command]
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=top,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _status(top: Path, name: str) -> str | None:
    return files.read_yaml(top / "set" / name / "params.yml").get("_status")


def _running(top: Path) -> list[str]:
    return [name for name in NAMES if _status(top, name) == "running"]


def _end(proc: subprocess.Popen, log: Path) -> str:
    """Wait for ``proc`` (killing its group if it hangs); its output."""
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return log.read_text(errors="replace")


def _interrupt_when(top: Path, log: Path, ready: Callable[[subprocess.Popen], Any], what: str,
                    send: Callable[[subprocess.Popen], None], *, background: bool = False,
                    interval: float = 0.1) -> tuple[subprocess.Popen, Any, str]:
    """Start ``xmen ci`` (:func:`_ci`), wait until ``ready(proc)`` is true (``what``), ``send`` it a signal, wait
    for it to end (its group killed if it outlives the test); (the process, what ``ready`` returned, its output)."""
    proc = _ci(top, log, background)
    try:
        found = wait_until(lambda: ready(proc), 120, what, interval=interval, proc=proc,
                           details=lambda: log.read_text(errors="replace"))
        send(proc)
        text = _end(proc, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc, found, text


@pytest.mark.parametrize("to_group, background", [(True, False), (False, False), (True, True)],
                         ids=["ctrl-c-to-the-group", "sigint-to-xmen", "sigint-to-a-script's-background-job"])
def test_ctrl_c_stops_xmen_ci_like_xmen_run(top, tmp_path, to_group, background):
    def ctrl_c(proc: subprocess.Popen) -> None:
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)

    proc, running, text = _interrupt_when(top, tmp_path / "ci.log", lambda _: _running(top), "an experiment running",
                                          ctrl_c, background=background)
    assert proc.returncode == 130, text
    _no_traceback_of_xmen(text)
    assert len(running) == 1
    assert _status(top, running[0]) == "stopped", text
    assert "Summary: 2 not run, 1 stopped" in text, text
    assert f"  stopped: set/{running[0]}: received SIGINT" in text, text
    assert text.rstrip().splitlines()[-1].startswith("Error: interrupted"), text
    for name in NAMES:
        if name != running[0]:
            assert _status(top, name) == "registered", (name, text)  # nothing new started


def test_sigterm_to_xmen_ci_stops_it(top, tmp_path):
    proc, running, text = _interrupt_when(top, tmp_path / "ci.log", lambda _: _running(top), "an experiment running",
                                          lambda proc: proc.send_signal(signal.SIGTERM))
    assert proc.returncode == 130, text
    assert _status(top, running[0]) == "timeout", text  # xmen's word for a SIGTERM (SLURM's time limit sends it)
    assert "Summary: 2 not run, 1 timeout" in text, text
    assert f"  timeout: set/{running[0]}: received SIGTERM" in text, text
    assert "Interrupted (SIGTERM)" in text, text
    assert [_status(top, name) for name in NAMES].count("registered") == 2, text  # nothing new started


def test_ctrl_c_before_snakemake_started_anything_runs_nothing(top, tmp_path):
    """The SIGINT comes once Snakemake has started, before any experiment: nothing runs, exit 130."""
    proc, _, text = _interrupt_when(top, tmp_path / "ci.log", lambda proc: "snakemake" in _commands(proc.pid),
                                    "Snakemake started", lambda proc: os.killpg(proc.pid, signal.SIGINT),
                                    interval=0.02)
    assert proc.returncode == 130, text
    _no_traceback_of_xmen(text)
    assert "Summary: 3 not run" in text, text
    assert [_status(top, name) for name in NAMES] == ["registered"] * 3, text
    assert text.rstrip().splitlines()[-1].startswith("Error: interrupted"), text


def _no_traceback_of_xmen(text: str) -> None:
    """xmen ends in its summary and one error line; Snakemake's own output (shown in a CI log, with its own
    traceback of the interrupt) comes before."""
    assert "xmen/cli/" not in text, text
    assert "Traceback" not in text[text.index("Summary: "):], text


def _commands(pid: int) -> str:
    """The command lines of ``pid``'s descendants."""
    import psutil  # a dependency of Snakemake

    try:
        return " ".join(" ".join(child.cmdline()) for child in psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return ""

