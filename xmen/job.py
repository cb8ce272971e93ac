"""The old path of :mod:`xmen.run.runner`, kept because it is written on users' disks or in the README: the job runner; ``python -m xmen.job PARAMS SCRIPT`` is written in every run.sh.

Importing it gives that module itself (one object, so patches and isinstance checks agree)."""
import sys

from xmen.run import runner as _module

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
