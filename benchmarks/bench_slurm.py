"""What does a SLURM job cost an xmen experiment, against baselines measured in the same run, on a real cluster?

Needs a SLURM cluster with accounting (``bash tests/slurm/up.sh`` starts the project's single-node one) and the work
folder on a file system the nodes see (``--tmp``; the default temporary folder is fine on a single node). Every
command runs with HOME, XMEN and XDG_CONFIG_HOME in the work folder and the profiles ``xmen config
--install-profiles`` installs; Snakemake runs with the installed ``slurm`` profile as shipped, plus
``--default-resources <the profile's> slurm_account=ACCOUNT`` (``--account``, default root). Experiments run a shell
script that records its own start and end (``date +%s.%N``) and sleeps; each set asks ``mem_mb=200 runtime=5``.
One line per figure: ``figure  N  xmen  baseline  ratio  unit  target  verdict`` (for the overheads of figure b the
ratio column is the difference xmen - baseline).

a. N experiments of S seconds (``--sizes sweep=30 sleep=1``) through ``snakemake --profile slurm`` against the same
   N, in another set, through the legacy launcher ``xmen run "*" sbatch`` (``#SBATCH --mem=200 --time=5`` header).
   Wall time from the command's start until every experiment's status file is there and every job has ended in
   sacct (the launcher returns after submitting). Target <= 1.5x.
b. From the jobs of (a): job-internal overhead per experiment, sacct's job Elapsed minus the experiment's own time
   (mean over the jobs; sacct has whole seconds), and when the experiment started after the job's Start.
   Target: snakemake's overhead <= the launcher's + 1 s.
c. P tiny experiments (``--sizes pack=1000``) packed with the README's command (``--groups xmen_experiment=pack
   --group-components pack=ceil(P/20) --cores 1``): sbatch submissions (what Snakemake logged, checked against
   sacct) and every experiment's status. Target <= 20 submissions, every status ``finished``. Also what a pack costs
   per experiment: the packs' Elapsed minus the experiments' own time, divided by P (against figure b's baseline).

Other people's jobs share the test cluster: the wall times include their queueing, noted with the queue's length at
the start. Run: ``python benchmarks/bench_slurm.py [--sizes sweep=30 sleep=1 pack=1000] [--figures a,b,c]
[--account root] [--keep] [--tmp DIR]``; a quick run: ``--sizes sweep=4 pack=40``.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yaml

DEFAULT_SIZES = {"sweep": 30, "sleep": 1, "pack": 1000}
MAX_PACKS = 20
RESOURCES = "mem_mb=200 runtime=5"
HEADER = "#SBATCH --mem=200 --time=5"
DEFAULTS = "i: 0  # (int) Index\nsleep: 0  # (float) Seconds to sleep\n"
# Records its own start and end with sub-second resolution (figure b), sleeps, succeeds.
SCRIPT = r"""#!/bin/bash
params="$1"
start=$(date +%s.%N)
sleep "$(sed -n 's/^sleep: *\([^ #]*\).*/\1/p' "$params")"
echo "$start $(date +%s.%N) ${SLURM_JOB_ID:-none}" >> own.txt
"""
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"}


class BenchError(Exception):
    """A benchmark command failed or timed out."""


@dataclass
class Row:
    figure: str
    n: int
    xmen: float
    base: float | None
    unit: str
    target: str
    verdict: str
    diff: bool = False  #: show xmen - baseline instead of the ratio (overheads near zero)

    def line(self) -> str:
        base = "-" if self.base is None else f"{self.base:.2f}"
        if self.diff and self.base is not None:
            ratio = f"{self.xmen - self.base:+.2f}"
        else:
            ratio = f"{self.xmen / self.base:.2f}" if self.base else "-"
        return (f"{self.figure:<48} {self.n:>5} {self.xmen:>8.2f} {base:>9} {ratio:>6}  {self.unit:<4} "
                f"{self.target:<26} {self.verdict}")


HEAD = f"{'figure':<48} {'N':>5} {'xmen':>8} {'baseline':>9} {'ratio':>6}  {'unit':<4} {'target':<26} verdict"


def log(message: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, work: Path, account: str) -> None:
        self.work = work
        self.account = account
        self.env = dict(os.environ, HOME=str(work / "home"), XMEN=str(work / "xmen-config"),
                        XDG_CONFIG_HOME=str(work / "xdg"))
        (work / "home").mkdir(parents=True, exist_ok=True)
        (work / "script.sh").write_text(SCRIPT)
        (work / "defaults.yml").write_text(DEFAULTS)
        self.rows: list[Row] = []
        self.legacy_extra: float | None = None  #: figure b's baseline, shown again in figure c
        self.xmen("config", "--disable_prompt")
        self.xmen("config", "--install-profiles")

    # ------------------------------------------------------------------ commands
    def sh(self, cmd: Sequence[str], cwd: Path | None = None, timeout: float = 120,
           check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(cmd), cwd=cwd or self.work, env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise BenchError(f"exit code {proc.returncode}: {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc

    def xmen(self, *args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        return self.sh([sys.executable, "-m", "xmen.cli", *args], cwd=cwd, timeout=timeout)

    def make_set(self, name: str, count: int, sleep: float) -> Path:
        root = self.work / name
        self.xmen("init", "-s", str(self.work / "script.sh"), "-d", str(self.work / "defaults.yml"), "-r", str(root))
        sweep = "{i: " + " | ".join(str(i) for i in range(count)) + f", sleep: {sleep}" + "}"
        self.xmen("register", sweep, "--resources", RESOURCES, cwd=root)
        return root

    def snakemake(self, root: Path, *extra: str, timeout: float) -> tuple[float, str]:
        """Wall seconds and output of ``snakemake --profile slurm`` in ``root``."""
        profile = yaml.safe_load((self.work / "xdg" / "snakemake" / "slurm" / "config.yaml").read_text())
        defaults = [str(item) for item in profile.get("default-resources") or []]
        cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--default-resources", *defaults,
               f"slurm_account={self.account}", *extra]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=root, env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, start_new_session=True)
        elapsed = time.monotonic() - started
        (self.work / f"snakemake-{root.name}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise BenchError(f"snakemake failed in {root} (log: snakemake-{root.name}.log)")
        return elapsed, proc.stdout + proc.stderr

    # ------------------------------------------------------------------ what happened
    @staticmethod
    def names(root: Path) -> list[str]:
        data = yaml.safe_load((root / "experiment.yml").read_text()) or {}
        return list(data.get("experiments") or {})

    def statuses(self, root: Path) -> dict[str, str]:
        out = {}
        for name in self.names(root):
            params = yaml.safe_load((root / name / "params.yml").read_text()) or {}
            done = (root / name / "xmen.done").is_file()
            out[name] = str(params.get("_status")) + ("" if done else " (no status file)")
        return out

    def sacct(self, jobs: Sequence[str]) -> dict[str, dict[str, str]]:
        fields = ["JobIDRaw", "State", "Start", "End", "ElapsedRaw"]
        proc = self.sh(["sacct", "-n", "-P", "-X", "-j", ",".join(jobs), "-o", ",".join(fields)], timeout=60)
        rows = {}
        for line in proc.stdout.splitlines():
            row = dict(zip(fields, line.split("|")))
            row["State"] = row["State"].split()[0]
            rows[row["JobIDRaw"]] = row
        return rows

    def wait_for_jobs(self, jobs: Sequence[str], timeout: float) -> dict[str, dict[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.sacct(jobs)
            if len(rows) >= len(jobs) and all(r["State"] in TERMINAL and r["End"] != "Unknown" for r in rows.values()):
                return rows
            if time.monotonic() > deadline:
                raise BenchError(f"jobs {','.join(jobs)} did not end within {timeout:.0f} s")
            time.sleep(1)

    @staticmethod
    def own(root: Path, name: str) -> tuple[float, float, str]:
        """(start, end, job id) the experiment recorded itself (its last run)."""
        start, end, job = (root / name / "own.txt").read_text().splitlines()[-1].split()
        return float(start), float(end), job

    def overhead(self, root: Path, rows: dict[str, dict[str, str]]) -> tuple[float, float]:
        """Mean (job Elapsed - the experiment's own time, experiment start - job Start) over the jobs of ``root``."""
        extra, delay = [], []
        for name in self.names(root):
            start, end, job = self.own(root, name)
            row = rows[job]
            extra.append(float(row["ElapsedRaw"]) - (end - start))
            job_start = time.mktime(time.strptime(row["Start"], "%Y-%m-%dT%H:%M:%S"))
            delay.append(start - job_start)
        return sum(extra) / len(extra), sum(delay) / len(delay)

    # ------------------------------------------------------------------ figures
    def figure_ab(self, count: int, sleep: float, figures: set[str]) -> None:
        log(f"a: {count} experiments of {sleep:g} s through snakemake --profile slurm")
        smk = self.make_set("sweep_snakemake", count, sleep)
        wall_smk, text = self.snakemake(smk, timeout=60 * count + 600)
        smk_jobs = sorted({self.own(smk, name)[2] for name in self.names(smk)})
        smk_rows = self.wait_for_jobs(smk_jobs, 120)
        wall_smk = max(wall_smk, 0.0)

        log(f"a: the same {count} through xmen run \"*\" sbatch")
        self.xmen("config", "-H", HEADER)
        try:
            legacy = self.make_set("sweep_sbatch", count, sleep)
        finally:
            self.xmen("config", "-H", "")
        started = time.monotonic()
        proc = self.xmen("run", "*", "sbatch", cwd=legacy)
        ids = re.findall(r"Submitted batch job (\d+)", proc.stdout)
        if len(ids) != count:
            raise BenchError(f"xmen run sbatch submitted {len(ids)} of {count}:\n{proc.stdout}{proc.stderr}")
        deadline = time.monotonic() + 60 * count + 600
        while not all((legacy / name / "xmen.done").is_file() for name in self.names(legacy)):
            if time.monotonic() > deadline:
                raise BenchError("the launcher's experiments did not finish")
            time.sleep(0.5)
        legacy_rows = self.wait_for_jobs(ids, 120)
        wall_legacy = time.monotonic() - started
        for root in (smk, legacy):
            bad = {k: v for k, v in self.statuses(root).items() if v != "finished"}
            if bad:
                raise BenchError(f"{root.name}: not finished: {bad}")
        if "a" in figures:
            ratio = wall_smk / wall_legacy
            self.add(Row(f"a. {count} x {sleep:g}s: snakemake slurm vs xmen run sbatch", count, wall_smk,
                         wall_legacy, "s", "<= 1.5x wall", "ok" if ratio <= 1.5 else "MISSED"))
        if "b" in figures:
            smk_extra, smk_delay = self.overhead(smk, smk_rows)
            legacy_extra, legacy_delay = self.overhead(legacy, legacy_rows)
            self.legacy_extra = legacy_extra
            self.add(Row("b. per job: Elapsed - experiment's own time", count, smk_extra, legacy_extra, "s",
                         "<= baseline + 1 s", "ok" if smk_extra <= legacy_extra + 1 else "MISSED", diff=True))
            self.add(Row("b. per job: experiment start - job Start", count, smk_delay, legacy_delay, "s",
                         "(where it goes)", "-", diff=True))

    def figure_c(self, count: int) -> None:
        per_pack = math.ceil(count / MAX_PACKS)
        log(f"c: {count} tiny experiments, packed {per_pack} to a job")
        root = self.make_set("packed", count, 0)
        wall, text = self.snakemake(root, "--groups", "xmen_experiment=pack", "--group-components",
                                    f"pack={per_pack}", "--cores", "1", timeout=30 * count + 600)
        logged = re.findall(r"has been submitted with SLURM jobid (\d+)", text)
        jobs = sorted({self.own(root, name)[2] for name in self.names(root)})
        statuses = self.statuses(root)
        wrong = {k: v for k, v in statuses.items() if v != "finished"}
        right = not wrong and set(jobs) == set(logged)
        self.add(Row(f"c. {count} tiny packed: sbatch submissions", count, len(logged), None, "jobs",
                     f"<= {MAX_PACKS}, every status right",
                     ("ok" if len(logged) <= MAX_PACKS and right else "MISSED")
                     + ("" if not wrong else f" ({len(wrong)} not finished)")))
        rows = self.wait_for_jobs(jobs, 120)
        own = sum(end - start for start, end, _ in (self.own(root, name) for name in self.names(root)))
        per_experiment = (sum(float(row["ElapsedRaw"]) for row in rows.values()) - own) / count
        self.add(Row(f"c. {count} tiny packed: snakemake wall", count, wall, None, "s", "(for reference)", "-"))
        self.add(Row("c. per experiment: (pack Elapsed - own time) / N", count, per_experiment, self.legacy_extra,
                     "s", "(a pack's cost per experiment)", "-", diff=True))

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(row.line(), flush=True)


def parse_sizes(items: Sequence[str]) -> dict[str, float]:
    sizes: dict[str, float] = dict(DEFAULT_SIZES)
    for item in items:
        key, _, value = item.partition("=")
        if key not in DEFAULT_SIZES or not value:
            raise SystemExit(f"Error: --sizes: expected {'/'.join(DEFAULT_SIZES)}=NUMBER, got {item!r}")
        sizes[key] = float(value)
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="*", default=[], help="sweep=30 sleep=1 pack=1000")
    parser.add_argument("--figures", default="a,b,c")
    parser.add_argument("--account", default="root", help="slurm_account of the snakemake runs")
    parser.add_argument("--tmp", default=None, help="where to build the sets (the nodes must see it)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.sizes)
    figures = set(args.figures.split(","))
    for tool in ("sbatch", "sacct", "squeue"):
        if shutil.which(tool) is None:
            print(f"Error: {tool} not found: this benchmark needs a SLURM cluster", file=sys.stderr)
            return 1
    queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    work = Path(tempfile.mkdtemp(prefix="xmen-bench-slurm-", dir=args.tmp))
    started = time.perf_counter()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} on {os.uname().nodename}; sizes "
          f"{', '.join(f'{k}={v:g}' for k, v in sizes.items())}; {len(queue)} other job(s) in the queue at the start "
          f"(the cluster is shared: wall times include their queueing)")
    print(HEAD, flush=True)
    bench = Bench(work, args.account)
    try:
        if figures & {"a", "b"}:
            bench.figure_ab(int(sizes["sweep"]), sizes["sleep"], figures)
        if "c" in figures:
            bench.figure_c(int(sizes["pack"]))
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        print(f"# total {time.perf_counter() - started:.0f} s; load average now "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if args.keep:
            print(f"# kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
