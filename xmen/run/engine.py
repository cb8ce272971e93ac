"""Running a set's pending experiments: with Snakemake, or with a launcher command like the original xmen.

Snakemake is driven through its command line in a subprocess rather than its Python API: the CLI is the stable,
documented interface, it applies profiles exactly as a user's own ``snakemake`` call does, and a crash or a
never-ending cluster poll in it cannot take the xmen process down with it.

Which experiments are pending is decided by xmen.run.planner, the module the generated Snakefile asks too, so a dry
run needs no Snakemake start and a run with nothing to do returns at once.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from xmen.store import files, ownership
from xmen.errors import StateFileError, XmenError
from xmen.sets.expset import RUN_FILE, SET_FILE, ExperimentSet, params_of, status_of
from xmen.run import planner
from xmen.run.progress import NOT_RUN
from xmen.store.locks import ENV_EXPECT_DONE, done_token
from xmen.sets.finding import sets_below
from xmen.store.layout import EXPERIMENT_RUN_WRITES, SET_RUN_LOCK, SET_RUN_WRITES, TARGETS_PREFIX, XMEN_DIR




@dataclass(frozen=True)
class Pending:
    """An experiment that would run, and why."""

    name: str
    reason: str
    status: str
    #: What planning saw of it before deciding (planner.Verdict.seen), handed to its runner by ``launch``.
    seen: str = ""
    #: The planner's verdict of a skipped experiment (planner.left_out tells the blocked and waiting ones).
    verdict: planner.Verdict | None = None


def plan(
    exp_set: ExperimentSet, patterns: Sequence[str] | None = None, changed: bool = False, adopt: bool = False
) -> tuple[list[Pending], list[Pending]]:
    """(pending, skipped): what ``xmen run`` would run among the linked experiments matching ``patterns``, and
    what it leaves alone, each with its reason; xmen.run.planner decides (the same planner the Snakefile asks).

    ``pending`` also holds the requirements (in any set, named relative to this set) that need a run first.
    ``skipped`` holds the blocked ones, those running now or unreadable, and the finished ones whose parameters or
    code changed since their run; with ``changed`` those are pending instead (``xmen run --changed``).
    With ``adopt`` (a run with the slurm executor, see :func:`runs_on_slurm`) an experiment whose SLURM job an
    earlier, killed run left alive is pending, adopting that job (the planner's verdict says so).
    """
    data = exp_set.data()
    linked: dict[str, Any] = data.get("experiments") or {}
    chosen = exp_set.match(list(patterns) if patterns else ["*"], names=linked)  # experiment.yml parsed once
    root = str(exp_set.root)
    decide = planner.Planner(reasons=True, tokens=True, adopt=adopt)
    pending: list[Pending] = []
    skipped: list[Pending] = []
    for verdict in decide.plan((os.path.join(root, name) for name in chosen), changed=changed):
        name = os.path.relpath(verdict.path, root)
        if verdict.action == planner.RUN:
            pending.append(Pending(name, verdict.reason, verdict.status, verdict.seen))
        elif verdict.action == planner.CHANGED:
            if changed:
                pending.append(Pending(name, f"changed: {verdict.reason}", verdict.status, verdict.seen))
            else:
                skipped.append(Pending(name, f"changed: {verdict.reason} (xmen run --changed reruns it)", verdict.status,
                                       verdict=verdict))
        elif verdict.action == planner.BLOCKED:
            skipped.append(Pending(name, f"blocked: {verdict.reason}", verdict.status, verdict=verdict))
        elif verdict.action == planner.SKIP:
            skipped.append(Pending(name, verdict.reason, verdict.status, verdict=verdict))
    return pending, skipped


def left_out_lines(skipped: Sequence[Pending]) -> list[str]:
    """The lines naming the skipped experiments that no run starts by itself (blocked, waiting), with why."""
    return planner.left_out_lines((item.name, item.verdict) for item in skipped if item.verdict is not None)


def left_out_below(top: Path) -> list[tuple[str, planner.Verdict]]:
    """(name relative to ``top``, verdict) of every linked experiment of the sets below ``top`` that a run leaves
    out and that will not run by itself (planner.left_out): what ``xmen ci`` fails on when one is blocked."""
    decide = planner.Planner(reasons=True)
    found = []
    for root in find_set_roots(top):
        for name in ExperimentSet(root).experiments:
            verdict = decide.verdict(os.path.join(root, name))
            if planner.left_out(verdict):
                found.append((os.path.relpath(verdict.path, top), verdict))
    return found


def runs_on_slurm(profile: str | None, extra: Sequence[str], cwd: Path) -> bool:
    """Whether Snakemake, started by ``xmen run`` with this profile and these arguments, uses the slurm executor:
    an ``--executor``/``-e`` among the arguments, else the profile's ``executor`` (the profile found where Snakemake
    looks: a path, ``./NAME``, ``$XDG_CONFIG_HOME/snakemake/NAME``, ``/etc/xdg/snakemake/NAME``)."""
    words = list(extra)
    for index, word in enumerate(words):
        if word.startswith("--executor="):
            return word.split("=", 1)[1] == "slurm"
        if word in ("--executor", "-e") and index + 1 < len(words):
            return words[index + 1] == "slurm"
    if not profile:
        return False
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "snakemake"
    for folder in (cwd / profile, config / profile, Path("/etc/xdg/snakemake") / profile):
        for name in ("config.yaml", "profile.yaml"):
            if (folder / name).is_file():
                try:
                    data = files.read_yaml(folder / name)
                except (XmenError, OSError):
                    return False
                return str(data.get("executor") or "") == "slurm"
    return False


def refuse_links(root: Path, pending: Iterable[Any]) -> None:
    """Before anything runs: refuse (LinkError, one line naming it) a symbolic link where the run would write one
    of xmen's files, in the set or in a ``pending`` experiment's folder, so that no file a link points to is
    overwritten or appended to; nor a file of the user's where the run would replace or delete one of xmen's."""
    files.refuse_links(root, SET_RUN_WRITES)
    for item in pending:
        files.refuse_links(root / item.name, EXPERIMENT_RUN_WRITES)
        ownership.refuse_foreign_run_files(root / item.name)  # nor over a file of the user's at xmen's names


@contextlib.contextmanager
def run_lock(root: Path) -> Iterator[None]:
    """One ``xmen run`` per set at a time.

    Snakemake's own locks are per output file, a Snakemake process that finishes deletes the whole
    ``.snakemake/locks`` folder, other processes' locks included, and one killed with ``kill -9`` leaves locks that
    make the next run fail until ``--unlock``; so xmen gives Snakemake ``--nolock`` (the set's default workflow
    profile does the same for a plain ``snakemake``). What keeps an experiment from running twice is the job
    runner's per-experiment lock, held as long as the experiment process lives, and its check that the experiment
    is still pending (see :mod:`xmen.run.runner`).
    """
    lock_file = root / SET_RUN_LOCK
    files.own_folder(lock_file.parent)
    fd = files.open_own(lock_file, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise XmenError(f"another xmen run is running on {root}; wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def snakemake_command(
    targets_file: Path | None,
    *,
    cores: int | None = None,
    profile: str | None = None,
    extra: Sequence[str] = (),
    dry_run: bool = False,
) -> list[str]:
    command = [sys.executable, "-m", "snakemake", "--nolock"]
    if profile:
        command += ["--profile", profile]
    if cores is not None:
        command += ["--cores", str(cores), "--jobs", str(cores)]
    if targets_file is not None:
        command += ["--config", f"xmen_targets={targets_file}"]
    if dry_run:
        command += ["--dry-run"]
    command += list(extra)
    return command


def run_with_snakemake(
    exp_set: ExperimentSet,
    pending: Sequence[Pending],
    *,
    cores: int | None = None,
    profile: str | None = None,
    extra: Sequence[str] = (),
    everything: bool = False,
    runner: Callable[[list[str], Path], int] | None = None,
) -> int:
    """Run ``pending`` through Snakemake in the set's root; Snakemake's exit code.

    With ``everything`` the Snakefile's own default target is used (all pending experiments of the set).
    ``runner(command, cwd, env)`` starts Snakemake (default: inheriting xmen's output; ``xmen run`` passes
    :func:`xmen.run.progress.run_quietly`).
    """
    root = exp_set.root
    with run_lock(root):
        targets_file = None
        try:
            if not everything:
                handle = tempfile.NamedTemporaryFile(
                    "w", dir=root / XMEN_DIR, prefix=TARGETS_PREFIX, suffix=".txt", delete=False, encoding="utf-8"
                )
                with handle:
                    handle.write("".join(f"{p.name}\n" for p in pending))
                targets_file = Path(handle.name)
            command = snakemake_command(
                targets_file.relative_to(root) if targets_file else None,
                cores=cores, profile=profile, extra=extra,
            )
            env = {**os.environ, planner.LEFT_OUT_SAID_ENV: "1"}  # xmen run names them itself, at its end
            if runner is not None:
                return runner(command, root, env)
            return subprocess.call(command, cwd=root, env=env)
        finally:
            if targets_file is not None:
                targets_file.unlink(missing_ok=True)


def launch(exp_set: ExperimentSet, pending: Sequence[Pending], launcher: Sequence[str], echo) -> int:
    """The original xmen's way: run each pending run.sh with ``launcher`` (sh, bash, sbatch, screen -dm bash...).

    Each run.sh gets ``XMEN_EXPECT_DONE``, what the planner saw of the experiment just before deciding to run it
    (``Pending.seen``): a runner finding it finished since by another run (a Snakemake in the same set) skips it
    instead of running it twice.
    """
    # A Pending made by hand (not by plan) has no token: what it looks like now is the best there is.
    expected = {item.name: item.seen or done_token(exp_set.root / item.name) for item in pending}
    failures = 0
    for item in pending:
        run_script = exp_set.root / item.name / RUN_FILE
        command = list(launcher) + [str(run_script)]
        echo(f"\nRunning: {shlex.join(command)}")
        env = dict(os.environ)
        env[ENV_EXPECT_DONE] = expected[item.name]
        try:
            code = subprocess.call(command, env=env)
        except FileNotFoundError:
            raise XmenError(f"launcher not found: {launcher[0]}") from None
        if code != 0:
            failures += 1
    return 1 if failures else 0


def summary(root: Path, names: Sequence[str], not_run: Sequence[str] = ()) -> dict[str, list[str]]:
    """Names of ``names`` (experiment folders relative to ``root``: a set, or the folder above sets for ``xmen
    ci``) grouped by their status now; those in ``not_run`` (this run did not start them: their status is from
    before, a ``finished`` one would say this run finished it) as ``not run``."""
    grouped: dict[str, list[str]] = {}
    skipped = set(not_run)
    for name in names:
        grouped.setdefault(NOT_RUN if name in skipped else status_of(root / name), []).append(name)
    return grouped


def failure_reason(root: Path, name: str) -> str:
    """Why the experiment ``root/name`` failed, as its runner recorded it (or why its params.yml is unreadable)."""
    try:
        params = params_of(root / name)
    except StateFileError as exc:
        return str(exc)
    return str(params.get("_error") or "")


def pending_below(top: Path, profile: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The experiments a run over every set below ``top`` (``xmen ci``) would run, named relative to ``top``:
    each set planned like ``xmen run`` plans it (requirements in other sets included, each named once)."""
    adopt = runs_on_slurm(profile, extra, top)
    names: dict[str, None] = {}
    for root in find_set_roots(top):
        pending, _ = plan(ExperimentSet(root), adopt=adopt)
        for item in pending:
            names[os.path.relpath(os.path.normpath(root / item.name), top)] = None
    return list(names)


def find_set_roots(top: Path) -> list[Path]:
    return list(sets_below(top))


__all__ = ["Pending", "plan", "run_with_snakemake", "launch", "summary", "SET_FILE"]
