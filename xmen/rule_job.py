"""The old path of :mod:`xmen.run.rule_job`, kept for xmen's rule job: a queued SLURM job runs
``python -m xmen.rule_job SPEC``.

A module of its own (not an alias of xmen.run.rule_job), so that ``python -m xmen.rule_job`` works in every process,
also one that imported it already."""
import sys

from xmen.run.rule_job import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
