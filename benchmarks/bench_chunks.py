"""Is the listing's own params.yml chunk parser (xmen.look.index._parse_entries) still worth its code?

Builds the synthetic set of benchmarks/bench_list.py (N experiments written as ``xmen register`` writes them) and
times reading every params.yml the way a cold ``xmen list`` does (``chunks``: each top-level entry parsed once per
listing, reused across files) against the store's whole-file parse (``whole-file``). Best of three.
Run: ``python benchmarks/bench_chunks.py [-n N]``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_list import build_set  # noqa: E402
from xmen.look.index import _read_params  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="experiments (default 3000)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xmen-bench-chunks-"))
    try:
        build_set(work / "set", args.n)
        paths = [str(p) for p in sorted((work / "set").glob("*/params.yml"))]
        for label, memo in (("whole-file", lambda: None), ("chunks", dict)):
            best = float("inf")
            for _ in range(3):
                shared = memo()
                start = time.perf_counter()
                for path in paths:
                    _read_params(path, shared)
                best = min(best, time.perf_counter() - start)
            print(f"{label:<10}  {len(paths)}  {best:.3f} s  ({best / len(paths) * 1e6:.0f} us per file)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
