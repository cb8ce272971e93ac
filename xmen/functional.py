"""The old path of :mod:`xmen.define.functional`, kept for ``from xmen.functional import functional_experiment, Root``
(the original xmen).

Importing it gives that module itself: one object, so patches and isinstance checks agree."""
import sys

from xmen.define import functional as _module

sys.modules[__name__] = _module
