"""The ``xmen`` command: a thin click layer over the library.

Each command parses its options, calls one library function and prints the result (one module per group of verbs);
xmen.cli.edge turns errors into one line and an exit code.
"""
from __future__ import annotations

import sys
from typing import NoReturn

import click

from xmen._version import __version__
from xmen.cli import compare as compare_commands
from xmen.cli import edge
from xmen.cli import list as list_commands
from xmen.cli import report as report_commands
from xmen.cli import run as run_commands
from xmen.cli import sets as set_commands
from xmen.cli import sync as sync_commands
from xmen.cli._common import CONTEXT


@click.group(context_settings=CONTEXT, invoke_without_command=True)
@click.version_option(__version__, "--version", prog_name="xmen")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """A helper for the quick setup and management of experiments, run by Snakemake."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for _name, _command in set_commands.COMMANDS.items():
    cli.add_command(_command, _name)
cli.add_command(list_commands.list_command, "list")
cli.add_command(compare_commands.compare_command, "compare")
cli.add_command(run_commands.run_command, "run")
cli.add_command(run_commands.demo_command, "demo")
cli.add_command(run_commands.ci_command, "ci")
cli.add_command(run_commands.workflow_command, "workflow")
cli.add_command(sync_commands.sync_command, "sync")
cli.add_command(report_commands.plot_command, "plot")
cli.add_command(report_commands.report_command, "report")


def main(argv: list[str] | None = None) -> int:
    """Run ``xmen ARGV``; the exit code (errors are one line on stderr)."""
    return edge.run(cli, argv)


def entry_point() -> NoReturn:
    sys.exit(main())
