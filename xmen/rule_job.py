"""The old path of :mod:`xmen.run.rule_job`, kept because it is written on users' disks or in the README: xmen's rule job; ``python -m xmen.rule_job SPEC`` is in queued SLURM jobs.

Importing it gives that module itself (one object, so patches and isinstance checks agree)."""
import sys

from xmen.run import rule_job as _module

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
