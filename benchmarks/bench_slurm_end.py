"""How long after its last SLURM job does ``snakemake --profile slurm`` (the shipped profile) exit?

Needs the cluster of tests/slurm/up.sh (or any SLURM with accounting where this machine's /tmp is shared with the
nodes). Builds sets of plain shell experiments in a temporary folder, with HOME, XMEN and XDG_CONFIG_HOME there and
the profiles installed by ``xmen config --install-profiles``, and runs in each set
``python -m snakemake --profile slurm --default-resources <the profile's own> slurm_account=root``: nothing else is
changed from the shipped profile (``slurm_account=root`` only silences the plugin's account guessing).

For each shape it prints ``figure  lag_s  target  verdict``, where lag_s is the time from the end of the run's last
job (sacct ``End``, whole seconds, so the figure is up to 1 s too high) to the exit of snakemake, and, for
comparison, from the end of the last experiment process (its script writes ``date +%s.%N`` when it is done):

- ``sweep``: 4 experiments sleeping 1 to 4 s (jobs end one after another, as in a sweep);
- ``lone``: 1 experiment sleeping 15 s (the last job runs alone for several status polls: the plugin's interval has
  grown by 10 s per poll that saw no job end, see config/slurm/config.yaml).

Target: <= 5 s. Run: ``python benchmarks/bench_slurm_end.py [--shapes sweep,lone] [--repeat 2] [--keep DIR]``.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

TARGET_S = 5.0
SHAPES = {"sweep": [1, 2, 3, 4], "lone": [15]}
DEFAULTS = "sleep: 0  # (float) Seconds to sleep (default=0)\n"
SCRIPT = r"""#!/bin/bash
sleep "$(sed -n 's/^sleep: *\([0-9.]*\).*/\1/p' "$1")"
date +%s.%N > "$(dirname "$1")/ended.txt"
"""


def sh(*cmd: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def xmen(*args: str, cwd: Path) -> None:
    proc = sh(sys.executable, "-m", "xmen.cli", *args, cwd=cwd)
    if proc.returncode != 0:
        sys.exit(f"xmen {' '.join(args)} failed: {proc.stderr.strip()}")


def job_ends(uuid: str, count: int, timeout: float = 60) -> list[float]:
    """sacct End of the run's jobs as Unix times (records reach slurmdbd asynchronously: wait for all)."""
    deadline = time.monotonic() + timeout
    while True:
        proc = sh("sacct", "-n", "-P", "-X", "--name", uuid, "-S", "now-1hour", "-o", "End")
        ends = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
        if len(ends) >= count and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", e) for e in ends):
            return [time.mktime(time.strptime(e, "%Y-%m-%dT%H:%M:%S")) for e in ends]
        if time.monotonic() > deadline:
            sys.exit(f"sacct did not show {count} ended jobs of run {uuid}: {ends}")
        time.sleep(1)


def measure(base: Path, shape: str, sleeps: list[float], trial: int) -> tuple[float, float]:
    """(lag after the last job's sacct End, lag after the last experiment's own end) of one run."""
    root = base / f"{shape}-{trial}"
    xmen("init", "-s", str(base / "script.sh"), "-d", str(base / "defaults.yml"), "-r", str(root), cwd=base)
    sweep = "{sleep: " + " | ".join(str(s) for s in sleeps) + "}"
    xmen("register", sweep, "--resources", "mem_mb=100 runtime=5", cwd=root)
    profile = yaml.safe_load((base / "xdg" / "snakemake" / "slurm" / "config.yaml").read_text())
    defaults = [str(item) for item in profile.get("default-resources") or []]
    command = [sys.executable, "-m", "snakemake", "--profile", "slurm",
               "--default-resources", *defaults, "slurm_account=root"]
    proc = sh(*command, cwd=root, timeout=600)
    exited = time.time()
    text = proc.stdout + proc.stderr
    (root / "snakemake.log").write_text(text)
    match = re.search(r"SLURM run ID: (\S+)", text)
    if proc.returncode != 0 or not match:
        sys.exit(f"snakemake failed ({proc.returncode}) in {root}:\n{text[-3000:]}")
    last_job = max(job_ends(match.group(1), len(sleeps)))
    last_experiment = max(float((p.parent / "ended.txt").read_text()) for p in root.glob("*/params.yml"))
    return exited - last_job, exited - last_experiment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="sweep,lone", help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--repeat", type=int, default=2, help="runs per shape (default 2)")
    parser.add_argument("--keep", help="build in this folder and keep it")
    args = parser.parse_args()
    for tool in ("sbatch", "sacct"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: this benchmark needs a SLURM cluster (tests/slurm/up.sh)")
    base = Path(args.keep or tempfile.mkdtemp(prefix="xmen-bench-slurm-end-")).absolute()
    base.mkdir(parents=True, exist_ok=True)
    for name, value in (("HOME", base / "home"), ("XMEN", base / "xmen-config"), ("XDG_CONFIG_HOME", base / "xdg")):
        os.environ[name] = str(value)
    (base / "home").mkdir(exist_ok=True)
    (base / "script.sh").write_text(SCRIPT)
    (base / "defaults.yml").write_text(DEFAULTS)
    xmen("config", "--disable_prompt", cwd=base)
    xmen("config", "--install-profiles", "--force", cwd=base)
    init = yaml.safe_load((base / "xdg" / "snakemake" / "slurm" / "config.yaml").read_text()).get(
        "slurm-init-seconds-before-status-checks")
    print(f"shipped slurm profile: slurm-init-seconds-before-status-checks = {init}")
    print(f"{'figure':<44} {'lag_s':>6} {'target':>7}  verdict")
    worst = 0.0
    try:
        for shape in [s for s in args.shapes.split(",") if s]:
            for trial in range(1, args.repeat + 1):
                after_job, after_experiment = measure(base, shape, SHAPES[shape], trial)
                worst = max(worst, after_job)
                verdict = "ok" if after_job <= TARGET_S else "MISSED"
                print(f"{f'{shape} #{trial}: last job end -> snakemake exits':<44} {after_job:6.1f} "
                      f"{TARGET_S:7.1f}  {verdict}")
                print(f"{f'{shape} #{trial}: last experiment end -> exits':<44} {after_experiment:6.1f}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"worst: {worst:.1f} s (target <= {TARGET_S:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
