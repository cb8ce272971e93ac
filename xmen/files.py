"""Atomic, locked YAML state files: the one place that writes them.

Every state write goes to a temporary file in the same folder, is fsync'ed and renamed over the target, so a crash,
``kill -9`` or a full disk leaves either the old or the new file, never a truncated one. Read-modify-write cycles
(``update_yaml``) hold an exclusive ``flock`` on a sidecar lock file so that concurrent writers (an experiment's
``message()`` and a ``xmen note`` from another shell) never lose each other's update.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import yaml

from .errors import StateFileError

try:  # The C loader/dumper are 5-10x faster; fall back to pure Python where libyaml is missing.
    _Loader = yaml.CSafeLoader
    _Dumper = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on the platform build of PyYAML
    _Loader = yaml.SafeLoader  # type: ignore[misc]
    _Dumper = yaml.SafeDumper  # type: ignore[misc]

PathLike = "str | os.PathLike[str]"


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar lock file guarding ``path`` (kept, never deleted: deleting lock files races)."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], shared: bool = False) -> Iterator[None]:
    """Hold an flock on the sidecar lock of ``path`` for the duration of the block."""
    lp = lock_path(path)
    fd = os.open(lp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # pragma: no cover - some file systems refuse directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` atomically (temp file + fsync + rename + fsync of the folder)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def load_yaml_text(text: str, source: str = "<string>") -> Any:
    """Parse YAML with the safe loader, turning parser errors into a one-line StateFileError."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StateFileError(f"{source}: invalid YAML{where}: {problem}") from None


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping. Missing, unreadable, empty or non-mapping files are StateFileErrors."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise StateFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{path}: cannot read: {exc}") from None
    data = load_yaml_text(text, str(path))
    if not isinstance(data, dict):
        raise StateFileError(f"{path}: expected a YAML mapping, found {type(data).__name__}")
    return data


def dump_yaml(data: Any) -> str:
    """Block-style YAML keeping key order (params files are read by people)."""
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True, width=120)


def _format_comment(text: str) -> str:
    return " ".join(str(text).split())


def dump_params(data: Mapping[str, Any], comments: Mapping[str, str] | None = None) -> str:
    """YAML for params/defaults files: one top-level key at a time, each followed by its ``# help`` comment.

    Comments only ever follow a complete top-level entry, so the file stays valid YAML whatever the values hold.
    """
    comments = comments or {}
    out = io.StringIO()
    for key, value in data.items():
        chunk = dump_yaml({key: value})
        note = comments.get(key)
        if note:
            lines = chunk.rstrip("\n").split("\n")
            if len(lines) == 1:
                out.write(f"{lines[0]}  # {_format_comment(note)}\n")
            else:  # nested value: the comment goes on the key's own line, which ends with ':'
                first = lines[0]
                if first.endswith(":"):
                    out.write(f"{first}  # {_format_comment(note)}\n")
                    out.write("\n".join(lines[1:]) + "\n")
                else:  # a multi-line scalar: put the comment above it
                    out.write(f"# {key}: {_format_comment(note)}\n{chunk}")
        else:
            out.write(chunk)
    return out.getvalue()


def write_yaml(
    path: str | os.PathLike[str], data: Mapping[str, Any], comments: Mapping[str, str] | None = None
) -> None:
    """Atomically replace ``path`` with ``data`` (comments: key -> help text)."""
    write_text_atomic(path, dump_params(data, comments))


def update_yaml(
    path: str | os.PathLike[str],
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    comments: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Locked read-modify-write of a YAML mapping; ``change`` edits the dict in place or returns a new one.

    Comments already in the file are kept for keys that ``comments`` does not mention.
    """
    with locked(path):
        data = read_yaml(path)
        kept = read_comments(path)
        if comments:
            kept.update(comments)
        result = change(data)
        if result is not None:
            data = result
        write_yaml(path, data, kept)
        return data


def read_comments(path: str | os.PathLike[str]) -> dict[str, str]:
    """Help comments written by ``dump_params`` (``key: value  # help``), keyed by top-level key.

    Also reads the ``# key: help`` line that ``dump_params`` puts above a multi-line scalar (a long text folded by
    the dumper), so such comments survive ``update_yaml`` too.
    """
    comments: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except OSError:
        return comments
    for index, line in enumerate(lines):
        if line.startswith("# ") and index + 1 < len(lines):
            following = lines[index + 1]
            key, sep, _ = following.partition(":")
            if sep and key and following[0] not in " \t-#'\"" and line.startswith(f"# {key}: "):
                comments[key] = line[len(f"# {key}: "):]
            continue
        if not line or line[0] in " \t-#":
            continue
        key, sep, _ = line.partition(":")
        if not sep or "  # " not in line:
            continue
        # Our own writer puts exactly '  # ' before the comment; the value part is YAML we wrote, so the last
        # occurrence is the comment unless a quoted value held it, which we check by re-parsing the value part.
        head, _, note = line.rpartition("  # ")
        try:
            parsed = yaml.load(head, Loader=_Loader)
        except yaml.YAMLError:
            continue
        if isinstance(parsed, dict) and len(parsed) == 1:
            comments[str(next(iter(parsed)))] = note
    return comments
