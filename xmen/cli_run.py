"""``xmen run`` and ``xmen demo``."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from .errors import UsageError, XmenError

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


@click.command("run", cls=_SplitDashDash, context_settings=CONTEXT)
@click.argument("glob", required=False)
@click.argument("launcher", nargs=-1)
@click.option("-n", "--dry-run", "dry_run", is_flag=True, help="Show what would run and why; run nothing.")
@click.option("--profile", help="Snakemake profile (e.g. slurm, local, ci; see xmen config --install-profiles).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Experiments at once (Snakemake --cores/--jobs).")
@click.option("-r", "--root", type=click.Path(file_okay=False), help="The set (default: current folder).")
@click.option("--changed", is_flag=True, help="Also rerun finished experiments whose params or code changed.")
@click.pass_context
def run_command(ctx, glob, launcher, dry_run, profile, jobs, root, changed) -> None:
    """Run the pending experiments matching GLOB (default: all) with Snakemake.

    \b
    xmen run                      every pending experiment, through Snakemake
    xmen run "a=1*" -j 4          a subset, four at a time
    xmen run "*" --profile slurm  on a SLURM cluster
    xmen run "*" sh               like the original xmen: each run.sh with sh (or bash, sbatch, ...)
    xmen run -- --keep-going      anything after -- goes to snakemake
    """
    from . import engine
    from .expset import ExperimentSet

    exp_set = ExperimentSet(root or os.getcwd())
    _relink_moved_sets(exp_set.root, recursive=False)
    extra = ctx.meta.get("xmen_snakemake_args", [])
    if launcher and (profile or jobs or extra):
        raise UsageError("a launcher command runs run.sh itself: --profile, -j and -- args are for Snakemake")
    patterns = [glob] if glob else None
    pending, skipped = engine.plan(exp_set, patterns, changed=changed)
    for item in skipped:
        click.echo(f"Skipping {item.name}: {item.reason}", err=True)
    if not pending and not skipped and not exp_set.match(patterns or ["*"]):
        if glob:
            raise XmenError(f"no linked experiment matches {glob!r} in {exp_set.root}")
        click.echo("Nothing to run: the set has no experiments yet (add some with xmen register).", err=not dry_run)
        return
    finished = "every matching experiment is finished" if not skipped else "the others are finished"
    if dry_run:
        if not pending:
            click.echo(f"Nothing to run: {finished}.")
            return
        _print_plan(pending)
        return
    if not pending:
        click.echo(f"Nothing to run: {finished}.", err=True)
        return
    if changed:
        from .planner import release_for_rerun

        release_for_rerun(str(exp_set.root / p.name) for p in pending if p.reason.startswith("changed:"))
    if launcher:
        code = engine.launch(exp_set, pending, launcher, click.echo)
    else:
        click.echo(f"Running {len(pending)} experiment(s) with Snakemake in {exp_set.root}", err=True)
        code = engine.run_with_snakemake(
            exp_set, pending, cores=jobs, profile=profile, extra=extra, everything=glob in (None, "*")
        )
        grouped = engine.summary(exp_set, [p.name for p in pending])
        counts = ", ".join(f"{len(names)} {state}" for state, names in sorted(grouped.items()))
        click.echo(f"Summary: {counts}", err=True)
        for state, names in sorted(grouped.items()):
            if state in ("finished",):
                continue
            for name in names:
                reason = engine.failure_reason(exp_set, name)
                click.echo(f"  {state}: {name}" + (f" ({reason})" if reason else ""), err=True)
    if code != 0:
        raise XmenError("some experiments did not finish (see above and each experiment's xmen.log)", exit_code=code)


def _print_plan(pending) -> None:
    width = max(len(p.name) for p in pending)
    click.echo(f"{'name':<{width}}  {'status':<10}  reason")
    for item in pending:
        click.echo(f"{item.name:<{width}}  {item.status:<10}  {item.reason}")
    click.echo(f"\n{len(pending)} experiment(s) would run.")


@click.command("demo", context_settings=CONTEXT)
@click.option("--dir", "folder", type=click.Path(file_okay=False), help="Where to build the demo (default: a temp folder).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="Experiments at once.")
def demo_command(folder, jobs) -> None:
    """Run the tutorial end to end: define, register a sweep, run it with Snakemake, list the results."""
    from . import config as global_config
    from .cli import main as xmen_main
    from .examples import experiment as example

    base = Path(folder).absolute() if folder else Path(tempfile.mkdtemp(prefix="xmen-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    set_root = base / "experiments" / "set_a"
    if set_root.exists():
        raise UsageError(f"{set_root} exists already; pick another --dir")
    # The demo keeps its own global configuration so it never changes the user's.
    os.environ["XMEN"] = str(base / ".xmen")
    script = os.path.abspath(example.__file__)
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
    ]
    cwd = os.getcwd()
    try:
        for step in steps:
            click.echo(f"\n$ xmen {' '.join(_quote(s) for s in step)}", err=True)
            code = xmen_main(step)
            if code:
                raise XmenError(f"demo step failed: xmen {' '.join(step)}", exit_code=code)
    finally:
        os.chdir(cwd)
    click.echo(f"\nThe demo set is in {set_root} (global config of the demo: {global_config.config_dir()}).", err=True)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


@click.command("ci", cls=_SplitDashDash, context_settings=CONTEXT)
@click.argument("folder", default=".", type=click.Path(file_okay=False, exists=True))
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Experiments at once (default: all cores).")
@click.option("--profile", help="Snakemake profile (default: xmen's shipped ci profile).")
@click.option("-n", "--dry-run", "dry_run", is_flag=True, help="Only show what would run.")
@click.pass_context
def ci_command(ctx, folder, jobs, profile, dry_run) -> None:
    """Run every pending experiment of every set below FOLDER; exit non-zero if any failed.

    One command for a CI job: the shipped workflow/Snakefile over all sets, with the ci profile (keep going
    after a failure, show failed logs, fail at the end).
    """
    import subprocess

    from ._assets import asset

    _relink_moved_sets(Path(folder))
    workflow = Path(str(asset("workflow", "Snakefile")))
    profile_path = profile or str(asset("config", "ci"))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(workflow), "--directory", str(Path(folder).absolute()),
        "--profile", profile_path, "--config", "xmen_root=.",
    ]
    if jobs:
        command += ["--cores", str(jobs)]
    if dry_run:
        command += ["--dry-run"]
    command += ctx.meta.get("xmen_snakemake_args", [])
    code = subprocess.call(command)
    if code != 0:
        raise XmenError(f"the CI run failed (snakemake exit code {code})", exit_code=code)


@click.command("workflow", context_settings=CONTEXT)
def workflow_command() -> None:
    """Print the path of xmen's multi-set Snakefile (for snakemake -s)."""
    from ._assets import asset

    click.echo(str(asset("workflow", "Snakefile")))


def _relink_moved_sets(top: Path, recursive: bool = True) -> None:
    """Relink sets that were moved or cloned (their run.sh files name absolute paths)."""
    from . import files
    from .expset import SET_FILE, ExperimentSet, find_sets

    roots = list(find_sets(top)) if recursive else [top]
    for root in roots:
        recorded = files.read_yaml(root / SET_FILE).get("root")
        if recorded and os.path.realpath(str(recorded)) != os.path.realpath(root):
            ExperimentSet(root).relink()
            click.echo(f"Relinked {root} (moved from {recorded})", err=True)
