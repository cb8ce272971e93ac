"""How fast is ``xmen list`` on big sets, against simply parsing every params.yml?

Builds a synthetic set of N trivial experiments (N=10,000; ``--large`` adds 100,000) in a temporary folder, then
times, for each N:

* ``baseline``: reading every ``params.yml`` with ``yaml.load(..., Loader=yaml.CSafeLoader)`` (no output),
* the library (``collect`` + columns + table text) with no index (``lib-cold``) and with one (``lib-warm``),
* the command (``xmen list`` if the ``xmen`` executable exists, else ``python -m xmen.cli.list``) with no index
  (``cli-cold``), with one (``cli-warm``), after one experiment changed (``cli-1-changed``) and as CSV;
  if the page cache can be dropped (root, writable /proc/sys/vm/drop_caches) also ``cli-dropcache``.

Prints ``figure  N  xmen_s  baseline_s  ratio`` lines and the peak RSS of the command at the largest N.
Run: ``python benchmarks/bench_list.py [--large] [-n N ...] [--keep DIR]``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from xmen.look import listing  # noqa: E402
from xmen.look.index import cache_folder  # noqa: E402
from xmen.store.layout import REGISTER_KEYS, comments as key_comments  # noqa: E402
from xmen.store.files import dump_params, dump_yaml  # noqa: E402

# The comments xmen writes into every params.yml, so the synthetic files look like registered ones.
_COMMENTS = {
    **key_comments(REGISTER_KEYS),
    "lr": "Learning rate",
    "seed": "Random seed",
}


def build_set(root: Path, n: int) -> None:
    """A set of ``n`` registered/finished experiments written like ``xmen register`` writes them (minus fsync)."""
    root.mkdir(parents=True)
    statuses = ("registered", "finished", "error", "registered")
    names = []
    for i in range(n):
        name = f"lr={10 ** -(i % 5)}__seed={i}"
        names.append(name)
        folder = root / name
        folder.mkdir()
        params = {
            "_name": name,
            "_root": str(root),
            "_status": statuses[i % len(statuses)],
            "_created": "2020-03-09-16-42-25",
            "_purpose": "benchmark",
            "_version": {
                "module": "/home/user/project/experiment.py",
                "class": "AnExperiment",
                "git": {"local": "/home/user/project", "remote": "git@example.org:x.git",
                        "commit": "bbe75180debc80b03c520c5574f4d7e88d262909", "branch": "main", "dirty": False},
            },
            "_meta": {"mac": "0x6c96cfdb71b9", "host": "node01", "user": "user", "home": "/home/user"},
            "_messages": {"loss": 1.0 / (i + 1), "step": i} if i % 4 == 1 else {},
            "lr": 10 ** -(i % 5),
            "seed": i,
        }
        (folder / "params.yml").write_text(dump_params(params, _COMMENTS), encoding="utf-8")
    data = {
        "root": str(root), "type": "AnExperiment", "created": "2020-03-09-16-42-13", "purpose": "benchmark",
        "notes": [], "script": "script.sh", "defaults": "defaults.yml", "experiments": {k: {} for k in names},
    }
    (root / "experiment.yml").write_text(dump_yaml(data), encoding="utf-8")


def baseline(root: Path) -> float:
    """Seconds to parse every linked params.yml with the C loader."""
    names = list(yaml.load((root / "experiment.yml").read_text(), Loader=yaml.CSafeLoader)["experiments"])
    start = time.perf_counter()
    for name in names:
        with open(root / name / "params.yml", encoding="utf-8") as handle:
            yaml.load(handle.read(), Loader=yaml.CSafeLoader)
    return time.perf_counter() - start


def library(root: Path) -> float:
    """Seconds for what ``xmen list`` does in-process: collect, choose columns, format the table."""
    start = time.perf_counter()
    result = listing.collect([str(root)], cwd=str(root))
    labels, columns = listing.table_columns(result)
    listing.render_table(labels, columns)
    return time.perf_counter() - start


def command() -> list[str]:
    exe = shutil.which("xmen")
    return [exe, "list"] if exe else [sys.executable, "-m", "xmen.cli.list"]


def run_cli(root: Path, *extra: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one ``xmen list`` child process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    proc = subprocess.Popen([*command(), str(root), *extra], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"xmen list failed ({proc.returncode}): {err}")
    return elapsed, usage.ru_maxrss


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def best(fn, repeat: int = 3) -> float:
    return min(fn() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also measure 100,000 experiments")
    parser.add_argument("-n", type=int, action="append", help="set sizes (default 10000)")
    parser.add_argument("--keep", metavar="DIR", help="build the sets in DIR and keep them")
    args = parser.parse_args()
    sizes = args.n or [10_000]
    if args.large and 100_000 not in sizes:
        sizes.append(100_000)

    top = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="xmen-bench-"))
    print(f"# command: {' '.join(command()[:2])} ...; sets in {top}", flush=True)
    print(f"{'figure':<16}{'N':>8}{'xmen_s':>10}{'baseline_s':>12}{'ratio':>8}")
    peak = (0, 0)
    try:
        for n in sizes:
            root = top / f"set_{n}"
            if not (root / "experiment.yml").exists():
                build_set(root, n)
            time.sleep(listing.RACY_NS / 1e9 + 0.5)  # let every file settle, or the index would not trust them
            index = Path(cache_folder(root)) / listing.INDEX_FILE
            delta = Path(cache_folder(root)) / listing.DELTA_FILE
            base = best(lambda: baseline(root))

            def line(figure: str, seconds: float) -> None:
                print(f"{figure:<16}{n:>8}{seconds:>10.3f}{base:>12.3f}{seconds / base:>8.3f}", flush=True)

            def no_index() -> None:
                index.unlink(missing_ok=True)
                delta.unlink(missing_ok=True)

            def cold_library() -> float:
                no_index()
                return library(root)

            def cold_cli() -> float:
                no_index()
                return run_cli(root)[0]

            line("lib-cold", best(cold_library, 2))
            line("lib-warm", best(lambda: library(root)))
            line("cli-cold", best(cold_cli, 2))
            timings = [run_cli(root) for _ in range(3)]
            line("cli-warm", min(t for t, _ in timings))
            peak = max(peak, (n, max(rss for _, rss in timings)))
            line("cli-warm-csv", best(lambda: run_cli(root, "--csv", "-v")[0]))
            # One experiment finished (its params.yml rewritten) since the last listing, as while experiments run.
            changed = root / next(iter(json.loads(index.read_text())["experiments"])) / "params.yml"
            text = changed.read_text()
            swapped = ("_status: registered", "_status: finished  ")
            changed.write_text(text.replace(*swapped) if swapped[0] in text else text.replace(*swapped[::-1]))
            time.sleep(listing.RACY_NS / 1e9 + 0.5)
            line("cli-1-changed", run_cli(root)[0])
            if drop_caches():
                line("cli-dropcache", run_cli(root)[0])
                drop_caches()
                line("base-dropcache", baseline(root))
            else:
                print(f"# N={n}: cannot drop the page cache (not permitted); cold figures are 'no-index' only")
        print(f"peak-rss-MiB    {peak[0]:>8}{peak[1] / 1024:>10.1f}   (xmen list, warm)")
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
