"""The old path of :mod:`xmen.host.glue`, kept for what the shipped rules (rules/xmen.smk), so every set's Snakefile,
import.

Importing it gives that module itself: one object, so patches and isinstance checks agree."""
import sys

from xmen.host import glue as _module

sys.modules[__name__] = _module
