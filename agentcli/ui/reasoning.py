"""Showing a model's reasoning (Anthropic thinking, OpenAI reasoning summaries): never on
stdout, always sanitised, and out of the way of the answer.

- ``ReasoningStream`` (``ask``): the text as it arrives on stderr, dim on a terminal, plain in a
  pipe; ``finish()`` ends its line when the answer starts.
- ``ReasoningBlock`` (the REPL): a dim block of the latest few rows while the model thinks,
  folded to one line ("thought for 12 s") when the answer starts; off a terminal only that
  line is written.
- ``last_reasoning``: the readable reasoning of the latest turn that had any (``/reasoning``).
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

from .render import sanitize

if TYPE_CHECKING:
    from ..messages import Message

DIM, UNDIM = "\x1b[2m", "\x1b[22m"
REDRAW_INTERVAL = 0.05
"""Seconds between redraws of the REPL's block (the text in between is drawn with the next)."""


class _Clean:
    """Sanitise deltas, holding back a trailing CR one delta (a CRLF split in two stays one
    line break instead of showing a CR picture)."""

    def __init__(self) -> None:
        self.held = ""

    def __call__(self, text: str, final: bool = False) -> str:
        text, self.held = self.held + text, ""
        if text.endswith("\r") and not final:
            text, self.held = text[:-1], "\r"
        return sanitize(text)


def _colour(file: TextIO) -> bool:
    isatty = getattr(file, "isatty", None)
    try:
        return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")
    except ValueError:
        return False


class ReasoningStream:
    """``ask``: reasoning text on stderr as it arrives (dim on a terminal)."""

    def __init__(self, file: TextIO) -> None:
        self.file = file
        self.dim = _colour(file)
        self._clean = _Clean()
        self._last = "\n"

    def feed(self, delta: str) -> None:
        self._write(self._clean(delta))

    def finish(self) -> None:
        """The reply starts (or the turn ended): the reasoning's last line ends."""
        self._write(self._clean("", final=True))
        if self._last != "\n":
            self.file.write("\n")
            self._last = "\n"
        self.file.flush()

    def _write(self, text: str) -> None:
        if not text:
            return
        self.file.write(f"{DIM}{text}{UNDIM}" if self.dim else text)
        self.file.flush()
        self._last = text[-1]


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


class ReasoningBlock:
    """The REPL's reasoning while it streams: a dim header and the latest ``rows`` rows of the
    text (redrawn in place, at most every ``REDRAW_INTERVAL``), folded to one dim line by
    ``fold()`` when the answer starts. ``critical`` wraps each terminal write (the REPL defers
    Ctrl-C there so a redraw is never cut in half); ``clock`` is injectable for tests."""

    def __init__(self, console: Any, *, rows: int = 6,
                 critical: Callable[[], AbstractContextManager[Any]] = nullcontext,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.file: TextIO = console.file
        self.terminal = bool(console.is_terminal)
        plain = getattr(console, "no_color", False) or os.environ.get("NO_COLOR")
        self._dim, self._undim = ("", "") if plain else (DIM, UNDIM)
        self.rows = max(1, min(rows, console.height - 3))
        self.critical = critical
        self.clock = clock
        self.text = ""
        self._clean = _Clean()
        self._started = clock()
        self._drawn_rows = 0  # rows of the block on screen now
        self._drawn_at = float("-inf")
        self.folded: str | None = None

    def feed(self, delta: str) -> None:
        self.text += self._clean(delta)
        now = self.clock()
        if self.terminal and now - self._drawn_at >= REDRAW_INTERVAL:
            with self.critical():
                self._erase()
                self._draw(now)

    def fold(self) -> str:
        """Replace the block by its one-line summary; returns that line. Idempotent."""
        if self.folded is None:
            self.text += self._clean("", final=True)
            self.folded = f"thought for {_duration(self.clock() - self._started)}"
            with self.critical():
                self._erase()
                line = f"{self.folded} (/reasoning shows it)"
                self.file.write(f"{self._dim}{line}{self._undim}\n" if self.terminal
                                else line + "\n")
                self.file.flush()
        return self.folded

    def _lines(self, width: int) -> list[str]:
        """The last ``rows`` rows of the text, wrapped at ``width`` cells."""
        from rich.cells import chop_cells

        tail = self.text[-self.rows * width * 2:]
        rows: list[str] = []
        for line in tail.replace("\t", "    ").split("\n"):
            rows.extend(chop_cells(line, width) or [""])
        while rows and not rows[-1].strip():
            rows.pop()
        return rows[-self.rows:]

    def _draw(self, now: float) -> None:
        width = max(self.console.width - 1, 10)  # never the last column: no pending wrap
        lines = [f"thinking… {_duration(now - self._started)}", *self._lines(width)]
        self.file.write(self._dim + "\n".join(lines) + self._undim)
        self.file.flush()
        self._drawn_rows = len(lines)
        self._drawn_at = now

    def _erase(self) -> None:
        if self._drawn_rows:
            up = self._drawn_rows - 1
            self.file.write("\r" + (f"\x1b[{up}A" if up else "") + "\x1b[J")
            self._drawn_rows = 0


def last_reasoning(history: Sequence[Message]) -> tuple[str, int]:
    """The readable reasoning of the latest turn that had any reasoning, and how many of its
    reasoning items have no readable text (redacted or encrypted only). ("", 0): none yet."""
    texts: list[str] = []
    unreadable = 0
    for m in reversed(history):
        if m.role == "user" and (texts or unreadable):
            break  # the start of the turn that had it
        if m.role == "assistant":
            for part in reversed(m.reasoning):
                if part.text:
                    texts.append(part.text)
                else:
                    unreadable += 1
    return "\n\n".join(reversed(texts)), unreadable
