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


# ---------------------------------------------------------------------- provenance of each run (attempt)
#: How many attempts ``_attempts`` in params.yml keeps (the oldest are dropped).
ATTEMPTS_KEPT = 20
#: Folder (in the experiment's folder) where the logs of earlier attempts are kept; ``xmen.log`` is the latest.
LOGS_DIR = "logs"
RUN_LOG = "xmen.log"


def _diff_hash(top: str) -> str | None:
    """Hash of the uncommitted changes to tracked files (``git diff HEAD``); None when there are none."""
    diff = _git(top, "diff", "HEAD", "--no-color", "--no-ext-diff")
    if not diff:
        return None
    import hashlib

    return hashlib.sha256(diff.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def run_code(exp_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The code a run of the experiment in ``exp_dir`` uses, now: git commit, branch, dirty flag and a hash of the
    uncommitted diff (of the repository holding the experiment module, else the set), the hashes of the set's
    script and the module (what the planner compares to flag changed code), Python and xmen versions."""
    import platform

    from xmen._version import __version__
    from xmen.run import planner

    root = os.path.dirname(os.path.abspath(exp_dir))
    code: dict[str, Any] = {}
    info = planner.load_set(root)
    files_now = planner.code_record(info) if info is not None else {}
    code_files = info.code()[0] if info is not None else []
    module = code_files[1] if len(code_files) > 1 else None  # [set script, experiment module]
    top = _git(os.path.dirname(module) if module else root, "rev-parse", "--show-toplevel")
    if top:
        status = _git(top, "status", "--porcelain", "--untracked-files=no")
        code.update(
            commit=_git(top, "rev-parse", "--verify", "--quiet", "HEAD"),
            branch=_git(top, "symbolic-ref", "--quiet", "--short", "HEAD"),
            dirty=None if status is None else bool(status),
            diff_hash=_diff_hash(top) if status else None,
        )
    code.update(files=files_now, python=platform.python_version(), xmen=__version__)
    return code


def run_context(exp_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """What a run records when it starts, besides host/pid/start time: where (SLURM node and job), the code, and
    the requirements it was given (globs resolved now, relative to the set)."""
    from xmen.run import planner

    record: dict[str, Any] = {}
    if os.environ.get("SLURM_JOB_ID"):
        record["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
        if os.environ.get("SLURMD_NODENAME"):
            record["slurm_node"] = os.environ["SLURMD_NODENAME"]
    path = os.path.abspath(exp_dir)
    try:  # provenance never fails a run: a damaged experiment.yml gives a partial record
        required = planner.Planner(reasons=False).requirements(path)
        record["requires"] = [os.path.relpath(r, os.path.dirname(path)) for _, r in required if r]
        record["code"] = run_code(exp_dir)
    except Exception as exc:  # noqa: BLE001
        record["provenance_error"] = f"{type(exc).__name__}: {exc}"
    return record


def record_start(data: dict[str, Any], run: dict[str, Any]) -> None:
    """Complete the run record with the parameters it runs with, and make ``_version.git`` the run's commit
    (``xmen list -g`` shows what the run used, not what was checked out at ``xmen init``)."""
    from xmen.run.planner import params_hash, public_params

    run["params_hash"] = params_hash(data)
    run["params"] = public_params(data)
    code = run.get("code") or {}
    if code.get("commit") is not None or "commit" in code:
        version = data.get("_version") if isinstance(data.get("_version"), dict) else {}
        git = dict(version.get("git") or {}) if isinstance(version.get("git"), dict) else {}
        git.update(commit=code.get("commit"), branch=code.get("branch"), dirty=code.get("dirty"))
        version = dict(version)
        version["git"] = git
        data["_version"] = version


def record_end(data: dict[str, Any], run: dict[str, Any], final: str, reason: str | None, rc: int) -> None:
    """How the run ended (status, exit code or signal, reason), and the run appended to ``_attempts``."""
    run["status"] = final
    if rc < 0:
        run["signal"] = -rc
    if reason:
        run["reason"] = reason
    history = data.get("_attempts") if isinstance(data.get("_attempts"), list) else []
    entry = {k: v for k, v in run.items() if k != "params"}
    history = [h for h in history if not (isinstance(h, dict) and h.get("started") == run.get("started")
                                          and h.get("pid") == run.get("pid"))]
    data["_attempts"] = (history + [entry])[-ATTEMPTS_KEPT:]


def keep_previous_log(exp_dir: str | os.PathLike[str]) -> str | None:
    """Move the previous attempt's ``xmen.log`` to ``logs/attempt-N.log`` before a new attempt overwrites it;
    keeps the newest ``ATTEMPTS_KEPT``. The new path, or None when there was no log."""
    log = os.path.join(os.fspath(exp_dir), RUN_LOG)
    if not os.path.exists(log):
        return None
    folder = os.path.join(os.fspath(exp_dir), LOGS_DIR)
    os.makedirs(folder, exist_ok=True)
    numbers = sorted(
        int(name[8:-4]) for name in os.listdir(folder)
        if name.startswith("attempt-") and name.endswith(".log") and name[8:-4].isdigit()
    )
    target = os.path.join(folder, f"attempt-{(numbers[-1] if numbers else 0) + 1}.log")
    os.replace(log, target)
    for old in numbers[: max(0, len(numbers) + 1 - ATTEMPTS_KEPT)]:
        try:
            os.unlink(os.path.join(folder, f"attempt-{old}.log"))
        except OSError:
            pass
    return target


def done_text(run: dict[str, Any]) -> str:
    """Content of the status file ``xmen.done`` of a finished run: ``finished`` and which run it was.

    Snakemake compares its inputs by checksum: a requirement that reran must change its status file's content,
    not only its mtime, or Snakemake would not rerun what depends on it while xmen.planner would.
    """
    return f"finished\nrun: {run.get('host')} {run.get('pid')} {run.get('started')}\n"
