"""Parameter values that reach folder names and tables (issue 11) and names injective on values (issue 10):
canonical key order, repeat index and seeds, Literal choices, 1e-3 as a float, list/dict values in `xmen list`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from xmen.store import files
from xmen.cli.list import list_command
from xmen.errors import UsageError
from xmen.examples.experiment import AnExperiment
from xmen.sets.expset import ExperimentSet

from cli_helpers import xmen

DEFAULTS = """\
lr: 0.1  # (float) Learning rate
seed: 0  # (int) Random seed
opt: sgd  # (Optional[Literal['sgd', 'adam']]) Optimiser
tag: h  # (str) A text
layers: [64, 64]  # (list) Layer sizes
b: 17  # (int) Another parameter
"""


@pytest.fixture
def shell_set(xmen_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text(DEFAULTS)
    root = tmp_path / "set"
    ExperimentSet.init(root, script=tmp_path / "script.sh", defaults=tmp_path / "defaults.yml")
    monkeypatch.chdir(root)
    return root


def params(root: Path, name: str) -> dict:
    return files.read_yaml(root / name / "params.yml")


def test_key_order_does_not_make_another_experiment(shell_set: Path, capsys) -> None:
    assert xmen(capsys, "register", "{seed: 0, lr: 3}")[0] == 0
    code, _, err = xmen(capsys, "register", "{lr: 3, seed: 0}")
    assert code == 0 and "Skipped lr=3__seed=0: already registered" in err
    assert ExperimentSet(shell_set).experiments == ["lr=3__seed=0"]  # declared order: lr, then seed


def test_names_follow_the_declared_order_and_the_sweep_order_decides_variation(shell_set: Path, capsys) -> None:
    assert xmen(capsys, "register", "{seed: 1 | 2, lr: 0.5 | 0.25}")[0] == 0
    assert ExperimentSet(shell_set).experiments == [
        "lr=0.5__seed=1", "lr=0.25__seed=1", "lr=0.5__seed=2", "lr=0.25__seed=2",  # seed varies slowest
    ]


def test_repeats_record_their_index_and_can_seed_themselves(shell_set: Path, capsys) -> None:
    assert xmen(capsys, "register", "{tag: x}", "-x", "3")[0] == 0
    assert [params(shell_set, f"tag=x__rep={i}")["_repeat"] for i in (1, 2, 3)] == [1, 2, 3]
    assert {params(shell_set, f"tag=x__rep={i}")["seed"] for i in (1, 2, 3)} == {0}  # no seed asked for
    assert "_repeat: 1  # Which of the -x N repeats this is (1..N)" in (shell_set / "tag=x__rep=1/params.yml").read_text()
    assert xmen(capsys, "register", "{tag: y}", "-x", "3", "--seed-param", "seed")[0] == 0
    assert [params(shell_set, f"tag=y__rep={i}")["seed"] for i in (1, 2, 3)] == [1, 2, 3]
    assert xmen(capsys, "register", "{tag: z}")[0] == 0
    assert "_repeat" not in params(shell_set, "tag=z")  # a single experiment is no repeat


def test_a_value_outside_a_literal_is_an_error_and_inside_it_fits(shell_set: Path, capsys) -> None:
    code, _, err = xmen(capsys, "register", "{opt: adm}")
    assert code != 0 and "declared Optional[Literal['sgd', 'adam']] but gets 'adm'" in err
    assert xmen(capsys, "register", "{opt: adam | None}")[0] == 0
    assert params(shell_set, "opt=adam")["opt"] == "adam" and params(shell_set, "opt=None")["opt"] is None


def test_tutorial_misfit_on_an_int_stays_a_warning(shell_set: Path, capsys) -> None:
    code, _, err = xmen(capsys, "register", "{b: None | cat}")
    assert code == 0 and "Warning: parameter 'b' is declared int but gets 'cat'" in err
    assert ExperimentSet(shell_set).experiments == ["b=None", "b=cat"]


@pytest.mark.parametrize("sweep, name, value", [
    ("{lr: 1e-3}", "lr=1e-3", 0.001),
    ("{lr: 1e-3 | 2E+2}", "lr=2E+2", 200.0),
    ("{lr: 0.5}", "lr=0.5", 0.5),
    ("{tag: 1e-3}", "tag=1e-3", "1e-3"),  # a str parameter keeps the text
])
def test_numbers_are_read_as_a_researcher_writes_them(shell_set: Path, capsys, sweep, name, value) -> None:
    assert xmen(capsys, "register", sweep)[0] == 0
    assert params(shell_set, name)["lr" if name.startswith("lr") else "tag"] == value
    assert type(params(shell_set, name)["lr" if name.startswith("lr") else "tag"]) is type(value)


def test_none_spellings_make_one_folder(shell_set: Path, capsys) -> None:
    assert xmen(capsys, "register", "{b: None}")[0] == 0
    for spelling in ("none", "null", "~"):
        code, _, err = xmen(capsys, "register", "{b: %s}" % spelling)
        assert code == 0 and "Skipped b=None: already registered" in err
        code, _, err = xmen(capsys, "register", "{b: 3 | %s}" % spelling)
        assert code == 0 and "Skipped b=None" in err
    assert ExperimentSet(shell_set).experiments == ["b=None", "b=3"]


def test_a_value_holding_the_separator_cannot_take_another_experiments_folder(shell_set: Path, capsys) -> None:
    assert xmen(capsys, "register", "{tag: x, b: 5}")[0] == 0
    code, _, err = xmen(capsys, "register", "{tag: 'x__b=5'}")
    assert code != 0 and "holds '__'" in err
    assert xmen(capsys, "register", "{tag: 'x__b=5'}", "-n", "own_name")[0] == 0  # its own name is fine
    assert params(shell_set, "own_name")["tag"] == "x__b=5"
    assert params(shell_set, "tag=x__b=5")["b"] == 5


def test_list_and_dict_values_never_crash_xmen_list(shell_set: Path, capsys) -> None:
    assert xmen(capsys, "register", "{layers: [1, 2], tag: x}", "-n", "listy")[0] == 0
    assert xmen(capsys, "register", "{tag: y}")[0] == 0
    files.update_yaml(shell_set / "tag=y" / "params.yml",
                      lambda p: p["_messages"].update({"hist": [1, 2, 3], "best": {"x": 1}}))
    runner = CliRunner()
    for args in (["-p", ".*"], ["-m"], ["-v"], ["-p", "layers"], ["--csv", "-p", ".*"], ["-m", "hist"]):
        result = runner.invoke(list_command, [str(shell_set), *args])
        assert result.exit_code == 0, (args, result.output, result.exception)
    table = runner.invoke(list_command, [str(shell_set), "-p", "layers", "-m", "hist"]).output
    assert "[1, 2]" in table and "[64, 64]" in table and "[1, 2, 3]" in table


def test_experiment_register_refuses_names_the_snakefile_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unsafe character"):
        AnExperiment().register(tmp_path, "a{x}")
    assert not (tmp_path / "a{x}").exists()
    from xmen.examples import experiment as example

    proc = subprocess.run([sys.executable, example.__file__, "--register", str(tmp_path), "{exp}"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "unsafe character '{'" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_name_registered_again_with_other_values_is_no_skip(shell_set: Path, capsys) -> None:
    assert xmen(capsys, "register", "{tag: q}", "-n", "special")[0] == 0
    code, _, err = xmen(capsys, "register", "{tag: q}", "-n", "special")
    assert code == 0 and "Skipped special: already registered" in err
    before = (shell_set / "special" / "params.yml").read_text()
    code, _, err = xmen(capsys, "register", "{tag: r}", "-n", "special")
    assert code == 1 and "Not registered special: already registered with other values (tag: 'q' there, 'r' here)" in err
    assert (shell_set / "special" / "params.yml").read_text() == before


def test_each_repeat_sees_its_index_in_the_environment(xmen_home: Path, tmp_path: Path) -> None:
    """The job runner exports params.yml's ``_repeat`` as XMEN_REPEAT, so a script can seed itself from it."""
    (tmp_path / "script.sh").write_text('#!/bin/bash\necho "${XMEN_REPEAT-unset}" > "$(dirname "$1")/repeat.txt"\n')
    (tmp_path / "defaults.yml").write_text("tag: h  # (str) A text\n")
    root = tmp_path / "set"
    exp_set = ExperimentSet.init(root, script=tmp_path / "script.sh", defaults=tmp_path / "defaults.yml")
    exp_set.register("{tag: x}", repeats=2)
    exp_set.register("{tag: y}")
    for name in ("tag=x__rep=1", "tag=x__rep=2", "tag=y"):
        proc = subprocess.run(["bash", str(root / name / "run.sh")], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    assert [(root / n / "repeat.txt").read_text().strip() for n in ("tag=x__rep=1", "tag=x__rep=2", "tag=y")] == [
        "1", "2", "unset"]
