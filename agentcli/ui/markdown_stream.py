"""Streaming markdown for a terminal, in linear time.

A reply arrives as many small deltas. Re-rendering the whole reply on every delta (rich ``Live``)
costs O(n²); here every finished block is rendered exactly once and never redrawn:

- ``BlockSplitter`` (markdown_blocks.py) cuts the text into markdown blocks as lines complete.
- ``MarkdownStream`` prints each finished block once through rich (code blocks with syntax
  highlighting). The unfinished tail is shown as raw, sanitised text written incrementally (each
  delta is written once, O(1) per delta); when its block completes, only those tail rows are
  erased (cursor up + clear to end of screen) and the rendered block takes their place. The tail
  is kept shorter than the screen so it can always be erased: a block that outgrows it is
  committed in pieces (a code block in chunks of whole lines, a paragraph at a word boundary).
  Preview text is flushed at most every ``FLUSH_INTERVAL`` by a small thread, so a token costs
  no syscall of its own and the last words before a pause in the stream still show.
- ``PlainStream`` is used when the output is not a terminal: sanitised text, nothing else.

The first words must show at once: the first preview text of a stream (or after a pause) is
flushed immediately, and rich's markdown parser and syntax highlighter (markdown-it, pygments;
~50 ms to import) are imported only when the first block is rendered, not before the first word.
Given a ``LazyConsole`` (as ``ask`` does), rich itself waits until then too.

All text is sanitised (``render.sanitize``) before it is parsed, so escape sequences from the
model are inert; HTML is shown as text (never dropped), images and links show their real target.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, TextIO

from .markdown_blocks import Block, BlockSplitter
from .render import sanitize

if TYPE_CHECKING:
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.syntax import Syntax


# --- rendering ----------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _safe_markdown_class() -> type:
    """SafeMarkdown, defined on first use: subclassing rich's Markdown imports markdown-it."""
    from rich.markdown import Markdown

    class SafeMarkdown(Markdown):
        """rich Markdown that loses nothing and hides no target: raw HTML is shown as text,
        links and images show their real destination, an autolink shows its URL once. No
        leading blank line (rich puts one before lists and quotes; the stream spaces blocks
        itself)."""

        def __init__(self, markup: str, *, parser: Any = None,
                     template: Markdown | None = None, **kwargs: Any) -> None:
            if template is not None:  # skip rich's own parser construction and parse of ""
                self.__dict__.update(template.__dict__)
            else:
                super().__init__("", hyperlinks=False, **kwargs)
            self.markup = markup
            self.parsed = _parse(markup, parser or new_parser())

        def __rich_console__(self, console: Console, options: Any) -> Any:
            started = False
            for segment in super().__rich_console__(console, options):
                if not started:
                    if segment.text == "\n" and not segment.control:
                        continue
                    started = True
                yield segment

    return SafeMarkdown


def __getattr__(name: str) -> Any:
    if name == "SafeMarkdown":  # the class is made on first use (see _safe_markdown_class)
        return _safe_markdown_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def new_parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table")


def _parse(markup: str, parser: Any) -> list[Any]:
    from markdown_it.token import Token

    tokens = parser.parse(markup)
    for tok in tokens:
        if tok.type != "inline" or not tok.children:
            continue
        children: list[Token] = []
        in_autolink = False
        for child in tok.children:
            if child.type == "image":
                src = str(child.attrs.get("src", ""))
                children.append(Token("text", "", 0, content=f"[image: {child.content}] ({src})"))
            elif child.type == "link_open" and child.markup == "autolink":
                in_autolink = True
            elif child.type == "link_close" and in_autolink:
                in_autolink = False
            else:
                children.append(child)
        tok.children = children
    return tokens


def _code_renderable(code: str, info: str, theme: str, lexers: dict[str, Any]) -> Syntax:
    """Highlighted code; ``lexers`` caches one pygments lexer per language for the stream."""
    from rich.syntax import Syntax

    name = info.lower() or "text"
    lexer = lexers.get(name)
    if lexer is None:
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound

        try:
            lexer = get_lexer_by_name(name)
        except ClassNotFound:
            lexer = get_lexer_by_name("text")
        lexers[name] = lexer
    return Syntax(code, lexer, theme=theme, word_wrap=True, padding=(0, 1),
                  background_color="default")


class _CarriageReturns:
    """``\\r\\n`` may arrive split across two deltas: hold a trailing ``\\r`` back one delta."""

    def __init__(self) -> None:
        self._held = ""

    def __call__(self, text: str, final: bool = False) -> str:
        text = self._held + text
        self._held = ""
        if text.endswith("\r") and not final:
            text, self._held = text[:-1], "\r"
        return sanitize(text)


FLUSH_INTERVAL = 0.03
"""Seconds between flushes of the preview: one syscall per frame, not one per token."""


class _Flusher:
    """Flushes the terminal at most every ``FLUSH_INTERVAL`` while there is unflushed preview
    text, from a small thread, so that the last words before a pause in the stream still show."""

    def __init__(self, file: TextIO, lock: threading.Lock) -> None:
        self.file = file
        self.lock = lock
        self.dirty = False
        self._last = float("-inf")  # when the terminal was last flushed (time.monotonic)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def mark(self) -> None:
        """Preview text was written (the caller holds ``lock``). Nothing flushed for a frame (the
        first words of a reply, or the first after a pause): flush now, so they show at once;
        otherwise leave it to the thread, which coalesces the rest of the frame."""
        now = time.monotonic()
        if now - self._last >= FLUSH_INTERVAL:
            self.dirty = False
            self._flush(now)
            return
        self.dirty = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="agentcli-flush", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            if self.dirty:
                with self.lock:
                    self.dirty = False
                    if not self._flush(time.monotonic()):
                        return

    def _flush(self, now: float) -> bool:
        self._last = now
        try:
            self.file.flush()
        except (OSError, ValueError):
            return False
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
            self._thread = None


class LazyConsole:
    """Stands in for rich's ``Console`` until the first block is rendered, so that ``ask`` in a
    terminal shows its first words before rich is imported (``rich.console`` costs ~25 ms,
    which would otherwise come before the first word). It answers what the preview needs - the
    file, whether it is a terminal, the size - by rich's own rules, and makes the real Console
    (with ``kwargs``) on the first ``print``, then defers to it."""

    def __init__(self, file: TextIO, **kwargs: Any) -> None:
        self.file = file
        self._kwargs = kwargs
        self._console: Console | None = None

    @property
    def real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.file, **self._kwargs)
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        self.real.print(*objects, **kwargs)

    @property
    def is_terminal(self) -> bool:
        if self._console is not None:
            return self._console.is_terminal
        env = os.environ
        if env.get("TTY_COMPATIBLE") in ("0", "1"):
            return env["TTY_COMPATIBLE"] == "1"
        if "FORCE_COLOR" in env:
            return env["FORCE_COLOR"] != ""
        isatty = getattr(self.file, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:
            return False

    def _size(self) -> tuple[int, int]:
        env = os.environ
        if env.get("TERM", "").lower() in ("dumb", "unknown"):
            return 80, 25
        width = height = 0
        for fd in (0, 1, 2):
            try:
                width, height = os.get_terminal_size(fd)
                break
            except (AttributeError, ValueError, OSError):
                pass
        columns, lines = env.get("COLUMNS", ""), env.get("LINES", "")
        width = int(columns) if columns.isdigit() else width
        height = int(lines) if lines.isdigit() else height
        return width or 80, height or 25

    @property
    def width(self) -> int:
        return self._console.width if self._console is not None else self._size()[0]

    @property
    def height(self) -> int:
        return self._console.height if self._console is not None else self._size()[1]


class MarkdownStream:
    """Feed deltas, call ``finish()`` once; see the module docstring for the method.

    ``critical`` is a context-manager factory wrapped around each terminal write, so an
    interrupt (Ctrl-C) never lands halfway through a redraw (the REPL defers SIGINT there).
    """

    def __init__(self, console: Console | LazyConsole, *, code_theme: str = "monokai", preview: bool = True,
                 critical: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        self.console = console
        self.code_theme = code_theme
        self.preview = preview and console.is_terminal
        self.critical = critical
        self._splitter = BlockSplitter()
        self._clean = _CarriageReturns()
        self._blocks_printed = 0
        # the raw preview on screen: rows it spans (cursor row included) and the cursor column
        self._rows = 1
        self._col = 0
        self._shown = False
        self._frozen = False
        self._width = max(console.width, 10)
        self._max_rows = max(console.height - 2, 3)
        self._parser: Any = None
        self._lexers: dict[str, Any] = {}
        self._template: Markdown | None = None
        self._lock = threading.Lock()
        self._flusher = _Flusher(console.file, self._lock)

    def feed(self, delta: str) -> None:
        if not delta:
            return
        text = self._clean(delta)
        with self.critical(), self._lock:
            blocks = self._splitter.feed(text)
            if blocks:
                self._erase_preview()
                for b in blocks:
                    self._print_block(b)
                self._show(self._splitter.tail)
            else:
                self._show(text)

    def finish(self) -> None:
        """The reply ended (or was cut): render everything left. Safe to call twice."""
        with self.critical():
            self._flusher.stop()
            with self._lock:
                self._finish()

    def _finish(self) -> None:
        text = self._clean("", final=True)
        if text:
            self._splitter.feed(text)
        blocks = self._splitter.flush()
        self._erase_preview()
        for b in blocks:
            self._print_block(b)
        self.console.file.flush()

    # -- internals

    def _print_block(self, block: Block) -> None:
        if self._blocks_printed and not block.cont:
            self.console.print()
        if block.kind == "code":
            self.console.print(_code_renderable(block.text, block.info, self.code_theme,
                                                self._lexers))
        else:
            if self._template is None:
                from rich.markdown import Markdown

                self._parser = new_parser()
                self._template = Markdown("", code_theme=self.code_theme, hyperlinks=False)
            self.console.print(_safe_markdown_class()(block.text, parser=self._parser,
                                                      template=self._template))
        self._blocks_printed += 1

    def _show(self, text: str) -> None:
        """Append ``text`` to the raw preview, keeping the preview shorter than the screen."""
        if not self.preview or not text or self._frozen:
            return
        if self._fits(text):
            self._write_preview(text)
            return
        # too tall to erase later: commit what is complete of the open block, rendered
        blocks = self._splitter.split()
        while blocks:
            self._erase_preview()
            for b in blocks:
                self._print_block(b)
            tail = self._splitter.tail
            if self._fits(tail):
                self._write_preview(tail)
                return
            blocks = self._splitter.split()
        self._frozen = True  # nothing splittable (one enormous word): wait for the block's end

    def _start(self) -> tuple[int, int, str]:
        """Rows, column and prefix for a preview that is not on screen yet."""
        return 1, 0, "\n" if self._blocks_printed else ""

    def _fits(self, text: str) -> bool:
        text = text.replace("\t", "    ")
        if self._shown:
            rows, col = _advance(self._rows, self._col, text, self._width)
        else:
            rows, col, prefix = self._start()
            rows, col = _advance(rows, col, prefix + text, max(self.console.width, 10))
        return rows <= self._max_rows

    def _write_preview(self, text: str) -> None:
        text = text.replace("\t", "    ")
        if not self._shown:
            self._shown = True
            self._width = max(self.console.width, 10)
            self._rows, self._col, prefix = self._start()
            text = prefix + text  # the blank line the rendered block will have above it
        self._rows, self._col = _advance(self._rows, self._col, text, self._width)
        self.console.file.write(text)
        self._flusher.mark()  # flushed within FLUSH_INTERVAL, or by the next rendered block

    def _erase_preview(self) -> None:
        self._frozen = False
        if not self._shown:
            return
        up = min(self._rows - 1, max(self.console.height - 1, 0))
        seq = "\r" + (f"\x1b[{up}A" if up > 0 else "") + "\x1b[J"
        self.console.file.write(seq)
        self._flusher.mark()
        self._shown = False
        self._rows, self._col = 1, 0


def _advance(rows: int, col: int, text: str, width: int) -> tuple[int, int]:
    """Where the cursor ends (rows spanned, column) after the terminal prints ``text``,
    wrapping at ``width`` the way terminals do (a full row keeps the cursor until the next
    character; a wide character that does not fit moves to the next row)."""
    for i, seg in enumerate(text.split("\n")):
        if i:
            rows += 1
            col = 0
        if not seg:
            continue
        if seg.isascii():
            total = col + len(seg)
            if total <= width:
                col = total
            else:
                rows += (total - 1) // width
                col = (total - 1) % width + 1
        else:
            from rich.cells import get_character_cell_size

            for ch in seg:
                w = get_character_cell_size(ch)
                if col + w > width:
                    rows += 1
                    col = 0
                col += w
    return rows, col


class PlainStream:
    """Output that is not a terminal: the sanitised text as it arrives, no ANSI, no wrapping."""

    def __init__(self, file: TextIO) -> None:
        self.file = file
        self._clean = _CarriageReturns()
        self._last = "\n"

    def feed(self, delta: str) -> None:
        if not delta:
            return
        text = self._clean(delta)
        if text:
            self.file.write(text)
            self.file.flush()
            self._last = text[-1]

    def finish(self) -> None:
        text = self._clean("", final=True)
        if text:
            self.file.write(text)
            self._last = text[-1]
        if self._last != "\n":
            self.file.write("\n")
            self._last = "\n"
        self.file.flush()
