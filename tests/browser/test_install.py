"""CI gets the browser: .ci/run installs Chromium before pytest, and the install script is idempotent."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ci_installs_chromium_before_running_the_tests():
    script = (REPO / ".ci" / "run").read_text()
    assert script.index("bash tests/browser/install.sh") < script.index("python -m pytest")


def test_install_script_does_nothing_when_chromium_is_there(chromium):
    started = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "tests" / "browser" / "install.sh")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"browser tests: {chromium} is installed"
    assert time.monotonic() - started < 10  # no apt-get run
