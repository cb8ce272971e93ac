"""A set's experiment.yml as running and planning read it: linked experiments with their run options, the code
that defines them (and its hashes), and each experiment's requirements resolved against what is linked now.

Requirements are kept as the user gave them (paths or globs, relative to the set) and resolved at every read, so a
glob such as ``../eval/*`` follows the experiments linked later. One reader for the planner and for what a run
records (xmen.store.provenance).
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Any, Iterable

from xmen.store.files import read_mapping
from xmen.store.legacy import convert_set, is_original_set, migrated_from_original
from xmen.store.layout import DEFAULTS_FILE, SCRIPT_FILE, SET_FILE

_GLOB_CHARS = frozenset("*?[")


def is_glob(spec: str) -> bool:
    return any(c in _GLOB_CHARS for c in spec)


def params_hash(params: dict[str, Any]) -> str:
    """Hash of an experiment's parameters (the keys not starting with ``_``), independent of key order."""
    public = {str(k): v for k, v in params.items() if not str(k).startswith("_")}
    import hashlib  # stdlib, imported here so that importing the runner loads no more than it did
    import json

    text = json.dumps(public, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in params.items() if not str(k).startswith("_")}


def file_hash(path: str | None) -> str | None:
    """sha256 (first 16 hex digits) of a file's bytes; None when it cannot be read."""
    if not path:
        return None
    import hashlib  # stdlib, imported here so that importing the runner loads no more than it did

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()[:16]


def mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


@dataclass
class SetInfo:
    """One set's experiment.yml as the planner needs it."""

    root: str
    linked: dict[str, dict[str, Any]]  # name -> run options, requires as given (defaults merged)
    data: dict[str, Any]
    #: experiment.yml is still the original xmen's, or was migrated from it (its finished experiments may have no
    #: status file: an older xmen migrated without writing them)
    original: bool = False
    _code: tuple[list[str], int | None] | None = None
    _hashes: dict[str, str | None] | None = None

    def code_files(self) -> list[str]:
        """The files whose content is the experiment's code: the set's script and the Python module, if any."""
        found = [os.path.join(self.root, str(self.data.get("script") or SCRIPT_FILE))]
        defaults = read_mapping(os.path.join(self.root, str(self.data.get("defaults") or DEFAULTS_FILE))) or {}
        version = defaults.get("_version")
        if isinstance(version, dict) and version.get("module"):
            found.append(str(version["module"]))
        return found

    def code(self) -> tuple[list[str], int | None]:
        """(code files, newest mtime among them), computed once per set."""
        if self._code is None:
            paths = self.code_files()
            mtimes = [m for m in (mtime_ns(p) for p in paths) if m is not None]
            self._code = (paths, max(mtimes) if mtimes else None)
        return self._code


def load_set(root: str) -> SetInfo | None:
    """The set at ``root`` (absolute), or None if it has no readable experiment.yml."""
    data = read_mapping(os.path.join(root, SET_FILE))
    if data is None:
        return None
    original = is_original_set(data) or migrated_from_original(root)
    data = convert_set(data)  # the original xmen's experiment.yml, read as ours (xmen.store.legacy)
    defaults = data.get("options") if isinstance(data.get("options"), dict) else {}
    experiments = data.get("experiments") if isinstance(data.get("experiments"), dict) else {}
    linked: dict[str, dict[str, Any]] = {}
    for name, options in experiments.items():
        merged = dict(defaults)
        if isinstance(options, dict):
            merged.update(options)
        linked[str(name)] = merged
    return SetInfo(root=root, linked=linked, data=data, original=original)


def code_record(info: SetInfo) -> dict[str, Any]:
    """``{file: hash}`` of the set's code files now (what a run records and the planner compares); the set's
    script by its name, the experiment module by its path. Hashed once per SetInfo."""
    if info._hashes is None:
        info._hashes = {os.path.basename(p) if i == 0 else p: file_hash(p) for i, p in enumerate(info.code()[0])}
    return dict(info._hashes)


def set_paths(root: str, names: Iterable[str] | None = None) -> list[str]:
    """Absolute experiment paths of the linked experiments of the set at ``root`` (or of ``names``)."""
    root = os.path.abspath(root)
    if names is None:
        info = load_set(root)
        names = list(info.linked) if info else []
    return [os.path.join(root, str(n)) for n in names]


class Requirements:
    """Reads sets once each and resolves the requirements of their experiments (the planner builds on it)."""

    def __init__(self) -> None:
        self._sets: dict[str, SetInfo | None] = {}
        self._requires: dict[str, list[tuple[str, str]]] = {}

    def set_info(self, root: str) -> SetInfo | None:
        if root in self._sets:
            return self._sets[root]
        root = os.path.normpath(root)
        if root not in self._sets:
            self._sets[root] = load_set(root)
        return self._sets[root]

    def options(self, path: str) -> dict[str, Any] | None:
        """Run options of the linked experiment at ``path``; None when it is not linked."""
        root, name = os.path.split(path)
        info = self.set_info(root)
        return None if info is None else info.linked.get(name)

    def requirements(self, path: str) -> list[tuple[str, str]]:
        """``(spec as given, absolute path)`` of each requirement of ``path``, globs resolved against what is
        linked now. A glob matching nothing yields ``(spec, "")``."""
        if path in self._requires:
            return self._requires[path]
        options = self.options(path) or {}
        specs = options.get("requires") or []
        if isinstance(specs, str):
            specs = [specs]
        root = os.path.dirname(path)
        resolved: list[tuple[str, str]] = []
        seen: set[str] = set()
        for spec in specs:
            spec = str(spec).rstrip("/")
            if not is_glob(spec):
                target = os.path.normpath(os.path.join(root, spec))
                if target not in seen:
                    seen.add(target)
                    resolved.append((spec, target))
                continue
            folder, _, pattern = spec.rpartition("/")
            other = os.path.normpath(os.path.join(root, folder)) if folder else root
            info = self.set_info(other)
            linked = info.linked if info else {}
            if pattern in linked:  # a name that merely contains [ or *: itself
                names = [pattern]
            else:
                names = [n for n in linked if fnmatch.fnmatchcase(n, pattern)]
            if not names:
                resolved.append((spec, ""))
            for name in names:
                target = os.path.join(other, name)
                if target not in seen and target != path:
                    seen.add(target)
                    resolved.append((spec, target))
        self._requires[path] = resolved
        return resolved

    def has_glob_requirements(self, path: str) -> bool:
        specs = (self.options(path) or {}).get("requires") or []
        return any(is_glob(str(s)) for s in ([specs] if isinstance(specs, str) else specs))
