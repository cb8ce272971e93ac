"""How fast are the result views: ``message()``, ``xmen list`` and ``xmen compare`` on a big sweep with histories?

Each figure is printed with a baseline measured in the same run, and their ratio:

* ``message``: seconds per ``Experiment.message()`` call, amortised over 10,000 calls of a registered experiment
  (the history flushes, the throttled ``_messages`` writes and the final flush included), against the previous
  implementation, which rewrote ``params.yml`` per call (a locked read-modify-write of the YAML, fsync'ed):
  ``files.update_yaml`` per call, measured over 200 calls;
* ``list-warm``: ``xmen list`` (a child process, index warm) on N experiments (default 10,000) of an lr x seed
  sweep that each sent 100 messages (``history.jsonl`` of 100 records, latest values in ``params.yml``), against
  parsing every ``params.yml`` with the C YAML loader; target <= 0.5 s;
* ``compare``: ``xmen compare --by lr`` (a child process) on the same set, against what one would script without
  it: parse every ``params.yml`` and group their messages by lr with pandas; target <= 2 s.

Run: ``python benchmarks/bench_look.py [-n N] [--calls C] [--keep DIR]``.
"""
from __future__ import annotations

import argparse
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

from xmen.store import files, history
from xmen.look import listing  # noqa: E402
from xmen.define.experiment import Experiment  # noqa: E402
from xmen.store.layout import REGISTER_KEYS, comments as key_comments  # noqa: E402
from xmen.store.files import dump_params, dump_yaml  # noqa: E402

MESSAGES = 100
LRS = (0.1, 0.03, 0.01, 0.003, 0.001)


class Bench(Experiment):
    def __init__(self):
        """Receives messages."""
        super().__init__()
        self.lr: float = 0.1  # @p learning rate


def bench_message(top: Path, calls: int) -> tuple[float, float]:
    """(seconds per message() call amortised over ``calls`` calls and the final flush of history and
    ``_messages``, seconds per call of the old rewrite of params.yml)."""
    exp = Bench()
    folder = exp.register(top, "message")
    start = time.perf_counter()
    for i in range(calls):
        exp.message({"loss": 1.0 / (i + 1), "val_acc": i / calls}, step=i)
    exp._flush_messages()  # what the end of run() does
    per_call = (time.perf_counter() - start) / calls
    assert len(history.read(folder)) == calls
    assert files.read_yaml(folder / "params.yml")["_messages"]["val_acc"] == (calls - 1) / calls

    old = Bench().register(top, "message-old") / "params.yml"
    n = 200
    start = time.perf_counter()
    for i in range(n):
        def change(data, i=i):
            merged = dict(data.get("_messages") or {})
            merged.update({"loss": 1.0 / (i + 1), "val_acc": i / n})
            data["_messages"] = merged
        files.update_yaml(old, change)
    return per_call, (time.perf_counter() - start) / n


def build_sweep(root: Path, n: int) -> None:
    """``n`` finished experiments of an lr x seed sweep, each with a history of MESSAGES records."""
    root.mkdir(parents=True)
    names = []
    comments = {**key_comments(REGISTER_KEYS), "lr": "Learning rate", "seed": "Random seed"}
    for i in range(n):
        lr, seed = LRS[i % len(LRS)], i // len(LRS)
        name = f"lr={lr}__seed={seed}"
        names.append(name)
        folder = root / name
        folder.mkdir()
        lines = []
        for step in range(MESSAGES):
            values = {"loss": 1.0 / (step + 1) + lr, "val_acc": 0.9 + lr + (seed % 7) / 1000 - 1 / (step + 2)}
            lines.append(history.encode(values, step, 1796151567.0 + step))
        (folder / history.HISTORY_FILE).write_text("".join(lines), encoding="utf-8")
        params = {
            "_name": name, "_root": str(root), "_status": "finished", "_created": "2026-12-01-18-39-27",
            "_purpose": "benchmark",
            "_version": {"module": "/home/user/project/train.py", "class": "Train",
                         "git": {"local": "/home/user/project", "remote": "git@example.org:x.git",
                                 "commit": "bbe75180debc80b03c520c5574f4d7e88d262909", "branch": "main",
                                 "dirty": False}},
            "_meta": {"mac": "0x6c96cfdb71b9", "host": "node01", "user": "user", "home": "/home/user"},
            "_messages": values, "lr": lr, "seed": seed,
        }
        (folder / "params.yml").write_text(dump_params(params, comments), encoding="utf-8")
    data = {"root": str(root), "type": "Train", "created": "2026-12-01-18-39-27", "purpose": "benchmark",
            "notes": [], "script": "script.sh", "defaults": "defaults.yml", "experiments": {k: {} for k in names}}
    (root / "experiment.yml").write_text(dump_yaml(data), encoding="utf-8")


def read_all(root: Path) -> list[dict]:
    names = list(yaml.load((root / "experiment.yml").read_text(), Loader=yaml.CSafeLoader)["experiments"])
    out = []
    for name in names:
        with open(root / name / "params.yml", encoding="utf-8") as handle:
            out.append(yaml.load(handle.read(), Loader=yaml.CSafeLoader))
    return out


def baseline_list(root: Path) -> float:
    start = time.perf_counter()
    read_all(root)
    return time.perf_counter() - start


def baseline_compare(root: Path) -> float:
    """A fresh interpreter that parses every params.yml and groups the messages by lr with pandas."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); start = time.perf_counter()\n"
        "import pandas as pd\nfrom bench_look import read_all\nfrom pathlib import Path\n"
        "rows = [{'lr': p['lr'], **p['_messages']} for p in read_all(Path(sys.argv[2]))]\n"
        "pd.DataFrame(rows).groupby('lr').agg(['count', 'mean', 'std', 'min', 'max']).to_string()\n"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(root)], check=True, env=_env())
    return time.perf_counter() - start


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def xmen_command() -> list[str]:
    exe = shutil.which("xmen")
    return [exe] if exe else [sys.executable, "-m", "xmen"]


def run_cli(root: Path, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([*xmen_command(), *args, str(root)], cwd=root, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"xmen {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return elapsed


def best(fn, repeat: int = 5) -> float:
    return min(fn() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="experiments in the sweep (default 10000)")
    parser.add_argument("--calls", type=int, default=10_000, help="message() calls (default 10000)")
    parser.add_argument("--keep", metavar="DIR", help="build the sweep in DIR and keep it")
    args = parser.parse_args()
    top = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="xmen-bench-look-"))
    print(f"# command: {' '.join(xmen_command())} ...; files in {top}", flush=True)
    print(f"{'figure':<12}{'N':>8}{'xmen_s':>12}{'baseline_s':>12}{'ratio':>10}")

    def line(figure: str, n: int, seconds: float, base: float) -> None:
        print(f"{figure:<12}{n:>8}{seconds:>12.6f}{base:>12.6f}{seconds / base:>10.4f}", flush=True)

    try:
        shutil.rmtree(top / "message", ignore_errors=True)  # a kept folder from an earlier run
        per_call, old = bench_message(top / "message", args.calls)
        line("message", args.calls, per_call, old)
        root = top / f"sweep_{args.n}"
        if not (root / "experiment.yml").exists():
            build_sweep(root, args.n)
        time.sleep(listing.RACY_NS / 1e9 + 0.5)  # let every file settle, or the index would not trust them
        run_cli(root, "list")  # builds the index
        line("list-warm", args.n, best(lambda: run_cli(root, "list")), best(lambda: baseline_list(root)))
        line("compare", args.n, best(lambda: run_cli(root, "compare", "--by", "lr")),
             best(lambda: baseline_compare(root)))
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
