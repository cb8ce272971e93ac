"""Bring a remote set's records (not its checkpoints) to this machine: ``xmen sync [USER@]HOST:/path/to/set DIR``.

What is copied is what ``xmen list`` and a reader need: experiment.yml, defaults.yml, script.sh, each params.yml
and run.sh, and the small text records (logs, histories, messages: ``*.log``, ``*.txt``, ``*.json(l)``, ``*.csv``,
``*.yml``), each below ``max_size``. Checkpoints and other big or binary files stay where they are. The copy goes
through rsync over ssh (only what changed moves, so syncing again is cheap), into ``DIR/<set folder name>``;
nothing is ever deleted locally. A copied set that does not yet say where it lives gets the remote host and path as
its ``origin``, which ``xmen list`` shows.
"""
from __future__ import annotations

import fnmatch
import math
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from xmen.errors import LinkError, UsageError, XmenError
from xmen.sets.expset import ExperimentSet
from xmen.sets.finding import sets_below
from xmen.store import naming
from xmen.store.layout import DEFAULTS_FILE, DONE_FILE, PARAMS_FILE, RUN_FILE, SCRIPT_FILE, SET_FILE, SNAKEFILE

#: File names and patterns copied (rsync include patterns, matched against the file name).
RECORDS = (
    SET_FILE, DEFAULTS_FILE, SCRIPT_FILE, SNAKEFILE, PARAMS_FILE, RUN_FILE, DONE_FILE,
    "*.log", "*.txt", "*.json", "*.jsonl", "*.csv", "*.yml", "*.yaml", "*.out", "*.err",
)
#: Never copied: the listing index (rebuilt locally), run locks and heartbeats, and the backups of other tools.
SKIPPED = (".xmen/", ".xmen-*", ".snakemake/")
DEFAULT_MAX_SIZE = "20M"
_SIZE = re.compile(r"^\d+(\.\d+)?[KMGkmg]?$")
_REMOTE = re.compile(r"^(?P<host>(?:[^@:/\s]+@)?[^@:/\s]+):(?P<path>/.*|~.*|[^/].*)$")


@dataclass(frozen=True)
class Remote:
    """``[user@]host:path`` split; ``host`` keeps the user part for ssh, ``hostname`` is without it."""

    host: str
    path: str

    @property
    def hostname(self) -> str:
        return self.host.rpartition("@")[2]


def parse_remote(text: str) -> Remote:
    """``[USER@]HOST:PATH`` split into a Remote; UsageError for anything else, and for a host (or user) starting
    with ``-``, which ssh and rsync would read as an option (``-oProxyCommand=...`` runs a command here)."""
    match = _REMOTE.match(text)
    if match is None:
        raise UsageError(f"expected [USER@]HOST:/path/to/set, got {text!r}")
    host = match.group("host")
    if host.startswith("-") or host.rpartition("@")[2].startswith("-"):
        raise UsageError(f"host {host!r} starts with '-': ssh would read it as an option")
    path = match.group("path").rstrip("/") or "/"
    return Remote(host, path)


def rsync_command(remote: Remote, dest: Path, rsh: str, max_size: str) -> list[str]:
    """The rsync call: the remote set folder into ``dest`` (which then holds a folder of the set's name)."""
    size_in_bytes(max_size)
    command = ["rsync", "-a", "--prune-empty-dirs", f"--max-size={max_size}", "-e", rsh]
    command += [f"--exclude={pattern}" for pattern in SKIPPED]
    command += ["--include=*/"] + [f"--include={pattern}" for pattern in RECORDS] + ["--exclude=*"]
    # "host:path" with rsync's protect-args so that spaces and shell characters in the path stay literal.
    command += ["--protect-args", f"{remote.host}:{remote.path}", f"{dest}/"]
    return command


def size_in_bytes(max_size: str) -> int:
    """Bytes of a ``--max-size`` (``500K``, ``20M``, ``1G``); UsageError for anything else."""
    if not _SIZE.match(max_size):
        raise UsageError(f"--max-size: expected a size such as 500K, 20M or 1G, got {max_size!r}")
    unit = max_size[-1].upper() if max_size[-1].isalpha() else ""
    number = float(max_size[:-1] if unit else max_size) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[unit]
    if not math.isfinite(number):  # 400 digits: a float, but no int
        raise UsageError(f"--max-size: {max_size[:20]}... is not a finite size")
    return int(number)


def tar_remote_command(remote: Remote, max_size: str) -> str:
    """The remote shell command streaming the same records as a tar (for machines without rsync)."""
    parent, name = os.path.split(remote.path.rstrip("/"))
    q = shlex.quote
    names = " -o ".join(f"-name {q(pattern)}" for pattern in RECORDS)
    # The set's name as ./NAME, so that a set called -delete is a path to find, not its action. A missing set, or a
    # find that fails (pipefail, where the remote shell has it), fails the command instead of sending an empty tar.
    folder = q("./" + name)
    return (
        f"(set -o pipefail) 2>/dev/null && set -o pipefail; cd -- {_remote_folder(parent)} && "
        f"{{ test -d {folder} || {{ echo {q('no such set folder: ' + remote.path)} >&2; exit 2; }}; }} && "
        f"find {folder} \\( -name .xmen -o -name .snakemake \\) -prune -o -type f "
        f"\\( {names} \\) ! -name '.xmen-*' -size -{size_in_bytes(max_size) + 1}c -print0 "
        "| tar --null -T - -cf -"
    )


def _remote_folder(parent: str) -> str:
    """The remote shell's word for the folder ``parent``: quoted, with a leading ``~`` left to the shell (the home
    folder) and an empty one meaning the folder ssh starts in (the home folder)."""
    if not parent:
        return "."
    if parent == "~" or parent.startswith("~/"):
        rest = parent[2:]
        return '"$HOME"' + (f"/{shlex.quote(rest)}" if rest else "")
    return shlex.quote(parent)


def _sync_tar(remote: Remote, dest: Path, rsh: str, max_size: str, source: str) -> None:
    """ssh + tar: the remote streams a tar of the records, extracted here with tarfile's safe ``data`` filter."""
    import tarfile

    command = shlex.split(rsh) + ["--", remote.host, tar_remote_command(remote, max_size)]
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
                archive.extractall(dest, filter="data")
        except tarfile.TarError as exc:
            proc.kill()
            raise XmenError(f"ssh/tar from {source} failed: {exc}") from None
        finally:
            errors = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            proc.wait()
    if proc.returncode != 0:
        lines = [line for line in errors.strip().splitlines() if line.strip()]
        raise XmenError(f"ssh/tar from {source} failed: {lines[0] if lines else f'exit code {proc.returncode}'}")


def sync(
    source: str,
    dest: str | os.PathLike[str],
    rsh: str = "ssh",
    max_size: str = DEFAULT_MAX_SIZE,
    via: str = "auto",
) -> Path:
    """Copy the records of the set at ``source`` ([USER@]HOST:/path) into ``dest``; the local set folder.

    ``via``: ``rsync`` (only what changed moves; needs rsync on both machines), ``tar`` (ssh and tar only), or
    ``auto``: rsync when it is installed here.
    """
    remote = parse_remote(source)
    size_in_bytes(max_size)
    try:
        shlex.split(rsh)
    except ValueError as exc:
        raise UsageError(f"--rsh: {exc}") from None
    if via == "auto":
        via = "rsync" if shutil.which("rsync") else "tar"
    if via == "rsync" and shutil.which("rsync") is None:
        raise XmenError("rsync is not installed here: install it, or use --via tar")
    dest_path = Path(os.path.abspath(os.path.expanduser(dest)))
    naming.check_new_folder("folder", dest_path, itself=False)  # the set keeps its remote name, whatever it is
    refuse_links_in_copy(dest_path / os.path.basename(remote.path.rstrip("/")))
    created = _first_missing(dest_path)
    dest_path.mkdir(parents=True, exist_ok=True)
    try:
        if via == "tar":
            _sync_tar(remote, dest_path, rsh, max_size, source)
        else:
            proc = subprocess.run(
                rsync_command(remote, dest_path, rsh, max_size), stdin=subprocess.DEVNULL, capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
                raise XmenError(f"rsync from {source} failed: {lines[0] if lines else f'exit code {proc.returncode}'}")
    except BaseException:
        if created is not None:  # the folders this sync made, and what it put in them: nothing else was there
            shutil.rmtree(created, ignore_errors=True)
        raise
    local = dest_path / os.path.basename(remote.path.rstrip("/"))
    _record_origin(local, remote)
    return local


def refuse_links_in_copy(local: Path) -> None:
    """Before a sync writes anything: a symbolic link at the local copy of the set, at a folder in it, or where a
    record could be written (a file name RECORDS matches, or a link to nothing) is refused with a LinkError naming
    it. A sync never writes through a link (tar would) nor replaces one (rsync would)."""
    if local.is_symlink():
        raise LinkError.at(local)
    if not local.is_dir():
        return
    for folder, dirs, names in os.walk(local):  # never descends into a linked folder: it is refused first
        for name in sorted(dirs) + sorted(names):
            path = Path(folder, name)
            if path.is_symlink() and (name in dirs or not path.is_file() or _is_record(name)):
                raise LinkError.at(path)


def _is_record(name: str) -> bool:
    """True when a file called ``name`` is one of the records a sync copies."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in RECORDS)


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what ``mkdir -p`` would create first), or None."""
    missing = None
    while not path.exists() and not path.is_symlink():
        missing = path
        if path.parent == path:
            break
        path = path.parent
    return missing


def _record_origin(local: Path, remote: Remote) -> None:
    """Give every copied set that does not say where it lives the remote host and path as its origin."""
    if not local.is_dir():
        return
    for root in sets_below(local):
        rel = os.path.relpath(root, local)
        path = remote.path if rel == "." else f"{remote.path}/{rel}"
        exp_set = ExperimentSet(root)
        if exp_set.data().get("origin"):
            continue

        def add(data, path=path):
            data["origin"] = {"host": remote.hostname, "path": path}

        exp_set._update_set(add)
