"""The commands that make and change sets: ``config``, ``init``, ``register``, ``note``, ``reset``, ``cancel``,
``unlink``, ``relink``, ``clean`` and ``rm``."""
from __future__ import annotations

import os
from pathlib import Path

import click

from xmen.store import config as global_config
from xmen.cli import _common
from xmen.cli._common import CONTEXT, FOLDER, GLOB, confirm, fail
from xmen.cli._values import NAME
from xmen.errors import UsageError
from xmen._assets import asset
from xmen.define.loading import find_experiment_classes
from xmen.run.cancel import cancel
from xmen.sets.expset import ExperimentSet, MAX_EXPERIMENTS, is_set
from xmen.sets.finding import sets_below
from xmen.store.files import dump_yaml, write_text_atomic
from xmen.store.layout import DEFAULTS_FILE, SCRIPT_FILE

# --------------------------------------------------------------------------- config
@click.command("config", context_settings=CONTEXT)
@click.option("--enable_prompt", "prompt", flag_value=True, default=None, help="Ask for a purpose at init.")
@click.option("--disable_prompt", "prompt", flag_value=False, help="Never ask for a purpose at init.")
@click.option("--add", "add", metavar="SCRIPT", help="Register the Experiment classes defined in a Python script.")
@click.option("--add_path", metavar="DIR", type=FOLDER, help="Put DIR on the import path of experiment modules.")
@click.option("-r", "--remove", metavar="NAME_OR_DIR", help="Forget an experiment class or an import path.")
@click.option("-H", "--header", metavar="FILE_OR_TEXT", help="Header put at the top of each generated run.sh.")
@click.option("--list", "show", is_flag=True, help="Print the configuration.")
@click.option("--clean", is_flag=True, help="Forget sets whose folders no longer exist.")
@click.option(
    "--install-profiles", "install_profiles", is_flag=True,
    help="Copy the slurm, local and ci Snakemake profiles to $XDG_CONFIG_HOME/snakemake/.",
)
@click.option("--force", is_flag=True, help="With --install-profiles: overwrite profiles that differ.")
def config_command(prompt, add, add_path, remove, header, show, clean, install_profiles, force) -> None:
    """Change or show the global configuration ($XMEN, default ~/.xmen)."""
    changes = []
    if prompt is not None:
        changes.append(lambda c: setattr(c, "prompt", prompt))
    if add is not None:
        script = os.path.abspath(os.path.expanduser(add))
        if not os.path.isfile(script):
            fail(f"no such script: {add}")
        names = find_experiment_classes(script)
        if not names:
            fail(f"no Experiment subclass found in {add}")

        def add_classes(c, names=names, script=script):
            for name in names:
                c.experiments[name] = script

        changes.append(add_classes)
        click.echo(f"Added {', '.join(names)} from {script}", err=True)
    if add_path is not None:
        folder = os.path.abspath(os.path.expanduser(add_path))
        if not os.path.isdir(folder):
            fail(f"no such folder: {add_path}")
        changes.append(lambda c: c.python_paths.append(folder) if folder not in c.python_paths else None)
    if remove is not None:

        def remove_entry(c, key=remove):
            folder = os.path.abspath(os.path.expanduser(key))
            if key in c.experiments:
                del c.experiments[key]
            elif folder in c.python_paths:
                c.python_paths.remove(folder)
            else:
                raise UsageError(f"{key!r} is neither a configured experiment nor an import path")

        changes.append(remove_entry)
    if header is not None:
        text = global_config.read_header(header)
        changes.append(lambda c: setattr(c, "header", text))
    if clean:

        def forget_missing(c):
            c.sets = [s for s in c.sets if is_set(s)]

        changes.append(forget_missing)
    if changes:

        def apply(c):
            for change in changes:
                change(c)

        global_config.update(apply)
    if install_profiles:
        for line in install_snakemake_profiles(force):
            click.echo(line, err=True)
    if show or not (changes or install_profiles):
        click.echo(f"# {global_config.config_path()}")
        click.echo(dump_yaml(global_config.load().to_dict()), nl=False)


def install_snakemake_profiles(force: bool = False) -> list[str]:
    """Copy the shipped profiles where ``snakemake --profile NAME`` finds them."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "snakemake"
    report = []
    for name in ("slurm", "local", "ci"):
        source = asset("config", name, "config.yaml").read_text(encoding="utf-8")
        target = base / name / "config.yaml"
        if target.exists() and target.read_text(encoding="utf-8") != source and not force:
            report.append(f"kept {target} (it differs; --force replaces it)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, source)
        report.append(f"installed profile {name}: {target}")
    return report


# --------------------------------------------------------------------------- init
@click.command("init", context_settings=CONTEXT)
@click.option("-n", "--name", type=NAME, help="A configured Python experiment class (see xmen config --add).")
@click.option("-s", "--script", type=click.Path(dir_okay=False), help="A shell script taking a params.yml path.")
@click.option("-d", "--defaults", type=click.Path(dir_okay=False), help="defaults.yml for --script.")
@click.option("-r", "--root", type=FOLDER, help="Folder of the set (default: current).")
@click.option("--purpose", default=None, help="What the set is for.")
def init_command(name, script, defaults, root, purpose) -> None:
    """Initialise an experiment set."""
    if name is None and script is None and defaults is None:
        # Like the original: a bare init uses the script.sh and defaults.yml already in the folder.
        folder = Path(os.path.abspath(root or os.getcwd()))
        if (folder / SCRIPT_FILE).is_file() and (folder / DEFAULTS_FILE).is_file():
            script, defaults = str(folder / SCRIPT_FILE), str(folder / DEFAULTS_FILE)
    if purpose is None:
        purpose = ""
        if global_config.load().prompt and _common.stdin_is_tty():
            purpose = click.prompt("Purpose of the experiment set", default="", show_default=False)
    exp_set = ExperimentSet.init(root or os.getcwd(), name=name, script=script, defaults=defaults, purpose=purpose)
    click.echo(f"Experiment root created at {exp_set.root}")


# --------------------------------------------------------------------------- register
@click.command("register", context_settings=CONTEXT)
@click.argument("sweep", required=False)
@click.option("-u", "--updates", metavar="YAML", help='Sweep: a YAML mapping, "|" separating alternatives.')
@click.option("-n", "--name", help="Name of a single experiment (instead of k=v__k=v).")
@click.option("-x", "--repeats", type=int, default=1, show_default=True,
              help="Register N repeats of each (rep=1..N; params.yml _repeat holds the index).")
@click.option("-p", "--purpose", default="", help="Purpose of these experiments.")
@click.option("-H", "--header", metavar="FILE_OR_TEXT", help="run.sh header (default: the configured one).")
@click.option("-r", "--root", type=FOLDER, help="The set (default: current folder).")
@click.option("--strict", is_flag=True, help="A value that does not fit its parameter's type is an error.")
@click.option("--resources", metavar="'NAME=VALUE ...'", help="Snakemake resources, e.g. 'mem_mb=4000 runtime=60'; "
              "NAME=V1,V2,... gives one value per attempt.")
@click.option("--threads", type=int, help="Threads (cpus) per experiment.")
@click.option("--retries", type=int, help="Attempts after a failure (Snakemake retries).")
@click.option("--retry-on", metavar="CAUSES", help="Failure causes retried, e.g. 'default,error' (error, oom, timeout, "
              "node, preempted, lost, all; default: node, preempted, lost, and oom/timeout when the next attempt "
              "asks for more memory/runtime).")
@click.option("--requires", multiple=True, metavar="PATH_OR_GLOB", type=NAME,
              help="Experiments that must finish first, e.g. ../train/lr=0.1 or 'train_*' (repeatable).")
@click.option("--seed-param", metavar="PARAM", type=NAME, help="Set PARAM to each repeat's index (1..N), e.g. --seed-param seed.")
@click.option("--max-experiments", type=int, default=None, metavar="N",
              help="Refuse sweeps of more than N experiments (default: 100,000).")
def register_command(sweep, updates, name, repeats, purpose, header, root, strict, resources, threads, retries,
                     retry_on, requires, seed_param, max_experiments) -> None:
    """Register a set of experiments: every combination of the sweep's alternatives.

    \b
    xmen register "{a: 1.0 | 2.0, b: None | cat}"    four experiments a=1.0__b=None ... a=2.0__b=cat
    """
    if sweep is not None and updates is not None:
        raise UsageError("give the sweep either as an argument or with -u, not both")
    text = updates if updates is not None else sweep
    exp_set = open_set(root)
    result = exp_set.register(
        text if text is not None else {}, name=name, repeats=repeats, purpose=purpose, header=header, strict=strict,
        resources=resources, threads=threads, retries=retries, retry_on=retry_on, requires=requires,
        seed_param=seed_param,
        max_experiments=MAX_EXPERIMENTS if max_experiments is None else max_experiments,
    )
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    for exp_name, why in result.skipped:
        click.echo(f"Skipped {exp_name}: {why}", err=True)
    for exp_name, why in result.blocked:
        click.echo(f"Not registered {exp_name}: {why}", err=True)
    if result.created:
        click.echo(f"Registered {len(result.created)} experiment(s) in {exp_set.root}", err=True)
    elif result.skipped and not result.blocked:
        click.echo("Nothing new registered.", err=True)
    if result.blocked:
        fail(f"{len(result.blocked)} experiment(s) not registered: a folder of their name is in the way (see above)")


# --------------------------------------------------------------------------- note
@click.command("note", context_settings=CONTEXT)
@click.argument("words", nargs=-1, required=True, metavar="[PATTERN] MESSAGE")
@click.option("-d", "--delete", is_flag=True, help="Delete the note instead.")
@click.option("-e", "--experiments", metavar="GLOB", type=GLOB, help="Note the matching experiments instead of the set.")
@click.option("-r", "--root", type=FOLDER, help="The set (default: current folder).")
def note_command(words, delete, experiments, root) -> None:
    """Add a note to the set, or to the experiments matching PATTERN (or -e GLOB).

    \b
    xmen note "A test of the xmen experiment suite"      a note on the set
    xmen note "a=1*" "diverged after 10k steps"          on experiments (the 2021 form; same as -e "a=1*")
    """
    if len(words) > 2:
        raise UsageError("note takes MESSAGE, or PATTERN MESSAGE (quote a message with spaces)")
    message = words[-1]
    if len(words) == 2:
        if experiments is not None:
            raise UsageError("give the experiments either as PATTERN or with -e, not both")
        experiments = GLOB.convert(words[0], None, None)
    open_set(root).note(message, delete=delete, experiments=experiments)



# --------------------------------------------------------------------------- reset / unlink / relink
@click.command("reset", context_settings=CONTEXT)
@click.argument("glob", default="*", type=GLOB)
@click.option("--status-is", "statuses", multiple=True, metavar="STATUS",
              help="Only experiments with this status (repeatable).")
@click.option("-s", "--status", "original_status", hidden=True,
              help="The original xmen's: set the status to STATUS (refused, see --status-is).")
@click.option("-r", "--root", type=FOLDER, help="The set (default: current folder).")
def reset_command(glob, statuses, original_status, root) -> None:
    """Reset experiments to registered so that they run again."""
    if original_status is not None:
        # The original's `reset GLOB -s STATUS` set the status to STATUS: neither meaning can be guessed safely.
        raise UsageError(
            f"reset -s/--status {original_status} set the status in the original xmen; here reset always makes "
            f"experiments registered: to reset only those that are {original_status}, use --status-is "
            f"{original_status}"
        )
    names = open_set(root).reset(glob, statuses)
    click.echo(f"Reset {len(names)} experiment(s)", err=True)


@click.command("cancel", context_settings=CONTEXT)
@click.argument("glob", type=GLOB)
@click.option("-r", "--root", type=FOLDER, help="The set (default: current folder).")
def cancel_command(glob, root) -> None:
    """Cancel the matching experiments' SLURM jobs and local runs; they become cancelled."""
    result = cancel(open_set(root), glob)
    for target in result.cancelled:
        click.echo(f"Cancelled {target.name} ({target.describe()})", err=True)
    for name, why in result.skipped:
        click.echo(f"Not cancelled {name}: {why}", err=True)
    if not result.cancelled:
        click.echo("Nothing to cancel", err=True)


@click.command("unlink", context_settings=CONTEXT)
@click.argument("glob", type=GLOB)
@click.option("-r", "--root", type=FOLDER, help="The set (default: current folder).")
def unlink_command(glob, root) -> None:
    """Unlink experiments from the set (folders stay until xmen clean)."""
    names = open_set(root).unlink(glob)
    if not names:
        fail(f"no linked experiment matches {glob!r}")
    click.echo(f"Unlinked {len(names)} experiment(s)", err=True)


@click.command("relink", context_settings=CONTEXT)
@click.option("-r", "--root", type=FOLDER, help="The set, or with --recursive a folder.")
@click.option("--recursive", is_flag=True, help="Relink every set below ROOT.")
@click.option("-e", "--experiments", metavar="GLOB", type=GLOB, help="Also re-link unlinked experiment folders matching GLOB.")
def relink_command(root, recursive, experiments) -> None:
    """Relink a moved set (paths follow the move), or re-link unlinked experiments."""
    top = root or os.getcwd()
    roots = list(sets_below(top)) if recursive else [Path(top)]
    if not roots:
        fail(f"no experiment set found below {os.path.abspath(top)}")
    for set_root in roots:
        exp_set = ExperimentSet(set_root)
        relinked = exp_set.relink(experiments)
        for name, why in exp_set.relink_left:
            click.echo(f"Not relinked {name}: {why}", err=True)
        extra = f" (+{len(relinked)} experiment(s))" if relinked else ""
        click.echo(f"Relinked {set_root}{extra}", err=True)


# --------------------------------------------------------------------------- clean / rm
def _echo_names(title: str, names: list[str]) -> None:
    click.echo(title, err=True)
    for name in names:
        click.echo(f"  {name}", err=True)


@click.command("clean", context_settings=CONTEXT)
@click.option("-r", "--root", type=FOLDER, help="The set (default: current folder).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def clean_command(root, yes) -> None:
    """(DESTRUCTIVE) Delete the unlinked experiment folders xmen made (never a folder it did not make)."""
    exp_set = open_set(root)
    doomed, foreign = exp_set.clean_plan()
    if foreign:
        _echo_names(f"Keeping {len(foreign)} folder(s) that are not experiments xmen made for this set:", foreign)
    if not doomed:
        click.echo("Nothing to clean.", err=True)
        return
    _echo_names(f"Unlinked experiment folder(s) to delete in {exp_set.root}:", doomed)
    confirm(f"Delete these {len(doomed)} folder(s) ({_short(doomed)})?", yes)
    removed = exp_set.clean(doomed)
    click.echo(f"Removed {len(removed)} unlinked experiment folder(s): {_short(removed)}", err=True)
    if len(removed) < len(doomed):
        left = [n for n in doomed if n not in set(removed)]
        fail(f"kept {len(left)} folder(s) whose experiment started running: {_short(left)}")


def _short(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@click.command("rm", context_settings=CONTEXT)
@click.argument("root", type=FOLDER)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Remove it even if another set requires its experiments.")
def rm_command(root, yes, force) -> None:
    """(DESTRUCTIVE) Delete an experiment set: its experiments and xmen's files; what xmen did not make stays."""
    exp_set = open_set(root)
    plan = exp_set.rm_plan(force)
    _echo_names(f"Experiment folder(s) to delete in {exp_set.root}:", plan.experiments)
    _echo_names("xmen's files to delete:", plan.files)
    if plan.kept:
        _echo_names("Keeping what xmen did not make:", plan.kept)
    confirm(f"Delete the experiment set {exp_set.root} ({len(plan.experiments)} experiment(s))?", yes)
    done = exp_set.rm(force)
    if done.kept:
        click.echo(f"Removed the set {exp_set.root}; kept what xmen did not make: {_short(done.kept)}", err=True)
    else:
        click.echo(f"Removed {exp_set.root}", err=True)


def open_set(root: str | None) -> ExperimentSet:
    return ExperimentSet(root or os.getcwd())

