"""Finding experiment sets: the one home of the two ways xmen looks for them.

- :func:`sets_below` (``xmen run -r``, ``xmen sync``, every command that acts on "the sets below this folder"): the
  sets at or below a folder, walking every folder except hidden ones, a set's experiment folders (any folder of a
  set holding a params.yml) and a set's ``profiles`` folder.
- :func:`select_sets` / :func:`sets_selected` (``xmen list GLOB...``, ``to_dataframe``): what globs select, as
  whole sets or through some of their experiments. A glob is matched against set roots and their folders (selecting
  every set below a match) and against ``root/name`` experiment paths; ``*`` stays within one folder and ``**``
  spans folders. The walk never enters a set's linked experiment folders, unlinked experiment folders, hidden
  folders or Python/conda environments, and reads each set's experiment.yml to know its linked experiments: through
  the caller's ``open_set`` (``xmen list`` keeps them in its index cache, xmen.look.index), else plainly.

The two differ on purpose and are kept apart rather than merged: commands that act on sets must find every set a
user could ``cd`` into (also one inside a virtualenv), while a listing prunes what can never hold sets it should
show and must honour the glob syntax.
"""
from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from xmen.errors import StateFileError, UsageError
from xmen.store import files
from xmen.store.layout import PARAMS_FILE, PROFILES_DIR, SET_FILE
from xmen.store.legacy import convert_set
from xmen.store.statecheck import check_set_data

__all__ = ["Glob", "LinkedNames", "named_sets", "select_sets", "sets_below", "sets_selected"]


class _Set(Protocol):
    """What :func:`select_sets` needs of an opened set."""

    names: list[str]
    problem: str | None


# ---------------------------------------------------------------------------------------------- below a folder
def sets_below(top: str | os.PathLike[str], recursive: bool = True) -> Iterator[Path]:
    """Sets at or below ``top``, without descending into a set's own experiment folders or its ``profiles``
    folder, nor into hidden folders; with ``recursive=False``, ``top`` if it is a set, else the sets right below
    it."""
    top = Path(os.path.abspath(top))
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        is_root = any(e.name == SET_FILE and e.is_file() for e in entries)
        if is_root:
            yield folder
            if not recursive:
                continue
        elif folder != top and not recursive:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
                continue
            if is_root and os.path.exists(os.path.join(entry.path, PARAMS_FILE)):
                continue  # an experiment folder of this set
            if entry.name == PROFILES_DIR and is_root:
                continue
            stack.append(Path(entry.path))


# ---------------------------------------------------------------------------------------------- selected by globs
_MAGIC = re.compile(r"[*?[]")


@dataclass(frozen=True)
class Glob:
    """An absolute glob split into the folder a walk starts from and the components left to match below it."""

    text: str
    start: str
    parts: tuple[str, ...]
    regex: re.Pattern[str] | None  # set when the glob holds '**' (any number of folders); matches relative paths

    def covers(self, rel: tuple[str, ...]) -> bool:
        """Whether the folder ``start/rel`` or one of its ancestors matches the whole glob (selecting all below)."""
        if self.regex is not None:
            return any(self.regex.fullmatch("/".join(rel[:k])) for k in range(len(rel) + 1))
        n = len(self.parts)
        return len(rel) >= n and all(fnmatch.fnmatchcase(rel[i], self.parts[i]) for i in range(n))

    def may_lead(self, rel: tuple[str, ...]) -> bool:
        """Whether anything at or below ``start/rel`` can match (prunes the walk)."""
        if self.regex is not None:
            return True
        n = min(len(rel), len(self.parts))
        return all(fnmatch.fnmatchcase(rel[i], self.parts[i]) for i in range(n))

    def name_matcher(self, rel: tuple[str, ...]) -> Callable[[str], bool] | None:
        """For a set at ``start/rel`` not covered as a whole: which experiment names the glob selects, if any."""
        if self.regex is not None:
            prefix = "/".join(rel) + "/" if rel else ""
            regex = self.regex
            return lambda name: regex.fullmatch(prefix + name) is not None
        if len(rel) == len(self.parts) - 1:
            last = self.parts[-1]
            return lambda name: fnmatch.fnmatchcase(name, last)
        return None


def _glob_regex(parts: Sequence[str]) -> re.Pattern[str]:
    """Regex for a relative glob in which ``*``/``?`` stay within a folder and a ``**`` component spans folders."""
    out = []
    for i, part in enumerate(parts):
        sep = "/" if i < len(parts) - 1 else ""
        if part == "**":
            out.append("(?:.*/)?" if sep else ".*")
            continue
        out.append(_component_regex(part) + sep)
    return re.compile("".join(out))


def _component_regex(part: str) -> str:
    """One glob component as a regex that never crosses '/'."""
    out = []
    i = 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = part.find("]", i + 2 if i + 1 < len(part) and part[i + 1] in "!]" else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                inner = part[i + 1 : j]
                if inner.startswith("!"):
                    inner = "^" + inner[1:]
                out.append("[" + inner.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _enclosing_set(folder: str) -> str | None:
    """The nearest folder at or above ``folder`` holding an experiment.yml."""
    current = folder
    while True:
        if os.path.isfile(os.path.join(current, SET_FILE)):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _compile_glob(glob: str, cwd: str) -> Glob:
    """Make ``glob`` absolute (relative to ``cwd``) and find where to start walking for it."""
    text = os.path.normpath(os.path.join(cwd, os.path.expanduser(glob)))
    components = [c for c in text.split(os.sep) if c]
    static: list[str] = []
    for component in components:
        if _MAGIC.search(component):
            break
        static.append(component)
    rest = components[len(static) :]
    start = os.sep + os.sep.join(static)
    # Inside a set (e.g. in an experiment folder, or a glob over a set's experiments): walk from the set root.
    enclosing = _enclosing_set(start)
    if enclosing is not None and enclosing != start:
        extra = [c for c in start[len(enclosing) :].split(os.sep) if c]
        rest = extra + rest
        start = enclosing
    regex = _glob_regex(rest) if "**" in rest else None
    return Glob(text, start, tuple(rest), regex)


class LinkedNames:
    """A set's linked experiments as :func:`select_sets` needs them (``names``, or a ``problem``), read plainly from
    its experiment.yml: the same answer xmen.look.index gives from its cache, with the same checks."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.names: list[str] = []
        self.problem: str | None = None
        try:
            data = convert_set(files.read_yaml(os.path.join(root, SET_FILE)))  # also the original xmen's format
            check_set_data(SET_FILE, data, check_names=False)
        except StateFileError as exc:
            self.problem = str(exc)
            return
        self.names = [str(k) for k in data.get("experiments") or {}]


# Folders a walk from a project folder would otherwise spend most of its time in.
_NOT_SETS_NAMES = frozenset({"__pycache__", "node_modules", "site-packages"})
_NOT_SETS_MARKERS = frozenset({"pyvenv.cfg", "conda-meta"})


def _scan(folder: str) -> list[os.DirEntry[str]] | None:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError:
        return None


def select_sets(
    globs: Sequence[str], cwd: str, open_set: Callable[[str], _Set] | None = None
) -> tuple[list[Glob], dict[str, tuple[_Set, Callable[[str], bool] | None]]]:
    """Walk from each glob's start; map each set root reached to its opened set and which of its experiments match.

    ``open_set(root)`` reads a set's experiment.yml, once per set: anything with ``names`` (its linked experiments)
    and ``problem`` (None, or why it cannot be read: then the walk does not descend into it); default
    :class:`LinkedNames`. The matcher is ``None`` when the whole set is selected. Linked experiment folders, hidden
    folders (``.xmen``, ``.snakemake``, ``.git``), unlinked experiment folders and Python/conda environments are
    never descended into. A glob whose folder part (before its first wildcard) is not a folder: UsageError.
    """
    opener: Callable[[str], Any] = open_set or LinkedNames
    patterns = [_compile_glob(g, cwd) for g in globs]
    for pattern in patterns:  # a path that is not there (a typo) is an error, never "no experiments found"
        if not os.path.isdir(pattern.start):
            raise UsageError(f"{'not a folder' if os.path.lexists(pattern.start) else 'no such folder'}: "
                             f"{pattern.start}")
    states: dict[str, Any] = {}
    matchers: dict[str, list[Callable[[str], bool]] | None] = {}
    for pattern in patterns:
        seen: set[tuple[int, int]] = set()
        stack: list[tuple[str, tuple[str, ...]]] = [(pattern.start, ())]
        while stack:
            folder, rel = stack.pop()
            try:
                stat = os.stat(folder)
            except OSError:
                continue
            key = (stat.st_dev, stat.st_ino)
            if key in seen:  # a symlink loop, or two paths to one folder
                continue
            seen.add(key)
            entries = _scan(folder)
            if entries is None:
                continue
            if any(e.name in _NOT_SETS_MARKERS for e in entries):
                continue  # a Python or conda environment: thousands of folders, never a set
            is_set = any(e.name == SET_FILE and e.is_file() for e in entries)
            linked: set[str] = set()
            if is_set:
                state = states.get(folder)
                if state is None:
                    state = states[folder] = opener(folder)
                linked = set(state.names)
                if pattern.covers(rel):
                    matchers[folder] = None
                else:
                    matcher = pattern.name_matcher(rel)
                    if matcher is not None and matchers.get(folder, []) is not None:
                        matchers.setdefault(folder, []).append(matcher)  # type: ignore[union-attr]
                if state.problem is not None:
                    continue  # cannot tell its experiment folders from other folders: do not descend
            depth = len(rel)
            explicit_hidden = pattern.regex is None and depth < len(pattern.parts) and pattern.parts[depth][:1] == "."
            for entry in entries:
                name = entry.name
                if name in linked or (name[0] == "." and not explicit_hidden) or name in _NOT_SETS_NAMES:
                    continue
                try:
                    if not entry.is_dir():
                        continue
                except OSError:
                    continue
                child = rel + (name,)
                if not pattern.may_lead(child):
                    continue
                if is_set and os.path.exists(os.path.join(entry.path, PARAMS_FILE)):
                    continue  # an unlinked experiment folder
                stack.append((entry.path, child))
    selected: dict[str, tuple[Any, Callable[[str], bool] | None]] = {}
    for root in sorted(matchers):
        chosen = matchers[root]
        if chosen is None:
            selected[root] = (states[root], None)
        elif chosen:
            tests = list(chosen)
            selected[root] = (states[root], lambda name, tests=tests: any(t(name) for t in tests))
    return patterns, selected


def named_sets(patterns: Sequence[Glob]) -> set[str]:
    """The set folders the globs name themselves rather than find below a parent: the set a glob starts in (the
    current folder's set, ``ROOT``, ``ROOT/GLOB``, an experiment path inside it). A named set that cannot be read
    is an error; a set found below a parent folder that cannot be read is skipped with a warning."""
    return {p.start for p in patterns if os.path.isfile(os.path.join(p.start, SET_FILE))}


def sets_selected(globs: Sequence[str] | None = None, cwd: str | os.PathLike[str] | None = None) -> list[Path]:
    """Roots of the sets that ``globs`` select, as a whole or through some of their experiments.

    Without globs, every set at or below ``cwd`` (default: the current folder). A glob is matched against set roots
    and their folders (selecting every set below a match) and against ``root/name`` experiment paths; relative
    globs are relative to ``cwd``, ``*`` stays within one folder and ``**`` spans folders.
    """
    base = os.path.abspath(os.fspath(cwd) if cwd is not None else os.getcwd())
    _, selected = select_sets(list(globs or [base]), base)
    return [Path(root) for root in selected]
