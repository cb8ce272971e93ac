"""Where a set lives, and where it lived before: ``origin`` and ``origins`` in experiment.yml.

``origin: {host, path}`` is written when a set is created and rewritten by ``relink`` when the set is found
somewhere else; the place it left is appended to ``origins`` (the history, oldest first, with the time it was
left). A set copied from another machine (rsync, ``xmen sync``) still carries the other machine's origin, which is
what ``xmen list`` shows in its ``origin`` column; after a local relink it shows the last other machine it lived on.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Mapping

__all__ = ["here", "label", "moved_to"]


def here(root: str | os.PathLike[str]) -> dict[str, str]:
    """This machine and ``root`` as an origin entry."""
    return {"host": socket.gethostname(), "path": os.fspath(root)}


def _entry(value: Any) -> dict[str, Any] | None:
    if isinstance(value, Mapping) and value.get("path"):
        return {"host": value.get("host"), "path": str(value["path"])}
    return None


def _text(entry: Mapping[str, Any]) -> str:
    host = entry.get("host")
    return f"{host}:{entry['path']}" if host else str(entry["path"])


def moved_to(data: dict[str, Any], root: str | os.PathLike[str], when: str) -> None:
    """Record in ``data`` (a parsed experiment.yml) that the set now lives at ``root`` on this machine.

    The previous origin (or, for a set written before origins existed, its recorded ``root``) joins the history.
    """
    now = here(root)
    previous = _entry(data.get("origin"))
    if previous is None and data.get("root"):
        previous = {"host": None, "path": str(data["root"])}
    history = [e for e in (data.get("origins") or []) if isinstance(e, Mapping)]
    same_place = previous is not None and previous["path"] == now["path"] and previous["host"] in (None, now["host"])
    if previous is not None and not same_place:
        history.append({**previous, "left": when})
    data["origin"] = now
    if history:
        data["origins"] = history


def label(data: Mapping[str, Any], root: str | os.PathLike[str]) -> str:
    """What ``xmen list`` shows as the set's origin: where it lives if that is not here, else the last other
    machine it lived on, else nothing."""
    this_host = socket.gethostname()
    current = _entry(data.get("origin"))
    if current is not None:
        if current["host"] != this_host or current["path"] != os.fspath(root):
            return _text(current)
    elif data.get("root") and str(data["root"]) != os.fspath(root):
        return str(data["root"])  # a set from before origins: its recorded folder is elsewhere
    for entry in reversed(list(data.get("origins") or [])):
        entry = _entry(entry)
        if entry is not None and entry["host"] and entry["host"] != this_host:
            return _text(entry)
    return ""
