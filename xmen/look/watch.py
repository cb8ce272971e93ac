"""``xmen list --watch``: redraw a command's output every few seconds until interrupted.

On a terminal the screen is cleared and the new output drawn at once (rendered first, so there is no blank
flicker while the sets are read); otherwise each refresh is appended under a time stamp, so a log stays readable.
Ctrl-C is the normal way to stop watching: it ends quietly with exit code 0.
"""
from __future__ import annotations

import contextlib
import io
import sys
import time
from typing import IO, Callable

CLEAR = "\x1b[H\x1b[2J"


def render_to_text(render: Callable[[], None]) -> str:
    """What ``render`` prints on stdout, captured (click.echo writes to the current ``sys.stdout``)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        render()
    return buffer.getvalue()


def watch(
    render: Callable[[], None],
    seconds: float,
    title: str,
    stream: IO[str] | None = None,
    tty: bool | None = None,
    rounds: int | None = None,
) -> None:
    """Print ``render``'s output every ``seconds`` under ``title`` and the time, until Ctrl-C (or ``rounds``)."""
    stream = stream if stream is not None else sys.stdout
    if tty is None:
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError, OSError):
            tty = False
    done = 0
    try:
        while rounds is None or done < rounds:
            text = render_to_text(render)
            header = f"Every {seconds:g}s: {title}    {time.strftime('%Y-%m-%d %H:%M:%S')}\n\n"
            stream.write((CLEAR if tty else "") + header + text + ("" if tty else "\n"))
            stream.flush()
            done += 1
            if rounds is None or done < rounds:
                time.sleep(seconds)
    except KeyboardInterrupt:
        if tty:
            stream.write("\n")
            stream.flush()
