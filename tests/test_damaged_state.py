"""Damaged state files x commands: one line naming the file and what is wrong, never a traceback or partial state.

Each row damages one state file of a healthy set (experiment.yml, one experiment's params.yml, the global
configuration), runs one command and asserts: exactly one stderr line starting ``Error:`` that names the damaged
file, a non-zero exit, no traceback, and state files unchanged. Commands over many experiments (reset, note -e)
finish the healthy experiments: those change, the damaged one does not, and the error names it.

Every row runs in the damaged set, so ``xmen list`` names that set: a damaged experiment.yml is an error like any
other command's. A damaged params.yml is one experiment: ``xmen list`` reports it as a ``Warning: skipped ...`` line
and lists the others, exit 0 (its design: one listing covers many experiments and sets); those rows assert that line.
A damaged set that a listing only finds below a parent folder is skipped with such a warning too (its own test).

``python tests/test_damaged_state.py`` prints the tally (rows / clean one-line error / traceback / partial state).
"""
from __future__ import annotations

import io
import os
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from xmen.store import files
from xmen.cli import main

from cli_helpers import make_set

DEFAULTS = "a: h  # (str) A parameter (default='h')\nb: 17  # (int) Another parameter (default=17)\n"
SCRIPT = "#!/bin/bash\ntrue\n"
NAMES = ("a=x", "a=y", "a=z")
BROKEN = "a=y"  # the experiment whose params.yml a params row damages


def _set_key(key: str, value: str) -> Callable[[str], str]:
    """experiment.yml with the top-level ``key`` replaced by the YAML text ``value`` (or removed for None)."""

    def damage(text: str) -> str:
        lines, out, skipping = text.split("\n"), [], False
        for line in lines:
            if line.startswith(f"{key}:"):
                skipping = True
                out.append(f"{key}: {value}")
                continue
            if skipping and line.startswith((" ", "-")):
                continue
            skipping = False
            out.append(line)
        return "\n".join(out)

    return damage


def _whole(text: str) -> Callable[[str], str]:
    return lambda _old: text


# experiment.yml: name -> how the file is damaged
SET_DAMAGE: dict[str, Callable[[str], str]] = {
    "experiments: 5": _set_key("experiments", "5"),
    "experiments: [a=x, a=y]": _set_key("experiments", "[a=x, a=y]"),
    "experiments: a string": _set_key("experiments", "a=x"),
    "experiment options: a number": _set_key("experiments", "{a=x: 5, a=y: {}, a=z: {}}"),
    "requires: 5": _set_key("experiments", "{a=x: {requires: 5}, a=y: {}, a=z: {}}"),
    "threads: many": _set_key("experiments", "{a=x: {threads: many}, a=y: {}, a=z: {}}"),
    "resources: a list of mappings": _set_key("experiments", "{a=x: {resources: [{m: 1}]}, a=y: {}, a=z: {}}"),
    "linked name ../escape": _set_key("experiments", "{'../escape': {}, a=y: {}, a=z: {}}"),
    "options: [1]": _set_key("options", "[1]"),
    "options: a string": _set_key("options", "fast"),
    "options: resources 5": _set_key("options", "{resources: 5}"),
    "notes: 5": _set_key("notes", "5"),
    "notes: a mapping": _set_key("notes", "{a: 1}"),
    "root: a list": _set_key("root", "[1]"),
    "purpose: a mapping": _set_key("purpose", "{a: 1}"),
    "defaults: 5": _set_key("defaults", "5"),
    "empty file": _whole(""),
    "a list, not a mapping": _whole("- a\n- b\n"),
    "invalid YAML": _whole("experiments: {a=x: {}\n"),
    # a key given twice: the second would win silently (a=y unlinked, then cleaned with its files)
    "duplicate key experiments": lambda text: text + "experiments:\n  a=x: {}\n",
    "duplicate key inside experiments": _set_key("experiments", "{a=x: {}, a=y: {}, a=z: {}, a=y: {}}"),
    "duplicate key in experiment options": _set_key("experiments", "{a=x: {threads: 1, threads: 2}, a=y: {}, a=z: {}}"),
}
SET_COMMANDS: dict[str, tuple[str, ...]] = {
    "register": ("register", "{a: w}"),
    "run": ("run",),
    "run -n": ("run", "-n"),
    "reset": ("reset",),
    "unlink": ("unlink", "a=x"),
    "relink": ("relink",),
    "relink -e": ("relink", "-e", "*"),
    "clean": ("clean", "-y"),
    "rm": ("rm", ".", "-y"),
    "note": ("note", "hello"),
    "note -e": ("note", "hello", "-e", "*"),
    "list": ("list",),
}

# params.yml of one experiment: name -> text
PARAMS_DAMAGE: dict[str, str] = {
    "empty file": "",
    "a list": "- 1\n- 2\n",
    "a string": "just text\n",
    "invalid YAML": "_status: [registered\n",
    "_notes: 5": None,  # type: ignore[dict-item]  (filled in from the healthy file below)
    "_status: a list": None,  # type: ignore[dict-item]
    "_messages: 5": None,  # type: ignore[dict-item]
    "_name: a mapping": None,  # type: ignore[dict-item]
}
_PARAMS_EDITS = {
    "_notes: 5": ("_notes", 5),
    "_status: a list": ("_status", ["registered"]),
    "_messages: 5": ("_messages", 5),
    "_name: a mapping": ("_name", {"a": 1}),
}
# params.yml damaged by appending text to the healthy file: a key given twice
_PARAMS_APPEND = {
    "duplicate key _name": "_name: a=x\n",
    "duplicate key a": "a: x\n",
    "duplicate nested key": "extra:\n  k: 1\n  k: 2\n",
}
PARAMS_DAMAGE.update(dict.fromkeys(_PARAMS_APPEND))  # type: ignore[arg-type]
PARAMS_COMMANDS: dict[str, tuple[str, ...]] = {
    "reset": ("reset",),
    "note -e": ("note", "hello", "-e", "*"),
    "run -n": ("run", "-n"),
    "run": ("run",),
    "list": ("list",),
}

# the global configuration: name -> text
CONFIG_DAMAGE: dict[str, str] = {
    "sets: 5": "sets: 5\n",
    "experiments: 5": "experiments: 5\n",
    "python_paths: a string": "python_paths: /somewhere\n",
    "header: a list": "header: [a, b]\n",
    "a list, not a mapping": "- a\n",
    "invalid YAML": "sets: [a\n",
    "empty file": "",
    "duplicate key sets": "sets: []\nsets: []\n",
    "duplicate nested key": "experiments: {a: x, a: y}\n",
}
CONFIG_COMMANDS: dict[str, tuple[str, ...]] = {
    "config": ("config",),
    "config --add_path": ("config", "--add_path", "."),
    "config --clean": ("config", "--clean"),
    "init": ("init", "-s", "../script.sh", "-d", "../defaults.yml", "-r", "../other"),
    "register": ("register", "{a: w}"),
    "rm": ("rm", ".", "-y"),
}


@dataclass
class Row:
    kind: str  # set | params | config
    damage: str
    command: str


ROWS = (
    [Row("set", d, c) for d in SET_DAMAGE for c in SET_COMMANDS]
    + [Row("params", d, c) for d in PARAMS_DAMAGE for c in PARAMS_COMMANDS
       if c != "list" or d not in _PARAMS_EDITS]  # list reads none of these keys: for it they are no damage
    + [Row("config", d, c) for d in CONFIG_DAMAGE for c in CONFIG_COMMANDS]
)


def _healthy_set(top: Path) -> Path:
    """The set ``top``/set_a (a=x, a=y, a=z) of a plain shell experiment, made the current folder."""
    (top / "script.sh").write_text(SCRIPT)
    (top / "defaults.yml").write_text(DEFAULTS)
    root = make_set(top)
    os.chdir(root)
    return root


def _snapshot(top: Path) -> dict[str, bytes]:
    """Every state file below ``top``: caches (.xmen, .snakemake) and lock sidecars aside."""
    found = {}
    for folder, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if d not in (".xmen", ".snakemake")]
        for name in names:
            if not name.endswith(".lock"):
                path = Path(folder) / name
                found[str(path.relative_to(top))] = path.read_bytes()
    return found


def _damage(row: Row, root: Path) -> Path:
    """Damage the file of ``row``; its path."""
    if row.kind == "set":
        path = root / "experiment.yml"
        path.write_text(SET_DAMAGE[row.damage](path.read_text()))
    elif row.kind == "params":
        path = root / BROKEN / "params.yml"
        if row.damage in _PARAMS_APPEND:
            path.write_text(path.read_text() + _PARAMS_APPEND[row.damage])
        elif row.damage in _PARAMS_EDITS:
            key, value = _PARAMS_EDITS[row.damage]
            data = files.read_yaml(path)
            data[key] = value
            path.write_text(files.dump_yaml(data))
        else:
            path.write_text(PARAMS_DAMAGE[row.damage])
    else:
        path = Path(os.environ["XMEN"]) / "config.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CONFIG_DAMAGE[row.damage])
    return path


@dataclass
class Outcome:
    code: int | None
    err: str
    traceback: str | None
    before: dict[str, bytes]
    after: dict[str, bytes]
    damaged: Path


def attempt(row: Row, top: Path) -> Outcome:
    """Build a healthy set under ``top``, damage one file, run the command (in this process, as ``xmen`` does)."""
    root = _healthy_set(top)
    damaged = _damage(row, root)
    before = _snapshot(top)
    commands = {"set": SET_COMMANDS, "params": PARAMS_COMMANDS, "config": CONFIG_COMMANDS}[row.kind]
    err, out = io.StringIO(), io.StringIO()
    code, trace = None, None
    try:
        with redirect_stderr(err), redirect_stdout(out):
            code = main(list(commands[row.command]))
    except BaseException:  # what escapes main() is a traceback for the user
        trace = traceback.format_exc()
    return Outcome(code, err.getvalue(), trace, before, _snapshot(top), damaged)


def _changed(outcome: Outcome) -> set[str]:
    keys = set(outcome.before) | set(outcome.after)
    return {k for k in keys if outcome.before.get(k) != outcome.after.get(k)}


def judge(row: Row, outcome: Outcome) -> tuple[bool, bool, bool]:
    """(clean one-line report, traceback, partial state) for one row."""
    if outcome.traceback is not None or "Traceback" in outcome.err:
        return False, True, bool(_changed(outcome))
    lines = outcome.err.splitlines()
    damaged = str(outcome.damaged)
    changed = _changed(outcome)
    if row.command == "list" and row.kind != "set":  # a set's damage: it runs in the set, which it names
        reported = [line for line in lines if line.startswith("Warning: skipped ")]
        named = len(reported) == 1 and ("experiment.yml" in reported[0] or BROKEN in reported[0])
        return named and outcome.code == 0, False, bool(changed)
    errors = [line for line in lines if line.startswith("Error:")]
    clean = len(errors) == 1 and outcome.code not in (0, None) and (damaged in errors[0] or "experiment.yml" in errors[0])
    if row.kind == "params" and row.command in ("reset", "note -e", "run"):
        # The healthy experiments are done (reset, noted, run); the damaged one is named and untouched.
        named = bool(errors) and BROKEN in errors[0]
        touched_broken = any(k.startswith(f"set_a/{BROKEN}/") and k.endswith("params.yml") for k in changed)
        healthy = {f"set_a/{n}/params.yml" for n in NAMES if n != BROKEN}
        return clean and named, False, touched_broken or not healthy <= changed
    return clean, False, bool(changed)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.kind}:{r.damage}:{r.command}")
def test_damaged_state(row, xmen_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = attempt(row, tmp_path)
    clean, trace, partial = judge(row, outcome)
    assert outcome.traceback is None, outcome.traceback
    assert clean, (outcome.code, outcome.err)
    assert not partial, (_changed(outcome), outcome.err)


def tally() -> tuple[int, int, int, int]:
    """(rows tried, clean one-line report, traceback, partial state) over the whole table."""
    import tempfile

    counts = [0, 0, 0, 0]
    for row in ROWS:
        with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as cache:
            top = Path(folder)
            (top / "home").mkdir()
            os.environ.update(HOME=str(top / "home"), XMEN=str(top / "cfg"), XDG_CONFIG_HOME=str(top / "xdg"),
                              XDG_CACHE_HOME=cache)  # the listing's index, beside the folder, as conftest has it
            try:
                outcome = attempt(row, top)
            finally:
                os.chdir("/")
            clean, trace, partial = judge(row, outcome)
            counts[0] += 1
            counts[1] += clean and not partial
            counts[2] += trace
            counts[3] += partial
            if not clean or trace or partial:
                print(f"{row.kind}:{row.damage}:{row.command}: code={outcome.code} clean={clean} trace={trace} "
                      f"partial={partial} {outcome.err.strip()[:200]!r}", file=sys.stderr)
    return counts[0], counts[1], counts[2], counts[3]


if __name__ == "__main__":
    tried, clean, traces, partial = tally()
    print(f"bad inputs tried {tried} / clean one-line error {clean} / traceback {traces} / partial state {partial}")


def test_healthy_sets_with_every_run_option_pass_the_checks(xmen_home, tmp_path, monkeypatch):
    """No false alarms: what register writes (resources per attempt, threads, retries, requires) is accepted."""
    monkeypatch.chdir(tmp_path)
    root = _healthy_set(tmp_path)
    assert main([
        "register", "{a: w}", "--resources", "mem_mb=1000,2000 runtime=60 slurm_partition=gpu", "--threads", "2",
        "--retries", "1", "--requires", "a=x",
    ]) == 0
    assert main(["note", "-e", "*", "a note"]) == 0
    assert main(["note", "set note"]) == 0
    assert main(["reset"]) == 0
    assert main(["run", "-n"]) == 0
    assert main(["unlink", "a=w"]) == 0 and main(["clean", "-y"]) == 0
    assert files.read_yaml(root / "a=x" / "params.yml")["_notes"] == ["a note"]
    assert not (root / "a=w").exists()


@pytest.mark.parametrize("where, args", [
    ("set_a", ("list",)),                    # the current folder's set
    ("set_a/a=x", ("list",)),                # inside one of its experiment folders
    (".", ("list", "set_a")),                # named as ROOT
    (".", ("list", "set_a/a=*")),            # named through a glob over its experiments
    (".", ("compare", "set_a")),
    (".", ("report", "set_a")),
])
def test_a_named_set_with_a_damaged_experiment_yml_is_an_error(xmen_home, tmp_path, monkeypatch, capsys, where,
                                                                  args):
    """A set the command names (ROOT, or the current folder's) that cannot be read: one ``Error: FILE: ...`` line
    and a non-zero exit, never a warning and exit 0."""
    monkeypatch.chdir(tmp_path)
    root = _healthy_set(tmp_path)
    (root / "experiment.yml").write_text("experiments: [a, b\n")
    monkeypatch.chdir(tmp_path / where)
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code != 0, out + err
    assert err.splitlines() == [f"Error: {root / 'experiment.yml'}: invalid YAML (line 2, column 1): did not find "
                                "expected ',' or ']'"], err


@pytest.mark.parametrize("damage, reason", [
    (_whole("experiments: [a, b\n"), "experiment.yml: invalid YAML"),
    (SET_DAMAGE["duplicate key experiments"], "experiment.yml: duplicate key 'experiments' (line "),
], ids=["invalid YAML", "duplicate key"])
def test_a_damaged_set_found_below_a_parent_folder_is_skipped_with_a_warning(xmen_home, tmp_path, monkeypatch,
                                                                            capsys, damage, reason):
    """Sets found below the folder a listing starts from: a damaged one is named and skipped, the others listed."""
    monkeypatch.chdir(tmp_path)
    root = _healthy_set(tmp_path)
    (tmp_path / "other").mkdir()
    make_set(tmp_path / "other", "set_b", "{a: q}", script="../script.sh", defaults="../defaults.yml")
    (root / "experiment.yml").write_text(damage((root / "experiment.yml").read_text()))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"Warning: skipped {root}: {reason}"), err
    assert "a=q" in out and "a=x" not in out


def test_a_duplicate_experiments_key_loses_no_experiment(xmen_home, tmp_path, monkeypatch, capsys):
    """A second ``experiments:`` key would silently unlink a=y; every command refuses the set in one line naming
    the key and its line, and nothing is written or deleted (a=y's results among them)."""
    monkeypatch.chdir(tmp_path)
    root = _healthy_set(tmp_path)
    (root / "a=y" / "results.csv").write_text("loss\n0.1\n")
    set_file = root / "experiment.yml"
    set_file.write_text(set_file.read_text() + "experiments:\n  a=x: {}\n")
    line = set_file.read_text().splitlines().index("experiments:", 3) + 1  # the second key's line
    before = _snapshot(tmp_path)
    for args in (["list"], ["run", "-n"], ["note", "hi"], ["register", "{a: k}"], ["clean", "-y"]):
        capsys.readouterr()
        code = main(args)
        out, err = capsys.readouterr()
        assert code != 0, (args, out + err)
        assert err.splitlines() == [f"Error: {set_file}: duplicate key 'experiments' (line {line})"], (args, err)
    assert _snapshot(tmp_path) == before
    assert (root / "a=y" / "results.csv").read_text() == "loss\n0.1\n"


def test_a_duplicate_key_in_params_yml_is_refused_by_the_listing_fast_path(xmen_home, tmp_path, monkeypatch,
                                                                          capsys):
    """The listing parses params.yml entry by entry (xmen.look.index): a top-level key in two entries is damage
    there too, named as the listing names an unreadable experiment, and the other experiments are listed."""
    monkeypatch.chdir(tmp_path)
    root = _healthy_set(tmp_path)
    params = root / BROKEN / "params.yml"
    text = params.read_text()
    params.write_text(text + "_name: a=x\n")
    capsys.readouterr()
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    line = len(text.splitlines()) + 1
    assert [w for w in err.splitlines() if w.startswith("Warning:")] == [
        f"Warning: skipped {params.parent}: duplicate key '_name' (line {line})"], err
    assert "a=x" in out and "a=z" in out
