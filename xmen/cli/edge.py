"""The edge of the command line: xmen's errors and click's usage errors become one ``Error: ...`` line on stderr
and a non-zero exit, here and only here."""
from __future__ import annotations

import os
import sys

import click

from xmen.errors import XmenError
from xmen.store.naming import not_utf8
from xmen.store.terminal import plain


def run(command: click.Command, argv: list[str] | None = None) -> int:
    """Run ``command`` (the xmen group), turning every expected failure into one line on stderr; the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    bad = not_utf8(args)  # before anything runs: no verb writes half of what it was asked
    if bad is not None:
        click.echo(f"Error: {bad}", err=True)
        return 2
    try:
        command.main(args=args, prog_name="xmen", standalone_mode=False)
    except XmenError as exc:
        click.echo(f"Error: {plain(str(exc))}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("Error: aborted", err=True)
        return 1
    except click.ClickException as exc:
        message = " ".join(plain(exc.format_message()).split())
        context = getattr(exc, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        click.echo(f"Error: {message}{hint}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Error: interrupted", err=True)
        return 130
    except BrokenPipeError:  # `xmen list | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except OSError as exc:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
        return 1
    return 0
