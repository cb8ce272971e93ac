"""Shared fixtures. Keep this small: fixtures used by one test file belong in that file."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def xmen_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``HOME``, the global xmen config (``$XMEN``) and the Snakemake profiles (``$XDG_CONFIG_HOME``) into
    ``tmp_path``; returns the fake home folder.

    Subprocesses started by the test inherit the variables, so nothing a test does touches the real home.
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XMEN", str(tmp_path / "xmen-config"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return home
