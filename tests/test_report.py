"""xmen.report without a browser: what the page holds, escaping, defaults, and the command's errors.

tests/browser/test_report_page.py renders a report of a real run in Chromium."""
from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from xmen.store import files, history
from xmen.look import report
from xmen.cli import main

from cli_helpers import write_tutorial_set


def _set_with_history(tmp_path: Path) -> Path:
    root = write_tutorial_set(tmp_path, 8, notes=("<img src=x onerror=alert(1)>",),
                    status=lambda i: "error" if i == 3 else "finished",
                    messages=lambda i: {"loss": 1.0 / (i + 1), "time": 1796151567.25})
    for i, name in enumerate(sorted(p.name for p in root.iterdir() if (p / "params.yml").exists())):
        for step in range(3):
            history.append(root / name, {"loss": (i + 1) / (step + 1)}, step=step)
    broken = root / "a=2.0__b=cat"
    files.update_yaml(broken / "params.yml", lambda d: d.update(
        _error="ValueError: <nan> & co", _notes=["try 'b=dog'"],
        _run={"host": "node<7>", "started": "2020-03-09-16-42-30", "ended": "2020-03-09-16-45-00"}))
    return root


def test_page_holds_notes_status_failures_comparison_plots_and_experiments(xmen_home, tmp_path):
    root = _set_with_history(tmp_path)
    data = report.write_report(tmp_path / "r.html", [str(root)])
    page = (tmp_path / "r.html").read_text()
    assert data.by == ["a", "b"] and [p.metric for p in data.plots] == ["loss"]  # time has no history
    assert page.count("<img ") == 1 and page.count("src='data:image/png;base64,") == 1
    # Escaped: the note, the reason, the host and the experiment note are text.
    assert "<img src=x" not in page and html.escape("<img src=x onerror=alert(1)>") in page
    assert "ValueError: &lt;nan&gt; &amp; co" in page and "node&lt;7&gt;" in page and "try &#x27;b=dog&#x27;" in page
    assert "error: 1</span>" in page and "finished: 7</span>" in page
    assert "2020-03-09 16:42:30" in page and "2020-03-09-16-42-30" not in page  # readable times
    assert "2026-" in page or "2027-" in page  # the message 'time' (a Unix time) shown as a date
    assert "1.796152e+09" not in page and "1796151567" not in page
    assert re.search(r"<td>a=2.0__b=cat</td><td><span class='badge bad'>error</span></td>"
                     r"<td>ValueError: &lt;nan&gt; &amp; co</td><td>.*xmen.log</td>", page)
    # The comparison: each (a, b) of the tutorial has two repeats.
    assert data.comparison is not None and list(data.comparison["experiments"]) == [2, 2, 2, 2]


def test_by_default_groups_by_varying_parameters_but_not_seeds():
    frame = pd.DataFrame({"lr": [0.1, 0.1, 0.2], "seed": [0, 1, 0], "depth": [3, 3, 3], "run_seed": [1, 2, 3]})
    assert report.default_by(frame, ["lr", "seed", "depth", "run_seed"]) == ["lr"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.000911882, "0.0009119"), (17, "17"), (None, ""), (float("nan"), ""),
     ("2020-03-09-16-42-13", "2020-03-09 16:42:13"), (True, "True"), ("<x>", "<x>"), (1796151567.25, "1.796e+09")],
)
def test_cells_are_readable(value, shown):
    assert report.format_value(value) == shown


def test_parameters_show_as_written():
    assert report.format_value(0.1, exact=True) == "0.1" and report.format_value(1.0, exact=True) == "1.0"
    assert report.format_value(None, none="None") == "None"


def test_without_matplotlib_the_report_says_so_and_is_still_written(xmen_home, tmp_path):
    root = _set_with_history(tmp_path)
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            f"from xmen.cli import main; sys.exit(main(['report', {str(root)!r}, '-o', 'r.html']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "No plots: plots need matplotlib: pip install 'xmen[plot]'" in proc.stderr
    assert "<img" not in (tmp_path / "r.html").read_text() and "loss mean" in (tmp_path / "r.html").read_text()


def test_report_errors_are_one_line_and_write_nothing(xmen_home, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "-o", "r.html"]) == 1
    assert capsys.readouterr().err.startswith("Error: no experiments to report in ")
    root = _set_with_history(tmp_path)
    assert main(["report", str(root), "-o", "r.pdf"]) == 2
    assert main(["report", str(root), "--by", "nope"]) == 2
    assert "cannot group by 'nope'" in capsys.readouterr().err
    assert not list(tmp_path.glob("r.*")) and not (tmp_path / "report.html").exists()


def test_unreadable_experiments_are_warned_about_and_listed_in_the_page(xmen_home, tmp_path, capsys):
    root = _set_with_history(tmp_path)
    (root / "a=1.0__b=cat" / "params.yml").write_text("{bad: [\n")
    assert main(["report", str(root), "-o", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert f"Warning: skipped {root / 'a=1.0__b=cat'}: invalid YAML" in err and "(7 experiment(s)" in err
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Unreadable</h2>" in page and "a=1.0__b=cat: invalid YAML" in page
