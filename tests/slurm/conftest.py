"""Configuration of the SLURM test suite (tests that submit real jobs to the cluster of tests/slurm/up.sh)."""
from __future__ import annotations

import pytest

# Figures the SLURM tests measured (e.g. sbatch submissions of the large sweep), printed at the end of the run.
_REPORT: list[str] = []


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "slurm: submits real jobs to a SLURM cluster (start one with `bash tests/slurm/up.sh`); "
        "skipped when none is running, a failure when CI=true",
    )


@pytest.fixture
def slurm_report() -> list[str]:
    """Append a line to have it printed in the run's summary, whatever the output capturing."""
    return _REPORT


def pytest_terminal_summary(terminalreporter) -> None:
    if _REPORT:
        terminalreporter.section("SLURM figures")
        for line in _REPORT:
            terminalreporter.write_line(line)
