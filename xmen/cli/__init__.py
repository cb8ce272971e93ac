"""The ``xmen`` command line (click): ``xmen.cli:entry_point`` is the console script.

``cli``, ``entry_point`` and ``main`` come from xmen.cli.main on first use (PEP 562), not when the package is
imported: ``python -m xmen.cli.list`` must find xmen.cli.list not yet imported (runpy warns otherwise), and
xmen.cli.main imports every command.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["cli", "entry_point", "main"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module("xmen.cli.main")  # import weight: it imports every command
    # Importing the submodule set this package's `main` to it: the function of that name is what callers mean.
    globals().update({n: getattr(module, n) for n in __all__})
    return globals()[name]
