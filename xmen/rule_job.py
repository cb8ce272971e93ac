"""The old path of :mod:`xmen.run.rule_job`, kept for xmen's rule job: a queued SLURM job runs ``python -m
xmen.rule_job SPEC``.

Importing it gives that module itself: one object, so patches and isinstance checks agree."""
import sys

from xmen.run import rule_job as _module

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
