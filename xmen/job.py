"""The old path of :mod:`xmen.run.runner`, kept for the job runner: every generated run.sh runs
``python -m xmen.job PARAMS SCRIPT``.

A module of its own (not an alias of xmen.run.runner), so that ``python -m xmen.job`` works in every process,
also one that imported it already."""
import sys

from xmen.run.runner import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
