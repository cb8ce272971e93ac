"""`xmen config`, `note`, `reset`, `unlink`, `relink`, `clean` and `rm`: each option, and refusals."""
from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from xmen.store import config as global_config
from xmen.store import files
from xmen.cli import main
from xmen.sets.expset import ExperimentSet

from cli_helpers import make_set, xmen

DEFAULTS = "a: h  # (str) A parameter (default='h')\nb: 17  # (int) Another parameter (default=17)\n"
SCRIPT = "#!/bin/bash\ntrue\n"


@pytest.fixture
def env(shell_experiment):
    """A temporary HOME/XMEN/XDG_CONFIG_HOME and a plain shell experiment (script.sh, defaults.yml) in tmp_path."""
    return shell_experiment({"script.sh": SCRIPT, "defaults.yml": DEFAULTS})


# ----------------------------------------------------------------------------------------------------- config
def test_config_prompt_paths_header_list(env, capsys):
    assert xmen(capsys, "config", "--disable_prompt")[0] == 0
    assert global_config.load().prompt is False
    assert xmen(capsys, "config", "--enable_prompt")[0] == 0
    assert global_config.load().prompt is True
    (env / "lib").mkdir()
    assert xmen(capsys, "config", "--add_path", "lib")[0] == 0
    assert global_config.load().python_paths == [str(env / "lib")]
    assert xmen(capsys, "config", "-H", "#SBATCH --time=5")[0] == 0
    assert global_config.load().header == "#SBATCH --time=5"
    (env / "header.txt").write_text("#SBATCH --mem=1G\n")
    assert xmen(capsys, "config", "--header", "header.txt")[0] == 0
    assert global_config.load().header == "#SBATCH --mem=1G\n"
    code, out, _ = xmen(capsys, "config", "--list")
    assert code == 0 and "python_paths:" in out and str(env / "lib") in out
    assert xmen(capsys, "config", "-r", "lib")[0] == 0
    assert global_config.load().python_paths == []


@pytest.mark.parametrize("value, expected", [
    ("module load cuda", "module load cuda"),  # a command: text
    ("source /etc/profile", "source /etc/profile"),  # a command with a path: text
    ("#SBATCH --output=/tmp/x.log", "#SBATCH --output=/tmp/x.log"),  # a directive: text
])
def test_header_text_is_kept_as_written(env, capsys, value, expected):
    assert xmen(capsys, "config", "-H", value)[0] == 0
    assert global_config.load().header == expected


@pytest.mark.parametrize("command", [("config", "-H"), ("register", "{a: x}", "-H")])
def test_header_path_that_names_no_file_is_an_error(env, capsys, command):
    root = make_set(env, sweep=None)
    before = sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock"))
    where = ("-r", str(root)) if command[0] == "register" else ()
    code, out, err = xmen(capsys, *command, "headers/slurm.sh", *where)
    assert code != 0 and err == "Error: no such header file: headers/slurm.sh\n", err
    assert global_config.load().header == ""
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == before  # nothing registered


def test_config_add_and_remove_experiment(env, capsys):
    script = env / "exps.py"
    script.write_text(
        "from xmen import Experiment\n\nclass Base(Experiment):\n    x: int = 1  # @p x\n\n"
        "class Child(Base):\n    y: int = 2  # @p y\n\nclass Other:\n    pass\n"
    )
    code, _, err = xmen(capsys, "config", "--add", str(script))
    assert code == 0, err
    assert global_config.load().experiments == {"Base": str(script), "Child": str(script)}
    assert xmen(capsys, "config", "--remove", "Base")[0] == 0
    assert global_config.load().experiments == {"Child": str(script)}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--add", "missing.py"], "no such script"),
        (["--add", "defaults.yml"], "no Experiment subclass"),
        (["--add_path", "nowhere"], "no such folder"),
        (["-r", "Nothing"], "neither a configured experiment nor an import path"),
    ],
)
def test_config_errors(env, capsys, args, message):
    before = global_config.config_path().read_bytes() if global_config.config_path().exists() else None
    code, _, err = xmen(capsys, "config", *args)
    assert code != 0 and err.count("\n") == 1 and message in err
    after = global_config.config_path().read_bytes() if global_config.config_path().exists() else None
    assert after == before


def test_config_clean_forgets_missing_sets_without_recreating_them(env, capsys):
    keep = make_set(env, "keep", None)
    gone = make_set(env, "gone", None)
    assert global_config.load().sets == [str(keep), str(gone)]
    shutil.rmtree(gone)
    assert xmen(capsys, "config", "--clean")[0] == 0
    assert global_config.load().sets == [str(keep)]
    assert not gone.exists()


def _add_path(index: int) -> None:
    folder = Path(os.environ["XMEN"]).parent / f"p{index}"
    folder.mkdir(exist_ok=True)
    assert main(["config", "--add_path", str(folder)]) == 0


def test_concurrent_config_updates_are_not_lost(env):
    with multiprocessing.get_context("fork").Pool(8) as pool:
        pool.map(_add_path, range(40))
    assert len(global_config.load().python_paths) == 40


def test_install_profiles_respects_xdg_config_home(env, capsys):
    code, _, err = xmen(capsys, "config", "--install-profiles")
    assert code == 0, err
    for name in ("slurm", "local", "ci"):
        assert (env / "xdg" / "snakemake" / name / "config.yaml").is_file()
    (env / "xdg" / "snakemake" / "ci" / "config.yaml").write_text("cores: 1\n")
    code, _, err = xmen(capsys, "config", "--install-profiles")
    assert "kept" in err and (env / "xdg" / "snakemake" / "ci" / "config.yaml").read_text() == "cores: 1\n"
    xmen(capsys, "config", "--install-profiles", "--force")
    assert "keep-going" in (env / "xdg" / "snakemake" / "ci" / "config.yaml").read_text()


# ------------------------------------------------------------------------------------------------- init prompt
def test_init_purpose_and_no_prompt_without_a_terminal(env, capsys):
    assert xmen(capsys, "config", "--enable_prompt")[0] == 0
    root = env / "s"
    # stdin is not a terminal under pytest: init must not block on the purpose prompt.
    assert xmen(capsys, "init", "-s", "script.sh", "-d", "defaults.yml", "-r", str(root))[0] == 0
    assert files.read_yaml(root / "experiment.yml")["purpose"] == ""
    root2 = env / "s2"
    xmen(capsys, "init", "-s", "script.sh", "-d", "defaults.yml", "-r", str(root2), "--purpose", "baseline")
    assert files.read_yaml(root2 / "experiment.yml")["purpose"] == "baseline"


# ------------------------------------------------------------------------------------------------------- note
def test_note_add_delete_and_on_experiments(env, capsys):
    root = make_set(env)
    os.chdir(root)
    assert xmen(capsys, "note", "first thought")[0] == 0
    assert xmen(capsys, "note", "second thought")[0] == 0
    assert files.read_yaml(root / "experiment.yml")["notes"] == ["first thought", "second thought"]
    assert xmen(capsys, "note", "first thought", "-d")[0] == 0
    assert files.read_yaml(root / "experiment.yml")["notes"] == ["second thought"]
    code, _, err = xmen(capsys, "note", "never written", "-d")
    assert code != 0 and "no such note" in err
    assert xmen(capsys, "note", "odd one", "-e", "a=y")[0] == 0
    assert files.read_yaml(root / "a=y" / "params.yml")["_notes"] == ["odd one"]
    assert "_notes" not in files.read_yaml(root / "a=x" / "params.yml")


# ------------------------------------------------------------------------------------------------------ reset
def test_reset_by_glob_and_status(env, capsys):
    root = make_set(env)
    os.chdir(root)
    for name, state in [("a=x", "finished"), ("a=y", "error"), ("a=z", "finished")]:
        files.update_yaml(root / name / "params.yml", lambda d, s=state: d.update(_status=s))
        if state == "finished":
            files.write_text_atomic(root / name / "xmen.done", "finished\n")
    assert xmen(capsys, "reset", "*", "--status-is", "error")[0] == 0
    exp_set = ExperimentSet(root)
    assert [exp_set.status_of(n) for n in ("a=x", "a=y", "a=z")] == ["finished", "registered", "finished"]
    assert xmen(capsys, "reset", "a=z")[0] == 0
    assert exp_set.status_of("a=z") == "registered" and not (root / "a=z" / "xmen.done").exists()
    assert (root / "a=x" / "xmen.done").exists()
    code, _, err = xmen(capsys, "reset", "*", "--status-is", "nonsense")
    assert code != 0 and "unknown status" in err


# --------------------------------------------------------------------------------------- unlink / relink / clean
def test_unlink_relink_clean(env, capsys):
    root = make_set(env)
    os.chdir(root)
    assert xmen(capsys, "unlink", "a=y")[0] == 0
    assert ExperimentSet(root).experiments == ["a=x", "a=z"]
    code, _, err = xmen(capsys, "unlink", "nothing*")
    assert code != 0 and "no linked experiment matches" in err
    assert xmen(capsys, "relink", "-e", "a=y")[0] == 0
    assert ExperimentSet(root).experiments == ["a=x", "a=z", "a=y"]
    xmen(capsys, "unlink", "a=*")
    (root / "a=x" / "result.bin").write_bytes(b"data")
    assert xmen(capsys, "register", "{a: keep}")[0] == 0
    (root / "notes_by_hand").mkdir()  # not an experiment folder: clean leaves it alone
    assert xmen(capsys, "clean", "-y")[0] == 0
    assert sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) == [
        "a=keep", "notes_by_hand", "profiles"]


def test_clean_and_rm_refuse_without_a_terminal_or_yes(env, capsys):
    root = make_set(env)
    os.chdir(root)
    xmen(capsys, "unlink", "a=x")
    code, _, err = xmen(capsys, "clean")
    assert code != 0 and "stdin is not a terminal" in err and (root / "a=x").exists()
    os.chdir(env)
    code, _, err = xmen(capsys, "rm", str(root))
    assert code != 0 and "stdin is not a terminal" in err and root.exists()
    assert xmen(capsys, "rm", str(root), "-y")[0] == 0
    assert not root.exists() and str(root) not in global_config.load().sets
    empty = env / "empty"
    empty.mkdir()
    code, _, err = xmen(capsys, "rm", str(empty), "-y")
    assert code != 0 and "not an experiment set" in err and empty.exists()


def test_relink_a_moved_set_updates_every_path(env, capsys):
    root = make_set(env)
    moved = env / "elsewhere" / "set_b"
    moved.parent.mkdir()
    shutil.move(root, moved)
    assert xmen(capsys, "relink", "-r", str(moved))[0] == 0
    data = files.read_yaml(moved / "experiment.yml")
    assert data["root"] == str(moved)
    for name in ("a=x", "a=y", "a=z"):
        assert files.read_yaml(moved / name / "params.yml")["_root"] == str(moved)
        text = (moved / name / "run.sh").read_text()
        assert str(moved) in text and str(root) not in text
    assert str(moved) in global_config.load().sets and str(root) not in global_config.load().sets


def test_relink_recursive(env, capsys):
    a = make_set(env, "sets/a")
    b = make_set(env, "sets/b")
    shutil.move(env / "sets", env / "moved")
    code, _, err = xmen(capsys, "relink", "-r", str(env / "moved"), "--recursive")
    assert code == 0, err
    for name in ("a", "b"):
        assert files.read_yaml(env / "moved" / name / "experiment.yml")["root"] == str(env / "moved" / name)
    assert a.name == "a" and b.name == "b"
