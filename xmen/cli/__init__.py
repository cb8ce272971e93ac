"""The ``xmen`` command line (click): ``xmen.cli:entry_point`` is the console script. The group and its lazily
loaded commands are in xmen.cli.command; each command's module imports only what that command needs."""
from xmen.cli.command import cli, entry_point, main

__all__ = ["cli", "entry_point", "main"]
