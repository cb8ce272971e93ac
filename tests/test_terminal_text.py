"""What xmen prints of users' text is safe on a terminal and bounded: no escape sequence of any kind reaches the
terminal from a note, a parameter or an error, and a huge value shows as a capped cell that says it was cut
(``xmen list``, ``xmen list -l``, ``xmen compare``, ``xmen report``)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from xmen.store import files

from cli_helpers import write_set, xmen

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
