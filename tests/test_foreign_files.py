"""No run overwrites or deletes a file xmen did not write at one of xmen's names in an experiment folder.

A run replaces the reserve (``.xmen-reserve``) and deletes it at the end, deletes the queued marker
(``.xmen-queued``) and the status file (``xmen.done``), and sets the log (``xmen.log``) aside into ``logs/``. At each
of these names only what xmen writes is xmen's: a file of the user's there makes ``xmen run`` and the job runner
(``run.sh`` by hand, a launcher, a plain ``snakemake``) refuse with one line naming it, before anything is written.
An ``xmen.log`` the user put there is set aside like an earlier attempt's log, never truncated.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xmen.errors import ForeignFileError
from xmen.store import files
from xmen.store.layout import RESERVE_BYTES
from xmen.store.lifecycle import Lifecycle

from cli_helpers import make_set, xmen
from original_xmen import tree_bytes as tree

DEFAULTS = "a: h  # (str) A parameter (default='h')\n"
SCRIPT = "#!/bin/bash\necho ran\n"


@pytest.fixture
def world(shell_experiment, tmp_path):
    """A set ``set`` with one registered experiment ``a=x``."""
    shell_experiment({"script.sh": SCRIPT, "defaults.yml": DEFAULTS})
    return make_set(tmp_path, "set", "{a: x}")


#: A file of the user's at one of xmen's names, and why it is not xmen's (the end of the refusal's reason).
FOREIGN = [
    (".xmen-reserve", b"mine\n", f"not the reserve xmen writes (at most {RESERVE_BYTES} zero bytes)"),
    (".xmen-reserve", b"\0" * (RESERVE_BYTES + 1), f"not the reserve xmen writes (at most {RESERVE_BYTES} zero bytes)"),
    (".xmen-queued", b"mine\n", "not a queued marker of xmen's (it names no SLURM job)"),
    ("logs", b"mine\n", "not a folder, where xmen keeps the earlier attempts' logs"),
]
IDS = [f"{name}-{len(data)}" for name, data, _ in FOREIGN]


def refusal(path: Path, why: str) -> str:
    return f"{path}: {why}; xmen never overwrites or deletes a file it did not write (move it away)"


@pytest.mark.parametrize("name, data, why", FOREIGN, ids=IDS)
def test_xmen_run_refuses_a_users_file_at_xmens_names_touching_nothing(world, capsys, name, data, why):
    path = world / "a=x" / name
    path.write_bytes(data)
    before = tree(world)
    code, out, err = xmen(capsys, "run", "-r", str(world))
    assert code != 0, out + err
    assert err.strip().splitlines()[-1] == f"Error: {refusal(path, why)}", err
    assert tree(world) == before
    assert path.read_bytes() == data


@pytest.mark.parametrize("name, data, why", FOREIGN + [("xmen.done", b"mine\n", "was not written by xmen (it does "
                                                      "not say 'finished')")], ids=IDS + ["xmen.done"])
def test_the_runner_refuses_a_users_file_at_xmens_names_touching_nothing(world, name, data, why):
    """run.sh by hand, by a launcher or by a SLURM job: the job runner refuses before it takes the lock."""
    path = world / "a=x" / name
    path.write_bytes(data)
    before = tree(world)
    proc = subprocess.run(["bash", str(world / "a=x" / "run.sh")], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {refusal(path, why)}", proc.stderr
    assert "ran" not in proc.stdout
    assert tree(world) == before


def test_a_python_experiment_run_without_a_runner_refuses_a_users_marker(world):
    """The steps every run goes through (xmen.store.lifecycle) refuse too: an Experiment run in its own process."""
    (world / "a=x" / ".xmen-queued").write_text("mine\n")
    life = Lifecycle(world / "a=x" / "params.yml", owner=True)
    assert life.acquire()
    try:
        params = (world / "a=x" / "params.yml").read_bytes()
        with pytest.raises(ForeignFileError, match="not a queued marker of xmen's"):
            life.start()
        assert (world / "a=x" / "params.yml").read_bytes() == params
    finally:
        life.release()
    assert (world / "a=x" / ".xmen-queued").read_text() == "mine\n"


def test_a_reserve_a_killed_run_left_is_xmens_and_goes(world, capsys):
    """The zeros a killed run left (all of them, or fewer: killed while writing) are xmen's reserve: the run
    proceeds and frees it."""
    (world / "a=x" / ".xmen-reserve").write_bytes(b"\0" * 1000)
    code, out, err = xmen(capsys, "run", "-r", str(world))
    assert code == 0, out + err
    assert not (world / "a=x" / ".xmen-reserve").exists()
    assert files.read_yaml(world / "a=x" / "params.yml")["_status"] == "finished"


@pytest.mark.parametrize("how", ["xmen run", "snakemake"])
def test_a_users_xmen_log_is_set_aside_never_truncated(world, capsys, how):
    """An experiment that never ran has no log of xmen's: a file the user put at xmen.log is kept, set aside as the
    earlier attempts' logs are (logs/attempt-1.log), and the run's output goes to a new xmen.log."""
    (world / "a=x" / "xmen.log").write_text("mylog\n")
    if how == "xmen run":
        code, out, err = xmen(capsys, "run", "-r", str(world))
        assert code == 0, out + err
    else:
        subprocess.run([sys.executable, "-m", "snakemake", "-c1"], cwd=world, capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL, check=True)
    assert (world / "a=x" / "logs" / "attempt-1.log").read_text() == "mylog\n"
    assert (world / "a=x" / "xmen.log").read_text() == "ran\n"
