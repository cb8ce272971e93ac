"""xmen never writes its own files through a symbolic link (issue 19, "data lost").

A user's file linked where xmen writes one of its files (``<experiment>/.xmen-reserve``, ``.xmen/last-run.log``,
``.xmen-job.lock``, ...) keeps its bytes: the command refuses with one line naming the link, and the link stays.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xmen.errors import LinkError
from xmen.define.monitor import Monitor
from xmen.store import files, history

from cli_helpers import make_set, write_tutorial_set, xmen

DEFAULTS = "a: h  # (str) A parameter (default='h')\n"
SCRIPT = "#!/bin/bash\necho ran\n"
PRECIOUS = b"the user's own data\n" * 100


@pytest.fixture
def world(shell_experiment, tmp_path):
    """A set ``set`` with one registered experiment ``a=x``, and a file of the user's, ``own/precious.bin``."""
    shell_experiment({"script.sh": SCRIPT, "defaults.yml": DEFAULTS})
    root = make_set(tmp_path, "set", "{a: x}")
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "precious.bin").write_bytes(PRECIOUS)
    return root


def link(root: Path, where: str) -> Path:
    """A link at ``root/where`` to the user's file (a folder link for a folder), replacing what xmen put there."""
    path = root / where
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        os.rename(path, root.parent / "own" / "moved-away")
        path.symlink_to(root.parent / "own", target_is_directory=True)
    else:
        path.unlink(missing_ok=True)
        path.symlink_to(root.parent / "own" / "precious.bin")
    return path


def untouched(root: Path, path: Path) -> None:
    own = root.parent / "own"
    assert path.is_symlink(), f"{path} was replaced or removed"
    assert (own / "precious.bin").read_bytes() == PRECIOUS
    assert sorted(os.listdir(own)) in (["precious.bin"], ["moved-away", "precious.bin"]), os.listdir(own)


CASES = [
    # where the link is,        the command that would write there
    ("a=x/.xmen-reserve", ["run"]),
    (".xmen/last-run.log", ["run"]),
    (".xmen", ["run"]),
    (".xmen/run.lock", ["run"]),
    (".xmen/xmen-path", ["run"]),
    ("a=x/.xmen-job.lock", ["run"]),
    ("a=x/.xmen-heartbeat", ["run"]),
    ("a=x/xmen.log", ["run"]),
    ("a=x/history.jsonl", ["run"]),
    ("a=x/logs", ["run"]),
    ("a=x/.xmen-job.lock", ["run", "*", "sh"]),
    ("a=x/.xmen-reserve", ["run", "*", "sh"]),
    ("a=x/params.yml", ["note", "-e", "a=x", "a note"]),
    ("a=x/.params.yml.lock", ["note", "-e", "a=x", "a note"]),
    ("a=x/.params.yml.lock", ["reset", "*"]),
    (".experiment.yml.lock", ["note", "a note"]),
    ("profiles", ["run"]),
    ("profiles", ["relink"]),
    ("Snakefile", ["relink"]),
]


@pytest.mark.parametrize("where, command", CASES, ids=[f"{w} {' '.join(c)}" for w, c in CASES])
def test_a_command_refuses_to_write_through_a_link(world, capsys, where, command):
    path = link(world, where)
    code, out, err = xmen(capsys, *command, "-r", str(world)) if command[0] != "run" or len(command) == 1 else \
        xmen(capsys, "run", "-r", str(world), *command[1:])
    lines = err.strip().splitlines()
    assert code != 0, out + err
    assert "Traceback" not in err
    assert lines[-1].startswith("Error: ") and lines[-1].endswith(
        f"{path} is a symbolic link; xmen never writes its own files through one (move the link away)"), err
    untouched(world, path)


@pytest.mark.parametrize("where", ["a=x/.xmen-reserve", "a=x/.xmen-job.lock", "a=x/xmen.log", "a=x/.xmen-heartbeat"])
def test_the_runner_refuses_to_start_over_a_link(world, where):
    """run.sh run by hand, by a launcher or by a SLURM job: the job runner refuses before it takes the lock."""
    path = link(world, where)
    proc = subprocess.run(["bash", str(world / "a=x" / "run.sh")], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {path} is a symbolic link; xmen never writes its own " \
                                                   "files through one (move the link away)", proc.stderr
    untouched(world, path)
    assert "ran" not in proc.stdout


WRITERS = [
    ("write_text_atomic", lambda p: files.write_text_atomic(p, "x")),
    ("write_atomic", lambda p: files.write_atomic(p, lambda handle: handle.write(b"x"))),
    ("write_yaml", lambda p: files.write_yaml(p, {"a": 1})),
    ("update_yaml", lambda p: files.update_yaml(p, lambda d: d.__setitem__("a", 2))),
    ("write_new_file", lambda p: files.write_new_file(p, "x")),
    ("locked", lambda p: files.locked(p.with_name(p.name.lstrip(".").removesuffix(".lock"))).__enter__()),
    ("open_own append", lambda p: os.close(files.open_own(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT))),
    ("open_own truncate", lambda p: os.close(files.open_own(p, os.O_WRONLY | os.O_TRUNC | os.O_CREAT))),
]


@pytest.mark.parametrize("name, write", WRITERS, ids=[w[0] for w in WRITERS])
def test_every_writer_of_the_store_refuses_a_link(tmp_path, name, write):
    """The store's writers, the one place xmen writes its files: a link is neither followed nor replaced."""
    target = tmp_path / "precious.yml"
    target.write_bytes(b"a: 0\n")
    path = tmp_path / (".state.yml.lock" if name == "locked" else "state.yml")
    path.symlink_to(target)
    with pytest.raises(LinkError, match="is a symbolic link"):
        write(path)
    assert path.is_symlink() and target.read_bytes() == b"a: 0\n"
    assert sorted(os.listdir(tmp_path)) == sorted(["precious.yml", path.name])  # no temp file left either


def test_a_python_experiment_never_appends_its_history_through_a_link(tmp_path):
    """message() of an experiment run in a folder where history.jsonl is a link: the file it points to stays."""
    target = tmp_path / "precious.txt"
    target.write_bytes(PRECIOUS)
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "history.jsonl").symlink_to(target)
    code = "import sys; from xmen.store import history; history.append(sys.argv[1], {'loss': 1.0})"
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "exp")], capture_output=True, text=True)
    assert proc.returncode != 0 and "is a symbolic link" in proc.stderr
    assert target.read_bytes() == PRECIOUS


@pytest.mark.parametrize("where", ["a=x/xmen.log", "a=x/logs"])
def test_a_plain_snakemake_never_writes_the_log_through_a_link(world, where):
    """``snakemake`` run in the set by hand (no xmen run to refuse first): the experiment's job fails, naming the
    link, and the shell never redirects its output into the file the link points to."""
    path = link(world, where)
    (world / "a=x" / "xmen.log").exists() or (world / "a=x" / "xmen.log").write_text("the last attempt's log\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-c1"], cwd=world, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert f"{where} is a symbolic link" in proc.stdout + proc.stderr  # Snakemake names it relative to the set
    untouched(world, path)


def test_init_never_replaces_a_link_in_the_folder(shell_experiment, tmp_path, capsys):
    """A link of the user's where init puts one of its files (even one pointing nowhere yet) stays a link."""
    shell_experiment({"script.sh": SCRIPT, "defaults.yml": DEFAULTS})
    root = tmp_path / "set"
    root.mkdir()
    (root / "Snakefile").symlink_to(tmp_path / "not-written-yet")
    code, _, err = xmen(capsys, "init", "-s", "script.sh", "-d", "defaults.yml", "-r", str(root))
    assert code != 0 and err.count("\n") == 1 and "Snakefile exists; refusing to overwrite it" in err, err
    assert (root / "Snakefile").is_symlink() and sorted(os.listdir(root)) == ["Snakefile"]


@pytest.mark.parametrize("where", ["checkpoints/model/0.pkl", "checkpoints/model", "checkpoints"])
def test_a_checkpoint_is_never_written_over_a_link(tmp_path, where):
    """Monitor.checkpoint where a checkpoint file, or a folder on its way, is a link: refused naming the link; the
    link stays and what it points to keeps its bytes (the checkpoint is neither written through nor over it)."""
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "precious.bin").write_bytes(PRECIOUS)
    exp = tmp_path / "exp"
    exp.mkdir()
    path = link(exp, where)
    with pytest.raises(LinkError, match=f"^{path} is a symbolic link"):
        Monitor(directory=exp).checkpoint(model={"w": 1})
    untouched(exp, path)
    assert sorted(os.listdir(tmp_path / "own")) in (["precious.bin"], ["moved-away", "precious.bin"])


def test_plot_never_replaces_a_link_at_its_output(xmen_home, tmp_path, monkeypatch, capsys):
    """xmen plot -o LINK: one line naming the link; the link stays and the file it points to keeps its bytes."""
    root = write_tutorial_set(tmp_path)
    for step in range(3):
        history.append(root / "a=1.0__b=None", {"loss": step}, step=step)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.png").write_bytes(PRECIOUS)
    (tmp_path / "loss.png").symlink_to(tmp_path / "mine.png")
    code, out, err = xmen(capsys, "plot", "loss", "-o", "loss.png")
    assert code != 0 and "Traceback" not in err
    assert err.strip().splitlines() == [f"Error: {tmp_path / 'loss.png'} is a symbolic link; xmen never writes its own "
                                        "files through one (move the link away)"], err
    assert (tmp_path / "loss.png").is_symlink() and (tmp_path / "mine.png").read_bytes() == PRECIOUS
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


@pytest.mark.parametrize("where", ["profiles", "profiles/default"])
def test_init_never_writes_its_profile_into_a_linked_folder(shell_experiment, tmp_path, capsys, where):
    """A profiles/ (or profiles/default/) of the user's linked to a folder elsewhere: init refuses naming the link
    and writes nothing, neither there nor in the set."""
    shell_experiment({"script.sh": SCRIPT, "defaults.yml": DEFAULTS})
    root = tmp_path / "set"
    (tmp_path / "own").mkdir()
    (root / where).parent.mkdir(parents=True, exist_ok=True)
    (root / where).symlink_to(tmp_path / "own", target_is_directory=True)
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    code, _, err = xmen(capsys, "init", "-s", "script.sh", "-d", "defaults.yml", "-r", str(root))
    assert code != 0 and err.strip().splitlines() == [
        f"Error: {root / where} is a symbolic link; xmen never writes its own files through one (move the link away)"]
    assert os.listdir(tmp_path / "own") == []
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before


def _tree(top: Path) -> dict[str, bytes]:
    """Every entry below ``top`` (not through links) with its bytes; a link as its target's name."""
    found: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(top):
        for name in dirs + names:
            path = Path(folder, name)
            found[os.path.relpath(path, top)] = (os.readlink(path).encode() if path.is_symlink() else
                                                 b"" if path.is_dir() else path.read_bytes())
    return found


def refused_before_any_write(world: Path, capsys, where: str, command: list[str]) -> None:
    """A link at ``world/where``: ``xmen COMMAND -r world`` ends with the one line naming it and changed nothing."""
    path = link(world, where)
    before = _tree(world)
    code, out, err = xmen(capsys, *command, "-r", str(world))
    assert code != 0, out + err
    assert err.strip().splitlines()[-1] == (f"Error: {path} is a symbolic link; xmen never writes its own files "
                                            "through one (move the link away)"), err
    assert _tree(world) == before
    untouched(world, path)


VERBS = [["reset", "*"], ["unlink", "a=x"], ["relink"], ["register", "{a: y}"], ["run", "moved"]]


@pytest.mark.parametrize("where", ["Snakefile", "profiles", ".xmen/xmen-path"])
@pytest.mark.parametrize("command", VERBS, ids=[" ".join(v) for v in VERBS])
def test_a_verb_refuses_a_link_before_its_first_write(world, capsys, where, command):
    """Every verb that changes a set ends by rewriting its Snakefile and profile: a link there is refused before
    the verb writes anything (reset updated params.yml first and only then refused; register wrote the folders and
    experiment.yml; a moved set's run relinked it)."""
    if command == ["run", "moved"]:
        world = world.rename(world.with_name("moved"))
        command = ["run"]
    refused_before_any_write(world, capsys, where, command)


@pytest.mark.parametrize("where", ["a=y/params.yml", "a=y/.params.yml.lock"])
@pytest.mark.parametrize("command", [["note", "-e", "*", "a note"], ["reset", "*"]], ids=" ".join)
def test_a_link_at_one_experiment_stops_a_verb_over_many_before_it_writes(world, capsys, where, command):
    """note -e and reset over several experiments: a link at one's params.yml is refused before the first
    params.yml changes (a=x was noted or reset, then a=y refused)."""
    assert xmen(capsys, "register", "{a: y}", "-r", str(world))[0] == 0
    refused_before_any_write(world, capsys, where, command)
