"""``xmen sync``: bring a remote set's records here and list them (the logic is in :mod:`xmen.sets.sync`)."""
from __future__ import annotations

import click

from xmen.sets.sync import DEFAULT_MAX_SIZE
from xmen.cli.list import list_command
from xmen.cli._common import FOLDER
from xmen.sets.sync import sync

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.command("sync", context_settings=CONTEXT)
@click.argument("source", metavar="[USER@]HOST:/PATH/TO/SET")
@click.argument("dest", metavar="LOCAL_DIR", type=FOLDER)
@click.option("-e", "--rsh", default="ssh", show_default=True, metavar="COMMAND",
              help="The ssh command rsync uses, e.g. 'ssh -p 2222 -i ~/.ssh/cluster'.")
@click.option("--max-size", default=DEFAULT_MAX_SIZE, show_default=True, metavar="SIZE",
              help="Skip files larger than SIZE (checkpoints stay remote).")
@click.option("--via", type=click.Choice(["auto", "rsync", "tar"]), default="auto", show_default=True,
              help="rsync (only changes move; rsync on both machines) or tar over ssh; auto: rsync if installed.")
@click.option("--no-list", "no_list", is_flag=True, help="Do not list the set after copying it.")
@click.pass_context
def sync_command(ctx: click.Context, source: str, dest: str, rsh: str, max_size: str, via: str,
                 no_list: bool) -> None:
    """Copy a remote set's records (params.yml, experiment.yml, logs; not checkpoints) into LOCAL_DIR over
    ssh (rsync, else tar), then list it with its origin.

    \b
    xmen sync me@cluster:/data/me/experiments/set_a ~/experiments/cluster
    """
    local = sync(source, dest, rsh=rsh, max_size=max_size, via=via)
    click.echo(f"Synced {source} into {local}", err=True)
    if not no_list:
        ctx.invoke(list_command, globs=(str(local),))
