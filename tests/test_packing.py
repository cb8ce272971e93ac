"""Packing (Snakemake group jobs, README "SLURM") leaves plain local runs as Snakemake runs them.

The glue keeps a pack's experiments apart only when they are grouped, which Snakemake does for cluster runs alone
(xmen.snakemake_glue.keep_packed_experiments_apart; proven on SLURM by tests/slurm/test_slurm.py). A local run
given the same flags must keep Snakemake's own meaning of a failed job: its outputs are deleted as possibly
corrupt (the script below writes the status file itself before failing, as a hand-made run.sh could).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_xmen as xmen

DEFAULTS = "a: h  # (str) A name; a=bad fails\n"
SCRIPT = """#!/bin/bash
grep -q '^a: bad' "$1" && { touch xmen.done; exit 3; }
exit 0
"""
PACK = ["--groups", "xmen_experiment=pack", "--group-components", "pack=3", "--cores", "1"]


@pytest.mark.parametrize("flags", [[], PACK], ids=["plain", "with the packing flags"])
def test_a_local_run_with_packing_flags_is_a_plain_run(xmen_home: Path, tmp_path: Path, flags: list[str]) -> None:
    for name, text in (("script.sh", SCRIPT), ("defaults.yml", DEFAULTS)):
        (tmp_path / name).write_text(text)
    root = tmp_path / "set"
    xmen("init", "-s", str(tmp_path / "script.sh"), "-d", str(tmp_path / "defaults.yml"), "-r", str(root), cwd=tmp_path)
    xmen("register", "{a: x | y | bad}", cwd=root)
    proc = subprocess.run([sys.executable, "-m", "snakemake", *flags], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "SLURM_CONF": "/dev/null"}, timeout=300)
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert "Removing output files of failed job" in proc.stderr, proc.stderr[-3000:]
    assert not (root / "a=bad" / "xmen.done").exists()
    assert (root / "a=x" / "xmen.done").is_file() and (root / "a=y" / "xmen.done").is_file()
