"""Text made safe to show on a terminal, in one place: what a user or an experiment wrote (notes, parameters,
messages, names, errors) can hold escape sequences that retitle the window, write to the clipboard or hide text
(``ESC ] 52 ; ...``), so every value xmen prints goes through :func:`plain`; a table cell goes through
:func:`cell`, which also caps it (a 100 MB parameter must not make a 100 MB page).
"""
from __future__ import annotations

import re
from typing import Any

#: Every terminal escape: string commands (OSC ``ESC ]``, DCS ``ESC P``, SOS ``ESC X``, PM ``ESC ^``, APC
#: ``ESC _``, and their 8-bit forms) up to BEL or ST (unended, only the opening goes: the text stays visible); CSI (``ESC [`` or 0x9b) with its
#: parameters; any other ESC sequence (intermediates and a final byte); a lone ESC; and every other C0 control but
#: tab and newline, DEL and C1 control.
_ESCAPES = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])(?:[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c))?"  # OSC, DCS, SOS, PM, APC
    r"|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # CSI
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"  # other ESC sequences, a lone ESC
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # the remaining C0 controls (not \t, \n), DEL, C1 controls
)

#: The most characters a table cell shows (``xmen list``, ``xmen compare``, ``xmen report``).
CELL_LIMIT = 1000


def plain(text: str) -> str:
    """``text`` without any terminal escape sequence or control character (tabs and newlines stay)."""
    return _ESCAPES.sub("", text)


def cut(text: str, limit: int = CELL_LIMIT) -> str:
    """``text``, or its first ``limit`` characters saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [cut: {len(text) - limit:,} more characters]"


def cell(value: Any, limit: int = CELL_LIMIT) -> Any:
    """A table cell as it may be shown: a string made :func:`plain` and :func:`cut` to ``limit``; a long list or
    mapping shown as its cut text; numbers and other values as they are."""
    if isinstance(value, str):
        return cut(plain(value), limit)
    if isinstance(value, (list, tuple, dict)):
        text = str(value)
        return cut(plain(text), limit) if len(text) > limit or _ESCAPES.search(text) else value
    return value
