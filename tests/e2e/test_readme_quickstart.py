"""The README's quick start, run as written: its experiment.py and its shell block, ending with the comparison
and the report of the tutorial sweep."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start() -> tuple[str, str]:
    """(experiment.py, the shell commands) of the README's quick start section."""
    section = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shell = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return python, shell


def _groups(lines: list[str]) -> dict[str, str]:
    """{value of a: experiments} from the rows of the printed comparison (with or without an index column)."""
    out = {}
    for line in lines:
        cells = line.split()
        at = next((i for i, cell in enumerate(cells) if cell in ("1.0", "2.0")), None)
        if at is not None:
            out[cells[at]] = cells[at + 1]
    return out


def test_quick_start_ends_with_compare_and_report():
    commands = [line.split("#")[0].strip() for line in quick_start()[1].splitlines() if line.strip()]
    assert commands[-2].startswith("xmen compare") and commands[-1].startswith("xmen report")


def test_the_quick_start_runs_as_written(xmen_home, tmp_path):
    python, shell = quick_start()
    work = tmp_path / "work"
    work.mkdir()
    (work / "experiment.py").write_text(python)
    env = dict(os.environ, SLURM_CONF="/dev/null")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run(["xmen", "config", "--disable_prompt"], env=env, check=True, capture_output=True)
    # Each line echoed before it runs, so the output can be cut per command; the first failure stops the script.
    script = "set -euo pipefail\n" + "".join(
        f"echo '@@@ {line.split('#')[0].strip()}'\n{line}\n" for line in shell.splitlines() if line.strip()
    )
    proc = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    outputs = dict(
        (chunk.split("\n", 1)[0].strip(), chunk.split("\n", 1)[1] if "\n" in chunk else "")
        for chunk in proc.stdout.split("@@@ ")[1:]
    )

    set_a = xmen_home / "experiments" / "set_a"
    names = ["a=1.0__b=None", "a=1.0__b=cat", "a=2.0__b=None", "a=2.0__b=cat"]
    for name in names:
        assert (set_a / name / "xmen.done").exists() and (set_a / name / "history.jsonl").exists()

    compare = outputs["xmen compare --by a"].splitlines()
    assert compare[0].split()[:3] == ["a", "experiments", "time"]
    assert _groups(compare[1:]) == {"1.0": "2", "2.0": "2"}  # two experiments (b: None, cat) per value of a

    page = (set_a / "report.html").read_text(encoding="utf-8")
    assert "<h2>Comparison</h2>" in page and "first sweep" in page and "finished: 4" in page
    assert page.count("<img ") == 1 and "src='data:image/png;base64," in page  # the plot of the message 'time'
    for name in names:
        assert f"<td>{name}</td>" in page
    assert "Wrote " in proc.stderr and "report.html (4 experiment(s), 1 plot(s))" in proc.stderr


def test_the_demo_ends_with_the_comparison_and_the_report(xmen_home, tmp_path):
    env = dict(os.environ, SLURM_CONF="/dev/null")
    proc = subprocess.run([sys.executable, "-m", "xmen.cli", "demo", "--dir", str(tmp_path / "demo")], env=env,
                          capture_output=True, text=True, timeout=500, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "$ xmen compare" in proc.stderr and "$ xmen report" in proc.stderr
    lines = proc.stdout.splitlines()
    header = max(i for i, line in enumerate(lines) if "experiments" in line.split())  # the comparison's
    assert _groups(lines[header + 1:]) == {"1.0": "2", "2.0": "2"}
    page = (tmp_path / "demo" / "report.html").read_text(encoding="utf-8")
    assert "A test of the xmen experiment suite" in page and "finished: 4" in page
