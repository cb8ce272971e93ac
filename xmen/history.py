"""The old path of :mod:`xmen.store.history`, kept for ``xmen.history.read`` in the README.

Importing it gives that module itself: one object, so patches and isinstance checks agree."""
import sys

from xmen.store import history as _module

sys.modules[__name__] = _module
