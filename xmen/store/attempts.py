"""What each run (attempt) of an experiment records in params.yml: where it ran, the code and parameters it ran
with, the requirements it was given, and how it ended (``_run``, ``_attempts``), and the content of its status
file."""
from __future__ import annotations

import os
import platform
from typing import Any

from xmen._version import __version__
from xmen.store.layout import DONE_FIRST_LINE
from xmen.store.logs import ATTEMPTS_KEPT
from xmen.store.provenance import _git
from xmen.store.setfile import Requirements, code_record, load_set, params_hash, public_params


def _diff_hash(top: str) -> str | None:
    """Hash of the uncommitted changes to tracked files (``git diff HEAD``); None when there are none."""
    diff = _git(top, "diff", "HEAD", "--no-color", "--no-ext-diff")
    if not diff:
        return None
    import hashlib  # stdlib, imported here so that importing the runner loads no more than it did

    return hashlib.sha256(diff.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def run_code(exp_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The code a run of the experiment in ``exp_dir`` uses, now: git commit, branch, dirty flag and a hash of the
    uncommitted diff (of the repository holding the experiment module, else the set), the hashes of the set's
    script and the module (what the planner compares to flag changed code), Python and xmen versions."""
    root = os.path.dirname(os.path.abspath(exp_dir))
    code: dict[str, Any] = {}
    info = load_set(root)
    files_now = code_record(info) if info is not None else {}
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
    record: dict[str, Any] = {}
    if os.environ.get("SLURM_JOB_ID"):
        record["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
        if os.environ.get("SLURMD_NODENAME"):
            record["slurm_node"] = os.environ["SLURMD_NODENAME"]
    path = os.path.abspath(exp_dir)
    try:  # provenance never fails a run: a damaged experiment.yml gives a partial record
        required = Requirements().requirements(path)
        record["requires"] = [os.path.relpath(r, os.path.dirname(path)) for _, r in required if r]
        record["code"] = run_code(exp_dir)
    except Exception as exc:  # noqa: BLE001
        record["provenance_error"] = f"{type(exc).__name__}: {exc}"
    return record


def record_start(data: dict[str, Any], run: dict[str, Any]) -> None:
    """Complete the run record with the parameters it runs with, and make ``_version.git`` the run's commit
    (``xmen list -g`` shows what the run used, not what was checked out at ``xmen init``)."""
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


def done_text(run: dict[str, Any]) -> str:
    """Content of the status file ``xmen.done`` of a finished run: ``finished`` and which run it was.

    Snakemake compares its inputs by checksum: a requirement that reran must change its status file's content,
    not only its mtime, or Snakemake would not rerun what depends on it while xmen.run.planner would.
    """
    return f"{DONE_FIRST_LINE}\nrun: {run.get('host')} {run.get('pid')} {run.get('started')}\n"
