"""A set written by xmen before the package was split into layers (tests/fixtures/set_before_layers, made at
commit dc28523 with ``xmen init -s script.sh -d defaults.yml``, ``xmen register "{a: 1 | 2}"`` and
``xmen register -n dep --requires "a=*"``; its folder and python are placeholders) runs as it is: its run.sh
files exec ``python -m xmen.job`` and its Snakefile imports ``xmen.snakemake_glue``. Regenerating its Snakefile
gives identical bytes, so Snakemake never reruns its finished experiments for "code changed"."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xmen.sets import snakefile
from xmen.store import files

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "set_before_layers"

pytestmark = pytest.mark.usefixtures("xmen_home")


@pytest.fixture
def old_set(tmp_path: Path) -> Path:
    root = tmp_path / "set"
    shutil.copytree(FIXTURE, root, symlinks=True)
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if "@ROOT@" in text or "@PYTHON@" in text:
                path.write_text(text.replace("@ROOT@", str(root)).replace("@PYTHON@", sys.executable), encoding="utf-8")
    return root


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=240)


def test_its_snakefile_is_what_xmen_writes_now(old_set: Path) -> None:
    before = (old_set / "Snakefile").read_bytes()
    assert snakefile.render_set_snakefile().encode("utf-8") == before
    assert (old_set / "profiles" / "default" / "config.yaml").read_text(encoding="utf-8") == snakefile.default_profile()
    proc = _run(sys.executable, "-m", "xmen.cli", "register", "{a: 3}", "-r", str(old_set), cwd=old_set)
    assert proc.returncode == 0, proc.stderr
    assert (old_set / "Snakefile").read_bytes() == before


def test_it_runs_with_snakemake_and_stays_done(old_set: Path) -> None:
    proc = _run(sys.executable, "-m", "snakemake", "--cores", "2", cwd=old_set)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("a=1", "a=2", "dep"):
        assert files.read_yaml(old_set / name / "params.yml")["_status"] == "finished", name
        assert (old_set / name / "xmen.done").is_file()
    assert "a is a: 2" in (old_set / "a=2" / "xmen.log").read_text(encoding="utf-8")
    again = _run(sys.executable, "-m", "snakemake", "-n", cwd=old_set)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
    listed = _run(sys.executable, "-m", "xmen.cli", "list", str(old_set), cwd=old_set)
    assert listed.returncode == 0 and listed.stdout.count("finished") == 3, listed.stdout
