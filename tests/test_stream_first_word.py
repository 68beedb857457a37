"""The first words of a reply in a terminal show at once: they are flushed as they are written
(not a frame later), and nothing heavy is imported before them (markdown-it and pygments load
with the first finished block)."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

from rich.console import Console

from agentcli import markdown_stream
from agentcli.markdown_stream import MarkdownStream


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
        from agentcli.markdown_stream import MarkdownStream
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
    from agentcli.markdown_stream import SafeMarkdown

    buf = io.StringIO()
    Console(file=buf, width=80, color_system=None).print(SafeMarkdown("[a](http://x.example)"))
    assert "a (http://x.example)" in buf.getvalue()
