"""xmen.compare and `xmen compare`: group a sweep with repeats by its parameters, statistics over the rest."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from xmen.store import files
from xmen.look import listing
from xmen.cli import main
from xmen.look.compare import compare
from xmen.errors import UsageError

pd = pytest.importorskip("pandas")


def sweep(base: Path, repeats: int = 3) -> Path:
    """lr x seed, val_acc = lr-dependent value + seed noise; one lr=0.1 repeat failed before sending anything."""
    root = base / "sweep"
    root.mkdir()
    linked: dict[str, Any] = {}
    for lr in (0.1, 0.01, 0.001):
        for seed in range(repeats):
            name = f"lr={lr}__seed={seed}"
            failed = lr == 0.1 and seed == 0
            messages = {} if failed else {"val_acc": 0.9 + lr + seed / 100, "loss": 1.0 - lr, "phase": "done"}
            params: dict[str, Any] = {
                "_name": name, "_root": str(root), "_status": "error" if failed else "finished",
                "_messages": messages, "lr": lr, "seed": seed, "model": "mlp",
            }
            if failed:
                params["_error"] = "ValueError: diverged"
            (root / name).mkdir()
            files.write_yaml(root / name / "params.yml", params)
            linked[name] = {}
    files.write_yaml(root / "experiment.yml", {"root": str(root), "type": "T", "notes": [], "experiments": linked})
    return root


def test_compare_groups_by_a_parameter_and_averages_over_seeds(tmp_path: Path) -> None:
    frame = listing.to_dataframe([str(sweep(tmp_path))])
    table = compare(frame, ["lr"])
    assert list(table.columns) == ["lr", "experiments"] + [
        f"{m} {s}" for m in ("val_acc", "loss") for s in ("count", "mean", "std", "min", "max")
    ]  # 'phase' is text: not a metric
    assert list(table["lr"]) == [0.001, 0.01, 0.1] and list(table["experiments"]) == [3, 3, 3]
    assert list(table["val_acc count"]) == [3, 3, 2]  # the failed repeat sent nothing
    row = table[table.lr == 0.01].iloc[0]
    assert row["val_acc mean"] == pytest.approx(0.91 + 0.01) and row["val_acc std"] == pytest.approx(0.01)
    assert row["val_acc min"] == pytest.approx(0.91) and row["val_acc max"] == pytest.approx(0.93)
    row = table[table.lr == 0.1].iloc[0]
    assert row["val_acc mean"] == pytest.approx(1.0 + 0.015) and row["val_acc min"] == pytest.approx(1.01)

    by_both = compare(frame, ["model", "lr"], metrics=["loss"])
    assert list(by_both.columns) == ["model", "lr", "experiments", *(f"loss {s}" for s in ("count", "mean", "std",
                                                                                           "min", "max"))]
    single = compare(frame, ["lr", "seed"], metrics=["val_acc"])
    assert len(single) == 9 and single["val_acc std"].isna().all()  # one value: no sample std
    everything = compare(frame, [], metrics=["val_acc"])
    assert len(everything) == 1 and everything["experiments"][0] == 9 and everything["val_acc count"][0] == 8


def test_compare_groups_missing_and_null_values_apart(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "b": pd.Series([None, "cat", None, math.nan, "cat"], dtype=object),
        "m": pd.Series([1.0, 2.0, 3.0, 4.0, True], dtype=object),
    })
    table = compare(frame, ["b"], metrics=["m"])
    assert list(table["b"])[:2] == ["cat", None] and math.isnan(table["b"][2])
    assert list(table["experiments"]) == [2, 2, 1] and list(table["m count"]) == [1, 2, 1]  # True is not a number
    assert list(table["m mean"]) == [2.0, 2.0, 4.0]


def test_compare_refuses_unknown_columns(tmp_path: Path) -> None:
    frame = listing.to_dataframe([str(sweep(tmp_path))])
    with pytest.raises(UsageError, match="cannot group by 'momentum'"):
        compare(frame, ["momentum"])
    with pytest.raises(UsageError, match="no metric 'acc'"):
        compare(frame, ["lr"], metrics=["acc"])


TRAIN = '''
import random
from xmen import Experiment


class Train(Experiment):
    def __init__(self):
        """A noisy training sweep."""
        super().__init__()
        self.lr: float = 0.1  # @p learning rate
        self.seed: int = 0  # @p random seed

    def run(self):
        rng = random.Random(self.seed)
        acc = 0.5
        for epoch in range(5):
            acc += self.lr * (1 - acc) + rng.uniform(-0.001, 0.001)
            self.message({'val_acc': acc, 'loss': 1 - acc}, step=epoch)


if __name__ == '__main__':
    exp = Train()
    exp.main(exp.parse_args())
'''


def test_xmen_compare_on_a_run_sweep_with_repeats(tmp_path: Path, xmen_home: Path, monkeypatch, capsys) -> None:
    """lr x seed registered and run for real (each experiment's run.sh), then compared by lr over the seeds."""
    import csv
    import io
    import subprocess

    from xmen.store import history

    (tmp_path / "train.py").write_text(TRAIN)
    monkeypatch.chdir(tmp_path)
    assert main(["config", "--add", "train.py"]) == 0
    assert main(["init", "-n", "Train", "-r", "sweep"]) == 0
    monkeypatch.chdir(tmp_path / "sweep")
    assert main(["register", "{lr: 0.1 | 0.3, seed: 0 | 1 | 2}"]) == 0
    folders = sorted(p.parent for p in (tmp_path / "sweep").glob("lr=*/run.sh"))
    assert len(folders) == 6
    for folder in folders:
        assert subprocess.run(["bash", str(folder / "run.sh")], capture_output=True).returncode == 0
        assert [r["step"] for r in history.read(folder)] == [0, 1, 2, 3, 4]
    capsys.readouterr()

    assert main(["compare", "--by", "lr", "-m", "val_acc", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["lr"], r["experiments"], r["val_acc count"]) for r in rows] == [("0.1", "3", "3"), ("0.3", "3", "3")]
    for row, lr in zip(rows, (0.1, 0.3)):
        expected = 1 - 0.5 * (1 - lr) ** 5  # without the noise
        assert abs(float(row["val_acc mean"]) - expected) < 0.005 and 0 < float(row["val_acc std"]) < 0.005
        assert float(row["val_acc min"]) <= float(row["val_acc mean"]) <= float(row["val_acc max"])

    assert main(["compare", "--by", "lr", "--sort", "-val_acc mean"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["lr", "experiments", "val_acc", "count"] and lines[1].split()[:3] == ["0", "0.3", "3"]
    assert main(["compare", "--by", "lr", "--sort", "nope"]) != 0
    assert capsys.readouterr().err.startswith("Error: cannot sort by 'nope': no such column (columns: lr, experiments")
    assert main(["compare", "--by", "momentum"]) != 0
    assert capsys.readouterr().err == "Error: cannot group by 'momentum': no such parameter (parameters: lr, seed)\n"


def test_the_command_path_and_the_dataframe_agree(tmp_path: Path) -> None:
    """`xmen compare` summarises collect()'s rows without pandas; compare() on to_dataframe gives the same table."""
    from xmen.look.compare import compare_rows

    root = sweep(tmp_path)
    for by in (["lr"], ["model", "lr"], []):
        frame = compare(listing.to_dataframe([str(root)]), by)
        labels, columns = compare_rows(listing.collect([str(root)]).rows, by)
        assert labels == list(frame.columns)
        for label, column in zip(labels, columns):
            expected = list(frame[label])
            assert len(column) == len(expected)
            for got, want in zip(column, expected):
                assert (got != got and want != want) or got == pytest.approx(want), (label, got, want)
    with pytest.raises(UsageError, match=r"no metric .nope. \(numeric messages: val_acc, loss\)"):
        compare_rows(listing.collect([str(root)]).rows, ["lr"], ["nope"])
