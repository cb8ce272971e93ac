"""Atomic, locked YAML state files: the one place that writes them.

Every state write goes to a temporary file in the same folder, is fsync'ed and renamed over the target, so a crash,
``kill -9`` or a full disk leaves either the old or the new file, never a truncated one. Read-modify-write cycles
(``update_yaml``) hold an exclusive ``flock`` on a sidecar lock file so that concurrent writers (an experiment's
``message()`` and a ``xmen note`` from another shell) never lose each other's update.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping

import yaml

from xmen.errors import LinkError, StateFileError

try:  # The C loader/dumper are 5-10x faster; fall back to pure Python where libyaml is missing.
    _Loader = yaml.CSafeLoader
    _Dumper = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on the platform build of PyYAML
    _Loader = yaml.SafeLoader  # type: ignore[misc]
    _Dumper = yaml.SafeDumper  # type: ignore[misc]

PathLike = "str | os.PathLike[str]"

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that gives one key twice: the second would silently replace the first (and what it named)."""

    def __init__(self, key: Any, mark: Any) -> None:
        super().__init__(None, None, f"duplicate key {key!r}", mark)
        self.key = key


class UniqueKeyLoader(_Loader):  # type: ignore[misc,valid-type]
    """The safe loader, refusing a mapping that gives one key twice at any depth (``{b: 1, b: 2}`` silently kept
    ``b: 2``) with a :class:`DuplicateKeyError`. Keys a merge (``<<``) brings in may repeat and be overridden, as
    YAML says. The check is part of the one construction pass (a dict lookup per key), so the reader every state
    file goes through costs no more than the plain safe loader."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._merged_pairs: dict[yaml.Node, int] = {}  # mapping node -> how many pairs its merges put first

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        explicit = node.value
        super().flatten_mapping(node)  # merged pairs first, then ``explicit`` (its merge keys removed in place)
        if node.value is not explicit:  # recorded once: a node flattened again (an alias) has no merge keys left
            self._merged_pairs[node] = len(node.value) - len(explicit)

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep=deep)  # its error for a non-mapping
        self.flatten_mapping(node)
        first_explicit = self._merged_pairs.get(node, 0)
        mapping: dict[Any, Any] = {}
        given: Any = mapping if first_explicit == 0 else set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = index >= first_explicit and key in given
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
                ) from None
            if repeated:
                raise DuplicateKeyError(key, key_node.start_mark)
            if given is not mapping and index >= first_explicit:
                given.add(key)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def refuse_link(path: str | os.PathLike[str]) -> None:
    """Raise :class:`LinkError` when a symbolic link stands at ``path`` (a file xmen is about to write)."""
    if os.path.islink(path):
        raise LinkError.at(path)


def refuse_links(folder: str | os.PathLike[str], names: Iterable[str | os.PathLike[str]]) -> None:
    """:func:`refuse_link` for each of xmen's files ``names`` in ``folder`` (and each folder on their way there)."""
    for name in names:
        path = Path(folder, name)
        for part in [*reversed(path.relative_to(folder).parents[:-1]), path.relative_to(folder)]:
            refuse_link(Path(folder, part))


def open_own(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """``os.open`` of one of xmen's own files for writing, appending or truncating, never through a symbolic link
    at ``path`` (``O_NOFOLLOW``; with ``O_CREAT | O_EXCL`` a link is never followed either): a link there is refused
    with a :class:`LinkError` naming it, so the file it points to keeps its bytes. Every such open in xmen goes
    through here."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EEXIST, errno.EMLINK) and os.path.islink(path):
            raise LinkError.at(path) from None
        raise


def own_folder(path: str | os.PathLike[str]) -> Path:
    """Make xmen's folder ``path`` (and its parents) if missing; refuse (LinkError) when it is a symbolic link, so
    that nothing xmen writes into it lands in a folder the link points to."""
    folder = Path(path)
    refuse_link(folder)
    folder.mkdir(parents=True, exist_ok=True)
    refuse_link(folder)
    return folder


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar lock file guarding ``path`` (kept, never deleted: deleting lock files races)."""
    p = Path(path)
    return p.with_name(f".{p.name}.lock")


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], shared: bool = False) -> Iterator[int]:
    """Hold an flock on the sidecar lock of ``path`` for the duration of the block (its fd is the block's value)."""
    lp = lock_path(path)
    fd = open_own(lp, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield fd
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


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], object], mode: int = 0o644) -> None:
    """Replace ``path`` with what ``write`` writes into the binary handle it is given, atomically (temp file + fsync
    + rename + fsync of the folder); a symbolic link at ``path`` is refused (LinkError naming it), neither followed
    nor replaced. Every atomic replace of a whole file in xmen goes through here."""
    target = Path(path)
    refuse_link(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def write_text_atomic(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """:func:`write_atomic` of ``text`` (UTF-8): a symbolic link at ``path`` is refused, neither followed nor
    replaced."""
    data = text.encode("utf-8")
    write_atomic(path, lambda handle: handle.write(data), mode)


def write_new_file(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """Create ``path`` (it must not exist: O_EXCL) holding ``text``, without fsync.

    Only for files in a folder that is brand new and becomes part of a set only through a later atomic state
    write (experiment.yml, the commit point): call ``sync_filesystem`` before that write, so that whatever the
    state file names is on disk. The mode is set exactly (no umask), as ``write_text_atomic`` does.
    """
    data = text.encode("utf-8")
    fd = open_own(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def sync_filesystem(path: str | os.PathLike[str]) -> None:
    """Flush every written file of the file system holding ``path`` to disk (syncfs; sync where it is missing)."""
    syncfs = _syncfs()
    if syncfs is not None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    os.sync()


def _libc(name: str, argtypes: list[Any], restype: Any) -> Any:
    """The C library function ``name`` with its signature, or None where it is missing (not Linux/glibc)."""
    try:
        import ctypes

        function = getattr(ctypes.CDLL(None, use_errno=True), name)  # the process's own symbols, libc included
    except (OSError, AttributeError, ImportError):
        return None
    function.argtypes = argtypes
    function.restype = restype
    return function


@functools.cache
def _syncfs() -> Any:
    """``syncfs(2)``, or None (os.sync() instead)."""
    import ctypes

    return _libc("syncfs", [ctypes.c_int], ctypes.c_int)


#: Most nodes that aliases may add to a YAML document. A few lines of nested anchors and aliases ("billion
#: laughs") stand for billions of values once a reader walks, prints or re-dumps them; no state file xmen writes
#: comes near this (its aliases share a few run options).
MAX_ALIAS_NODES = 100_000


class AliasBombError(yaml.YAMLError):
    """A document whose aliases expand beyond :data:`MAX_ALIAS_NODES` nodes, or refer to themselves."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _alias_growth(root: yaml.Node) -> int:
    """How many nodes the aliases of the composed document ``root`` add when expanded (each node seen once)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise AliasBombError("an alias refers to the node that contains it")
        open_nodes.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                raise AliasBombError("an alias refers to the node that contains it")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)] - len(sizes)


def parse_yaml(text: str, loader: Any = None) -> Any:
    """``yaml.load`` with a safe ``loader`` (default: :class:`UniqueKeyLoader`, the safe loader refusing a key given
    twice), refusing alias bombs (AliasBombError).

    A document without anchors cannot hold aliases and is loaded directly; one with anchors is composed first and
    its expanded size checked before any value is built.
    """
    loader = loader or UniqueKeyLoader
    if "&" not in text:
        return yaml.load(text, Loader=loader)
    instance = loader(text)
    try:
        node = instance.get_single_node()
        if node is None:
            return None
        growth = _alias_growth(node)
        if growth > MAX_ALIAS_NODES:
            raise AliasBombError(f"its aliases expand to more than {MAX_ALIAS_NODES:,} values (a YAML alias bomb?)")
        return instance.construct_document(node)
    finally:
        instance.dispose()


def load_yaml_text(text: str, source: str = "<string>") -> Any:
    """Parse YAML with the safe loader, turning parser errors into a one-line StateFileError; a key given twice (at
    any depth) is one too: ``SOURCE: duplicate key 'K' (line N)``, since the second would silently win."""
    try:
        return parse_yaml(text)
    except DuplicateKeyError as exc:
        raise StateFileError(f"{source}: duplicate key {exc.key!r} (line {exc.problem_mark.line + 1})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StateFileError(f"{source}: invalid YAML{where}: {problem}") from None


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping. Missing, unreadable, empty or non-mapping files are StateFileErrors, and so is a
    mapping that gives one key twice at any depth (the second would silently win: a linked experiment lost)."""
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


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Read a YAML mapping for a reader that skips what it cannot read: ``{}`` for an empty file, ``None`` when the
    file is missing, unreadable, not valid YAML (alias bombs and duplicate keys included) or not a mapping. :func:`read_yaml` is the
    same read for callers that report the problem."""
    text = _read_text(path)
    if text is None:
        return None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError:
        return None
    if data is None:
        return {}
    return data if isinstance(data, dict) else None


def dump_yaml(data: Any) -> str:
    """Block-style YAML keeping key order (params files are read by people)."""
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True, width=120)


def _format_comment(text: str) -> str:
    return " ".join(str(text).split())


def _commented(key: Any, chunk: str, note: str | None) -> str:
    """``chunk`` (the YAML of one top-level entry) with its ``# help`` comment, as ``dump_params`` writes it."""
    if not note:
        return chunk
    lines = chunk.rstrip("\n").split("\n")
    if len(lines) == 1:
        return f"{lines[0]}  # {_format_comment(note)}\n"
    first = lines[0]
    if first.endswith(":"):  # nested value: the comment goes on the key's own line, which ends with ':'
        return f"{first}  # {_format_comment(note)}\n" + "\n".join(lines[1:]) + "\n"
    return f"# {key}: {_format_comment(note)}\n{chunk}"  # a multi-line scalar: put the comment above it


def param_entry(key: Any, value: Any, note: str | None = None) -> str:
    """The text ``dump_params`` writes for one top-level ``key: value`` entry with its help comment ``note``."""
    return _commented(key, dump_yaml({key: value}), note)


# A string the dumper writes as a plain scalar, unquoted, whatever its length: no spaces or YAML indicators, not
# starting with '.', '-' or '=' (it must still resolve to a string: see plain_str_entry).
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*\Z")
_STR_TAG = "tag:yaml.org,2002:str"
_resolver: Any = None


def _is_plain(text: str) -> bool:
    global _resolver
    if not _PLAIN_TEXT.match(text):
        return False
    if _resolver is None:
        _resolver = yaml.resolver.Resolver()
    # Strings that would read back as something else (yes, null, 123, 1e3, 0x1F, 2026-01-01...) are quoted.
    return _resolver.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG


def plain_str_entry(key: str, value: str, note: str | None = None) -> str:
    """``param_entry`` for a string value, without running the YAML dumper when the text needs no quoting.

    Identical to ``param_entry(key, value, note)`` (tests compare both over tricky names).
    """
    if type(value) is str and _is_plain(key) and _is_plain(value):
        return _commented(key, f"{key}: {value}\n", note)
    return param_entry(key, value, note)


def dump_params(data: Mapping[str, Any], comments: Mapping[str, str] | None = None) -> str:
    """YAML for params/defaults files: one top-level key at a time, each followed by its ``# help`` comment.

    Comments only ever follow a complete top-level entry, so the file stays valid YAML whatever the values hold.
    """
    comments = comments or {}
    return "".join(param_entry(key, value, comments.get(key)) for key, value in data.items())


class ParamsText:
    """``dump_params`` for many files sharing most of their values (a sweep): each (key, value object) is dumped
    once and its text reused; a string key in ``plain_keys`` (e.g. ``_name``) skips the dumper when it can.

    The values must not change while the renderer is in use (the cache keys on the value objects, which it keeps
    alive, so an id is never reused).
    """

    def __init__(self, comments: Mapping[str, str] | None = None, plain_keys: tuple[str, ...] = ()) -> None:
        self.comments = dict(comments or {})
        self.plain_keys = frozenset(plain_keys)
        self._cache: dict[tuple[Any, int], tuple[Any, str]] = {}

    def entry(self, key: Any, value: Any) -> str:
        if key in self.plain_keys and type(value) is str:
            return plain_str_entry(key, value, self.comments.get(key))
        slot = (key, id(value))
        hit = self._cache.get(slot)
        if hit is not None and hit[0] is value:
            return hit[1]
        text = param_entry(key, value, self.comments.get(key))
        self._cache[slot] = (value, text)
        return text

    def render(self, data: Mapping[str, Any]) -> str:
        return "".join([self.entry(key, value) for key, value in data.items()])


def write_yaml(
    path: str | os.PathLike[str], data: Mapping[str, Any], comments: Mapping[str, str] | None = None
) -> None:
    """Atomically replace ``path`` with ``data`` (comments: key -> help text)."""
    write_text_atomic(path, dump_params(data, comments))


#: How long a reader waits for a file caught half-written by an in-place save (an editor truncating and writing).
SETTLE_SECONDS = 1.0
#: A file changed by someone other than xmen less than this long ago may be an in-place save still being written.
QUIET_SECONDS = 0.05


def read_yaml_settled(path: str | os.PathLike[str], patience: float = SETTLE_SECONDS) -> dict[str, Any]:
    """:func:`read_yaml`, retried for up to ``patience`` seconds while the file is empty or not valid YAML.

    xmen's own writes are atomic, but a person's editor may save in place (truncate, then write): a reader that
    catches the file in between must not take a half-saved file for a corrupt one. A missing file is not retried.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            return read_yaml(path)
        except StateFileError:
            if time.monotonic() >= deadline or not os.path.exists(path):
                raise
            time.sleep(0.02)


def _read_text(path: str | os.PathLike[str]) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _mapping(data: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise StateFileError(f"{path}: expected a YAML mapping, found {type(data).__name__}")
    return data


def _identity(info: os.stat_result) -> str:
    return f"{info.st_ino} {info.st_mtime_ns} {info.st_size}"


def _last_written(lock_fd: int) -> str:
    """The identity of the file as the last xmen writer left it, kept in the sidecar lock file."""
    try:
        return os.pread(lock_fd, 200, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _note_written(lock_fd: int, identity: str) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(lock_fd, 0)
        os.pwrite(lock_fd, identity.encode("ascii"), 0)


def _read_quiet(path: str | os.PathLike[str], last_written: str) -> tuple[str, dict[str, Any]]:
    """(text, mapping) of a state file once no foreign in-place save is in progress.

    A file exactly as the last xmen writer left it is read at once. One changed since by someone else (an editor)
    less than :data:`QUIET_SECONDS` ago may be half-written, and a truncated YAML file is often still valid YAML:
    wait until it has been quiet that long (at most :data:`SETTLE_SECONDS`).
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            raise StateFileError(f"{path}: no such file") from None
        except OSError as exc:
            raise StateFileError(f"{path}: cannot read: {exc}") from None
        text = _read_text(path)
        quiet = _identity(info) == last_written or time.time() - info.st_mtime_ns / 1e9 > QUIET_SECONDS
        stable = text is not None and _identity(info) == _identity(os.stat(path))
        if quiet and stable or time.monotonic() >= deadline:
            if text is None:
                return "", read_yaml(path)  # raises the reason
            try:
                return text, _mapping(load_yaml_text(text, str(path)), path)
            except StateFileError:
                if time.monotonic() >= deadline:
                    raise
        time.sleep(0.01)


def update_yaml(
    path: str | os.PathLike[str],
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    comments: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Locked read-modify-write of a YAML mapping; ``change`` edits the dict in place or returns a new one.

    Comments already in the file are kept for keys that ``comments`` does not mention. Other xmen writers take the
    same lock; a person's editor does not, so the change is merged into what is on disk at the moment it is put in
    place: a file caught while an editor saves it in place is read once it is quiet (:func:`_read_quiet`); if it
    changed between our read and our write, the change is applied again to the new text; and the new file is
    swapped in atomically (``renameat2(RENAME_EXCHANGE)`` on Linux), so that a save landing in the last instant is
    seen, waited for and merged too. A hand edit saved during a run is never replaced by a stale copy. ``change``
    may therefore run more than once; it must only set the keys it changes.
    """
    target = Path(path)
    refuse_link(target)
    with locked(path) as lock_fd:
        base, data = _read_quiet(target, _last_written(lock_fd))
        ours: str | None = None  # our own text, when a round put it in place over a save that landed meanwhile
        for _attempt in range(50):
            kept = read_comments(target)
            if comments:
                kept.update(comments)
            result = change(data)
            if result is not None:
                data = result
            text = dump_params(data, kept)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                    written = _identity(os.fstat(handle.fileno()))
                os.chmod(tmp, 0o644)
                last = _last_written(lock_fd)
                if _read_text(target) not in (base, ours):  # saved by someone else meanwhile: merge into that
                    os.unlink(tmp)
                    base, data = _read_quiet(target, last)
                    continue
                swapped = _exchange(tmp, target)
                if not swapped:
                    os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            _note_written(lock_fd, written)
            _fsync_dir(target.parent)
            if not swapped:
                return data
            # tmp now holds what we displaced: normally the text we read; else a save that landed in the last instant
            try:
                displaced, displaced_data = _read_quiet(tmp, last)
            except StateFileError:
                displaced, displaced_data = None, None
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if displaced is None or displaced in (base, ours):
                return data
            ours, base, data = text, displaced, displaced_data  # merge our change into that save, swap again
        raise StateFileError(f"{path}: keeps changing while xmen writes it; not written")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
@functools.cache
def _renameat2() -> Any:
    """``renameat2(2)``, or None (glibc before 2.28, not Linux: plain rename)."""
    import ctypes

    path_args = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return _libc("renameat2", path_args, ctypes.c_int)


def _exchange(tmp: str, target: Path) -> bool:
    """Swap ``tmp`` and ``target`` in one atomic step; False where the system or file system cannot."""
    function = _renameat2()
    if function is None:
        return False
    return function(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE) == 0


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
