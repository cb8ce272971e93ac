"""Issue 11's "Done when": a three-stage project (train sweep with repeats -> one eval per run -> a summary over
``--requires "../eval/*"``) in a git repository. After each step (rerun one training run, unlink one eval, fail one
training run, edit one finished params.yml, commit new code) ``xmen run -n``, ``snakemake -n``, ``xmen list`` and
the run that follows agree, and are right."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xmen.store import files

from cli_helpers import run_xmen as xmen

pytestmark = pytest.mark.timeout(600)

DEFAULTS = """\
lr: 0.1  # (float) Learning rate
src: ''  # (str) What an eval evaluates
"""
# Counts its runs in runs.txt; fails while a file FAIL sits in the experiment's folder.
SCRIPT = r"""#!/bin/bash
params="$1"
value() { sed -n "s/^$1: *\([^ #]*\).*/\1/p" "$params" | tr -d "'"; }
echo "lr=$(value lr)" >> runs.txt
if [ -e FAIL ]; then echo "training diverged" >&2; exit 3; fi
echo "ok lr=$(value lr)"
"""


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def git(*args: str, cwd: Path) -> str:
    return run("git", "-c", "user.name=t", "-c", "user.email=t@t", *args, cwd=cwd).stdout.strip()


def xmen_plan(root: Path, *args: str) -> dict[str, str]:
    """What `xmen run -n` would run: name -> reason."""
    out = xmen("run", "-n", *args, cwd=root).stdout
    rows = {}
    for line in out.splitlines()[1:]:
        match = re.match(r"(\S+)\s+(\S+)\s+(.*)$", line)
        if match and not line.endswith("would run."):
            rows[match.group(1)] = match.group(3)
    return rows


def snakemake_plan(root: Path) -> set[str]:
    proc = run(sys.executable, "-m", "snakemake", "-n", cwd=root)
    out = proc.stdout + proc.stderr
    names = set(re.findall(r"wildcards: exp=(.+)", out))
    if not names:
        assert "Nothing to be done" in out, out
    return names


def listing(top: Path) -> dict[str, tuple[str, str]]:
    """`xmen list` of every set: 'set/name' -> (status, plan reason)."""
    from xmen.look import listing as listing_module

    result = listing_module.collect(None, top)
    return {f"{os.path.basename(r['root'])}/{r['name']}": (r["status"], r.get("plan", "")) for r in result.rows}


def runs(folder: Path) -> int:
    path = folder / "runs.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def project(xmen_home, tmp_path):
    top = tmp_path / "project"
    top.mkdir()
    (top / "script.sh").write_text(SCRIPT)
    (top / "defaults.yml").write_text(DEFAULTS)
    git("init", "-q", cwd=top)
    for stage in ("train", "eval", "summary"):
        xmen("init", "-s", str(top / "script.sh"), "-d", str(top / "defaults.yml"), "-r", str(top / stage), cwd=top)
    xmen("register", "{lr: 0.1 | 0.2}", "-x", "2", cwd=top / "train")
    trained = sorted(n for n in os.listdir(top / "train") if (top / "train" / n / "params.yml").exists())
    assert len(trained) == 4
    for i, name in enumerate(trained):
        xmen("register", f"{{src: t{i}}}", "-n", f"eval_{i}", "--requires", f"../train/{name}", cwd=top / "eval")
    xmen("register", "{src: all}", "-n", "table", "--requires", "../eval/*", cwd=top / "summary")
    git("add", "-A", cwd=top)
    git("commit", "-qm", "first", cwd=top)
    return top, trained


def agree(summary: Path, expected: set[str]) -> dict[str, str]:
    """`xmen run -n` and `snakemake -n` in the summary set name exactly ``expected``; the reasons."""
    planned = xmen_plan(summary)
    assert set(planned) == expected, planned
    assert snakemake_plan(summary) == expected
    return planned


def test_three_stage_project_stays_truthful(project):
    top, trained = project
    train, evals, summary = top / "train", top / "eval", top / "summary"
    t = [f"../train/{n}" for n in trained]
    e = [f"../eval/eval_{i}" for i in range(4)]

    # The glob is kept, not the paths it matched at registration.
    assert files.read_yaml(summary / "experiment.yml")["experiments"]["table"]["requires"] == ["../eval/*"]

    # 0. Fresh: every experiment of the three stages, in both views; then one run does them all.
    planned = agree(summary, set(t) | set(e) | {"table"})
    assert planned["table"] == f"new, after requirement {e[0]} pending"
    xmen("run", "-j", "2", cwd=summary)
    assert agree(summary, set()) == {}
    assert [runs(train / n) for n in trained] == [1, 1, 1, 1] and runs(summary / "table") == 1
    assert {v for v in listing(top).values()} == {("finished", "")}
    head = git("rev-parse", "HEAD", cwd=top)
    assert files.read_yaml(train / trained[0] / "params.yml")["_version"]["git"]["commit"] == head

    # 1. Rerun one training run (in its own set): its eval and the summary are stale, transitively.
    xmen("reset", trained[0], cwd=train)
    xmen("run", cwd=train)
    planned = agree(summary, {e[0], "table"})
    assert planned[e[0]] == f"requirement ../../train/{trained[0]} reran".replace("../../", "../")
    assert planned["table"] == f"requirement {e[0]} pending"
    assert listing(top)[f"eval/eval_0"] == ("finished", f"! pending: requirement ../train/{trained[0]} reran")
    xmen("run", cwd=summary)
    assert runs(evals / "eval_0") == 2 and runs(summary / "table") == 2 and runs(evals / "eval_1") == 1
    agree(summary, set())
    assert (train / trained[0] / "logs" / "attempt-1.log").exists()  # the first attempt's log is kept
    attempts = files.read_yaml(train / trained[0] / "params.yml")["_attempts"]
    assert [a["status"] for a in attempts] == ["finished", "finished"]

    # 2. Unlink one eval: it leaves the summary's inputs, and the summary reruns without it.
    xmen("unlink", "eval_3", cwd=evals)
    planned = agree(summary, {"table"})
    assert planned["table"] == f"requirements changed (-{e[3]})"
    xmen("run", cwd=summary)
    assert runs(summary / "table") == 3 and runs(evals / "eval_3") == 1
    assert files.read_yaml(summary / "table" / "params.yml")["_run"]["requires"] == e[:3]
    agree(summary, set())

    # 3. Fail one training run: its eval and the summary wait for it; they never run on the failed result.
    (train / trained[1] / "FAIL").write_text("")
    xmen("reset", trained[1], cwd=train)
    planned = agree(summary, {t[1], e[1], "table"})
    assert planned[t[1]] == "reset"
    assert xmen("run", cwd=summary, check=False).returncode != 0
    assert runs(train / trained[1]) == 2 and runs(evals / "eval_1") == 1 and runs(summary / "table") == 3
    planned = agree(summary, {t[1], e[1], "table"})
    assert planned[t[1]] == "failed (error)"
    assert planned[e[1]] == f"requirement {t[1]} pending (error)"
    shown = listing(top)
    assert shown[f"train/{trained[1]}"][0] == "error"
    assert shown["eval/eval_1"] == ("finished", f"! pending: requirement ../train/{trained[1]} pending (error)")
    (train / trained[1] / "FAIL").unlink()
    xmen("run", cwd=summary)
    assert runs(evals / "eval_1") == 2 and runs(summary / "table") == 4
    agree(summary, set())

    # 4. Edit one finished params.yml: flagged as changed everywhere downstream, rerun only when asked.
    params = train / trained[2] / "params.yml"
    params.write_text(params.read_text().replace("lr: 0.2", "lr: 0.5", 1))
    assert agree(summary, set()) == {}
    shown = listing(top)
    assert shown[f"train/{trained[2]}"] == ("finished", "! changed: params changed (lr: 0.2 -> 0.5)")
    assert shown["eval/eval_2"] == ("finished", f"! changed: requirement ../train/{trained[2]} changed")
    assert shown["summary/table"] == ("finished", f"! changed: requirement {e[2]} changed")
    stderr = xmen("run", "-n", cwd=summary).stderr
    assert "changed: requirement ../eval/eval_2 changed (xmen run --changed reruns it)" in stderr
    changed = xmen_plan(summary, "--changed")
    assert set(changed) == {t[2], e[2], "table"}
    xmen("run", "--changed", cwd=summary)
    assert runs(train / trained[2]) == 2 and runs(evals / "eval_2") == 2 and runs(summary / "table") == 5
    assert agree(summary, set()) == {} and {v[1] for v in listing(top).values()} == {""}

    # 5. Commit new code: every finished result of that code is flagged; the rerun records the new commit.
    script = train / "script.sh"
    script.write_text(script.read_text() + "# faster data loading\n")
    git("commit", "-qam", "new code", cwd=top)
    new_head = git("rev-parse", "HEAD", cwd=top)
    assert agree(summary, set()) == {}
    shown = listing(top)
    assert {shown[f"train/{n}"][1] for n in trained} == {"! changed: code changed (script.sh)"}
    # From the summary, --changed reruns its own chain (the unlinked eval's training run is no input of it) ...
    assert set(xmen_plan(summary, "--changed")) == set(t[:3]) | set(e[:3]) | {"table"}
    xmen("run", "--changed", "-j", "2", cwd=summary)
    agree(summary, set())
    assert listing(top)[f"train/{trained[3]}"][1] == "! changed: code changed (script.sh)"
    # ... and in the training set, what is left.
    assert set(xmen_plan(train, "--changed")) == {trained[3]}
    xmen("run", "--changed", cwd=train)
    assert {v[1] for v in listing(top).values()} == {""}
    commits = xmen("list", "-g", cwd=top).stdout
    assert new_head in commits and head not in commits.replace(new_head, "")
    record = files.read_yaml(train / trained[0] / "params.yml")["_run"]
    assert record["code"]["commit"] == new_head and record["code"]["branch"] == git("branch", "--show-current", cwd=top)
    # The runs themselves changed tracked files (the sets are committed here): a run started after others wrote
    # their params.yml is dirty, with a hash of the diff. (The first two of `-j 2` may start on a clean tree, in an
    # order Snakemake's scheduler picks: the last run, alone after them, is the one that must see it.)
    last = files.read_yaml(train / trained[3] / "params.yml")["_run"]
    assert last["code"]["dirty"] is True and len(last["code"]["diff_hash"]) == 16
    assert record["host"] and record["status"] == "finished" and record["returncode"] == 0
