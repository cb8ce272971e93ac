"""The old path of :mod:`xmen.host.glue`, kept because it is written on users' disks or in the README: what the shipped Snakefiles import (rules/xmen.smk, and every set's Snakefile).

Importing it gives that module itself (one object, so patches and isinstance checks agree)."""
import sys

from xmen.host import glue as _module

sys.modules[__name__] = _module
