"""``xmen run`` and ``xmen demo``."""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import click

from xmen.cli import edge
from xmen.cli._common import FOLDER, GLOB, Folder, say
from xmen.cli._values import NAME, count
from xmen.errors import UsageError, XmenError
from xmen._assets import asset
from xmen.run import engine, progress
from xmen.run.planner import BLOCKED, release_for_rerun
from xmen.sets.expset import ExperimentSet, SET_FILE, is_set, refuse_nested_set
from xmen.sets import snakefile
from xmen.sets.finding import sets_below
from xmen.store import config as global_config, files
from xmen.store.legacy import is_original_set
from xmen.store import layout, naming
from xmen.store.layout import SNAKEFILE, XMEN_DIR

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class _SplitDashDash(click.Command):
    """Keeps what follows ``--`` apart: those are Snakemake's own arguments, not a launcher command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["xmen_snakemake_args"] = args[at + 1 :]
            args = args[:at]
        else:
            ctx.meta["xmen_snakemake_args"] = []
        return super().parse_args(ctx, args)


def split_launcher(args: list[str], value_options: set[str]) -> tuple[list[str], list[str], list[str]]:
    """Split ``xmen run`` arguments into (xmen's own, the launcher command, Snakemake's after ``--``).

    xmen's options may come before and after GLOB; the first word after GLOB that is not one of them starts the
    launcher, and everything from there on is the launcher's, unchanged (``screen -dm bash``,
    ``sbatch --partition=gpu``, ``docker run --rm image bash``, even a ``--``). A ``--`` before any launcher word
    starts Snakemake's arguments. ``value_options`` are the options that take a value (``-j``, ``--profile``...).
    """
    own: list[str] = []
    seen_glob = False
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            return own, [], args[i + 1:]
        if word.startswith("-") and word != "-":
            own.append(word)
            attached = "=" in word or (not word.startswith("--") and len(word) > 2)
            if word in value_options and not attached and i + 1 < len(args):
                own.append(args[i + 1])
                i += 1
            i += 1
            continue
        if not seen_glob:
            own.append(word)
            seen_glob = True
            i += 1
            continue
        return own, args[i:], []
    return own, [], []


class _LauncherCommand(click.Command):
    """``xmen run``: after GLOB, the launcher's words are passed on unchanged (see :func:`split_launcher`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        value_options = {
            opt for param in self.params if isinstance(param, click.Option) and not param.is_flag
            for opt in param.opts
        }
        own, launcher, snakemake_args = split_launcher(list(args), value_options)
        ctx.meta["xmen_snakemake_args"] = snakemake_args
        rest = super().parse_args(ctx, own)
        ctx.params["launcher"] = tuple(launcher)
        return rest


@click.command("run", cls=_LauncherCommand, context_settings=CONTEXT)
@click.argument("glob", required=False, type=GLOB)
@click.argument("launcher", nargs=-1)
@click.option("-n", "--dry-run", "dry_run", is_flag=True, help="Show what would run and why; run nothing.")
@click.option("--profile", type=NAME, metavar="PROFILE", help="Snakemake profile (e.g. slurm, local, ci; see xmen config --install-profiles).")
@click.option("-j", "--jobs", type=count(1), help="Experiments at once (Snakemake --cores/--jobs).")
@click.option("-r", "--root", type=FOLDER, help="The set (default: current folder).")
@click.option("-v", "--verbose", is_flag=True, help="Show Snakemake's own output instead of one progress line.")
@click.option("--changed", is_flag=True, help="Also rerun finished experiments whose params or code changed.")
@click.pass_context
def run_command(ctx, glob, launcher, dry_run, profile, jobs, root, verbose, changed) -> None:
    """Run the pending experiments matching GLOB (default: all) with Snakemake, or with LAUNCHER.

    \b
    xmen run                      every pending experiment, through Snakemake
    xmen run "a=1*" -j 4          a subset, four at a time
    xmen run "*" --profile slurm  on a SLURM cluster
    xmen run -- --keep-going      anything after -- goes to snakemake
    \b
    Like the original xmen, a LAUNCHER after GLOB runs each run.sh itself (LAUNCHER... /path/run.sh). Every word
    from the launcher's first word on is the launcher's, passed unchanged (xmen's options go before it):
    \b
    xmen run "*" sh                             one after the other, here
    xmen run "*" screen -dm bash                each in a detached screen
    xmen run "*" sbatch --partition=gpu         each as a SLURM job
    xmen run "*" srun                           each as a SLURM job step
    xmen run "*" docker run --rm image bash     each in a container
    """
    exp_set = ExperimentSet(root or os.getcwd())
    _relink_moved_sets(exp_set.root, recursive=False, dry_run=dry_run)
    extra = ctx.meta.get("xmen_snakemake_args", [])
    if launcher and (profile or jobs or extra):
        raise UsageError("a launcher command runs run.sh itself: --profile, -j and -- args are for Snakemake")
    patterns = [glob] if glob else None
    adopt = not launcher and engine.runs_on_slurm(profile, extra, exp_set.root)  # as that Snakemake will plan
    pending, skipped = engine.plan(exp_set, patterns, changed=changed, adopt=adopt)
    for item in skipped:
        if item.status != "corrupt":  # damaged ones are the error at the end, after the healthy ones ran
            say(f"Skipping {item.name}: {item.reason}", err=True)
    if not pending and not skipped and not exp_set.match(patterns or ["*"]):
        if glob:
            raise XmenError(f"no linked experiment matches {glob!r} in {exp_set.root}")
        say("Nothing to run: the set has no experiments yet (add some with xmen register).", err=not dry_run)
        return
    if not skipped:
        finished = "every matching experiment is finished"
    elif len(skipped) < len(exp_set.match(patterns or ["*"])):
        finished = "the others are finished"
    else:
        finished = "every matching experiment is skipped (see above)"  # queued, running, blocked: none finished
    if dry_run:
        if not pending:
            say(f"Nothing to run: {finished}.")
        else:
            _print_plan(pending)
        _say_left_out(skipped)
        _fail_on_damaged(skipped)
        return
    if not pending:
        say(f"Nothing to run: {finished}.", err=True)
        _say_left_out(skipped)
        _fail_on_damaged(skipped)
        return
    engine.refuse_links(exp_set.root, pending)
    if changed:
        release_for_rerun(str(exp_set.root / p.name) for p in pending if p.reason.startswith("changed:"))
    if launcher:
        code = engine.launch(exp_set, pending, launcher, say)
    else:
        code = _run_quietly(
            exp_set, pending, glob, verbose, cores=jobs, profile=profile, extra=extra,
            never_everything=any(s.status == "corrupt" for s in skipped),  # never hand those to Snakemake
        )
    _say_left_out(skipped)
    if code != 0:
        raise XmenError("some experiments did not finish (see above and each experiment's xmen.log)", exit_code=code)
    _fail_on_damaged(skipped)


def _say_left_out(skipped) -> None:
    """At the end of the run: each experiment it left out that no run starts by itself (blocked, waiting)."""
    for line in engine.left_out_lines(skipped):
        say(line, err=True)


def _fail_on_damaged(skipped) -> None:
    """After the healthy experiments: one error naming the experiments whose params.yml could not be read."""
    damaged = [item for item in skipped if item.status == "corrupt"]
    if damaged:
        reasons = "; ".join(item.reason for item in damaged)
        raise XmenError(f"skipped {len(damaged)} experiment(s) with a damaged params.yml: {reasons}")


def _run_quietly(exp_set, pending, glob, verbose, never_everything: bool = False, **snakemake) -> int:
    """Snakemake behind one progress line (its output in the set's .xmen/last-run.log), then the summary."""
    log_path = None if verbose else exp_set.root / layout.LAST_RUN_LOG
    say(f"Running {len(pending)} experiment(s) with Snakemake in {exp_set.root}", err=True)
    if log_path is not None:
        say(f"Snakemake's output: {log_path}", err=True)
    watched = WatchedRun(exp_set.root, [p.name for p in pending], log_path)
    everything = glob in (None, "*") and not never_everything
    code = engine.run_with_snakemake(exp_set, pending, everything=everything, runner=watched.run, **snakemake)
    failed = watched.report()
    if code != 0 and not failed and not watched.interrupted and log_path is not None:
        say(f"Snakemake failed (exit code {code}); the end of {log_path}:", err=True)
        for line in progress.tail(log_path):
            say(f"  {line}", err=True)
    watched.stop_if_interrupted()
    return code


class WatchedRun:
    """One Snakemake run of ``names`` (experiment folders relative to ``root``) as ``xmen run`` and ``xmen ci``
    show it: Snakemake's output in ``log_path`` behind a progress line (or, when None, Snakemake's own output),
    SIGINT/SIGTERM/SIGHUP passed on to Snakemake (xmen.run.progress), then the summary; an interrupted run ends
    in ``Error: interrupted`` and exit 130."""

    def __init__(self, root: Path, names: list[str], log_path: Path | None) -> None:
        self.root = root
        self.names = names
        self.log_path = log_path
        self.outcome: progress.RunOutcome | None = None

    def run(self, command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> int:
        """Run Snakemake's ``command`` in ``cwd``; its exit code."""
        watcher = progress.RunWatcher(self.root, self.names)
        self.outcome = progress.run_quietly(command, cwd, watcher, log_path=self.log_path, env=env)
        return self.outcome.returncode

    @property
    def interrupted(self) -> bool:
        return bool(self.outcome and self.outcome.interrupted)

    def report(self) -> bool:
        """Say the summary: each experiment's state, the failed ones with their reasons; whether any failed."""
        not_run = self.outcome.not_run if self.outcome else self.names
        grouped = engine.summary(self.root, self.names, not_run=not_run)
        lines = progress.summary_lines(
            grouped,
            reasons=lambda name: engine.failure_reason(self.root, name),
            log_of=lambda name: str(self.root / name / layout.RUN_LOG),
        )
        for line in lines:
            say(line, err=True)
        return len(lines) > 1

    def stop_if_interrupted(self) -> None:
        """After the summary: an interrupted run is an error, exit 130, never a success."""
        if self.interrupted:
            where = f"; Snakemake's output: {self.log_path}" if self.log_path is not None else ""
            raise XmenError(f"interrupted{where}", exit_code=130)


def _print_plan(pending) -> None:
    width = max(len(p.name) for p in pending)
    say(f"{'name':<{width}}  {'status':<10}  reason")
    for item in pending:
        say(f"{item.name:<{width}}  {item.status:<10}  {item.reason}")
    say(f"\n{len(pending)} experiment(s) would run.")


@click.command("demo", context_settings=CONTEXT)
@click.option("--dir", "folder", type=FOLDER,
              help="Where to build the demo (default: a temp folder).")
@click.option("-j", "--jobs", type=count(1), default=2, show_default=True, help="Experiments at once.")
def demo_command(folder, jobs) -> None:
    """Run the tutorial end to end: define, register a sweep, run it with Snakemake, list the results."""
    root_command = click.get_current_context().find_root().command
    base = Path(folder).absolute() if folder else Path(tempfile.mkdtemp(prefix="xmen-demo-"))
    naming.check_new_folder("folder", base, itself=False)
    if is_set(base):  # its .xmen/ is the set's own folder, not a place for the demo's configuration
        raise UsageError(f"{base} is an experiment set; pick another --dir for the demo")
    refuse_nested_set(base)
    base.mkdir(parents=True, exist_ok=True)
    set_root = base / "experiments" / "set_a"
    if set_root.exists():
        raise UsageError(f"{set_root} exists already; pick another --dir")
    # The demo keeps its own global configuration so it never changes the user's.
    os.environ["XMEN"] = str(base / XMEN_DIR)
    script = os.path.abspath(importlib.util.find_spec("xmen.examples.experiment").origin)  # the user's side
    steps = [
        ["config", "--disable_prompt"],
        ["config", "--add", script],
        ["config", "-H", ""],
        ["init", "-n", "AnExperiment", "-r", str(set_root)],
        ["register", "{a: 1.0 | 2.0, b: None | cat}", "-r", str(set_root)],
        ["note", "A test of the xmen experiment suite", "-r", str(set_root)],
        ["run", "-r", str(set_root), "-j", str(jobs)],
        ["list", str(set_root), "-v", "-p", ".*"],
        ["list", str(set_root), "-sm"],
        ["compare", str(set_root), "--by", "a"],
        ["report", str(set_root), "-o", str(base / "report.html")],
    ]
    cwd = os.getcwd()
    try:
        for step in steps:
            say(f"\n$ xmen {' '.join(_quote(s) for s in step)}", err=True)
            code = edge.run(root_command, step)
            if code:
                raise XmenError(f"demo step failed: xmen {' '.join(step)}", exit_code=code)
    finally:
        os.chdir(cwd)
    say(f"\nThe demo set is in {set_root} (global config of the demo: {global_config.config_dir()}).", err=True)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


@click.command("ci", cls=_SplitDashDash, context_settings=CONTEXT)
@click.argument("folder", default=".", type=Folder(exists=True))
@click.option("-j", "--jobs", type=count(1), help="Experiments at once (default: all cores).")
@click.option("--profile", type=NAME, metavar="PROFILE", help="Snakemake profile (default: xmen's shipped ci profile).")
@click.option("-n", "--dry-run", "dry_run", is_flag=True, help="Only show what would run.")
@click.pass_context
def ci_command(ctx, folder, jobs, profile, dry_run) -> None:
    """Run every pending experiment of every set below FOLDER; exit non-zero if any failed.

    One command for a CI job: the shipped workflow/Snakefile over all sets, with the ci profile (keep going
    after a failure, show failed logs, fail at the end).
    """
    if not any(True for _ in sets_below(Path(folder))):  # Snakemake would say "Nothing to be done" and write there
        raise XmenError(f"no experiment set below {os.path.abspath(folder)}")
    _relink_moved_sets(Path(folder), dry_run=dry_run)  # a dry run writes nothing: it plans the sets as they are
    workflow = Path(str(asset("workflow", SNAKEFILE)))
    profile_path = profile or str(asset("config", "ci"))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(workflow), "--directory", str(Path(folder).absolute()),
        "--profile", profile_path, "--config", "xmen_root=.",
    ]
    if jobs:
        command += ["--cores", str(jobs)]
    if dry_run:
        command += ["--dry-run"]
    extra = ctx.meta.get("xmen_snakemake_args", [])
    command += extra
    # Watched like xmen run -v: Ctrl-C (SIGINT, SIGTERM) stops Snakemake and the running experiments, and ends in
    # the summary and exit 130; Snakemake's own output stays in the CI log.
    names = [] if dry_run else engine.pending_below(Path(folder), profile=profile_path, extra=extra)
    watched = WatchedRun(Path(folder).absolute(), names, log_path=None)
    code = watched.run(command)
    if not dry_run:
        watched.report()
    watched.stop_if_interrupted()
    if code != 0:
        raise XmenError(f"the CI run failed (snakemake exit code {code})", exit_code=code)
    # Snakemake's "Nothing to be done" is not green while an experiment can never run (the glue named them above).
    blocked = [name for name, verdict in engine.left_out_below(Path(folder)) if verdict.action == BLOCKED]
    if blocked:
        shown = ", ".join(blocked[:5]) + (f" and {len(blocked) - 5} more" if len(blocked) > 5 else "")
        raise XmenError(f"{len(blocked)} experiment(s) blocked, never run: {shown} (xmen list shows why)")


@click.command("workflow", context_settings=CONTEXT)
def workflow_command() -> None:
    """Print the path of xmen's multi-set Snakefile (for snakemake -s)."""
    click.echo(str(asset("workflow", SNAKEFILE)))


def _relink_moved_sets(top: Path, recursive: bool = True, dry_run: bool = False) -> None:
    """Relink sets that were moved or cloned (their run.sh files name absolute paths) and migrate those the original
    xmen wrote; a dry run only says so (it writes nothing: the planner reads such sets as they are). A link where a
    relink writes the set's workflow files is refused before any set is changed."""
    roots = list(sets_below(top)) if recursive else [top]
    relink: list[tuple[Path, str]] = []
    for root in roots:
        raw = files.read_yaml(root / SET_FILE)
        recorded = ExperimentSet(root).data().get("root")  # checked: a damaged file is one clear error
        original = is_original_set(raw)
        if original or (recorded and os.path.realpath(str(recorded)) != os.path.realpath(root)):
            relink.append((root, "a set of the original xmen" if original else f"moved from {recorded}"))
    if not dry_run:
        for root, _ in relink:
            snakefile.refuse_links(root)
    for root in roots:
        why = dict(relink).get(root)
        if why is not None:
            if dry_run:
                say(f"Would relink {root} ({why}) before running", err=True)
                continue
            ExperimentSet(root).relink()
            say(f"Relinked {root} ({why})", err=True)
        elif not dry_run:
            written = ExperimentSet(root).finish_migration()
            if written:
                say(f"Recorded {len(written)} experiment(s) the original xmen finished in {root} as finished",
                           err=True)
