"""No command writes outside the set it was run on: in a copy of a set (the original xmen's format, and ours), every
command leaves the original folder byte-identical, although the copy records the original's absolute paths."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from xmen.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from original_xmen import make_original_set  # noqa: E402

DEFAULTS = "a: h  # (str) A parameter (default='h')\nb: 17  # (int) Another parameter (default=17)\n"
SCRIPT = "#!/bin/bash\ngrep '^a:' \"$1\" > \"$(dirname \"$1\")/ran.txt\"\n"

# Every command that reads or changes a set, in an order where each has something to do.
COMMANDS = [
    ["list"],
    ["list", "-v", "--csv"],
    ["register", "{a: copy1 | copy2}"],
    ["run", "*", "sh"],
    ["reset", "*"],
    ["run", "a=copy1", "-j", "1"],
    ["note", "a note in the copy"],
    ["note", "-e", "a=copy2", "a note on an experiment"],
    ["relink"],
    ["unlink", "a=copy2"],
    ["relink", "-e", "a=copy2"],
    ["unlink", "a=copy2"],
    ["clean", "-y"],
    ["reset", "*"],
    ["rm", "-y", "."],
]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder below ``folder`` (hidden ones too) with its bytes (None for a folder)."""
    found: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), folder)] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, folder)] = Path(path).read_bytes()
    return found


def ours(root: Path, tmp_path: Path, capsys) -> Path:
    (tmp_path / "script.sh").write_text(SCRIPT)
    (tmp_path / "defaults.yml").write_text(DEFAULTS)
    assert main(["init", "-s", str(tmp_path / "script.sh"), "-d", str(tmp_path / "defaults.yml"), "-r", str(root)]) == 0
    assert main(["register", "{a: x | y}", "-r", str(root)]) == 0
    assert main(["run", "a=x", "-r", str(root), "sh"]) == 0
    capsys.readouterr()
    return root


@pytest.mark.parametrize("kind", ["original-2020", "original-2021", "ours"])
def test_every_command_in_a_copy_leaves_the_original_untouched(kind, xmen_home, tmp_path, monkeypatch, capsys):
    source = tmp_path / "machine_a" / "set_a"
    if kind == "ours":
        source.parent.mkdir()
        ours(source, tmp_path, capsys)
    else:
        make_original_set(source, int(kind.split("-")[1]))
    copy = tmp_path / "machine_b" / "set_a"
    shutil.copytree(source, copy, symlinks=True)
    before = snapshot(source)
    monkeypatch.chdir(copy)
    for command in COMMANDS:
        if command[0] == "rm":
            monkeypatch.chdir(tmp_path)
            command = ["rm", "-y", str(copy)]
        code = main(command)
        out, err = capsys.readouterr()
        assert code == 0, (command, err)
        assert "Traceback" not in err
        after = snapshot(source)
        assert sorted(after) == sorted(before), (command, sorted(set(after) ^ set(before)))
        changed = [name for name in before if before[name] != after[name]]
        assert not changed, (command, changed)
    assert not copy.exists(), (out, err, sorted(os.listdir(copy)))
