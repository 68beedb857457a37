"""Text from the model or a tool, made safe for a terminal.

Everything the model or a tool produces passes through ``sanitize`` before it is printed: escape
and control sequences (ESC]52 clipboard writes, ESC]8 hyperlinks, ESC[2J screen clears, bare CR
that overwrites a line, bidi overrides that reorder text) are shown as visible, inert characters.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import AgentCliError

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


# --- rich renderables for the REPL (imported lazily: `ask` needs only sanitize) -------------------

def inert(text: str) -> str:
    """Stricter than ``sanitize``, for what is being approved (nothing may hide): escape every
    control, format (bidi, zero-width), separator, private-use and unassigned character.
    Prose uses ``sanitize`` instead, which keeps e.g. the zero-width joiners of emoji."""
    import unicodedata

    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\n" or (cat[0] not in "CZ" or cat == "Zs"):
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


# --- one-line messages on stderr (warnings, notices, the CLI's error line) ------------------------

def color(code: str, text: str) -> str:
    if os.environ.get("NO_COLOR") or not sys.stderr.isatty():
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


def eprint(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def warn(line: str) -> None:
    from ..errors import redact_url

    eprint(color("33", "warning: ") + sanitize(redact_url(line)))


def notice(line: str) -> None:
    from ..errors import redact_url

    eprint(color("2", sanitize(redact_url(line))))


def report_error(e: AgentCliError) -> None:
    line = color("31", "error: ") + sanitize(e.message)
    if e.hint:
        line += " " + color("2", f"(hint: {sanitize(e.hint)})")
    eprint(line)


RESULT_PREVIEW_LINES = 10


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def format_arguments(raw: str) -> str:
    """A tool call's arguments as pretty JSON (or the raw text when it is not JSON), shown the
    way the approval prompt of `ask` shows them: sanitised, then nothing invisible left."""
    import json

    try:
        value = json.loads(raw, strict=False) if raw.strip() else {}
        text = json.dumps(value, indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, or hostile nesting: show it as sent
        text = raw
    return inert(sanitize(text))


def tool_call_panel(name: str, arguments: str) -> object:
    """The tool name and its full arguments (nothing folded: this is what gets approved)."""
    from rich.panel import Panel
    from rich.text import Text

    return Panel(Text(format_arguments(arguments)), title=Text(f"tool call: {sanitize(name)}"),
                 title_align="left", border_style="cyan", expand=False)


def fold(content: str, max_lines: int = RESULT_PREVIEW_LINES) -> tuple[str, str | None]:
    """(first ``max_lines`` lines, a note on what was folded or None)."""
    lines = content.splitlines()
    if len(lines) <= max_lines and len(content) <= 1200:
        return content, None
    shown = "\n".join(lines[:max_lines])
    if len(shown) > 1200:
        shown = shown[:1200]
    rest = content[len(shown):].lstrip("\n")
    hidden_lines = len(rest.splitlines())
    size = _size(len(rest.encode("utf-8", "replace")))
    if hidden_lines > 1:
        return shown, f"… {hidden_lines} more lines ({size}) folded"
    return shown, f"… {size} more folded"


def tool_result_panel(name: str, content: str, is_error: bool) -> object:
    """The first lines of a tool result, with the size of what is folded."""
    from rich.panel import Panel
    from rich.text import Text

    shown, note = fold(content)
    shown = shown.rstrip("\n")
    body = Text(sanitize(shown) if shown else "(empty)")
    if note:
        body.append("\n" + note, style="dim italic")
    title = f"{'✗' if is_error else '✓'} {sanitize(name)}"
    return Panel(body, title=Text(title), title_align="left", expand=False,
                 border_style="red" if is_error else "green")


def stop_warning(done: Any, max_steps: int) -> str | None:
    """The one line that says a turn stopped short (max_steps, max_tokens, content_filter),
    for ``ask`` and the REPL alike; None when it did not (or ended otherwise)."""
    reason = done.stop_reason
    if reason == "max_steps":
        return (f"stopped after {max_steps} model requests without a final answer (raise it "
                "with --max-steps)")
    if reason == "max_tokens":
        return ("the reply was cut off by the reply token limit; raise it with --max-tokens N "
                "(or max_tokens in the provider profile)")
    if reason == "content_filter":
        return "the provider withheld the rest of the reply (content filter / refusal)"
    return None
