"""The old path of :mod:`xmen.run.runner`, kept for the job runner: every generated run.sh runs ``python -m xmen.job
PARAMS SCRIPT``.

Importing it gives that module itself: one object, so patches and isinstance checks agree."""
import sys

from xmen.run import runner as _module

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
