"""Property: over generated multi-stage, multi-set requirement DAGs with random statuses, reruns and unlinks,
``xmen run -n`` and ``snakemake -n`` name exactly the same experiments (one planner, issue 11).

The states are made directly in the files both read (status in params.yml, the status file and its mtime,
experiment.yml's links); then the real ``xmen run -n`` and the real ``snakemake -n`` run on them.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as strat

from xmen.store import files
from xmen.sets.expset import ExperimentSet

pytestmark = pytest.mark.timeout(600)

DEFAULTS = "k: 0  # (int) Which experiment\n"
STATES = ("registered", "finished", "finished", "finished", "error", "no-status-file")


@strat.composite
def projects(draw):
    """Stages of sets; each experiment past the first stage requires one experiment or a glob of the stage before."""
    stages = draw(strat.integers(2, 3))
    shape = []
    for stage in range(stages):
        size = draw(strat.integers(1, 3))
        experiments = []
        for k in range(size):
            requires = None
            if stage:
                previous = len(shape[-1])
                requires = draw(strat.one_of(strat.just("*"), strat.integers(0, previous - 1)))
            experiments.append(
                {
                    "requires": requires,
                    "state": draw(strat.sampled_from(STATES)),
                    "age": draw(strat.integers(0, 5)),  # mtime order of status files: reruns
                    "unlinked": stage < stages - 1 and draw(strat.integers(0, 5)) == 0,
                }
            )
        shape.append(experiments)
    return shape


def build(base: Path, shape) -> Path:
    for number, experiments in enumerate(shape):
        root = base / f"s{number}"
        ExperimentSet.init(root, script=base / "script.sh", defaults=base / "defaults.yml")
        exp_set = ExperimentSet(root)
        for k, spec in enumerate(experiments):
            requires = []
            if spec["requires"] == "*":
                requires = [f"../s{number - 1}/*"]
            elif spec["requires"] is not None:
                requires = [f"../s{number - 1}/e{spec['requires']}"]
            exp_set.register({"k": k}, name=f"e{k}", requires=requires)
    now = 1_700_000_000
    for number, experiments in enumerate(shape):
        root = base / f"s{number}"
        for k, spec in enumerate(experiments):
            folder = root / f"e{k}"
            status = {"no-status-file": "finished"}.get(spec["state"], spec["state"])
            files.update_yaml(folder / "params.yml", lambda data, status=status: data.update(_status=status))
            if spec["state"] == "finished":
                done = folder / "xmen.done"
                done.write_text(f"finished\nrun: s{number}/e{k}\n")
                stamp = now + 10 * number + spec["age"]
                os.utime(done, (stamp, stamp))
        for k, spec in enumerate(experiments):
            if spec["unlinked"]:
                ExperimentSet(root).unlink(f"e{k}")
    return base / f"s{len(shape) - 1}"


def xmen_names(root: Path) -> set[str]:
    proc = subprocess.run([sys.executable, "-m", "xmen.cli", "run", "-n"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    names = set()
    for line in proc.stdout.splitlines()[1:]:
        if line.strip() and not line.endswith("would run.") and not line.startswith("Nothing"):
            names.add(line.split()[0])
    return names


def snakemake_names(root: Path) -> set[str]:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return set(re.findall(r"wildcards: exp=(.+)", proc.stdout + proc.stderr))


@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(shape=projects())
def test_xmen_and_snakemake_dry_runs_name_the_same_experiments(xmen_home, tmp_path_factory, shape):
    base = tmp_path_factory.mktemp("dag")
    (base / "script.sh").write_text("#!/bin/bash\necho ran\n")
    (base / "defaults.yml").write_text(DEFAULTS)
    last = build(base, shape)
    assert xmen_names(last) == snakemake_names(last), shape
