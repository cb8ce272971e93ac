"""`xmen list` on what experiments sent: predicates on messages, --sort, the error and notes columns, readable
times (raw in --csv), and the same in to_dataframe."""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest

from xmen.store import files
from xmen.look import listing
from xmen.errors import UsageError

from cli_helpers import xmen

WHEN = 1796151567.0  # 2026-12-01, a Unix time as time.time() gives it


def make_sweep(base: Path) -> Path:
    """Four experiments; 'clash' is a parameter of all and a message of some; one failed, one has notes."""
    root = base / "sweep"
    root.mkdir()
    specs: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
        ("a", {"lr": 0.1, "clash": 1}, {"val_acc": 0.96, "clash": 100, "time": WHEN}, {"_status": "finished"}),
        ("b", {"lr": 0.01, "clash": 2}, {"val_acc": 0.95, "clash": 0, "time": WHEN + 60}, {"_status": "finished"}),
        ("c", {"lr": 0.001, "clash": 3}, {}, {"_status": "error", "_error": "ValueError: diverged"}),
        ("d", {"lr": 0.5, "clash": 4}, {"val_acc": 0.97}, {"_status": "finished", "_notes": ["best so far", "rerun"]}),
    ]
    for name, params, messages, extra in specs:
        (root / name).mkdir()
        files.write_yaml(root / name / "params.yml", {"_name": name, "_messages": messages, **extra, **params})
    linked = {name: {} for name, *_ in specs}
    files.write_yaml(root / "experiment.yml", {"root": str(root), "type": "T", "experiments": linked})
    return root


def names(out: str) -> list[str]:
    """Experiment names of a table, in order."""
    return [line.split()[2] for line in out.splitlines()[1:] if line[:1].isdigit()]


def csv_rows(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out)))


@pytest.fixture
def root(tmp_path: Path, xmen_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_sweep(tmp_path)


def test_predicates_apply_to_messages(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = xmen(capsys, "list", "-p", "val_acc>0.955")
    assert code == 0, err
    assert names(out) == ["a", "d"] and "val_acc" in out.splitlines()[0]  # the message's column is shown
    assert names(xmen(capsys, "list", "-p", "val_acc>0.955", "-p", "lr<0.2")[1]) == ["a"]
    # A name that is both: the parameter decides; 'NAME [message]' asks the message.
    assert names(xmen(capsys, "list", "-p", "clash>=2")[1]) == ["b", "c", "d"]
    assert names(xmen(capsys, "list", "-p", "clash [message]>=2")[1]) == ["a"]
    assert names(xmen(capsys, "list", "-p", "clash [param]>=4")[1]) == ["d"]
    result = listing.collect([str(root)], params=["val_acc<0.96"])
    assert [r["name"] for r in result.rows] == ["b"]


def test_sort_by_message_parameter_or_column(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert names(xmen(capsys, "list", "--sort", "val_acc")[1]) == ["b", "a", "d", "c"]  # without it: last
    assert names(xmen(capsys, "list", "--sort", "-val_acc")[1]) == ["d", "a", "b", "c"]
    assert names(xmen(capsys, "list", "--sort=-val_acc")[1]) == ["d", "a", "b", "c"]
    assert names(xmen(capsys, "list", "--sort", "val_acc", "--desc")[1]) == ["d", "a", "b", "c"]
    assert names(xmen(capsys, "list", "--sort", "lr")[1]) == ["c", "b", "a", "d"]
    assert names(xmen(capsys, "list", "--sort", "clash [message]")[1]) == ["b", "a", "c", "d"]
    assert names(xmen(capsys, "list", "--sort", "status", "--sort", "-name")[1]) == ["c", "d", "b", "a"]
    code, _, err = xmen(capsys, "list", "--sort", "momentum")
    assert code != 0 and err.startswith("Error: cannot sort by 'momentum'") and err.count("\n") == 1
    frame = listing.to_dataframe(str(root), sort="-val_acc")
    assert list(frame["name"]) == ["d", "a", "b", "c"]


def test_error_and_notes_columns(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = xmen(capsys, "list")[1]
    header = out.splitlines()[0].split()
    assert header == ["root", "name", "status", "error", "notes"]
    assert "ValueError: diverged" in out and "best so far; rerun" in out and "None" not in out
    assert xmen(capsys, "list", "-v")[1].splitlines()[0].split()[:12] == [
        "root", "name", "created", "type", "purpose", "mac", "host", "user", "home", "status", "error", "notes"
    ]
    rows = {r["name"]: r for r in csv_rows(xmen(capsys, "list", "--csv")[1])}
    assert rows["c"]["error"] == "ValueError: diverged" and rows["a"]["error"] == ""
    assert rows["d"]["notes"] == "best so far; rerun"
    frame = listing.to_dataframe(str(root))
    assert frame.set_index("name")["error"].to_dict() == {"a": None, "b": None, "c": "ValueError: diverged", "d": None}
    assert frame.attrs["xmen"] == {"params": ["lr", "clash"], "messages": ["val_acc", "clash [message]", "time"]}
    # Only where they exist: a listing without failures or notes has neither column.
    assert xmen(capsys, "list", "-p", "lr<0.05", "-p", "lr>0.005", "-s")[1].splitlines()[0].split() == [
        "root", "name", "status", "lr"
    ]
    # A note added later shows at once (the index entry's signature changed).
    assert xmen(capsys, "note", "-r", str(root), "-e", "a", "looks good")[0] == 0
    assert "looks good" in xmen(capsys, "list")[1]


def test_times_are_readable_in_tables_and_raw_in_csv(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = xmen(capsys, "list", "-m", "time")[1]
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(WHEN)) in out and "e+09" not in out
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(WHEN + 60)) in out
    rows = csv_rows(xmen(capsys, "list", "-m", "time", "--csv")[1])
    assert [r["time"] for r in rows] == [str(WHEN), str(WHEN + 60), "", ""]
    labels = ["time", "duration_time", "clash"]
    columns = [[WHEN, 1.5], [35.2, 36.0], [WHEN, WHEN]]
    shown = listing.readable(labels, columns)
    assert shown[0] == [WHEN, 1.5]  # a column is a time only if all its values are
    assert shown[1] == [35.2, 36.0] and shown[2] == [WHEN, WHEN]  # durations and non-time names stay numbers
    assert listing.readable(["start_time"], [[WHEN, float("nan")]])[0][0] == time.strftime(
        "%Y-%m-%d %H:%M:%S", time.localtime(WHEN)
    )


def test_sort_rows_orders_numbers_before_text_and_missing_last() -> None:
    rows = [{"params": {"x": v}, "messages": {}, "name": str(i)} for i, v in enumerate([3, "b", None, 1.5, "a"])]
    rows.append({"params": {}, "messages": {}, "name": "5"})
    listing.sort_rows(rows, ["x"])
    assert [r["name"] for r in rows] == ["3", "0", "4", "1", "2", "5"]
    listing.sort_rows(rows, ["-x"])
    assert [r["name"] for r in rows] == ["1", "4", "0", "3", "2", "5"]
    with pytest.raises(UsageError, match="empty sort key"):
        listing.sort_rows(rows, ["-"])
