"""Packaging: a regular (non-editable) install carries the Snakemake assets, and `import xmen` stays light."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_import_xmen_pulls_in_neither_pandas_nor_snakemake_nor_click():
    code = (
        "import sys, json, xmen; from xmen import Experiment; import xmen.experiment;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pandas', 'snakemake', 'click', 'numpy', 'matplotlib'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


@pytest.mark.timeout(300)
def test_regular_install_ships_rules_workflow_and_profiles(tmp_path):
    """Build a wheel, install it (not editable) into a fresh venv, and use the assets from there."""
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(REPO)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(wheels.glob("xmen-*.whl"))
    target = tmp_path / "venv"
    venv.create(target, system_site_packages=True, with_pip=False)
    python = target / "bin" / "python"
    # --no-deps: the dependencies come from the system site-packages; --target keeps the editable install out.
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    probe = (
        "import json, xmen, xmen._assets as a;"
        "print(json.dumps({'file': xmen.__file__,"
        " 'rule': a.read_text('rules', 'xmen.smk')[:40],"
        " 'workflow': str(a.asset('workflow', 'Snakefile')),"
        " 'profiles': sorted(p for p in ('slurm', 'local', 'ci', 'default')"
        "     if a.asset('config', p, 'config.yaml').is_file())}))"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["file"].startswith(str(site))  # the installed copy, not the checkout
    assert found["rule"].startswith("# xmen: the one wildcard rule")
    assert Path(found["workflow"]).is_file() and str(site) in found["workflow"]
    assert found["profiles"] == ["ci", "default", "local", "slurm"]
