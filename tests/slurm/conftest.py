"""Configuration of the SLURM test suite (tests that submit real jobs to the cluster of tests/slurm/up.sh)."""
from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "slurm: submits real jobs to a SLURM cluster (start one with `bash tests/slurm/up.sh`); "
        "skipped when none is running, a failure when CI=true",
    )
