"""The old path of :mod:`xmen.look.listing`, kept for ``xmen.listing.to_dataframe`` in the README.

Importing it gives that module itself: one object, so patches and isinstance checks agree."""
import sys

from xmen.look import listing as _module

sys.modules[__name__] = _module
