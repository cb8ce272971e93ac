"""xmen.plot and ``xmen plot``: curves per experiment and per group (mean, std), files written, clear errors."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from xmen.store import history
from xmen.look import plot
from xmen.cli import cli, main
from xmen.errors import UsageError

from cli_helpers import write_tutorial_set


def _history(rows):
    return pd.DataFrame(rows, columns=["root", "experiment", "step", "time", "key", "value"])


def _sweep():
    """lr in {0.1, 0.01} x seed in {0, 1}: loss = lr * step + seed at steps 0..3, plus a text message."""
    rows, wide = [], []
    for lr in (0.1, 0.01):
        for seed in (0, 1):
            name = f"lr={lr}__seed={seed}"
            wide.append({"root": "/r", "name": name, "lr": lr, "seed": seed})
            for step in range(4):
                rows.append(["/r", name, step, 100.0 + step + seed, "loss", lr * step + seed])
                rows.append(["/r", name, step, 100.0 + step + seed, "phase", "train"])
    return _history(rows), pd.DataFrame(wide)


def test_one_curve_per_experiment_in_step_order():
    frame, _ = _sweep()
    drawn = plot.curves(frame.iloc[::-1], "loss")  # order sent does not matter: sorted by step
    assert [c.label for c in drawn] == ["lr=0.01__seed=1", "lr=0.01__seed=0", "lr=0.1__seed=1", "lr=0.1__seed=0"]
    last = drawn[-1]
    assert last.x.tolist() == [0, 1, 2, 3] and np.allclose(last.y, [0, 0.1, 0.2, 0.3]) and last.low is None


def test_groups_average_over_the_other_parameters_with_a_std_band():
    frame, wide = _sweep()
    drawn = plot.curves(frame, "loss", by=["lr"], experiments=wide)
    assert [c.label for c in drawn] == ["lr=0.01 (n=2)", "lr=0.1 (n=2)"]  # numbers sorted by value
    group = drawn[1]
    assert group.members == 2 and group.x.tolist() == [0, 1, 2, 3]
    assert np.allclose(group.y, [0.5, 0.6, 0.7, 0.8])  # mean over seeds 0 and 1
    std = math.sqrt(0.5)  # sample std of {v, v + 1}
    assert np.allclose(group.high - group.y, std) and np.allclose(group.y - group.low, std)


def test_time_axis_starts_at_each_experiments_first_message_and_groups_on_a_grid():
    frame, wide = _sweep()
    single = plot.curves(frame, "loss", x="time")
    assert all(c.x[0] == 0 for c in single)
    grouped = plot.curves(frame, "loss", x="time", by=["lr"], experiments=wide)
    assert len(grouped[0].x) == plot.TIME_GRID and np.allclose(grouped[1].y[[0, -1]], [0.5, 0.8])


def test_messages_without_a_step_count_in_the_order_sent():
    frame = _history([["/r", "e", None, 1.0, "loss", 3.0], ["/r", "e", None, 2.0, "loss", 2.0],
                      ["/r", "e", None, 2.0, "acc", True], ["/r", "e", None, 3.0, "loss", "n/a"]])
    (curve,) = plot.curves(frame, "loss")
    assert curve.x.tolist() == [0, 1] and curve.y.tolist() == [3.0, 2.0]
    assert plot.metric_names(frame) == ["loss"]  # booleans and text are not metrics


def test_png_and_svg_are_written_by_their_suffix(tmp_path):
    frame, wide = _sweep()
    plot.plot(frame, "loss", tmp_path / "a.png")
    plot.plot(frame, "loss", tmp_path / "b.SVG", by=["lr"], experiments=wide)
    assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = (tmp_path / "b.SVG").read_text()
    assert "<svg" in svg and "lr=0.1 (n=2)" in svg
    with pytest.raises(UsageError, match="name it .png or .svg"):
        plot.plot(frame, "loss", tmp_path / "c.jpg")
    with pytest.raises(UsageError, match=r"no experiment sent a numeric 'acc' \(metrics sent: loss\)"):
        plot.plot(frame, "acc", tmp_path / "d.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.SVG"]


def test_xmen_plot_of_a_set_with_history(xmen_home, tmp_path, monkeypatch):
    root = write_tutorial_set(tmp_path)
    for i, name in enumerate(["a=1.0__b=None", "a=1.0__b=cat", "a=2.0__b=None"]):
        for step in range(3):
            history.append(root / name, {"loss": (i + 1) * step}, step=step)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    done = runner.invoke(cli, ["plot", "loss", "--by", "a", "-o", "curves.svg"])
    assert done.exit_code == 0, done.output
    svg = (tmp_path / "curves.svg").read_text()
    assert "a=1.0 (n=2)" in svg and "a=2.0" in svg
    done = runner.invoke(cli, ["plot", str(root / "a=2*"), "loss"])
    assert done.exit_code == 0 and (tmp_path / "loss.png").stat().st_size > 1000
    assert main(["plot", "acc", "-o", "x.png"]) == 2
    assert main(["plot", "loss", "--by", "nope"]) == 2


def test_without_matplotlib_plot_fails_in_one_line_and_xmen_never_imports_it(xmen_home, tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"  # as if it were not installed
        "from xmen.cli import main; sys.exit(main(['plot', 'loss']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == "Error: plots need matplotlib: pip install 'xmen[plot]' (or pip install matplotlib)\n"
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, xmen.cli; print(sorted(m for m in sys.modules if 'matplotlib' in m))"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert loaded.strip() == "[]"
