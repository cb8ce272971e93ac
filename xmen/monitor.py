"""The old path of :mod:`xmen.define.monitor`, kept because it is written on users' disks or in the README: ``xmen.monitor.Monitor`` in the README.

Importing it gives that module itself (one object, so patches and isinstance checks agree)."""
import sys

from xmen.define import monitor as _module

sys.modules[__name__] = _module
