"""A table of bad input to `xmen register` (and the state files it reads): each gets one `Error:` line, a non-zero
exit, no traceback, no change to the set, in bounded time. Add a row for every bad input found."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from xmen.cli import main
from xmen.sets.expset import ExperimentSet

DEFAULTS = """\
a: h  # (str) A parameter
b: 17  # (int) Another parameter
lr: 0.1  # (float) Learning rate
opt: sgd  # (Literal['sgd', 'adam']) Optimiser
seed: 0  # (int) Random seed
rep: 0  # (int) A parameter whose name is the repeat suffix
"""
# Ten alternatives for each of many parameters: 10**k combinations from a few hundred bytes.
TEN = " | ".join(str(i) for i in range(10))
BIG_12 = "{" + ", ".join(f"p{i}: {TEN}" for i in range(12)) + "}"
UNKNOWN_7 = "{" + ", ".join(f"p{i}: {TEN}" for i in range(7)) + "}"
# "billion laughs": 9 levels of 9 aliases, 9**9 values from a few lines.
BOMB_ANCHORS = "[&l0 [x, x, x, x, x, x, x, x, x], " + ", ".join(
    f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)
) + "]"
BOMB_SWEEP = "{a: " + BOMB_ANCHORS + "}"


def _expect(message: str, *args: str) -> tuple[list[str], str]:
    return list(args), message


BAD = [
    # Bounded work: counted before anything is built, names and types checked on the grammar.
    _expect("the sweep makes 1,000,000,000,000 experiments", BIG_12),
    _expect("unknown parameter 'p0'", UNKNOWN_7, "--max-experiments", "100000000"),
    _expect("the sweep makes 100,000,000 experiments", "{a: x}", "-x", "100000000"),
    _expect("more than the limit of 10", "{b: 1 | 2 | 3}", "-x", "4", "--max-experiments", "10"),
    _expect("--max-experiments: must be a whole number of at least 1, found 0", "{a: x}", "--max-experiments", "0"),
    _expect("alias bomb", BOMB_SWEEP),
    _expect("alias bomb", "{a: 'x | " + BOMB_ANCHORS + "'}"),
    _expect("refers to the node that contains it", "{a: &x [1, *x]}"),
    _expect("duplicate key 'b'", "{b: 1, b: 2}"),
    _expect("duplicate key 'x'", "{a: {x: 1, x: 2}}", "-n", "nested"),
    # Names are injective on values.
    _expect("holds '__'", "{a: 'x__b=5'}"),
    _expect("holds '__'", "{a: 'y | x__b=5'}"),
    _expect("clashes with the repeat suffix", "{rep: 1}"),
    _expect("duplicate alternative 'None'", "{b: None | none}"),
    _expect("duplicate alternative 'None'", "{b: null | ~}"),
    _expect("'1e-3' and '0.001' are the same value", "{lr: 1e-3 | 0.001}"),
    _expect("'1.0' and '1.00' are the same value", "{lr: 1.0 | 1.00}"),
    # Values the experiment cannot take.
    _expect("parameter 'opt' is declared Literal['sgd', 'adam'] but gets 'adm'", "{opt: adm}"),
    _expect("parameter 'opt' is declared Literal['sgd', 'adam'] but gets 'adm'", "{opt: sgd | adm}"),
    # What the Snakefile cannot run.
    _expect("'xmen_attempt' is reserved", "{a: x}", "--resources", "xmen_attempt=3"),
    _expect("'_cores' is reserved", "{a: x}", "--resources", "_cores=3"),
    _expect("'_nodes' is reserved", "{a: x}", "--resources", "_nodes=2"),
    _expect("'_gpus' is reserved", "{a: x}", "--resources", "_gpus=2"),
    _expect("'threads' is reserved (use --threads)", "{a: x}", "--resources", "threads=2"),
    _expect("'attempt' is reserved", "{a: x}", "--resources", "attempt=2"),
    _expect("are one resource (XMEN_MEM_MB)", "{a: x}", "--resources", "mem_mb=1 MEM_MB=2"),
    _expect("unsafe character '{'", "{a: x}", "-n", "a{x}"),
    _expect("unsafe character '{'", "{a: x}", "-n", "{exp}"),
    _expect("unsafe character '}'", "{a: '}x'}"),
    # Resources no machine has (issue 19).
    _expect("resource runtime=-1 must be more than 0", "{a: x}", "--resources", "runtime=-1"),
    _expect("resource runtime=nan is not a finite number", "{a: x}", "--resources", "runtime=nan"),
    _expect("resource runtime=inf is not a finite number", "{a: x}", "--resources", "runtime=inf"),
    _expect("resource mem_mb=-5 must be more than 0", "{a: x}", "--resources", "mem_mb=-5"),
    _expect("resource mem_mb=-5 must be more than 0", "{a: x}", "--resources", "mem_mb=1000,-5"),
    _expect("resource gpu=-1 must be 0 or more", "{a: x}", "--resources", "gpu=-1"),
    _expect("is larger than 4,294,967,295", "{a: x}", "--resources", "mem_mb=99999999999"),
    _expect("--threads: must be at most 65,536", "{a: x}", "--threads", "999999999999"),
    _expect("--threads: must be a whole number of at least 1", "{a: x}", "--threads", "0"),
    # Repeats with their own seed.
    _expect("--seed-param: unknown parameter 'nope'", "{a: x}", "-x", "2", "--seed-param", "nope"),
    _expect("--seed-param: parameter 'a' is declared str, not an int", "{b: 1}", "-x", "2", "--seed-param", "a"),
    _expect("do not sweep it too", "{seed: 1 | 2}", "-x", "2", "--seed-param", "seed"),
]


@pytest.fixture
def shell_set(xmen_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text(DEFAULTS)
    root = tmp_path / "set"
    ExperimentSet.init(root, script=tmp_path / "script.sh", defaults=tmp_path / "defaults.yml")
    ExperimentSet(root).register("{a: existing}")
    monkeypatch.chdir(root)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    found = {}
    for folder, dirs, names in os.walk(root):
        for name in names:
            if not name.endswith(".lock"):  # lock files are created on first use and never carry state
                found[os.path.relpath(os.path.join(folder, name), root)] = Path(folder, name).read_bytes()
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root) + "/"] = b""
    return found


def _assert_clean_failure(root: Path, capsys, args: list[str], message: str, seconds: float = 0.5) -> None:
    before = snapshot(root)
    start = time.perf_counter()
    code = main(["register", *args])
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert message in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert snapshot(root) == before
    assert elapsed < seconds, f"{elapsed:.2f} s"


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_register_input(shell_set: Path, capsys, args: list[str], message: str) -> None:
    _assert_clean_failure(shell_set, capsys, args, message)


# A YAML alias bomb in a state file register reads: one line naming the file, nothing changed.
@pytest.mark.parametrize("state_file", ["experiment.yml", "defaults.yml"])
def test_alias_bomb_in_a_state_file(shell_set: Path, capsys, state_file: str) -> None:
    path = shell_set / state_file
    path.write_text(path.read_text() + f"junk: {BOMB_ANCHORS}\n")
    _assert_clean_failure(shell_set, capsys, ["{a: x}"], f"{path}: invalid YAML: its aliases expand to more than")


def test_alias_bomb_in_params_yml_is_one_warning_in_xmen_list(shell_set: Path) -> None:
    from click.testing import CliRunner

    from xmen.cli.list import list_command

    ExperimentSet(shell_set).register("{a: other}")
    params = shell_set / "a=existing" / "params.yml"
    params.write_text(params.read_text() + f"junk: {BOMB_ANCHORS}\n")
    start = time.perf_counter()
    result = CliRunner().invoke(list_command, [str(shell_set), "-p", ".*"])
    assert time.perf_counter() - start < 5
    assert result.exit_code == 0 and result.exception is None
    assert "a=other" in result.output and "alias bomb" in result.output
    assert "junk" not in result.output
