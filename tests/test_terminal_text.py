"""What xmen prints of users' text is safe on a terminal and bounded: no escape sequence of any kind reaches the
terminal from a note, a parameter or an error, and a huge value shows as a capped cell that says it was cut
(``xmen list``, ``xmen list -l``, ``xmen compare``, ``xmen report``)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from xmen.store import files

from cli_helpers import make_set, run_xmen, write_set, xmen

#: One of each family of terminal escape, each around visible text that must stay.
ESCAPES = {
    "OSC title (BEL)": "\x1b]0;pwned\x07",
    "OSC clipboard (ST)": "\x1b]52;c;aGk=\x1b\\",
    "OSC unterminated": "\x1b]8;;http://x",
    "DCS": "\x1bP1$qm\x1b\\",
    "APC": "\x1b_hidden\x1b\\",
    "PM": "\x1b^hidden\x1b\\",
    "SOS": "\x1bXhidden\x1b\\",
    "CSI colour": "\x1b[31;1m",
    "CSI clear screen": "\x1b[2J",
    "8-bit CSI": "\x9b31m",
    "8-bit OSC": "\x9d0;pwned\x9c",
    "lone ESC": "\x1b",
    "ESC charset": "\x1b(0",
    "C1 control": "\x85",
    "C0 control": "\x08\x08",
}
#: Nothing a terminal acts on: ESC, the C0 controls but tab and newline, DEL, the C1 controls.
ACTIVE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.mark.parametrize("kind", list(ESCAPES))
def test_list_l_and_list_show_notes_and_values_without_escapes(xmen_home: Path, tmp_path: Path, capsys,
                                                                kind: str) -> None:
    bad = ESCAPES[kind]
    root = write_set(tmp_path, 1, notes=(f"before{bad}\tafter",), params=lambda i: {"a": f"left{bad}right"},
                     purpose=f"p{bad}q")
    code, out, err = xmen(capsys, "list", "-l", str(root))
    assert code == 0, err
    assert not ACTIVE.search(out), repr(out)
    assert "before" in out and "after" in out.split("before", 1)[1]
    code, out, err = xmen(capsys, "list", "-v", str(root))
    assert code == 0, err
    assert not ACTIVE.search(out), repr(out)
    assert "left" in out  # the cell's visible text stays


def test_an_error_line_naming_a_users_text_holds_no_escape(xmen_home: Path, tmp_path: Path, capsys,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_set(tmp_path, 1)
    monkeypatch.chdir(root)
    code, out, err = xmen(capsys, "unlink", "x\x1b]0;pwned\x07\x1b[2J")
    assert code != 0 and err.startswith("Error: ")
    assert not ACTIVE.search(out + err), repr(err)


HUGE = 200_000


@pytest.fixture
def huge_set(xmen_home: Path, tmp_path: Path) -> Path:
    """A set whose one experiment has a 200 kB parameter and a 200 kB note."""
    root = write_set(tmp_path, 2, status="finished", params=lambda i: {"big": "y" * HUGE, "i": i},
                     messages=lambda i: {"loss": 0.5 + i})
    files.update_yaml(root / "i=0" / "params.yml", lambda p: {**p, "_notes": ["n" * HUGE]})
    return root


def test_list_caps_a_huge_cell_and_says_it_was_cut(huge_set: Path, capsys) -> None:
    code, out, err = xmen(capsys, "list", "-v", str(huge_set))
    assert code == 0, err
    assert len(out) < 20_000, len(out)
    assert "[cut: " in out and "more characters]" in out


def test_compare_caps_a_huge_cell(huge_set: Path, capsys) -> None:
    code, out, err = xmen(capsys, "compare", str(huge_set), "--by", "big")
    assert code == 0, err
    assert len(out) < 20_000, len(out)
    assert "[cut: " in out


def test_report_caps_a_huge_cell(huge_set: Path, tmp_path: Path, capsys) -> None:
    page = tmp_path / "r.html"
    code, _, err = xmen(capsys, "report", str(huge_set), "-o", str(page))
    assert code == 0, err
    text = page.read_text()
    assert "y" * HUGE not in text and "n" * HUGE not in text
    assert "[cut: " in text


@pytest.fixture
def escaped_set(xmen_home: Path, tmp_path: Path) -> Path:
    """A set below a folder whose name holds an OSC title escape: ``a=x`` fails, ``a=y`` is blocked (a status file
    xmen did not write), ``a=z`` runs. (What an experiment prints itself is its own: a launcher shows it as is.)"""
    top = tmp_path / "top\x1b]0;pwned\x07"
    top.mkdir()
    (top / "script.sh").write_text("#!/bin/bash\nif grep -q '^a: x' \"$1\"; then echo boom >&2; exit 3; fi\n")
    (top / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    root = make_set(top, "set", "{a: x | y | z}")
    (root / "a=y" / "xmen.done").write_text("planted\n")
    return root


@pytest.mark.parametrize("args", [["run"], ["run", "*", "bash"]], ids=" ".join)
def test_xmen_run_shows_no_escape(escaped_set: Path, args: list[str]) -> None:
    """The progress line, the skipped and left-out experiments, the summary, the plan and a launcher's lines name
    paths and reasons a user wrote: none reaches the terminal with its escapes."""
    proc = run_xmen(*args, cwd=escaped_set, check=False)
    said = proc.stdout + proc.stderr
    assert "top]0;pwned" in said or "/top" in said, said  # the paths are shown, without the escape
    assert "Traceback" not in said
    assert not ACTIVE.search(said), repr(said)
    assert "a=y" in said


def test_list_csv_on_a_terminal_shows_no_escape(xmen_home: Path, tmp_path: Path) -> None:
    """xmen list --csv keeps every value as recorded in a file or pipe, and drops the escapes on a terminal."""
    import os
    import pty
    import subprocess
    import sys

    root = write_set(tmp_path, 1, params=lambda i: {"a": "left\x1b]0;pwned\x07right"})
    piped = run_xmen("list", "--csv", "-p", "a", str(root), cwd=tmp_path)
    assert "left\x1b]0;pwned\x07right" in piped.stdout
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "xmen.cli", "list", "--csv", "-p", "a", str(root)],
                                cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            shown += chunk
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        os.close(leader)
    text = shown.decode()
    assert "leftright" in text and not ACTIVE.search(text.replace("\r\n", "\n")), repr(text)
