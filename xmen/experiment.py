"""The old path of :mod:`xmen.define.experiment`, kept because it is written on users' disks or in the README: the Experiment class; ``python -m xmen.experiment`` is written in run.sh of classes that are not their script's.

Importing it gives that module itself (one object, so patches and isinstance checks agree)."""
import sys

from xmen.define import experiment as _module

if __name__ == "__main__":
    sys.exit(_module._cli())
sys.modules[__name__] = _module
