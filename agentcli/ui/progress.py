"""A progress line for long tool calls (an MCP server's ``notifications/progress``).

On a terminal it is one line, rewritten in place (``\\r`` + text + erase to the end of the line)
and erased when the call ends, so progress never scrolls the screen. Anywhere else (a pipe, a
log file, ``TERM=dumb``) there is no cursor movement and no ANSI: a plain line when progress
first arrives, then at most one every ``PIPE_EVERY`` seconds, and only when it changed. What a
server says is made inert (``sanitize``) and kept to one line of the terminal's width.
"""

from __future__ import annotations

import os
import time
from typing import IO, Any, Callable

from .render import sanitize

PIPE_EVERY = 10.0  # seconds between plain progress lines when not on a terminal


def progress_text(label: str, progress: float, total: float | None,
                  message: str | None) -> str:
    """``demo__steps: 3/10 (30%) step 3 of 10``."""
    def num(x: float) -> str:
        return f"{x:g}" if x != int(x) else f"{int(x)}"

    done = num(progress)
    if total:
        done += f"/{num(total)} ({min(100.0, 100 * progress / total):.0f}%)"
    text = f"{label}: {done}"
    if message:
        text += " " + message
    return " ".join(sanitize(text).split())


class ProgressLine:
    """``show`` as often as progress arrives; ``clear`` when the call ends."""

    def __init__(self, stream: IO[str] | None = None, *, pipe_every: float = PIPE_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import sys

        self.stream = stream if stream is not None else sys.stderr
        self.pipe_every = pipe_every
        self.clock = clock
        self.terminal = _is_terminal(self.stream)
        self._shown = ""
        self._last_line: float | None = None

    def show(self, label: str, progress: float, total: float | None = None,
             message: str | None = None) -> None:
        text = "… " + progress_text(label, progress, total, message)
        if text == self._shown:
            return
        if self.terminal:
            width = _width(self.stream)
            if len(text) >= width:
                text = text[:max(1, width - 2)] + "…"
            self._write(f"\r{text}\x1b[K")
        else:
            now = self.clock()
            if self._last_line is not None and now - self._last_line < self.pipe_every:
                return
            self._last_line = now
            self._write(text + "\n")
        self._shown = text

    def clear(self) -> None:
        """Erase the line (on a terminal) and start afresh for the next call."""
        if self._shown and self.terminal:
            self._write("\r\x1b[K")
        self._shown = ""
        self._last_line = None

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stream: progress is a nicety


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, OSError, ValueError):
        return False


def _width(stream: Any) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80
