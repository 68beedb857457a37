"""Text from the model or a tool, made safe for a terminal.

Everything the model or a tool produces passes through ``sanitize`` before it is printed: escape
and control sequences (ESC]52 clipboard writes, ESC]8 hyperlinks, ESC[2J screen clears, bare CR
that overwrites a line, bidi overrides that reorder text) are shown as visible, inert characters.
"""

from __future__ import annotations

import re

# C0 controls except TAB and LF, DEL, and C1 controls
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
# bidi embeddings/overrides/isolates and other invisible reordering marks
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _picture(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # ␛ ␍ ␇ ...
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"\\x{code:02x}"


def sanitize(text: str) -> str:
    """Make ``text`` inert for a terminal while keeping it readable (CRLF becomes LF)."""
    text = text.replace("\r\n", "\n")
    text = _CONTROL.sub(_picture, text)
    return _BIDI.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)
