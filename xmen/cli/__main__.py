"""``python -m xmen.cli``: the xmen command."""
from xmen.cli import entry_point

entry_point()
