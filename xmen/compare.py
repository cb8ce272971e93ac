"""The old path of :mod:`xmen.look.compare`, kept for ``xmen.compare.compare`` in the README.

Importing it gives that module itself: one object, so patches and isinstance checks agree."""
import sys

from xmen.look import compare as _module

sys.modules[__name__] = _module
