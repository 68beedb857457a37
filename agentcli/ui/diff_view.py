"""Unified diffs of a file change, bounded and inert, and their colours on a terminal.

A diff is what the user approves (``edit``/``write``) or what ``/undo`` restores, so every line
is made inert like the rest of an approval (``render.inert``: controls, bidi and invisible
characters escaped). It stays bounded whatever the files: the lines both versions share at the
start and the end are skipped before any comparison, a changed middle of more than
``MAX_COMPARED`` lines is shown as removed then added instead of being compared line by line,
and at most ``MAX_SHOWN`` lines are shown (the counts of added and removed lines stay exact). A
new file shows its first ``NEW_HEAD`` lines.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from .render import inert, sanitize

CONTEXT = 3
MAX_SHOWN = 300
MAX_COMPARED = 4000
NEW_HEAD = 40

Opcode = tuple[str, int, int, int, int]


@dataclass(frozen=True)
class Diff:
    text: str
    """The unified diff, every line inert; empty when nothing changes."""
    added: int
    removed: int

    @property
    def counts(self) -> str:
        return f"+{self.added} -{self.removed}"


def shown_path(real: str, cwd: str | None = None) -> str:
    """A file's path as people read it: relative to the working folder when inside it."""
    try:
        base = os.path.realpath(cwd or os.getcwd())
        rel = os.path.relpath(real, base)
    except (ValueError, OSError):
        return real
    return real if rel.startswith("..") else rel


def change_diff(change: Any) -> Diff:
    """The diff of a ``messages.FileChange``."""
    return diff(change.before, change.after, shown_path(change.path))


def lines_of(text: str) -> list[str]:
    """Lines with their ``\\n`` (only ``\\n`` separates lines here)."""
    if not text:
        return []
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def diff(before: str | None, after: str | None, name: str) -> Diff:
    """``before`` -> ``after`` of the file ``name`` (None: the file does not exist)."""
    a, b = lines_of(before or ""), lines_of(after or "")
    head = [f"--- {'/dev/null' if before is None else 'a/' + name}",
            f"+++ {'/dev/null' if after is None else 'b/' + name}"]
    if before is None or after is None:
        sign, body = ("+", b) if before is None else ("-", a)
        span = f"-0,0 +1,{len(b)}" if before is None else f"-1,{len(a)} +0,0"
        out = [*head, f"@@ {span} @@", *(_line(sign, x) for x in body[:NEW_HEAD])]
        if len(body) > NEW_HEAD:
            out.append(f"… {len(body) - NEW_HEAD} more lines")
        return Diff("\n".join(_inert(out)), len(b), len(a))
    codes = _opcodes(a, b)
    added = sum(j2 - j1 for tag, _, _, j1, j2 in codes if tag in ("insert", "replace"))
    removed = sum(i2 - i1 for tag, i1, i2, _, _ in codes if tag in ("delete", "replace"))
    if not added and not removed:
        return Diff("", 0, 0)
    out = list(head)
    shown = 0
    for group in _groups(codes, CONTEXT):
        for line in _hunk(group, a, b):
            if shown >= MAX_SHOWN:
                out.append(f"… more of the diff not shown ({added} lines added and {removed} "
                           "removed in all)")
                return Diff("\n".join(_inert(out)), added, removed)
            out.append(line)
            shown += 1
    return Diff("\n".join(_inert(out)), added, removed)


def _inert(lines: Sequence[str]) -> list[str]:
    return [inert(sanitize(x)) for x in lines]


def _line(sign: str, text: str) -> str:
    body = text[:-1] if text.endswith("\n") else text
    if body.endswith("\r"):
        body = body[:-1]
    line = sign + body
    if not text.endswith("\n"):
        line += "\n\\ No newline at end of file"
    return line


def _opcodes(a: list[str], b: list[str]) -> list[Opcode]:
    """Line opcodes of a -> b; the shared start and end are found first (linear), and only the
    middle is compared (or, when it is too long, taken as replaced whole)."""
    p = 0
    while p < len(a) and p < len(b) and a[p] == b[p]:
        p += 1
    s = 0
    while s < len(a) - p and s < len(b) - p and a[-1 - s] == b[-1 - s]:
        s += 1
    am, bm = a[p:len(a) - s], b[p:len(b) - s]
    if len(am) > MAX_COMPARED or len(bm) > MAX_COMPARED:
        middle: list[Opcode] = [("replace", 0, len(am), 0, len(bm))]
    else:
        middle = difflib.SequenceMatcher(None, am, bm, autojunk=False).get_opcodes()
    codes: list[Opcode] = [("equal", 0, p, 0, p)]
    codes += [(t, i1 + p, i2 + p, j1 + p, j2 + p) for t, i1, i2, j1, j2 in middle]
    codes.append(("equal", len(a) - s, len(a), len(b) - s, len(b)))
    return [c for c in codes if c[2] > c[1] or c[4] > c[3]]


def _groups(codes: list[Opcode], n: int) -> Iterator[list[Opcode]]:
    """Hunks with ``n`` lines of context (difflib's grouping, on given opcodes)."""
    if not codes:
        return
    codes = list(codes)
    if codes[0][0] == "equal":
        t, i1, i2, j1, j2 = codes[0]
        codes[0] = t, max(i1, i2 - n), i2, max(j1, j2 - n), j2
    if codes[-1][0] == "equal":
        t, i1, i2, j1, j2 = codes[-1]
        codes[-1] = t, i1, min(i2, i1 + n), j1, min(j2, j1 + n)
    group: list[Opcode] = []
    for t, i1, i2, j1, j2 in codes:
        if t == "equal" and i2 - i1 > 2 * n:
            group.append((t, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((t, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


def _span(start: int, stop: int) -> str:
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def _hunk(group: list[Opcode], a: list[str], b: list[str]) -> Iterator[str]:
    first, last = group[0], group[-1]
    yield f"@@ -{_span(first[1], last[2])} +{_span(first[3], last[4])} @@"
    for t, i1, i2, j1, j2 in group:
        if t == "equal":
            for x in a[i1:i2]:
                yield _line(" ", x)
            continue
        for x in a[i1:i2]:
            yield _line("-", x)
        for x in b[j1:j2]:
            yield _line("+", x)


# --- colours -------------------------------------------------------------------------------------

def styled(text: str) -> list[tuple[str, str]]:
    """(style, line) per line: header, hunk, add, remove, note or plain."""
    out = []
    for line in text.split("\n") if text else []:
        if line.startswith(("--- ", "+++ ")):
            style = "header"
        elif line.startswith("@@"):
            style = "hunk"
        elif line.startswith("+"):
            style = "add"
        elif line.startswith("-"):
            style = "remove"
        elif line.startswith(("…", "\\")):
            style = "note"
        else:
            style = ""
        out.append((style, line))
    return out


ANSI = {"header": "1", "hunk": "36", "add": "32", "remove": "31", "note": "2"}
RICH = {"header": "bold", "hunk": "cyan", "add": "green", "remove": "red", "note": "dim"}
TOOLKIT = {"header": "bold", "hunk": "ansicyan", "add": "ansigreen", "remove": "ansired",
           "note": "italic"}


def colour_wanted(stream: Any) -> bool:
    try:
        return not os.environ.get("NO_COLOR") and bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def as_ansi(text: str, colour: bool | None = None, stream: Any = None) -> str:
    """The diff for a text stream, coloured with ANSI codes when ``colour`` (default: when
    ``stream``, or stderr, is a terminal and NO_COLOR is unset)."""
    if colour is None:
        colour = colour_wanted(stream if stream is not None else sys.stderr)
    if not colour:
        return text
    return "\n".join(f"\x1b[{ANSI[s]}m{line}\x1b[0m" if s else line
                     for s, line in styled(text))


def as_rich(text: str) -> Any:
    from rich.text import Text

    out = Text()
    for i, (style, line) in enumerate(styled(text)):
        out.append(("\n" if i else "") + line, style=RICH.get(style, ""))
    return out


def as_toolkit(text: str) -> list[tuple[str, str]]:
    """prompt-toolkit formatted text (a list of (style, text) pairs)."""
    return [(TOOLKIT.get(style, ""), line + "\n") for style, line in styled(text)]


def file_change_panel(change: Any, *, with_diff: bool = True) -> Any:
    """The REPL's note of a changed file: its name, the line counts, and the diff unless the
    user just saw it at the approval prompt; /undo restores it."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    d = change_diff(change)
    title = Text(sanitize(f"✎ changed {shown_path(change.path)} ({d.counts})"))
    foot = Text("/undo restores it", style="dim")
    body = Group(as_rich(d.text), foot) if with_diff and d.text else foot
    return Panel(body, title=title, title_align="left", border_style="yellow", expand=False)
