"""The ``xmen`` command: a thin click layer over the library.

Each command parses its options, calls one library function and prints the result (one module per group of verbs);
xmen.cli.edge turns errors into one line and an exit code. A command's module is imported when that command runs
(or when ``--help`` lists it): import weight, ``xmen list`` does not load the code of ``xmen run`` (click's lazy
subcommands; tests/test_layers.py reads :data:`COMMANDS` as imports).
"""
from __future__ import annotations

import importlib
import sys
from typing import NoReturn

import click

from xmen._version import __version__
from xmen.cli import compat, edge
from xmen.cli._common import CONTEXT

#: Each command's ``module:object``.
COMMANDS = {
    "config": "xmen.cli.sets:config_command",
    "init": "xmen.cli.sets:init_command",
    "register": "xmen.cli.sets:register_command",
    "note": "xmen.cli.sets:note_command",
    "reset": "xmen.cli.sets:reset_command",
    "cancel": "xmen.cli.sets:cancel_command",
    "unlink": "xmen.cli.sets:unlink_command",
    "relink": "xmen.cli.sets:relink_command",
    "clean": "xmen.cli.sets:clean_command",
    "rm": "xmen.cli.sets:rm_command",
    "list": "xmen.cli.list:list_command",
    "compare": "xmen.cli.compare:compare_command",
    "run": "xmen.cli.run:run_command",
    "demo": "xmen.cli.run:demo_command",
    "ci": "xmen.cli.run:ci_command",
    "workflow": "xmen.cli.run:workflow_command",
    "sync": "xmen.cli.sync:sync_command",
    "plot": "xmen.cli.report:plot_command",
    "report": "xmen.cli.report:report_command",
}


class LazyGroup(click.Group):
    """A group whose commands (:data:`COMMANDS`) are imported when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        compat.refuse_gone_command(cmd_name)  # the original's `xmen python`, `link`...: one line naming the new form
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, name = COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings=CONTEXT, invoke_without_command=True)
@click.version_option(__version__, "--version", prog_name="xmen")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """A helper for the quick setup and management of experiments, run by Snakemake."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def main(argv: list[str] | None = None) -> int:
    """Run ``xmen ARGV``; the exit code (errors are one line on stderr)."""
    return edge.run(cli, argv)


def entry_point() -> NoReturn:
    sys.exit(main())

