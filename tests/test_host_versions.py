"""xmen.host's version gate: xmen's patches on Snakemake and on the SLURM executor plugin apply only to the versions
they were written against (xmen.host.versions, pinned in setup.py too); anything else is refused with one line that
names the found and the supported versions."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from xmen.host import versions
from xmen.host.versions import SLURM_JOBSTEP, SLURM_PLUGIN, SNAKEMAKE, HostRefusal

REFUSAL_290 = ("xmen: snakemake-executor-plugin-slurm 2.9.0 is not a version xmen supports "
               "(snakemake-executor-plugin-slurm>=2.8,<2.9); install one: pip install "
               "'snakemake-executor-plugin-slurm>=2.8,<2.9'")


def _fake_version(monkeypatch, distribution: str, version: str | None) -> None:
    real = versions.installed_version
    monkeypatch.setattr(versions, "installed_version", lambda name: version if name == distribution else real(name))


@pytest.mark.parametrize("supported, version, admitted", [
    (SLURM_PLUGIN, "2.8.0", True), (SLURM_PLUGIN, "2.8.7", True), (SLURM_PLUGIN, "2.8.1rc1", True),
    (SLURM_PLUGIN, "2.7.9", False), (SLURM_PLUGIN, "2.9.0", False), (SLURM_PLUGIN, "2.9.0rc1", False),
    (SLURM_PLUGIN, "3.0", False), (SLURM_PLUGIN, None, False), (SLURM_PLUGIN, "not a version", False),
    (SNAKEMAKE, "9.27.1", True), (SNAKEMAKE, "9.40.0", True), (SNAKEMAKE, "9.26.0", False),
    (SNAKEMAKE, "10.0.0", False), (SLURM_JOBSTEP, "0.6.1", True), (SLURM_JOBSTEP, "1.0.0", False),
])
def test_supported_ranges(supported, version, admitted):
    assert supported.admits(version) is admitted


def test_the_installed_versions_are_supported():
    """What CI installs (setup.py's pins) is what the gate admits."""
    for supported in (SNAKEMAKE, SLURM_PLUGIN, SLURM_JOBSTEP):
        assert versions.check(supported) == versions.installed_version(supported.distribution)


def test_setup_pins_the_supported_ranges():
    setup = (Path(__file__).resolve().parent.parent / "setup.py").read_text(encoding="utf-8")
    pinned = re.findall(r'"((?:snakemake)[a-z-]*[<>=!~][^"]*)"', setup)
    assert sorted(pinned) == sorted(s.requirement for s in (SNAKEMAKE, SLURM_PLUGIN, SLURM_JOBSTEP))


def test_a_version_outside_the_range_is_refused_in_one_line(monkeypatch):
    _fake_version(monkeypatch, SLURM_PLUGIN.distribution, "2.9.0")
    with pytest.raises(HostRefusal) as refused:
        versions.check(SLURM_PLUGIN)
    assert str(refused.value) == REFUSAL_290
    _fake_version(monkeypatch, SLURM_PLUGIN.distribution, None)
    with pytest.raises(HostRefusal, match=r"^xmen: snakemake-executor-plugin-slurm \(version unknown\) is not a "):
        versions.check(SLURM_PLUGIN)
