"""Snakemake stays Snakemake: the commands a Snakemake user types out of habit see every experiment of a set with
finished and pending experiments (issue 11), while a plain run or dry run asks only for the pending ones."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from xmen.store import files
from xmen.sets.expset import ExperimentSet

from cli_helpers import run_xmen as xmen

pytestmark = pytest.mark.timeout(300)

DEFAULTS = "a: h  # (str) A parameter\n"
SCRIPT = '#!/bin/bash\necho "ran" >> runs.txt\n'


def snakemake(*args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def jobs(output: str) -> set[str]:
    return set(re.findall(r"wildcards: exp=(.+)", output))


def make_half_done(base: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A set a=1..3 where a=1 and a=2 finished (through Snakemake) and a=3 is pending."""
    for name, value in (("HOME", base / "home"), ("XMEN", base / "xmen-config"), ("XDG_CONFIG_HOME", base / "xdg")):
        Path(value).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(value))
    (base / "script.sh").write_text(SCRIPT)
    (base / "defaults.yml").write_text(DEFAULTS)
    root = base / "set"
    xmen("init", "-s", str(base / "script.sh"), "-d", str(base / "defaults.yml"), "-r", str(root), cwd=base)
    xmen("register", "{a: 1 | 2 | 3}", cwd=root)
    xmen("run", "a=[12]", cwd=root)
    assert {n: ExperimentSet(root).status_of(n) for n in ("a=1", "a=2", "a=3")} == {
        "a=1": "finished", "a=2": "finished", "a=3": "registered"}
    return root


@pytest.fixture(scope="module")
def half_done(tmp_path_factory):
    """Shared by the tests that only look (dry runs, summaries, reports)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield make_half_done(tmp_path_factory.mktemp("commands"), monkeypatch)


@pytest.fixture
def own_half_done(tmp_path, monkeypatch):
    """For the tests that change the set."""
    return make_half_done(tmp_path, monkeypatch)


def test_plain_dry_run_asks_only_for_the_pending(half_done):
    assert jobs(snakemake("-n", cwd=half_done)) == {"a=3"}


def test_dry_run_with_nothing_pending_says_nothing_to_be_done(own_half_done):
    snakemake("--cores", "1", cwd=own_half_done)
    output = snakemake("-n", cwd=own_half_done)
    assert "Nothing to be done" in output and "xmen_all" not in output and jobs(output) == set()


def test_forceall_sees_every_experiment(half_done):
    assert jobs(snakemake("-n", "-F", cwd=half_done)) == {"a=1", "a=2", "a=3"}
    assert jobs(snakemake("-n", "--forceall", cwd=half_done)) == {"a=1", "a=2", "a=3"}


def test_forcerun_of_the_rule_sees_every_experiment(half_done):
    assert jobs(snakemake("-n", "-R", "xmen_experiment", cwd=half_done)) == {"a=1", "a=2", "a=3"}
    assert jobs(snakemake("-n", "--forcerun", "a=1/xmen.done", cwd=half_done)) == {"a=1", "a=3"}


def test_forcetargets(half_done):
    assert jobs(snakemake("-n", "-f", "a=2/xmen.done", cwd=half_done)) == {"a=2"}
    assert jobs(snakemake("-n", "-f", cwd=half_done)) == {"a=3"}  # the default target forced: what is missing


def _summary_rows(output: str) -> dict[str, str]:
    rows = [line.split("\t") for line in output.splitlines() if "/xmen.done\t" in line]
    return {r[0][: -len("/xmen.done")]: r[-1] for r in rows}


def test_summary_lists_every_experiment(half_done):
    assert _summary_rows(snakemake("--summary", cwd=half_done)) == {
        "a=1": "no update", "a=2": "no update", "a=3": "update pending"}


def test_detailed_summary_lists_every_experiment(half_done):
    assert set(_summary_rows(snakemake("--detailed-summary", cwd=half_done))) == {"a=1", "a=2", "a=3"}


def test_dag_shows_every_experiment(half_done):
    assert set(re.findall(r"exp: (a=\d)", snakemake("--dag", cwd=half_done))) == {"a=1", "a=2", "a=3"}


def test_report_covers_every_experiment(half_done):
    snakemake("--report", "report.html", cwd=half_done)
    text = (half_done / "report.html").read_text(errors="replace")
    # The runtime statistics hold one entry per finished experiment in the DAG (none when only a=3 is in it).
    assert len(re.findall(r'\{"rule": "xmen_experiment", "runtime"', text)) == 2


def test_list_changes_sees_a_requirement_that_left_a_glob(own_half_done):
    root = own_half_done
    xmen("register", "{a: s}", "--requires", "a=[12]", cwd=root)
    snakemake("--cores", "1", cwd=root)
    assert snakemake("--list-changes", "input", cwd=root).count("xmen.done") == 0
    xmen("unlink", "a=2", cwd=root)
    # The glob is resolved when planning: a=2 left the inputs of a=s, which Snakemake records as an input change.
    changed = [line for line in snakemake("--list-changes", "input", cwd=root).splitlines() if "xmen.done" in line]
    assert changed == ["a=s/xmen.done"]
    assert jobs(snakemake("-n", cwd=root)) == {"a=s"}


def test_delete_all_output_leaves_statuses_consistent_with_the_files(own_half_done):
    root = own_half_done
    snakemake("--delete-all-output", cwd=root)
    assert not any((root / n / "xmen.done").exists() for n in ("a=1", "a=2", "a=3"))
    assert (root / "a=1" / "params.yml").exists() and (root / "a=1" / "runs.txt").exists()  # only its outputs
    # Both views now say the same: everything needs a run, the finished ones because their status file is gone.
    proc = xmen("run", "-n", cwd=root)
    assert re.findall(r"^(a=\d)\s+(\w+)\s+(.+)$", proc.stdout, re.MULTILINE) == [
        ("a=1", "finished", "status file missing"), ("a=2", "finished", "status file missing"),
        ("a=3", "registered", "new")]
    assert jobs(snakemake("-n", cwd=root)) == {"a=1", "a=2", "a=3"}
    from xmen.look import listing

    rows = {r["name"]: (r["status"], r.get("plan")) for r in listing.collect(None, root).rows}
    missing = "! pending: status file missing"  # they ran, but their results are no longer there
    assert rows == {"a=1": ("finished", missing), "a=2": ("finished", missing), "a=3": ("registered", "")}
    snakemake("--cores", "1", cwd=root)
    assert files.read_yaml(root / "a=1" / "params.yml")["_status"] == "finished"
    assert jobs(snakemake("-n", cwd=root)) == set()


def test_regenerating_the_snakefile_changes_no_finished_experiment_code(own_half_done):
    root = own_half_done
    before = (root / "Snakefile").read_bytes()
    xmen("register", "{a: 4}", cwd=root)  # regenerates the Snakefile
    assert (root / "Snakefile").read_bytes() == before
    # Snakemake compares the rule's run block with what it recorded for each finished output: no change.
    assert "xmen.done" not in snakemake("--list-changes", "code", cwd=root)
    assert jobs(snakemake("-n", cwd=root)) == {"a=3", "a=4"}


@pytest.mark.parametrize("dry", [True, False])
def test_ci_over_no_sets_is_an_error_and_writes_nothing(xmen_home, tmp_path, dry):
    """A folder with no set below it (a mistyped path) is not "Nothing to be done", green: one Error line, exit 1,
    and Snakemake never starts there (it wrote .snakemake/ into the user's folder)."""
    (tmp_path / "empty").mkdir()
    output = xmen("ci", str(tmp_path / "empty"), *(["-n"] if dry else []), cwd=tmp_path, check=False)
    assert output.returncode == 1, output.stdout + output.stderr
    assert output.stderr.strip().splitlines()[-1] == f"Error: no experiment set below {tmp_path / 'empty'}"
    assert list((tmp_path / "empty").iterdir()) == []
