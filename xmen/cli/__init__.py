"""The ``xmen`` command line (click): ``xmen.cli:entry_point`` is the console script."""
from xmen.cli.main import cli, entry_point, main

__all__ = ["cli", "entry_point", "main"]
