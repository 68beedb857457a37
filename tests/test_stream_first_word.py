"""The first words of a reply in a terminal show at once: they are flushed as they are written
(not a frame later), and nothing heavy is imported before them (markdown-it and pygments load
with the first finished block)."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

from rich.console import Console

from agentcli.ui import markdown_stream
from agentcli.ui.markdown_stream import MarkdownStream


class RecordingFile(io.StringIO):
    """A terminal stand-in: what had been written each time it was flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())
        super().flush()


def test_first_words_are_flushed_at_once_and_the_rest_coalesced(monkeypatch):
    monkeypatch.setattr(markdown_stream, "FLUSH_INTERVAL", 60.0)  # no frame ends in this test
    out = RecordingFile()
    stream = MarkdownStream(Console(file=out, force_terminal=True, width=80, color_system=None))
    stream.feed("Hello ")
    assert out.flushed and "Hello" in out.flushed[-1]  # on screen before the next token
    flushes = len(out.flushed)
    for word in ("there ", "and ", "more "):
        stream.feed(word)
    assert len(out.flushed) == flushes  # within a frame: one flush, not one per token
    stream.finish()
    assert "Hello there and more" in out.flushed[-1]


def test_markdown_parser_and_highlighter_load_with_the_first_block_not_the_first_word():
    code = textwrap.dedent("""
        import io, sys
        from rich.console import Console
        from agentcli.ui.markdown_stream import MarkdownStream
        out = io.StringIO()
        s = MarkdownStream(Console(file=out, force_terminal=True, width=80, color_system=None))
        s.feed("First words ")
        heavy = ("markdown_it", "pygments", "rich.markdown", "rich.syntax")
        print("before:", sorted(m for m in heavy if m in sys.modules))
        s.feed("of a **paragraph**.\\n\\n")
        s.finish()
        print("after:", sorted(m for m in heavy if m in sys.modules))
        print("rendered:", "paragraph" in out.getvalue() and "**" not in out.getvalue())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "before: []"
    assert "markdown_it" in lines[1] and "rich.markdown" in lines[1]
    assert lines[2] == "rendered: True"


def test_safe_markdown_is_still_importable_by_name():
    from agentcli.ui.markdown_stream import SafeMarkdown

    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(SafeMarkdown("[a](http://x.example)"))
    assert "a (http://x.example)" in buf.getvalue()


def test_ask_in_a_terminal_shows_the_first_words_before_rich_is_imported():
    """`ask` gives its stream a LazyConsole: rich.console (~25 ms to import) loads with the
    first rendered block, after the first words are on screen."""
    code = textwrap.dedent("""
        import io, sys
        from agentcli.ui.markdown_stream import LazyConsole, MarkdownStream
        class Tty(io.StringIO):
            def isatty(self): return True
        out = Tty()
        s = MarkdownStream(LazyConsole(out, soft_wrap=False, color_system=None))
        s.feed("First words ")
        print("before:", "rich.console" in sys.modules, "First words" in out.getvalue())
        s.feed("of a **paragraph**.\\n\\nand more")
        s.finish()
        print("after:", "rich.console" in sys.modules)
        print("rendered:", "paragraph" in out.getvalue() and "**" not in out.getvalue())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["before: False True", "after: True", "rendered: True"]


def test_lazy_console_sizes_the_preview_as_rich_would(monkeypatch):
    from agentcli.ui.markdown_stream import LazyConsole

    cases = [{"COLUMNS": "123", "LINES": "45"}, {"COLUMNS": "x"}, {"TERM": "dumb"},
             {"TTY_COMPATIBLE": "0"}, {"TTY_COMPATIBLE": "1"}, {"FORCE_COLOR": "1"}, {}]
    for env in cases:
        for key in ("COLUMNS", "LINES", "TERM", "TTY_COMPATIBLE", "FORCE_COLOR"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        lazy, real = LazyConsole(io.StringIO()), Console(file=io.StringIO())
        assert (lazy.width, lazy.height, lazy.is_terminal) == \
            (real.width, real.height, real.is_terminal), env
