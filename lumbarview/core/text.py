"""Terminal-safe, one-line messages.

Text that came from a file (a series description, a header field, a reader's error quoting the
file's bytes) may hold escape sequences that set a terminal's title or clear its screen, line
breaks that make one message look like several, or lone surrogates that no output encoding
accepts. :func:`safe_line` turns any text into one printable line of bounded length; every
message shown to the user (the command line, the issues panel, the logs) passes through it.
"""

from __future__ import annotations

import unicodedata

#: The longest message shown on one line; the rest is cut with a note of how much was cut.
MAX_MESSAGE_CHARS = 600

# Format characters that reorder or hide text (bidirectional overrides and isolates).
_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A)) | {0x200E, 0x200F, 0x061C}


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return True
    if code < 0x2000:
        return False
    return code in _BIDI or unicodedata.category(ch) in ("Zl", "Zp", "Cs")


def safe_line(text: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as one terminal-safe line: control characters (C0, DEL, C1), line and
    paragraph separators, bidirectional overrides and lone surrogates written as ``\\xNN`` /
    ``\\uNNNN``; at most ``limit`` characters, a longer text cut with the count of what was cut."""
    raw = text if isinstance(text, str) else str(text)
    out = "".join(_escape(ch) if _unsafe(ch) else ch for ch in raw)
    if len(out) > limit:
        cut = len(out) - limit
        out = out[:limit] + f"… ({cut:,} more characters)"
    return out
