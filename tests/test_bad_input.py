"""A table of bad input to every verb (register has its own, longer table in test_register_bad_input.py): each row
gets one `Error:` line naming the problem, a non-zero exit, no traceback and no change to any file under the test's
folder. Add a row for every bad input found.

The world each row runs in: a set ``set`` of a shell experiment (``a=x`` finished, ``a=y`` registered) in the
working directory's folder ``work``, beside a folder of the user's own (``mine``) that no command may touch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pytest

from cli_helpers import make_set
from xmen.cli import main
from xmen.store import files


class Row(NamedTuple):
    args: tuple[str, ...]
    message: str
    cwd: str = "work/set"  # relative to the test's folder


def row(message: str, *args: str, cwd: str = "work/set") -> Row:
    return Row(tuple(args), message, cwd)


ROWS: list[Row] = [
    # ---------------------------------------------------------------------------------------- data lost (19)
    # An empty ROOT or GLOB ("$UNSET_VAR") is an error, never the current folder or every experiment.
    row("empty folder", "rm", "-y", ""),
    row("empty folder", "rm", "-y", "", cwd="work"),
    row("empty GLOB", "reset", ""),
    row("empty GLOB", "unlink", ""),
    row("empty GLOB", "cancel", ""),
    row("empty GLOB", "run", ""),
    row("empty GLOB", "run", "", "sh"),
    row("empty GLOB", "list", ""),
    row("empty GLOB", "list", "", cwd="work"),
    row("empty GLOB", "compare", ""),
    row("empty GLOB", "report", ""),
    row("empty GLOB", "note", "", "a note"),
    row("empty GLOB", "note", "-e", "", "a note"),
    row("empty GLOB", "relink", "-e", ""),
    row("empty folder", "clean", "-y", "-r", ""),
    row("empty folder", "reset", "-r", ""),
    row("empty folder", "unlink", "a=x", "-r", ""),
    row("empty folder", "cancel", "a=x", "-r", ""),
    row("empty folder", "run", "-r", ""),
    row("empty folder", "note", "a note", "-r", ""),
    row("empty folder", "register", "{a: z}", "-r", ""),
    row("empty folder", "init", "-r", "", cwd="work"),
    row("empty folder", "init", "-s", "script.sh", "-d", "defaults.yml", "-r", "", cwd="work"),
    row("empty folder", "relink", "-r", ""),
    row("empty folder", "demo", "--dir", ""),
    row("empty folder", "ci", ""),
    row("empty folder", "sync", "host:/a/set", ""),
    # A set inside a set or an experiment folder (the outer clean or rm would delete it); a demo using a set's .xmen/.
    row("refusing a set inside the experiment set", "init", "-s", "script.sh", "-d", "defaults.yml", "-r", "set/sub",
        cwd="work"),
    row("refusing a set inside the experiment folder", "init", "-s", "script.sh", "-d", "defaults.yml", "-r",
        "set/a=x/inner", cwd="work"),
    row("refusing a set inside the experiment set", "init", "-s", "../script.sh", "-d", "../defaults.yml", "-r",
        "sub"),
    # Without -s/-n, so that an xmen without the guard stops at "give either -n or -s" rather than writing into /.
    row("the root of the file system", "init", "-r", "/"),
    row("is an experiment set", "demo", "--dir", "set", cwd="work"),
    row("refusing a set inside the experiment set", "demo", "--dir", "a=x"),
    row("no such folder", "rm", "-y", "nope*"),
    # Bytes of argv that are not UTF-8 (bash: xmen note $'\x9b') reach Python as lone surrogates: refused up front.
    row("argument b'\\x9b' is not UTF-8 text", "note", os.fsdecode(b"\x9b")),
    row("argument b'\\x9b' is not UTF-8 text", "note", "-e", "a=x", os.fsdecode(b"\x9b")),
    row("argument b'z\\xff' is not UTF-8 text", "register", "{a: z}", "-n", os.fsdecode(b"z\xff")),
    row("argument b'{a: \\x9b}' is not UTF-8 text", "register", os.fsdecode(b"{a: \x9b}")),
    row("argument b'\\xc3' is not UTF-8 text", "register", "{a: z}", "--purpose", os.fsdecode(b"\xc3")),
    row("argument b'new\\x9b' is not UTF-8 text", "init", "-s", "script.sh", "-d", "defaults.yml", "-r",
        os.fsdecode(b"new\x9b"), cwd="work"),
    row("argument b'\\x9b' is not UTF-8 text", "config", "-H", os.fsdecode(b"\x9b")),
    row("argument '\\ud800' is not UTF-8 text", "note", "\ud800"),  # not from bytes: shown escaped
    # ---------------------------------------------------------------------------------- never say green (19)
    # ------------------------------------------------------------------------------------------ guards (19)
    row("no linked experiment matches 'nope*'", "reset", "nope*"),
    row("no linked experiment matches 'nope*'", "reset", "nope*", "--status-is", "finished"),
    row("resource runtime=-1 must be more than 0", "register", "{a: z}", "--resources", "runtime=-1"),
    row("resource runtime=nan is not a finite number", "register", "{a: z}", "--resources", "runtime=nan"),
    row("resource runtime=inf is not a finite number", "register", "{a: z}", "--resources", "runtime=inf"),
    row("resource mem_mb=-5 must be more than 0", "register", "{a: z}", "--resources", "mem_mb=-5"),
    row("--threads: must be at most 65,536", "register", "{a: z}", "--threads", "999999999999"),
    row("contains the control or formatting character \\u202e", "register", "{a: z}", "-n", "b\u202exe.txt"),
    row("contains the control or formatting character \\u2066", "register", "{a: 'z\u2066'}"),
    row("contains the control or formatting character \\x9b", "register", "{a: z}", "-n", "z\x9b31m"),
    row("contains the control or formatting character \\u200b", "register", "{a: z}", "-n", "z\u200b"),
    row("set name 'new\\u202egnp.exe' contains the control or formatting character \\u202e",
        "init", "-s", "script.sh", "-d", "defaults.yml", "-r", "new\u202egnp.exe", cwd="work"),
    # Adversarial pass after issue 19: floats that are no number, counts past every limit, empty names, sets or
    # folders named like options, a folder that is not there.
    row("'nan' is not a finite number", "list", "-s", "--watch", "nan"),
    row("'inf' is not a finite number", "list", "-s", "--watch", "inf"),
    row("1000000000.0 is not in the range 0.1<=x<=86400.0", "list", "--watch=1e9"),
    row("set name '-x' may not start with '-'", "init", "-r", "-x", "-s", "script.sh", "-d", "defaults.yml",
        cwd="work"),
    row("set name '--' may not start with '-'", "init", "-r", "--", "-s", "script.sh", "-d", "defaults.yml",
        cwd="work"),
    row("set name '-x' may not start with '-'", "init", "-r", "sub/-x", "-s", "script.sh", "-d", "defaults.yml",
        cwd="work"),
    row("folder '-x' may not start with '-'", "demo", "--dir", "-x", cwd="work"),
    row("contains the control or formatting character \\u202e", "demo", "--dir", "d\u202e", cwd="work"),
    row("contains the control or formatting character \\u202e", "init", "-s", "script.sh", "-d", "defaults.yml",
        "-r", "d\u202e/set", cwd="work"),
    row("folder '-x' may not start with '-'", "sync", "--", "host:/a/set", "-x", cwd="work"),
    row("folder '-d' may not start with '-'", "sync", "host:/a/set", "new/-d", cwd="work"),
    row("no experiment set below", "ci", "../../mine"),
    row("empty PROFILE", "run", "--profile", ""),
    row("empty PROFILE", "ci", "--profile", "", cwd="work"),
    row("empty PARAM", "compare", "--by", ""),
    row("empty PARAM", "compare", "--by", ","),
    row("empty MESSAGE", "compare", "--metric", ""),
    row("empty COLUMN", "compare", "--sort", ""),
    row("empty TYPE", "list", "-n", ""),
    row("empty PARAM", "report", "--by", ""),
    row("empty NAME", "report", "-m", ""),
    row("empty PARAM", "plot", "loss", "--by", ""),
    row("empty PARAM", "register", "{a: z}", "--seed-param", ""),
    row("empty PATH_OR_GLOB", "register", "{a: z}", "--requires", ""),
    row("--retries: must be at most 1,000", "register", "{a: z}", "--retries", "99999999999999999"),
    row("-x/--repeats: must be at most 4,294,967,295", "register", "{a: z}", "-x", "99999999999999999"),
    row("--max-experiments: must be at most 4,294,967,295", "register", "{a: z}", "--max-experiments",
        "99999999999999999"),
    row("99999999999999999 is not in the range", "run", "-j", "99999999999999999"),
    row("99999999999999999 is not in the range", "list", "--max-rows", "99999999999999999"),
    row("no such folder: /path/that/does/not/exist", "list", "/path/that/does/not/exist"),
    row("no such folder: /path/that/does/not/exist", "compare", "/path/that/does/not/exist"),
    row("no such folder", "list", "nope/*", cwd="work"),
    row("empty folder", "config", "--add_path", ""),
    row("--max-size: 99999999999999999999... is not a finite size", "sync", "host:/a/set", "dest", "--max-size",
        "9" * 400, cwd="work"),
    # ------------------------------------------------------------------------------- original xmen users (19)
    row("use --status-is finished", "reset", "*", "-s", "finished"),  # the original's -s SET the status
    row("use --status-is registered", "reset", "a=x", "--status", "registered"),
    row("-M takes no REGEX", "list", "-M", "system_.*"),  # the original's (2021) meta groups
    row("it is `xmen register` now", "link", "-u", "{a: z}"),
    row("xmen config --add", "python", "--list"),
    row("xmen config --add", "experiments", "-l"),
    row("filter with -p PREDICATE", "list", "-f", "a=='x'"),
    row("filter with -p PREDICATE", "list", "--filters", "a.*", "-s"),
    # ------------------------------------------------------------------------------------ packs on SLURM (19)
]


@pytest.fixture
def world(xmen_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's own\n")
    (work / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (work / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    monkeypatch.chdir(work)
    root = make_set(work, "set", "{a: x | y}")
    files.update_yaml(root / "a=x" / "params.yml", lambda p: {**p, "_status": "finished"})
    (root / "a=x" / "xmen.done").write_text("")
    return tmp_path


def snapshot(top: Path) -> dict[str, bytes]:
    """Every file (with its bytes), folder and link under ``top``; lock files are created on first use and carry
    no state."""
    found: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(top):
        for name in names + dirs:
            path = Path(folder, name)
            key = os.path.relpath(path, top)
            if path.is_symlink():
                found[key + " ->"] = os.readlink(path).encode()
            elif name in dirs:
                found[key + "/"] = b""
            elif not name.endswith(".lock"):
                found[key] = path.read_bytes()
    return found


@pytest.mark.parametrize("case", ROWS, ids=[" ".join(r.args)[:60] or "(none)" for r in ROWS])
def test_bad_input(world: Path, capsys, monkeypatch: pytest.MonkeyPatch, case: Row) -> None:
    monkeypatch.chdir(world / case.cwd)
    before = snapshot(world)
    code = main(list(case.args))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code != 0, out + err
    assert "Traceback" not in out + err
    assert lines and lines[-1].startswith("Error: "), err
    assert case.message in lines[-1], lines[-1]
    assert snapshot(world) == before


@pytest.mark.parametrize("args", [
    [b"note", b"\x9b"],
    [b"note", b"-e", b"a=x", b"caf\xe9"],
    [b"register", b"{a: z}", b"-n", b"\x9b"],
    [b"register", b"{a: \x9b}"],
], ids=lambda args: repr(b" ".join(args)))
def test_argv_bytes_that_are_not_utf8(world: Path, args: list[bytes]) -> None:
    """The real command line, bytes and all (bash: xmen note $'\\x9b'): one Error line naming the bytes, exit 2, no
    traceback and nothing written (it was a UnicodeEncodeError traceback from the YAML writer)."""
    import subprocess
    import sys

    before = snapshot(world)
    proc = subprocess.run([sys.executable.encode(), b"-m", b"xmen.cli", *args], cwd=world / "work" / "set",
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    shown = repr(args[-1]).encode()
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [b"Error: argument " + shown + b" is not UTF-8 text (xmen keeps names, "
                                        b"notes and paths as UTF-8)"], proc.stderr
    assert snapshot(world) == before


def test_an_experiments_own_command_line_refuses_bytes_that_are_not_utf8(world: Path) -> None:
    """An Experiment class's command line (--register ROOT NAME --purpose TEXT) refuses them the same way."""
    import subprocess
    import sys

    before = snapshot(world)
    proc = subprocess.run([sys.executable.encode(), b"-m", b"xmen.examples.experiment", b"--register",
                           str(world / "work" / "new").encode(), b"n1", b"--purpose", b"\x9b"],
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1] == b"error: argument b'\\x9b' is not UTF-8 text (xmen keeps names, notes and " \
                                           b"paths as UTF-8) (see --help)", proc.stderr
    assert b"Traceback" not in proc.stderr
    assert snapshot(world) == before
