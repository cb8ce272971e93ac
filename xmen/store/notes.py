"""Notes: a list of lines under ``notes`` in experiment.yml (a set's) or ``_notes`` in params.yml (an
experiment's), added and removed with ``xmen note``."""
from __future__ import annotations

from typing import Any, Callable

from xmen.errors import UsageError

#: The notes key of experiment.yml and of params.yml.
SET_NOTES = "notes"
EXPERIMENT_NOTES = "_notes"


def edit_notes(key: str, message: str, delete: bool) -> Callable[[dict[str, Any]], None]:
    """A change for files.update_yaml: add ``message`` to the notes under ``key``, or remove it (an error when it
    is not there)."""

    def edit(data: dict[str, Any]) -> None:
        notes = [str(n) for n in data.get(key) or []]
        if delete:
            if message not in notes:
                raise UsageError(f"no such note: {message!r}")
            notes.remove(message)
        else:
            notes.append(message)
        data[key] = notes

    return edit
