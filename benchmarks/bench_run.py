"""How fast do ``xmen run``, ``xmen run -n`` and ``xmen register`` go, against baselines measured in the same run?

Builds synthetic sets of trivial experiments in a temporary folder with the real command line
(``xmen init -s script.sh -d defaults.yml -r ROOT`` with a script that does nothing, then ``xmen register "{i: 0 | 1 |
...}"``; two keys ``i`` x ``j`` above 1,000 combinations, e.g. 100 x 100 for 10,000) and prints one line per figure:
``figure  N  xmen_s  baseline_s  ratio  target  verdict  cpu_s``, where ``cpu_s`` is the user + system CPU seconds of
the command and of the baseline (with their children): on a shared machine CPU time varies less than wall time.
The ``xmen`` executable next to this interpreter is used (not a shim on PATH); Snakemake is ``python -m snakemake``.

1. Local run of N pending experiments: ``xmen run`` (1a) and ``snakemake`` with the set's default profile (1b), each
   in its own freshly registered set, against the floor ``find -name run.sh | xargs -0 -P 2 -n 1 bash`` (the same
   run.sh files, so the job runner ``python -m xmen.job`` is included), against ``xargs ... bash -c true`` (the bare
   process floor), and against plain Snakemake with its defaults (``--workflow-profile none --cores 2``) on a minimal
   wildcard Snakefile (``rule all: input: expand("{e}/done", ...)``, ``rule x: output: "{e}/done" shell: "bash
   {wildcards.e}/run.sh && touch {output}"``) in another fresh copy of the set. Target: xmen <= 5x the floor
   (stretch <= 2x). Every variant runs the same N: 1,000 by default (the job runner makes a 5,000 run take
   ~7 minutes per variant on 2 cores, and plain Snakemake is quadratic), 5,000 with ``--large``.
2. Dry run of N=10,000 pending: ``xmen run -n`` and ``snakemake -n -q`` in the set root against ``snakemake -n -q`` on
   the minimal Snakefile over the same folders. Target <= 1.1x.
3. The same when all 10,000 are finished. The status files are written directly, not by running them: ``xmen.done``
   (and ``done`` for the minimal Snakefile) in each folder and ``_status: finished`` in each params.yml. Neither
   Snakefile then has Snakemake metadata for the outputs, which if anything makes the baseline cheaper. Baselines:
   the minimal Snakefile with everything done (``-n -q`` for dry runs, ``--cores 2`` for runs). Target: xmen <= 1 s.
4. ``xmen register`` of a 10,000-combination sweep (wall time of the command) against a plain Python loop in its own
   interpreter writing the same folders and files (mkdir + params.yml text + run.sh text, no atomicity, no fsync).
   Target <= 3x and <= 2 s.
5. ``python -c "import xmen"`` against ``python -c pass``, medians of 21 interleaved runs. Target <= +60 ms.

The commands of figures 2 and 3 run 3 times each, interleaved (A B C A B C ...), and the median run is shown. Every
command runs with HOME, XMEN and XDG_CONFIG_HOME pointing into the temporary folder, so neither the user's xmen
configuration nor their Snakemake profiles are read or changed, and with SLURM_CONF naming an empty file (the SLURM
executor plugin runs ``scontrol show config`` at every Snakemake start, which waits ~9 s where the SLURM client is
installed but no controller answers). Each run is checked to have finished every
experiment (a warning is printed otherwise). Default run: about 10 minutes on 2 cores; ``--large`` adds ~35 minutes.
``--tmp /dev/shm`` builds everything on tmpfs, which takes the disk (fsync, inode allocation) out of the figures.

Run: ``python benchmarks/bench_run.py [--large] [--sizes run=1000 dry=10000 register=10000] [--figures 1,2,3,4,5]
[--keep DIR] [--tmp DIR]``.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = {"run": 1000, "dry": 10000, "register": 10000}
LARGE_SIZES = {"run": 5000}
SCRIPT = "#!/bin/bash\ntrue\n"
DEFAULTS = "i: 0  # (int) First index\nj: 0  # (int) Second index\n"
PLAIN_SNAKEFILE = """\
NAMES = [line.rstrip("\\n") for line in open("bench-names.txt", encoding="utf-8") if line.strip()]

rule all:
    input: expand("{e}/done", e=NAMES)

rule x:
    output: "{e}/done"
    shell: "bash {wildcards.e}/run.sh && touch {output}"
"""
# The baseline of figure 4: what register writes, as plain text, in a fresh interpreter (argv: root names_file).
REGISTER_LOOP = """\
import os, sys
root, names_file = sys.argv[1], sys.argv[2]
python = sys.executable
names = open(names_file, encoding="utf-8").read().split()
meta = "  mac: '0x000000000000'\\n  host: host\\n  user: user\\n  home: /home/user\\n"
for name in names:
    folder = os.path.join(root, name)
    os.mkdir(folder)
    values = dict(part.split("=", 1) for part in name.split("__"))
    params = (
        f"_name: {name}  # The name of the experiment (its folder)\\n"
        f"_root: {root}  # The experiment set it belongs to\\n"
        "_status: registered  # default | registered | running | finished | error | stopped | timeout\\n"
        "_created: 2026-01-01-00-00-00  # The date the experiment was created\\n"
        "_purpose: ''  # A description of the experiment purpose\\n"
        "_version: null  # Experiment version information\\n"
        "_meta:  # Machine and user that registered the experiment\\n" + meta +
        "_messages: {}  # Messages left by the experiment\\n"
        f"i: {values.get('i', 0)}  # (int) First index\\n"
        f"j: {values.get('j', 0)}  # (int) Second index\\n"
    )
    with open(os.path.join(folder, "params.yml"), "w", encoding="utf-8") as handle:
        handle.write(params)
    run = (
        "#!/bin/bash\\n# Generated by xmen: runs the set's script.sh on this experiment's params.yml through xmen's"
        " job runner,\\n# which records running/finished/error/timeout in params.yml.\\n"
        f"cd {folder} || exit 1\\nexec {python} -m xmen.job {folder}/params.yml {root}/script.sh\\n"
    )
    path = os.path.join(folder, "run.sh")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(run)
    os.chmod(path, 0o755)
"""


class BenchError(Exception):
    """A benchmark command failed or timed out."""


@dataclass(frozen=True)
class M:
    """One measurement: wall seconds and the CPU seconds (user + sys) of the command and its waited-for children."""

    wall: float
    cpu: float


@dataclass
class Row:
    figure: str
    n: int
    xmen: M
    base: M
    target: str
    verdict: str

    def line(self) -> str:
        def num(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}"

        ratio = f"{self.xmen.wall / self.base.wall:.2f}" if self.base.wall else "-"
        return (
            f"{self.figure:<44} {self.n:>6} {num(self.xmen.wall):>9} {num(self.base.wall):>10} {ratio:>6}  "
            f"{self.target:<18} {self.verdict:<14} {self.xmen.cpu:.2f}/{self.base.cpu:.2f}"
        )


HEAD = (
    f"{'figure':<44} {'N':>6} {'xmen_s':>9} {'baseline_s':>10} {'ratio':>6}  {'target':<18} {'verdict':<14} "
    "cpu_s(xmen/base)"
)


@dataclass
class Bench:
    work: Path
    env: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ commands
    def xmen_cmd(self) -> list[str]:
        exe = shutil.which("xmen", path=os.path.dirname(sys.executable))
        return [exe] if exe else [sys.executable, "-m", "xmen.cli"]

    def snakemake_cmd(self) -> list[str]:
        return [sys.executable, "-m", "snakemake"]

    def run(self, cmd: Sequence[str], cwd: Path, log: str, timeout: float, check: bool = True) -> M:
        """Wall seconds of ``cmd`` (output appended to a log in the work folder); kills its process group on timeout."""
        log_path = self.work / "logs" / log
        log_path.parent.mkdir(exist_ok=True)
        with open(log_path, "ab") as out:
            out.write(f"\n$ {' '.join(cmd)}\n".encode())
            out.flush()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = subprocess.Popen(
                list(cmd), cwd=cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise BenchError(f"timed out after {timeout:.0f} s: {' '.join(cmd)} (log: logs/{log})") from None
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if check and code != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-5:]
            raise BenchError(f"exit code {code}: {' '.join(cmd)}\n  " + "\n  ".join(tail))
        return M(elapsed, cpu)

    def medians(
        self, commands: Sequence[tuple[Sequence[str], str]], cwd: Path, timeout: float, rounds: int = 3
    ) -> list[M]:
        """For each (command, log): the run of median wall time among ``rounds`` runs, interleaved round by round.

        Interleaving spreads a burst of load from other processes over all the commands compared.
        """
        runs: list[list[M]] = [[] for _ in commands]
        for _ in range(rounds):
            for index, (cmd, log) in enumerate(commands):
                runs[index].append(self.run(cmd, cwd, log, timeout))
        return [sorted(r, key=lambda m: m.wall)[(len(r) - 1) // 2] for r in runs]

    # ------------------------------------------------------------------ sets
    def make_set(self, name: str, n: int, timeout: float) -> tuple[Path, M]:
        """A registered set of ``n`` trivial experiments; (root, wall seconds of ``xmen register``)."""
        root = self.work / name
        self.run(self.xmen_cmd() + ["init", "-s", "script.sh", "-d", "defaults.yml", "-r", str(root)], self.work,
                 f"{name}.log", 60)
        elapsed = self.run(self.xmen_cmd() + ["register", sweep_text(n)], root, f"{name}.log", timeout)
        if count_folders(root) != n:
            raise BenchError(f"{name}: register made {count_folders(root)} folders, expected {n}")
        return root, elapsed

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(row.line(), flush=True)

    def check_finished(self, root: Path, n: int, what: str) -> None:
        finished = count_finished(root)
        if finished != n:
            self.notes.append(f"WARNING: {what}: only {finished} of {n} experiments finished")
            print(f"WARNING: {what}: only {finished} of {n} experiments finished", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ figures
    def figure1(self, n: int) -> None:
        timeout = max(600.0, n * 0.6)
        progress(f"figure 1: building four sets of {n} (xmen run, snakemake, xargs, plain Snakefile)")
        set_run, _ = self.make_set("f1-xmen-run", n, 300)
        set_smk, _ = self.make_set("f1-snakemake", n, 300)
        set_xargs, _ = self.make_set("f1-xargs", n, 300)
        set_plain, _ = self.make_set("f1-plain", n, 300)
        write_plain(set_plain)

        progress(f"figure 1: xmen run ({n})")
        t_run = self.run(self.xmen_cmd() + ["run"], set_run, "f1-xmen-run.log", timeout)
        self.check_finished(set_run, n, "xmen run")
        progress(f"figure 1: snakemake ({n})")
        t_smk = self.run(self.snakemake_cmd(), set_smk, "f1-snakemake.log", timeout)
        self.check_finished(set_smk, n, "snakemake")
        progress(f"figure 1: xargs -P 2 over run.sh ({n})")
        find = "find . -mindepth 2 -maxdepth 2 -name run.sh -print0 | xargs -0 -P 2 -n 1 bash"
        t_floor = self.run(["bash", "-c", find], set_xargs, "f1-xargs.log", timeout)
        self.check_finished(set_xargs, n, "xargs run.sh")
        t_bare = self.run(["bash", "-c", find + " -c true"], set_xargs, "f1-xargs-bare.log", timeout)
        progress(f"figure 1: plain snakemake, minimal Snakefile ({n})")
        t_plain = self.run(
            self.snakemake_cmd() + ["-s", "plain.smk", "--workflow-profile", "none", "--cores", "2"],
            set_plain, "f1-plain.log", max(timeout, n * 1.0),
        )
        self.check_finished(set_plain, n, "plain snakemake")

        for label, value in (("1a xmen run", t_run), ("1b snakemake (profile)", t_smk)):
            for base, what in ((t_floor, "xargs run.sh"), (t_bare, "xargs bash -c true")):
                self.add(Row(f"{label} / {what}", n, value, base, "<=5x (stretch 2x)",
                             ratio_verdict(value.wall, base.wall, 5, 2)))
            self.add(Row(f"{label} / plain snakemake", n, value, t_plain, "info", "-"))
        per = 1000.0 / n
        self.notes.append(
            "1: wall ms per experiment (2 at a time): " + ", ".join(
                f"{what} {m.wall * per:.1f}" for what, m in (
                    ("xmen run", t_run), ("snakemake", t_smk), ("xargs run.sh", t_floor),
                    ("xargs bash -c true", t_bare), ("plain snakemake", t_plain),
                )
            )
        )

    def figure4(self, n: int) -> Path:
        progress(f"figure 4: xmen register of {n}")
        root, t_reg = self.make_set("f4-register", n, 600)
        progress(f"figure 4: plain Python loop writing {n} folders")
        loop_root = self.work / "f4-loop"
        loop_root.mkdir()
        (self.work / "register-loop.py").write_text(REGISTER_LOOP, encoding="utf-8")
        names = self.work / "f4-names.txt"
        names.write_text("\n".join(folder_names(root)) + "\n", encoding="utf-8")
        t_loop = self.run([sys.executable, str(self.work / "register-loop.py"), str(loop_root), str(names)],
                          self.work, "f4-loop.log", 600)
        if count_folders(loop_root) != n:
            raise BenchError(f"the register loop made {count_folders(loop_root)} folders, expected {n}")
        ok = t_reg.wall <= 2.0 and t_reg.wall <= 3 * t_loop.wall
        self.add(Row("4 xmen register / python loop", n, t_reg, t_loop, "<=3x and <=2 s", "ok" if ok else "MISS"))
        return root

    def figure2(self, root: Path, n: int) -> None:
        write_plain(root)
        progress(f"figure 2: dry runs of {n} pending")
        t_xmen, t_smk, t_plain = self.medians([
            (self.xmen_cmd() + ["run", "-n"], "f2-xmen-n.log"),
            (self.snakemake_cmd() + ["-n", "-q"], "f2-snakemake-n.log"),
            (self.snakemake_cmd() + ["-s", "plain.smk", "--workflow-profile", "none", "-n", "-q"], "f2-plain-n.log"),
        ], root, 600)
        for label, value in (("2 xmen run -n / plain -n -q", t_xmen), ("2 snakemake -n -q / plain -n -q", t_smk)):
            self.add(Row(label, n, value, t_plain, "<=1.1x", ratio_verdict(value.wall, t_plain.wall, 1.1)))

    def figure3(self, root: Path, n: int) -> None:
        progress(f"figure 3: marking all {n} finished (status files written directly)")
        mark_finished(root)
        self.check_finished(root, n, "marking finished")
        write_plain(root)
        progress("figure 3: dry runs and runs with nothing to do")
        plain = self.snakemake_cmd() + ["-s", "plain.smk", "--workflow-profile", "none"]
        t_plain_n, t_plain_run, *measured = self.medians([
            (plain + ["-n", "-q"], "f3-plain-n.log"),
            (plain + ["--cores", "2"], "f3-plain-run.log"),
            (self.xmen_cmd() + ["run", "-n"], "f3-xmen-n.log"),
            (self.xmen_cmd() + ["run"], "f3-xmen-run.log"),
            (self.snakemake_cmd() + ["-n", "-q"], "f3-snakemake-n.log"),
            (self.snakemake_cmd(), "f3-snakemake-run.log"),
        ], root, 600)
        rows = [
            ("3 xmen run -n, all done / plain -n -q", t_plain_n, "<=1 s"),
            ("3 xmen run, all done / plain run", t_plain_run, "<=1 s"),
            ("3 snakemake -n -q, all done / plain", t_plain_n, "info (<=1 s)"),
            ("3 snakemake, all done / plain run", t_plain_run, "info (<=1 s)"),
        ]
        for (label, base, target), value in zip(rows, measured):
            verdict = "ok" if value.wall <= 1 else ("MISS" if target == "<=1 s" else "over")
            self.add(Row(label, n, value, base, target, verdict))

    def figure5(self, runs: int = 21) -> None:
        progress("figure 5: import xmen")
        with_xmen: list[M] = []
        bare: list[M] = []
        for _ in range(runs):
            bare.append(self.run([sys.executable, "-c", "pass"], self.work, "f5.log", 60))
            with_xmen.append(self.run([sys.executable, "-c", "import xmen"], self.work, "f5.log", 60))
        t_xmen = M(statistics.median(m.wall for m in with_xmen), statistics.median(m.cpu for m in with_xmen))
        t_bare = M(statistics.median(m.wall for m in bare), statistics.median(m.cpu for m in bare))
        extra_ms = (t_xmen.wall - t_bare.wall) * 1000
        verdict = f"{'ok' if extra_ms <= 60 else 'MISS'} ({extra_ms:+.0f} ms)"
        self.add(Row("5 import xmen / python -c pass", runs, t_xmen, t_bare, "<=+60 ms", verdict))
        self.notes.append(
            f"5: fastest of {runs}: import xmen {min(m.wall for m in with_xmen) * 1000:.0f} ms, python -c pass "
            f"{min(m.wall for m in bare) * 1000:.0f} ms (the interpreter start includes this installation's .pth files)"
        )


# ---------------------------------------------------------------------- helpers
def progress(message: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def ratio_verdict(value: float, base: float, target: float, stretch: float | None = None) -> str:
    ratio = value / base if base else float("inf")
    if stretch is not None and ratio <= stretch:
        return "ok (stretch)"
    return "ok" if ratio <= target else "MISS"


def split_sizes(n: int) -> list[int]:
    """Alternatives per key: one key up to 1,000, else two keys as close to square as N's divisors allow."""
    if n <= 1000:
        return [n]
    small = max(d for d in range(1, int(n ** 0.5) + 1) if n % d == 0)
    return [n] if small == 1 else [n // small, small]


def sweep_text(n: int) -> str:
    parts = []
    for key, count in zip("ij", split_sizes(n)):
        values = " | ".join(str(v) for v in range(count))
        parts.append(f"{key}: {values}" if count > 1 else f"{key}: 0")
    return "{" + ", ".join(parts) + "}"


def folder_names(root: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and os.path.isfile(os.path.join(e.path, "params.yml")))


def count_folders(root: Path) -> int:
    return len(folder_names(root))


def count_finished(root: Path) -> int:
    finished = 0
    for name in folder_names(root):
        with open(root / name / "params.yml", encoding="utf-8") as handle:
            if "\n_status: finished" in handle.read():
                finished += 1
    return finished


def write_plain(root: Path) -> None:
    (root / "plain.smk").write_text(PLAIN_SNAKEFILE, encoding="utf-8")
    (root / "bench-names.txt").write_text("\n".join(folder_names(root)) + "\n", encoding="utf-8")


def mark_finished(root: Path) -> None:
    """What a finished run leaves, written directly: xmen.done, done (plain Snakefile), _status: finished."""
    for name in folder_names(root):
        folder = root / name
        params = folder / "params.yml"
        text = params.read_text(encoding="utf-8")
        params.write_text(text.replace("\n_status: registered", "\n_status: finished", 1), encoding="utf-8")
        (folder / "xmen.done").write_text("finished\n", encoding="utf-8")
        (folder / "done").write_text("", encoding="utf-8")


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def header() -> list[str]:
    try:
        import yaml

        libyaml = "libyaml" if hasattr(yaml, "CSafeLoader") else "pure Python"
    except ImportError:  # pragma: no cover
        libyaml = "?"
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    bash = subprocess.run(["bash", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    try:
        import xmen

        origin = "this checkout" if Path(xmen.__file__).resolve().is_relative_to(REPO) else "installed copy"
    except ImportError:  # pragma: no cover
        origin = "not importable"
    return [
        f"# xmen run benchmarks, {time.strftime('%Y-%m-%d %H:%M')}",
        f"# machine: {cores} cores ({usable} usable), {platform.machine()}, {platform.system()} {platform.release()}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"# python {platform.python_version()}, snakemake {version('snakemake')}, xmen {version('xmen')} ({origin}), "
        f"PyYAML {version('PyYAML')} ({libyaml}), click {version('click')}, "
        f"snakemake-executor-plugin-slurm {version('snakemake-executor-plugin-slurm')}",
        f"# {bash}",
    ]


def parse_sizes(items: Sequence[str], large: bool) -> dict[str, int]:
    sizes = dict(DEFAULT_SIZES)
    if large:
        sizes.update(LARGE_SIZES)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULT_SIZES or not value.isdigit() or int(value) < 1:
            raise SystemExit(f"--sizes: expected run=N, dry=N or register=N, got {item!r}")
        sizes[key] = int(value)
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", action="store_true", help="Figure 1 at N=5,000 (adds ~35 minutes).")
    parser.add_argument("--sizes", nargs="*", default=[], metavar="KEY=N",
                        help="run=N (figure 1), dry=N (figures 2 and 3), register=N (figure 4).")
    parser.add_argument("--figures", default="1,2,3,4,5", help="Which figures, e.g. 4,5 (default: all).")
    parser.add_argument("--keep", metavar="DIR", help="Build in DIR (must not exist) and keep it.")
    parser.add_argument("--tmp", metavar="DIR", help="Make the temporary folder in DIR (e.g. /dev/shm: no disk I/O).")
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.sizes, args.large)
    figures = {f.strip() for f in args.figures.split(",") if f.strip()}

    if args.keep:
        work = Path(args.keep).absolute()
        work.mkdir(parents=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="xmen-bench-run-", dir=args.tmp))
    env = dict(os.environ)
    for var, sub in (("HOME", "home"), ("XMEN", "xmen-config"), ("XDG_CONFIG_HOME", "xdg-config")):
        (work / sub).mkdir()
        env[var] = str(work / sub)
    # Every Snakemake start imports the SLURM executor plugin, which asks `scontrol show config` (MinJobAge); with
    # the SLURM client installed but no controller answering, that blocks ~9 s per command, on both sides of every
    # figure. An empty SLURM_CONF makes scontrol fail at once (one naming no file makes it search the network for
    # a controller: ~60 s); no figure here uses SLURM.
    (work / "empty-slurm.conf").write_text("", encoding="utf-8")
    env["SLURM_CONF"] = str(work / "empty-slurm.conf")
    (work / "script.sh").write_text(SCRIPT, encoding="utf-8")
    (work / "script.sh").chmod(0o755)
    (work / "defaults.yml").write_text(DEFAULTS, encoding="utf-8")

    for line in header():
        print(line)
    fs = subprocess.run(["df", "-T", str(work)], capture_output=True, text=True).stdout.splitlines()[-1:]
    print(f"# sizes: {', '.join(f'{k}={v}' for k, v in sizes.items())}; figures {','.join(sorted(figures))}; "
          f"file system of the work folder: {fs[0].split()[1] if fs and len(fs[0].split()) > 1 else '?'}")
    print(HEAD, flush=True)
    bench = Bench(work, env)
    started = time.perf_counter()
    code = 0
    try:
        if "5" in figures:
            bench.figure5()
        dry_root: Path | None = None
        if "4" in figures:
            dry_root = bench.figure4(sizes["register"])
            if sizes["register"] != sizes["dry"]:
                dry_root = None
        if figures & {"2", "3"}:
            if dry_root is None:
                progress(f"figures 2-3: registering {sizes['dry']}")
                dry_root, _ = bench.make_set("f23", sizes["dry"], 600)
            if "2" in figures:
                bench.figure2(dry_root, sizes["dry"])
            if "3" in figures:
                bench.figure3(dry_root, sizes["dry"])
        if "1" in figures:
            bench.figure1(sizes["run"])
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        code = 1
    finally:
        print()
        print(HEAD)
        for row in sorted(bench.rows, key=lambda r: r.figure.split()[0]):
            print(row.line())
        for note in bench.notes:
            print(f"# {note}")
        print(f"# total {time.perf_counter() - started:.0f} s; load average now "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        if args.keep:
            print(f"# kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
