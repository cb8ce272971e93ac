"""The old path of :mod:`xmen.define.monitor`, kept for ``from xmen.monitor import Monitor`` in the README and the
original xmen.

Importing it gives that module itself: one object, so patches and isinstance checks agree."""
import sys

from xmen.define import monitor as _module

sys.modules[__name__] = _module
