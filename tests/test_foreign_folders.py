"""Deleting verbs delete only folders xmen made as experiments of this set (issue 19, "data lost" and "guards").

A folder is an experiment of a set only if its marker (or, for a marker from before markers named anything, its
params.yml) names that folder and that set: a ``cp -r a=x a=x.bak``, a folder holding a copied marker, or an
experiment folder copied from another set stays, with the user's files in it, and ``clean`` says why. A folder
holding a set is never deleted as an experiment folder.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from xmen.store import ownership

from cli_helpers import make_set, xmen

DEFAULTS = "a: h  # (str) A parameter (default='h')\n"
SCRIPT = "#!/bin/bash\ntrue\n"
NOTES = "the user's own notes\n"


@pytest.fixture
def env(shell_experiment):
    return shell_experiment({"script.sh": SCRIPT, "defaults.yml": DEFAULTS})


def user_files(top: Path) -> dict[str, bytes]:
    """Every ``notes.txt`` (the files only the user wrote) below ``top``, with its bytes."""
    return {str(p.relative_to(top)): p.read_bytes() for p in sorted(top.rglob("notes.txt"))}


def copies(root: Path, other: Path) -> None:
    """The ways a user ends up with a folder carrying xmen's files that is not an experiment of ``root``."""
    shutil.copytree(root / "a=x", root / "a=x.bak")  # a backup of an experiment
    (root / "a=x.bak" / "notes.txt").write_text(NOTES)
    (root / "mine").mkdir()  # a folder of the user's with a marker copied in (cp -r a=x/. mine/)
    shutil.copy(root / "a=x" / ownership.EXPERIMENT_MARKER, root / "mine")
    (root / "mine" / "notes.txt").write_text(NOTES)
    shutil.copytree(other / "a=z", root / "a=z")  # an experiment folder brought over from another set
    (root / "a=z" / "notes.txt").write_text(NOTES)
    shutil.copytree(root / "a=y", root / "a=y.old")  # a backup made from a marker of before markers named it
    (root / "a=y.old" / ownership.EXPERIMENT_MARKER).write_text("created by xmen\n")
    (root / "a=y.old" / "notes.txt").write_text(NOTES)


FOREIGN = ("a=x.bak", "mine", "a=z", "a=y.old")


def test_clean_keeps_copies_of_experiments_and_says_why(env, capsys):
    other = make_set(env, "other", "{a: z}")
    root = make_set(env, "set", "{a: x | y}")
    copies(root, other)
    before = user_files(root)
    assert len(before) == 4
    assert xmen(capsys, "unlink", "*", "-r", str(root))[0] == 0
    code, _, err = xmen(capsys, "clean", "-y", "-r", str(root))
    assert code == 0, err
    assert not (root / "a=x").exists() and not (root / "a=y").exists()  # its own unlinked experiments go
    assert all((root / name).is_dir() for name in FOREIGN), err
    assert user_files(root) == before
    assert "a=x.bak (a copy of a=x" in err and "mine (a copy of a=x" in err, err
    assert f"a=z (made for another set ({other}))" in err, err


def test_rm_keeps_copies_of_experiments(env, capsys):
    other = make_set(env, "other", "{a: z}")
    root = make_set(env, "set", "{a: x | y}")
    copies(root, other)
    before = user_files(root)
    code, _, err = xmen(capsys, "rm", "-y", str(root))
    assert code == 0, err
    assert sorted(os.listdir(root)) == sorted(FOREIGN)  # the set is gone, the user's folders stay
    assert user_files(root) == before


def test_a_copied_set_still_deletes_its_own_experiments_after_relink(env, capsys, tmp_path):
    """A whole set copied (or moved) keeps its experiments: their markers name the folder it was made in, which
    experiment.yml records as an origin."""
    root = make_set(env, "set", "{a: x | y}")
    copy = tmp_path / "elsewhere" / "set"
    shutil.copytree(root, copy, symlinks=True)
    assert xmen(capsys, "relink", "-r", str(copy))[0] == 0
    assert xmen(capsys, "unlink", "a=x", "-r", str(copy))[0] == 0
    assert xmen(capsys, "clean", "-y", "-r", str(copy))[0] == 0
    assert not (copy / "a=x").exists() and (root / "a=x").is_dir()
    assert xmen(capsys, "rm", "-y", str(copy))[0] == 0
    assert not copy.exists()


def test_clean_and_rm_never_delete_a_folder_holding_a_set(env, capsys):
    """A set made inside an experiment folder before init refused it (or moved there) survives the outer set."""
    root = make_set(env, "set", "{a: x | y}")
    inner = root / "a=x" / "inner"
    inner.mkdir()
    (inner / "experiment.yml").write_text("root: somewhere\n")  # a set, as far as any finder can tell
    (inner / "notes.txt").write_text(NOTES)
    assert xmen(capsys, "unlink", "*", "-r", str(root))[0] == 0
    code, _, err = xmen(capsys, "clean", "-y", "-r", str(root))
    assert code == 0, err
    assert (inner / "notes.txt").read_text() == NOTES and not (root / "a=y").exists()
    assert f"a=x (it holds the experiment set {inner})" in err, err
    code, _, err = xmen(capsys, "rm", "-y", str(root))
    assert code == 0, err
    assert (inner / "notes.txt").read_text() == NOTES


def test_register_refuses_a_set_inside_another_set(env, capsys):
    """A set moved into another one's experiment folder (init refuses to make one there) takes no experiments."""
    other = make_set(env, "other", "{a: z}")
    root = make_set(env, "set", "{a: x | y}")
    inner = root / "a=x" / "inner"
    shutil.move(other, inner)
    before = sorted(p.name for p in inner.iterdir())
    code, _, err = xmen(capsys, "register", "{a: q}", "-r", str(inner))
    assert code != 0 and err.count("\n") == 1, err
    assert err.startswith(f"Error: refusing a set inside the experiment folder {root / 'a=x'}"), err
    assert sorted(p.name for p in inner.iterdir()) == before
