"""The global configuration: ``$XMEN/config.yml``, else ``~/.xmen/config.yml``.

While no config.yml of ours exists there (none, or the original xmen's of 2020), the original's 2021 ``xmen.yml``
beside it is read instead; the first write makes our config.yml from it and leaves xmen.yml as it is.

It remembers which experiment classes exist (name -> script), extra folders for their imports, the header put
at the top of each generated run.sh, whether ``init`` prompts for a purpose, and the sets that were created (so
that ``config --clean`` can forget the ones that are gone). The location is read at call time so tests and users
can redirect it with ``XMEN``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from xmen.store import files, legacy
from xmen.errors import StateFileError, UsageError
from xmen.store.layout import CACHE_DIR, CONFIG_FILE, GLOBAL_CONFIG_DIR, ORIGINAL_CONFIG_FILE



def config_dir() -> Path:
    """Folder of the global configuration (``$XMEN`` wins over ``~/.xmen``)."""
    env = os.environ.get("XMEN")
    return Path(env).expanduser() if env else Path.home() / GLOBAL_CONFIG_DIR


def cache_dir() -> Path:
    """The user's cache folder of xmen (``$XDG_CACHE_HOME/xmen``, else ``~/.cache/xmen``): caches xmen keeps about
    sets live here, where the user owns them, never in the sets (which may be other users' or synced copies)."""
    env = os.environ.get("XDG_CACHE_HOME")
    base = Path(env).expanduser() if env and os.path.isabs(os.path.expanduser(env)) else Path.home() / ".cache"
    return base / CACHE_DIR


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


@dataclass
class GlobalConfig:
    """A snapshot of the global configuration."""

    prompt: bool = True
    python_paths: list[str] = field(default_factory=list)
    experiments: dict[str, str] = field(default_factory=dict)
    header: str = ""
    sets: list[str] = field(default_factory=list)
    #: Keys of the file that xmen does not use (e.g. the original xmen's ``meta``, ``requeue``): kept on write.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GlobalConfig":
        data = legacy.convert_config(data)  # the original xmen's keys
        config = cls()
        config.extra = {str(k): v for k, v in data.items() if k not in _COMMENTS}
        config.prompt = bool(data.get("prompt", True))
        config.python_paths = [str(p) for p in data.get("python_paths") or []]
        config.experiments = {str(k): str(v) for k, v in (data.get("experiments") or {}).items()}
        config.header = str(data.get("header") or "")
        config.sets = [str(s) for s in data.get("sets") or []]
        return config

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "python_paths": list(self.python_paths),
            "experiments": dict(self.experiments),
            "header": self.header,
            "sets": list(self.sets),
            **{k: v for k, v in self.extra.items() if k not in _COMMENTS},
        }


_COMMENTS = {
    "prompt": "Ask for a purpose when a set is initialised (never when stdin is not a terminal)",
    "python_paths": "Folders put on PYTHONPATH for experiment modules",
    "experiments": "Experiment classes: name -> script that defines them",
    "header": "Text put at the top of every generated run.sh (after the shebang)",
    "sets": "Experiment sets created on this machine",
}


def _source() -> tuple[Path, dict[str, Any]]:
    """(the file the configuration is read from, its data): config.yml, unless it is missing or the original's of
    2020 and the original's 2021 xmen.yml exists (the original read only that one since). ``{}`` when neither
    exists."""
    path = config_path()
    data = files.read_yaml(path) if path.exists() else None
    newer = config_dir() / ORIGINAL_CONFIG_FILE
    if (data is None or legacy.is_original_config(data)) and newer.is_file():
        return newer, files.read_yaml(newer)
    return path, data or {}


def load() -> GlobalConfig:
    """The current configuration; a missing file is the default configuration."""
    path, data = _source()
    return _parse(path, data)


def _parse(path: Path, data: dict[str, Any]) -> GlobalConfig:
    """The configuration in ``data``; a value of the wrong shape is a one-line StateFileError naming the file.

    The original xmen's config.yml is converted first, so its keys are checked in our shapes.
    """
    data = legacy.convert_config(data)
    shapes = {"python_paths": list, "experiments": dict, "sets": list}
    for key, kind in shapes.items():
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            expected = "a mapping" if kind is dict else "a list"
            raise StateFileError(
                f"{path}: {key!r} must be {expected}, found {type(value).__name__}"
            )
    for key in ("header",):
        if isinstance(data.get(key), (list, dict)):
            raise StateFileError(f"{path}: {key!r} must be text, found {type(data[key]).__name__}")
    return GlobalConfig.from_dict(data)


def update(change: Callable[[GlobalConfig], None]) -> GlobalConfig:
    """Locked read-modify-write, so concurrent xmen commands never lose each other's changes."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.locked(path):
        try:
            source, data = _source()
            config = _parse(source, data)
        except StateFileError as exc:
            raise StateFileError(f"global configuration is corrupt ({exc}); fix or delete {path}") from None
        if path.exists() and legacy.is_original_config(data if source == path else files.read_mapping(path)):
            legacy.keep_backup(path, path.read_text(encoding="utf-8"))  # the original's config.yml, before ours
        change(config)
        files.write_yaml(path, config.to_dict(), _COMMENTS)
    return config


def remember_set(root: str | os.PathLike[str]) -> None:
    root = str(Path(root).resolve())

    def add(config: GlobalConfig) -> None:
        if root not in config.sets:
            config.sets.append(root)

    update(add)


def forget_set(root: str | os.PathLike[str]) -> None:
    root = str(Path(root).resolve())

    def remove(config: GlobalConfig) -> None:
        config.sets = [s for s in config.sets if s != root]

    update(remove)


def read_header(value: str) -> str:
    """A run.sh header given as FILE_OR_TEXT: the file's text if it names a file, else the text itself.

    A single word with a slash that names no file is a mistyped path, not a header: run.sh would try to execute it.
    """
    if not value or "\n" in value:
        return value
    path = Path(os.path.expanduser(value))
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if "/" in value and not value.startswith("#") and len(value.split()) == 1:
        raise UsageError(f"no such header file: {value}")
    return value
