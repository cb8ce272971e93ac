"""``xmen report`` of a real training sweep (lr x seed, per-epoch messages, a diverging lr), run by Snakemake and
opened in headless Chromium: the page renders, shows what the set holds and every plot loads, without network."""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from cli_helpers import run_xmen as xmen

pytestmark = pytest.mark.timeout(600)

HERE = Path(__file__).resolve().parent
NOTE = 'Sweep <b>lr</b> & "seeds" </td></table><script>alert(1)</script>'
EXPERIMENT_NOTE = "best <i>guess</i>"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The training sweep, registered, annotated and run once for all tests of this module."""
    base = tmp_path_factory.mktemp("sweep")
    env = {"HOME": str(base / "home"), "XMEN": str(base / "xmen-config"), "XDG_CONFIG_HOME": str(base / "xdg"),
           "SLURM_CONF": "/dev/null"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        (base / "home").mkdir()
        root = base / "sweep"
        for args in (["config", "--disable_prompt"], ["config", "-H", ""],
                     ["config", "--add", str(HERE / "train_experiment.py")],
                     ["init", "-n", "Train", "-r", str(root), "--purpose", "lr <vs> seed"]):
            proc = xmen(*args, cwd=base, check=False)
            assert proc.returncode == 0, proc.stderr
        for args in (["register", "{lr: 0.1 | 0.03 | 1.0, seed: 0 | 1 | 2}"], ["note", NOTE],
                     ["note", "-e", "lr=0.1__seed=0", EXPERIMENT_NOTE]):
            proc = xmen(*args, cwd=root, check=False)
            assert proc.returncode == 0, proc.stderr
        run = xmen("run", "-j", "2", cwd=root, check=False)
        assert run.returncode == 1 and "Summary: 3 error, 6 finished" in run.stderr, run.stderr
        yield root
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_report_renders_in_chromium_with_everything_the_set_holds(sweep, tmp_path, render_page):
    page = tmp_path / "report.html"
    proc = xmen("report", str(sweep), "-o", str(page), cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"Wrote {page} (9 experiment(s), 2 plot(s))" in proc.stderr

    source = page.read_text(encoding="utf-8")
    # Self-contained: nothing fetched, no script; images inline.
    links = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", source, re.I)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert "<script" not in source.lower() and "<link" not in source.lower()

    shown = render_page(page)
    text = shown.text
    # Every image is a loaded, non-empty picture: the loss and accuracy curves.
    assert [image["alt"] for image in shown.images] == ["loss", "val_acc"]
    for image in shown.images:
        assert image["complete"] and image["width"] > 300 and image["height"] > 200, image
    # User strings show as text, never as markup: no <script>, <b> or <i> element came from them.
    assert NOTE in text and EXPERIMENT_NOTE in text and "lr <vs> seed" in text
    assert "script" not in shown.tags and "b" not in shown.tags and "i" not in shown.tags
    # The status summary, the failures with their reason and log, the comparison, the experiments.
    assert "9 experiment(s):" in text and "error: 3" in text and "finished: 6" in text
    for seed in range(3):
        name = f"lr=1.0__seed={seed}"
        reason = "RuntimeError: loss diverged at epoch 2 <lr too large>"
        assert f"{name}\terror\t{reason}\t{sweep / name / 'xmen.log'}" in text
    assert "Grouped by lr" in text
    assert "lr\texperiments\tloss count\tloss mean\tloss std\tloss min\tloss max" in text
    assert "\n0.03\t3\t3\t0.1425\t0.02\t0.1225\t0.1625\t" in text  # exp(-0.3 * 7) + 0.02 * seed over seeds 0..2
    header = "experiment\tstatus\treason\tnotes\tlr\tseed\tepochs\tloss\tval_acc\tcreated\thost\tstarted\tended"
    assert header in text
    assert f"lr=0.1__seed=0\tfinished\t\t{EXPERIMENT_NOTE}\t0.1\t0\t8\t0.0009119\t" in text
    assert socket.gethostname() in text
    assert re.search(r"\t20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\t", text)  # readable times, not 1.796151e+09


def test_report_of_a_glob_and_a_chosen_metric(sweep, tmp_path, render_page):
    page = tmp_path / "subset.html"
    proc = xmen("report", str(sweep / "lr=0.1*"), "-m", "loss", "--by", "seed", "-o", str(page),
                "--title", "<lr=0.1>", cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    shown = render_page(page)
    assert shown.text.startswith("<lr=0.1>\n")
    assert [image["alt"] for image in shown.images] == ["loss"] and shown.images[0]["width"] > 0
    assert "Grouped by seed" in shown.text and "val_acc mean" not in shown.text
    assert "3 experiment(s):" in shown.text and "lr=0.03__seed=0" not in shown.text
