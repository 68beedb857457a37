"""Markdown text in, finished blocks out: where a streamed reply can be cut and rendered.

A paragraph, quote or table ends at a blank line; a heading or thematic break is one line; a
fenced code block ends at its closing fence; a list ends at the first line after a blank line
that does not continue it (so loose lists and indented continuations stay one list). The cut
is decided line by line, so the cost is linear in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# --- line classification -----------------------------------------------------------------------

_FENCE_OPEN = re.compile(r"^( {0,3}|\s*)(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^ {0,3}#{1,6}(\s|$)")
_LIST_ITEM = re.compile(r"^ {0,3}([-*+]|\d{1,9}[.)])(\s|$)")
_THEMATIC = re.compile(r"^ {0,3}([-*_])( *\1){2,} *$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+) *$")
_INDENTED = re.compile(r"^(\t| {2,})\S")
_QUOTE = re.compile(r"^ {0,3}>")
_TABLE = re.compile(r"^ {0,3}\|")


@dataclass(frozen=True)
class Block:
    """A finished piece of the reply. ``kind`` is ``code`` (``text`` is the code itself, ``info``
    the fence's language) or ``markdown``; ``cont`` marks a piece continuing the previous one
    (a block too tall to preview whole), printed without a blank line before it."""

    kind: str
    text: str
    info: str = ""
    cont: bool = False


class BlockSplitter:
    """Markdown text in, finished blocks out, as soon as each is known to be finished."""

    def __init__(self) -> None:
        self._partial = ""  # the current line, not yet ended by \n
        self._lines: list[str] = []  # complete lines of the open block
        self._kind: str | None = None  # para | list | quote | table | indent | fence
        self._fence: tuple[str, int] | None = None  # (char, length) while inside a fence
        self._fence_info = ""
        self._fence_top = False  # the fence is the block itself (not inside a list item)
        self._blank_after_list = False
        self._cont = False  # the open block continues a force-split piece
        self._out: list[Block] = []

    # -- public

    def feed(self, text: str) -> list[Block]:
        """Add text; return the blocks it finished (in order)."""
        if "\n" not in text:
            self._partial += text
            return []
        head, *complete, rest = (self._partial + text).split("\n")
        self._partial = rest
        self._line(head)
        for line in complete:
            self._line(line)
        out, self._out = self._out, []
        return out

    def flush(self) -> list[Block]:
        """The stream ended: everything left is a block (an unclosed fence is still code)."""
        if self._partial:
            self._line(self._partial)
            self._partial = ""
        self._emit()
        out, self._out = self._out, []
        return out

    @property
    def tail(self) -> str:
        """The text not yet returned as a block."""
        lines = self._lines + [self._partial]
        return "\n".join(lines)

    def split(self) -> list[Block]:
        """Force out what is complete of the open block (it is too tall to keep previewing).

        Code: the complete lines so far become a chunk and the fence stays open. Other blocks:
        the complete lines; a paragraph that is one long line is cut at its last space."""
        if self._fence is not None and not self._fence_top:
            return []  # a fence inside a list item: no clean place to cut
        if self._fence_top and self._fence is not None:
            code = self._lines[1:]
            if code:
                self._out.append(Block("code", "\n".join(code), self._fence_info, self._cont))
                self._lines = self._lines[:1]
                self._cont = True
        elif self._lines:
            self._emit(cont_next=True)
        elif self._partial and " " in self._partial.strip():
            cut = self._partial.rstrip().rfind(" ")
            piece, self._partial = self._partial[:cut], self._partial[cut + 1:]
            self._out.append(Block("markdown", piece, cont=self._cont))
            self._cont = True
        out, self._out = self._out, []
        return out

    # -- internals

    def _emit(self, cont_next: bool = False) -> None:
        lines = self._lines
        while lines and not lines[-1].strip():
            lines.pop()
        if lines:
            if self._fence_top:
                code = lines[1:]
                if self._fence is None and code:  # drop the closing fence
                    code = code[:-1]
                if code or not self._cont:  # nothing left after the last chunk: no empty box
                    self._out.append(Block("code", "\n".join(code), self._fence_info,
                                           self._cont))
            else:
                self._out.append(Block("markdown", "\n".join(lines), cont=self._cont))
        self._lines = []
        self._kind = None
        self._fence_top = False
        self._fence_info = ""
        self._blank_after_list = False
        self._cont = cont_next
        if not cont_next:
            self._fence = None

    def _open_fence(self, line: str) -> bool:
        m = _FENCE_OPEN.match(line)
        if not m:
            return False
        marker, info = m.group(2), m.group(3)
        if marker[0] == "`" and "`" in info:
            return False
        self._fence = (marker[0], len(marker))
        self._fence_info = info.strip().split(" ")[0] if info.strip() else ""
        return True

    def _closes_fence(self, line: str) -> bool:
        assert self._fence is not None
        ch, n = self._fence
        s = line.strip()
        return len(s) >= n and s == ch * len(s)

    def _line(self, line: str) -> None:
        if self._fence is not None:
            self._lines.append(line)
            if self._closes_fence(line):
                self._fence = None
                if self._fence_top:
                    self._emit()
            return
        blank = not line.strip()
        if blank:
            if not self._lines:
                return
            if self._kind == "list":
                self._blank_after_list = True
                self._lines.append(line)
                return
            self._emit()
            return
        if self._kind == "list" and self._blank_after_list:
            if _INDENTED.match(line) or _LIST_ITEM.match(line):
                self._blank_after_list = False
                self._lines.append(line)
                if _FENCE_OPEN.match(line):
                    self._open_fence(line)
                return
            self._emit()
        if _FENCE_OPEN.match(line):
            if self._kind == "list" and _INDENTED.match(line):
                self._open_fence(line)
                self._lines.append(line)
                return
            if self._open_fence(line):
                fence = self._fence
                info = self._fence_info
                if self._lines:
                    self._emit()
                self._fence, self._fence_info = fence, info
                self._kind, self._fence_top, self._lines = "fence", True, [line]
                return
        if self._kind == "para" and _SETEXT.match(line):
            self._lines.append(line)
            self._emit()
            return
        if _HEADING.match(line) or _THEMATIC.match(line):
            if self._lines:
                self._emit()
            self._lines = [line]
            self._emit()
            return
        if not self._lines:
            if _LIST_ITEM.match(line):
                self._kind = "list"
            elif _QUOTE.match(line):
                self._kind = "quote"
            elif _TABLE.match(line):
                self._kind = "table"
            elif line.startswith(("    ", "\t")):
                self._kind = "indent"
            else:
                self._kind = "para"
            self._lines = [line]
            return
        if self._kind == "para" and _LIST_ITEM.match(line):
            self._kind = "list"
        self._lines.append(line)
