"""``xmen list`` through click: options, output layouts of the tutorial, CSV purity, warnings and errors."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from xmen.look import listing
from xmen.cli.list import list_command
from xmen.errors import XmenError

from cli_helpers import TUTORIAL_NAMES, write_tutorial_set


@click.group()
def xmen() -> None:
    """Stands in for the lead's group: XmenErrors become one ``Error:`` line and the error's exit code."""


xmen.add_command(list_command, "list")


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Run ``xmen list ARGS`` in tmp_path/experiments; returns (exit code, stdout, stderr)."""
    top = tmp_path / "experiments"
    top.mkdir()
    monkeypatch.chdir(top)
    runner = CliRunner()

    def invoke(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        result = runner.invoke(xmen, ["list", *args], catch_exceptions=True)
        if isinstance(result.exception, XmenError):
            return result.exception.exit_code, result.stdout, f"Error: {result.exception}\n"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    invoke.top = top  # type: ignore[attr-defined]
    return invoke


def test_default_view_is_root_name_status_with_the_relative_roots_note(run):
    write_tutorial_set(run.top)
    code, out, err = run()
    assert code == 0 and err == ""
    assert out == (
        "    root           name      status\n"
        "0  set_a  a=1.0__b=None  registered\n"
        "1  set_a   a=1.0__b=cat  registered\n"
        "2  set_a  a=2.0__b=None  registered\n"
        "3  set_a   a=2.0__b=cat  registered\n"
        "\n"
        f"Roots relative to: {run.top}\n"
    )


def test_verbose_with_all_parameters_has_the_tutorial_header(run):
    write_tutorial_set(run.top)
    code, out, _ = run("-v", "-p", ".*")
    assert code == 0
    header = out.splitlines()[0].split()
    assert header == [
        "root", "name", "created", "type", "purpose", "mac", "host", "user", "home", "status", "commit", "a", "b",
    ]
    assert out.splitlines()[1].split()[:3] == ["0", "set_a", "a=1.0__b=None"]
    assert out.splitlines()[1].split()[-2:] == ["1.0", "None"]


def test_status_and_messages_combine_as_one_flag_group(run):
    write_tutorial_set(run.top, messages=lambda i: {"time": 1583772000.0 + i} if i < 2 else {})
    code, out, _ = run("-sm")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["root", "name", "status", "time"]
    # A Unix time shows as a date in the table (as recorded in --csv).
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1583772000.0))
    assert lines[1].split() == ["0", "set_a", "a=1.0__b=None", "registered", *when.split()]
    assert lines[3].split()[-1] == "NaN"
    code, out, _ = run("-m")
    assert out.splitlines()[0].split() == ["root", "name", "time"]
    code, out, _ = run("-s", "-m", "nothing")
    assert out.splitlines()[0].split() == ["root", "name", "status"]
    code, out, _ = run("set_a", "-m")
    assert code == 0 and out.splitlines()[0].split() == ["root", "name", "time"]
    code, out, _ = run("-sm", "--csv")
    assert code == 0 and out.splitlines()[0] == ",root,name,status,time"


def test_a_glob_after_m_is_a_bad_regex_with_a_hint(run):
    write_tutorial_set(run.top)
    code, out, err = run("-m", "*")
    assert code == 2 and out == ""
    assert err.startswith("Error: bad message regex '*'") and "GLOB" in err and err.count("\n") == 1


def test_column_flags(run):
    write_tutorial_set(run.top)
    assert run("-d")[1].splitlines()[0].split() == ["root", "name", "created"]
    assert run("-g")[1].splitlines()[0].split() == ["root", "name", "commit"]
    assert run("-M")[1].splitlines()[0].split() == ["root", "name", "mac", "host", "user", "home"]
    assert run("-P")[1].splitlines()[0].split() == ["root", "name", "purpose"]
    assert run("-dgs")[1].splitlines()[0].split() == ["root", "name", "created", "status", "commit"]
    assert run("-p", "a")[1].splitlines()[0].split() == ["root", "name", "a"]


def test_predicates_type_and_status_filters(run):
    write_tutorial_set(run.top, status=lambda i: ["registered", "finished"][i % 2])
    write_tutorial_set(run.top, name="set_b", klass="Other")
    code, out, _ = run("-p", "a>1", "-p", "b==cat")
    assert [line.split()[1:] for line in out.splitlines()[1:3]] == [
        ["set_a", "a=2.0__b=cat", "2.0", "cat"],
        ["set_b", "a=2.0__b=cat", "2.0", "cat"],
    ]
    code, out, _ = run("-n", "Oth*")
    assert {line.split()[1] for line in out.splitlines()[1:-2]} == {"set_b"}
    code, out, _ = run("--status-is", "finished", "-s")
    assert [line.split()[1:] for line in out.splitlines()[1:-2]] == [
        ["set_a", "a=1.0__b=cat", "finished"],
        ["set_a", "a=2.0__b=cat", "finished"],
    ]
    code, out, _ = run("--status-is", "FINISHED", "--status-is", "registered", "set_a")
    assert len(out.splitlines()) == 4 + 3


def test_no_experiments_message(run):
    code, out, err = run()
    assert code == 0 and err == ""
    assert out == (
        f"No experiments found which match glob pattern {run.top}. "
        "With parameter filter = None and type filter = None.\n"
    )
    write_tutorial_set(run.top)
    code, out, _ = run("set_a/zzz*", "-p", "a>5", "-n", "X")
    assert out == (
        f"No experiments found which match glob pattern {run.top}/set_a/zzz*. "
        "With parameter filter = a>5 and type filter = X.\n"
    )
    code, out, _ = run("-p", "a>5", "--status-is", "lost")
    assert out.endswith("With parameter filter = a>5, type filter = None and status filter = lost.\n")


def test_csv_is_pure_and_problems_go_to_stderr(run):
    root = write_tutorial_set(run.top, 8, messages=lambda i: {"loss": i / 2})
    write_tutorial_set(run.top / "nested" / "deeper", 2, name="set_b")
    (root / TUTORIAL_NAMES[1] / "params.yml").write_text("_status: [broken\n")
    code, out, err = run("--csv", "-v")
    assert code == 0
    frame = pd.read_csv(io.StringIO(out), index_col=0)
    assert list(frame.columns) == list(listing.FIXED_COLUMNS) + ["a", "b", "loss"]
    assert len(frame) == 7 + 2
    assert frame["root"].tolist() == ["nested/deeper/set_b"] * 2 + ["set_a"] * 7  # sets in path order
    assert "Roots relative to" not in out
    assert err.startswith(f"Warning: skipped {root / TUTORIAL_NAMES[1]}: ") and "invalid YAML" in err
    assert err.count("\n") == 1
    code, out, err = run("--csv", "-p", "a>9")
    assert out == "" and "No experiments found" in err


def test_problems_are_warnings_and_the_rest_is_listed(run):
    root = write_tutorial_set(run.top)
    os.remove(root / TUTORIAL_NAMES[0] / "params.yml")
    code, out, err = run()
    assert code == 0
    assert len(out.splitlines()) == 1 + 3 + 2
    assert err == f"Warning: skipped {root / TUTORIAL_NAMES[0]}: cannot read params.yml: No such file or directory\n"


def test_notebook_view(run):
    root = write_tutorial_set(run.top, notes=("A test of the xmen experiment suite",
                                              "Another random thought worth mentioning"))
    code, out, _ = run("-l")
    assert code == 0
    assert out == (
        f" 0 {root}\n"
        "     |- a=1.0__b=None\n"
        "     |- a=1.0__b=cat\n"
        "     |- a=2.0__b=None\n"
        "     |- a=2.0__b=cat\n"
        "     Purpose: \n"
        "     Created: 2020-03-09-16-42-13\n"
        "     Type: AnExperiment\n"
        "     Notes: \n"
        "       A test of the xmen experiment suite\n"
        "       Another random thought worth mentioning\n"
    )
    code, out, err = run("-l", "--csv")
    assert code == 2 and "cannot be combined" in err


def test_globs_are_relative_to_the_current_folder(run):
    write_tutorial_set(run.top)
    write_tutorial_set(run.top, name="set_b")
    code, out, _ = run("set_b/*cat")
    rows = [line.split()[1:3] for line in out.splitlines()[1:-2]]
    assert rows == [["set_b", "a=1.0__b=cat"], ["set_b", "a=2.0__b=cat"]]
    assert out.endswith(f"Roots relative to: {run.top}\n")
    code, out, _ = run("*None", cwd=run.top / "set_a")
    assert [line.split()[2] for line in out.splitlines()[1:-2]] == ["a=1.0__b=None", "a=2.0__b=None"]


def test_max_rows_and_max_width(run):
    write_tutorial_set(run.top, 40)
    code, out, _ = run("--max_rows", "6")
    lines = out.splitlines()
    assert len(lines) == 1 + 7 + 2 and lines[4].split()[0] == ".."
    code, out, _ = run("--max-width", "8")
    assert "a=1...." in out and "a=1.0" not in out and "regi..." in out


def test_bad_options_exit_2(run):
    write_tutorial_set(run.top)
    code, out, err = run("-p", "a<<1")
    assert code == 2 and out == "" and err.startswith("Error: bad parameter filter 'a<<1'")
    assert run("--status-is", "done")[0] == 2
    assert run("--max_rows", "0")[0] == 2


def test_the_module_runs_as_a_command(tmp_path):
    write_tutorial_set(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    command = [sys.executable, "-m", "xmen.cli.list"]
    done = subprocess.run([*command, "--csv"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    assert pd.read_csv(io.StringIO(done.stdout), index_col=0)["name"].tolist() == TUTORIAL_NAMES
    done = subprocess.run([*command, "-p", "<1"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.startswith("Error: bad parameter filter")
