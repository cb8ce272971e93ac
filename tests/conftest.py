"""Shared fixtures. Keep this small: fixtures used by one test file belong in that file."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture(autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's own ``$XDG_CACHE_HOME`` (xmen's listing index lives there), beside its ``tmp_path`` rather than
    in it (tests compare what is in ``tmp_path``), so no test reads or fills the real user's cache; returns it."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


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


@pytest.fixture
def shell_experiment(xmen_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write an experiment's files (``{"script.sh": ..., "defaults.yml": ...}``) into ``tmp_path``, under the
    temporary home of :func:`xmen_home`, and make it the working directory; returns ``tmp_path``. The CLI helpers
    for such tests are in tests/cli_helpers.py."""

    def write(files: dict[str, str]) -> Path:
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        monkeypatch.chdir(tmp_path)
        return tmp_path

    return write
