"""Where and from what an experiment came: timestamps, code version (git) and machine.

Everything here is recorded in ``defaults.yml`` / ``params.yml`` so that a result can be traced back to the code and
machine that produced it. Git is asked once per process and repository (results are cached): registering 10,000
experiments must not spawn 40,000 ``git`` processes. Nothing here may fail an experiment: a missing ``git``, a folder
outside any repository, a repository without remote or commits, or a detached HEAD all give partial information.
"""
from __future__ import annotations

import functools
import getpass
import os
import socket
import subprocess
import threading
import uuid

from datetime import datetime
from pathlib import Path
from typing import Any

#: Format of every timestamp xmen writes (sortable as text, safe in file names), e.g. ``2020-03-09-16-42-13``.
TIME_FORMAT = "%Y-%m-%d-%H-%M-%S"

#: Seconds any single git command may take before we give up on it (a hung NFS mount must not hang a job).
_GIT_TIMEOUT = 10.0

_git_cache: dict[str, dict[str, Any] | None] = {}
_git_lock = threading.Lock()


def now_time() -> str:
    """The current local time as ``%Y-%m-%d-%H-%M-%S`` (the format of ``_created`` in the tutorial)."""
    return datetime.now().strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime | None:
    """Inverse of :func:`now_time`; ``None`` for anything that is not such a timestamp."""
    try:
        return datetime.strptime(str(text), TIME_FORMAT)
    except ValueError:
        return None


def _git(folder: str, *args: str) -> str | None:
    """Run one git command in ``folder``; its stripped stdout, or ``None`` on any failure."""
    env = dict(os.environ)
    # Never take .git/index.lock (a status refresh would otherwise race with the user's own git commands) and
    # never open an editor or ask for credentials.
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    try:
        proc = subprocess.run(
            ["git", "-C", folder, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            env=env,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()


def _query_git(folder: str) -> dict[str, Any] | None:
    """Git facts for the work tree holding ``folder`` (uncached)."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    if not top:
        return None
    with _git_lock:
        if top in _git_cache:  # another folder of the same repository was asked already
            return _git_cache[top]
    commit = _git(top, "rev-parse", "--verify", "--quiet", "HEAD")  # None in a repository without commits
    branch = _git(top, "symbolic-ref", "--quiet", "--short", "HEAD")  # None when HEAD is detached
    remote = _git(top, "config", "--get", "remote.origin.url")
    if remote is None:  # no 'origin': take the first remote there is, if any
        listing = _git(top, "config", "--get-regexp", r"^remote\..*\.url$")
        if listing:
            remote = listing.splitlines()[0].partition(" ")[2] or None
    # Untracked files are ignored: scanning them is slow in repositories holding data and they rarely matter.
    status = _git(top, "status", "--porcelain", "--untracked-files=no")
    info: dict[str, Any] = {
        "local": top,
        "remote": remote,
        "commit": commit,
        "branch": branch,
        "dirty": None if status is None else bool(status),
    }
    with _git_lock:
        _git_cache[top] = info
    return info


def get_git(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``{local, remote, commit, branch, dirty}`` for the repository holding ``folder``; ``None`` outside git.

    ``remote``/``commit``/``branch`` are ``None`` when there is no remote, no commit yet, or a detached HEAD.
    Cached per process: the answer is computed once per folder (and once per repository).
    """
    key = os.path.abspath(folder)
    with _git_lock:
        if key in _git_cache:
            return _git_cache[key]
    info = _query_git(key)
    with _git_lock:
        _git_cache[key] = info
    return info


def clear_cache() -> None:
    """Forget cached git answers (for tests, or a long-lived process that commits between registrations)."""
    with _git_lock:
        _git_cache.clear()


def get_version(module_path: str | os.PathLike[str] | None, class_name: str | None) -> dict[str, Any]:
    """Version record of an experiment: ``{module, class, git}``.

    ``module`` is the absolute path of the file defining the class. ``git`` (see :func:`get_git`) is present only
    when that file lies in a git work tree, as in the original xmen.
    """
    version: dict[str, Any] = {
        "module": os.path.abspath(module_path) if module_path else None,
        "class": class_name,
    }
    if module_path:
        git = get_git(Path(os.path.abspath(module_path)).parent)
        if git is not None:
            version["git"] = dict(git)
    return version


@functools.lru_cache(maxsize=1)
def _mac() -> str:
    return f"{uuid.getnode():#014x}"


@functools.lru_cache(maxsize=1)
def hostname() -> str:
    """This machine's host name (not the FQDN: resolving that can block for seconds on a badly set-up DNS)."""
    return socket.gethostname()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):  # no login name and no passwd entry (some containers)
        return str(os.getuid())


def get_meta() -> dict[str, str]:
    """Machine and user record: ``{mac, host, user, home}`` (mac as ``0x`` + 12 hex digits, like the tutorial)."""
    return {"mac": _mac(), "host": hostname(), "user": _user(), "home": os.path.expanduser("~")}
