"""``xmen list PARENT`` writes nothing into the sets it lists (issue 19): its index cache lives in the user's own
cache folder (``$XDG_CACHE_HOME/xmen``), so sets of other users, read-only sets and synced copies stay exactly as
they were, and a cache that cannot be written never fails the listing."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from xmen.look.index import cache_folder

from cli_helpers import make_set, xmen

DEFAULTS = "a: h  # (str) A parameter (default='h')\n"
SCRIPT = "#!/bin/bash\ntrue\n"
OTHER_UID = 54321


@pytest.fixture
def env(shell_experiment):
    return shell_experiment({"script.sh": SCRIPT, "defaults.yml": DEFAULTS})


def state(top: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every file, folder and link below ``top``: (mode, owner, mtime_ns, bytes)."""
    found = {}
    for folder, dirs, names in os.walk(top):
        for name in dirs + names:
            path = Path(folder, name)
            info = path.lstat()
            data = path.read_bytes() if stat.S_ISREG(info.st_mode) else b""
            found[str(path.relative_to(top))] = (info.st_mode, info.st_uid, info.st_mtime_ns, data)
    return found


def sets_of_others(env: Path, capsys) -> tuple[Path, list[Path]]:
    """PARENT holding a set of mine, a read-only set (chmod -w), a set synced from another machine and, when this
    runs as root, a set whose files belong to another user."""
    parent = env / "parent"
    parent.mkdir()
    mine = make_set(parent, "mine", "{a: x | y}", script="../script.sh", defaults="../defaults.yml")
    read_only = make_set(parent, "read_only", "{a: x}", script="../script.sh", defaults="../defaults.yml")
    synced = parent / "synced"
    shutil.copytree(mine, synced)  # as xmen sync or rsync leaves it: recording the other machine's folder
    sets = [mine, read_only, synced]
    if os.geteuid() == 0:  # only root can give files away; elsewhere the read-only set stands for another's
        theirs = make_set(parent, "theirs", "{a: z}", script="../script.sh", defaults="../defaults.yml")
        for folder, dirs, names in os.walk(theirs):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + names)]:
                os.chown(name, OTHER_UID, OTHER_UID, follow_symlinks=False)
        sets.append(theirs)
    for folder, dirs, names in os.walk(read_only, topdown=False):
        for name in [*(os.path.join(folder, n) for n in names + dirs), folder]:
            os.chmod(name, os.stat(name).st_mode & ~0o222)
    capsys.readouterr()
    return parent, sets


def test_list_parent_writes_nothing_into_the_sets_it_lists(env, capsys, user_cache):
    parent, sets = sets_of_others(env, capsys)
    try:
        before = {s: state(s) for s in sets}
        for _ in range(2):  # the first listing builds the indexes, the second reads them
            code, out, err = xmen(capsys, "list", str(parent))
            assert code == 0, err
            assert "Traceback" not in err
            assert all(f"{s.name}" in out for s in sets), out
            assert {s: state(s) for s in sets} == before
        assert all((Path(cache_folder(s)) / "index.json").is_file() for s in sets)
        assert str(Path(cache_folder(sets[0]))).startswith(str(user_cache))
    finally:
        for folder, dirs, _ in os.walk(parent):
            os.chmod(folder, 0o755)


def test_a_cache_that_cannot_be_written_never_fails_the_listing(env, capsys, monkeypatch, tmp_path):
    parent, sets = sets_of_others(env, capsys)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked / "cache"))  # below a file: no one can make it, root neither
    try:
        before = {s: state(s) for s in sets}
        code, out, err = xmen(capsys, "list", str(parent))
        assert code == 0 and not err.strip(), err
        assert "a=x" in out and "a=z" in out or os.geteuid() != 0, out
        assert {s: state(s) for s in sets} == before
    finally:
        for folder, dirs, _ in os.walk(parent):
            os.chmod(folder, 0o755)
