"""The streaming markdown renderer and the tool panels: blocks are cut where markdown says,
finished blocks are printed once, the raw preview is erased exactly, output grows linearly,
and escape sequences from the model come out inert."""

from __future__ import annotations

import io
import random
import re

import pytest
from rich.console import Console

from agentcli.ui.markdown_blocks import BlockSplitter
from agentcli.ui.markdown_stream import MarkdownStream, PlainStream
from agentcli.ui.render import fold, sanitize, tool_call_panel, tool_result_panel

HOSTILE = [
    "\x1b]52;c;SGVsbG8=\x07",            # OSC 52: write the clipboard
    "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "\x1b[2J\x1b[H",                      # clear the screen
    "safe text\roverwritten",             # bare CR
    "\u202eevil\u202c \u2066iso\u2069",   # bidi override / isolate
]

SAMPLE = """# Title

Intro with **bold**, `code` and a [link](http://example.com/x).
Second line.

- one
- two

  continued
- three

```python
def f(x):
    return x * 2
```

> quoted

Setext
------

| a | b |
|---|---|
| 1 | 2 |

Last paragraph.
"""


def tokens(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def blocks_of(text: str, pieces: list[str] | None = None) -> list[tuple[str, str]]:
    sp = BlockSplitter()
    out = []
    for p in pieces if pieces is not None else tokens(text):
        out += sp.feed(p)
    out += sp.flush()
    return [(b.kind, b.text) for b in out]


# --- the splitter -------------------------------------------------------------------------------

def test_splitter_cuts_sample_into_blocks():
    got = blocks_of(SAMPLE)
    assert got == [
        ("markdown", "# Title"),
        ("markdown", "Intro with **bold**, `code` and a [link](http://example.com/x).\n"
                     "Second line."),
        ("markdown", "- one\n- two\n\n  continued\n- three"),
        ("code", "def f(x):\n    return x * 2"),
        ("markdown", "> quoted"),
        ("markdown", "Setext\n------"),
        ("markdown", "| a | b |\n|---|---|\n| 1 | 2 |"),
        ("markdown", "Last paragraph."),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_splitter_same_blocks_whatever_the_chunking(seed):
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(SAMPLE):
        n = rng.randint(1, 12)
        pieces.append(SAMPLE[i:i + n])
        i += n
    assert blocks_of(SAMPLE, pieces) == blocks_of(SAMPLE, [SAMPLE])


def test_blocks_are_released_as_soon_as_they_finish():
    sp = BlockSplitter()
    assert sp.feed("First para") == []
    assert sp.feed(" goes on.\n") == []
    assert [b.text for b in sp.feed("\nNext")] == ["First para goes on."]
    assert sp.feed("```sh\nls\n") == []  # inside the paragraph "Next```sh": no fence yet
    sp2 = BlockSplitter()
    sp2.feed("```sh\nls -l\n")
    assert sp2.tail.startswith("```sh")
    assert [(b.kind, b.text, b.info) for b in sp2.feed("```\n")] == [("code", "ls -l", "sh")]


def test_blank_lines_inside_a_fence_do_not_end_it():
    got = blocks_of("```\na\n\n\nb\n```\nafter\n")
    assert got == [("code", "a\n\n\nb"), ("markdown", "after")]


def test_unclosed_fence_is_flushed_as_code():
    assert blocks_of("```py\nx = 1\n") == [("code", "x = 1")]


def test_split_of_a_tall_code_block_keeps_the_fence_open():
    sp = BlockSplitter()
    sp.feed("```py\n" + "".join(f"x{i} = {i}\n" for i in range(5)))
    first = sp.split()
    assert [(b.kind, b.text, b.cont) for b in first] == [
        ("code", "\n".join(f"x{i} = {i}" for i in range(5)), False)]
    rest = sp.feed("y = 2\n```\n")
    assert [(b.kind, b.text, b.cont) for b in rest] == [("code", "y = 2", True)]


def test_split_of_one_long_line_cuts_at_a_space():
    sp = BlockSplitter()
    sp.feed("word " * 10 + "tail")
    piece = sp.split()
    assert piece[0].text == ("word " * 10).rstrip() and sp.tail == "tail"


# --- the stream: printed once, previews erased, linear ------------------------------------------

def render(pieces: list[str], *, width: int = 60, height: int = 200, preview: bool = True,
           color: bool = False) -> tuple[str, MarkdownStream]:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=width, height=height,
                      color_system="truecolor" if color else None)
    stream = MarkdownStream(console, preview=preview)
    for p in pieces:
        stream.feed(p)
    stream.finish()
    return buf.getvalue(), stream


def screen_of(raw: str, width: int, height: int = 400) -> list[str]:
    pyte = pytest.importorskip("pyte")
    screen = pyte.HistoryScreen(width, height, history=100000)
    pyte.Stream(screen).feed(raw.replace("\n", "\r\n"))
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def test_each_finished_block_is_printed_exactly_once():
    raw, stream = render(tokens(SAMPLE), preview=False)
    assert stream._blocks_printed == 8  # noqa: SLF001 - the count of rendered blocks
    for needle in ("Title", "Intro with bold", "• one", "def f(x):", "quoted", "Last paragraph"):
        assert raw.count(needle) == 1, needle


def test_streamed_screen_equals_rendering_the_whole_reply_at_once():
    width = 60
    streamed, _ = render(tokens(SAMPLE), width=width)
    whole, _ = render([SAMPLE], width=width, preview=False)
    assert screen_of(streamed, width) == screen_of(whole, width)
    assert "link (http://example.com/x)" in "\n".join(screen_of(streamed, width))


def test_tall_blocks_on_a_small_screen_leave_no_preview_garbage():
    pyte = pytest.importorskip("pyte")
    width, height = 40, 12
    code = "\n".join(f"value_{i} = {i} * 2" for i in range(30))
    para = " ".join(f"w{i}" for i in range(300))
    text = f"Intro.\n\n```python\n{code}\n```\n\n{para}\n\nEnd.\n"
    raw, _ = render(tokens(text), width=width, height=height)
    screen = pyte.HistoryScreen(width, height, history=100000)
    pyte.Stream(screen).feed(raw.replace("\n", "\r\n"))
    hist = ["".join(line[x].data for x in range(width)).rstrip() for line in screen.history.top]
    lines = hist + [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    joined = "\n".join(lines)
    for i in range(30):  # every code line once, none lost to an erase
        assert joined.count(f"value_{i} = {i} * 2") == 1, i
    words = re.findall(r"\bw\d+\b", joined)
    assert words == [f"w{i}" for i in range(300)]
    assert lines[-1] == "End."


def test_output_grows_linearly_with_the_reply():
    para = "Some words that make a paragraph of text. " * 6
    one = (para + "\n\n- item a\n- item b\n\n```py\nx = 1\n```\n\n") * 20
    small, _ = render(tokens(one), color=True)
    big, _ = render(tokens(one * 4), color=True)
    assert len(big) <= 4.3 * len(small)


def test_plain_stream_is_the_sanitised_text():
    buf = io.StringIO()
    s = PlainStream(buf)
    for p in ["Hello ", "**world**\r", "\nbye\x1b[2J"]:
        s.feed(p)
    s.finish()
    assert buf.getvalue() == "Hello **world**\nbye␛[2J\n"


def test_crlf_split_across_deltas_is_one_newline():
    raw, _ = render(["para one\r", "\n\r", "\npara two"], preview=False)
    assert "␍" not in raw and raw.count("para one") == 1


# --- hostile text is inert ---------------------------------------------------------------------

OWN_SEQUENCES = re.compile(r"\r(\x1b\[\d+A)?\x1b\[J")  # the preview erase, written by us


@pytest.mark.parametrize("evil", HOSTILE)
@pytest.mark.parametrize("mode", ["markdown", "plain"])
def test_escape_sequences_come_out_inert(evil, mode):
    buf = io.StringIO()
    if mode == "markdown":
        console = Console(file=buf, force_terminal=True, width=80, color_system=None)
        stream: MarkdownStream | PlainStream = MarkdownStream(console)
    else:
        stream = PlainStream(buf)
    for p in tokens(f"before {evil} after\n\n```\n{evil}\n```\n"):
        stream.feed(p)
    stream.finish()
    out = OWN_SEQUENCES.sub("", buf.getvalue())
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out
    assert not re.search("[\u202a-\u202e\u2066-\u2069]", out)
    assert "before" in out and "after" in out


def test_sanitize_shows_controls_as_pictures():
    assert sanitize("\x1b]52;c;QQ==\x07") == "␛]52;c;QQ==␇"
    assert sanitize("a\rb") == "a␍b" and sanitize("a\r\nb") == "a\nb"
    assert sanitize("\u202eabc") == "<U+202E>abc"


def test_links_images_and_html_show_their_real_content():
    raw, _ = render(["[click here](http://evil.example/steal) and <http://plain.example> "
                     "![diagram](http://img.example/d.png) <b>kept</b> <script>x</script>\n"],
                    width=200, preview=False)
    assert "click here (http://evil.example/steal)" in raw
    assert raw.count("http://plain.example") == 1
    assert "diagram" in raw and "http://img.example/d.png" in raw
    assert "<b>kept</b>" in raw and "<script>x</script>" in raw


def test_code_blocks_are_highlighted():
    raw, _ = render(["```python\ndef f():\n    return 1\n```\n"], preview=False, color=True)
    assert "\x1b[" in raw and "def" in raw


# --- tool panels --------------------------------------------------------------------------------

def _text_of(renderable: object, width: int = 100) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False).print(renderable)
    return buf.getvalue()


def test_tool_call_panel_shows_full_pretty_arguments_inert():
    args = '{"path": "a\\u001b]52;c;QQ==\\u0007", "lines": [1, 2, 3], "long": "' + "x" * 300 + '"}'
    out = _text_of(tool_call_panel("file_read", args), width=400)
    assert "tool call: file_read" in out and '"lines": [' in out and "x" * 300 in out
    assert "\x1b" not in out and "\x07" not in out
    out2 = _text_of(tool_call_panel("t", "{not json \x1b[2J"))
    assert "{not json ␛[2J" in out2


def test_tool_result_panel_folds_with_the_size():
    content = "\n".join(f"line {i}" for i in range(50))
    shown, note = fold(content)
    assert shown.splitlines() == [f"line {i}" for i in range(10)]
    assert note and "40 more lines" in note and "B)" in note
    out = _text_of(tool_result_panel("file_read", content, False))
    assert "line 9" in out and "line 10" not in out and "40 more lines" in out
    assert fold("short")[1] is None
    err = _text_of(tool_result_panel("x", "denied \x1b[2J", True))
    assert "✗ x" in err and "␛[2J" in err


def test_wide_characters_are_erased_exactly():
    width = 30
    text = ("漢字のテキストがここにあります。" * 6 + "\n\n" + "emoji 🎉🎉🎉 " * 8 + "\n\nend\n")
    streamed, _ = render(tokens(text) + list("tail chars"), width=width, height=8)
    whole, _ = render([text + "tail chars"], width=width, height=8, preview=False)
    assert screen_of(streamed, width) == screen_of(whole, width)


def test_tool_call_panel_survives_hostile_nesting():
    """Drawn before the executor runs: a crash here would leave a tool call without a result."""
    out = _text_of(tool_call_panel("t", '{"a": ' + "[" * 100_000), width=80)
    assert "tool call: t" in out


def test_tool_call_panel_hides_nothing_invisible():
    """What is approved is shown whole: zero-width and separator characters are escaped."""
    out = _text_of(tool_call_panel("file_read", '{"path": "notes\\u200b.txt\\u2028x"}'), width=100)
    assert "\u200b" not in out and "\\u200b" in out and "\\u2028" in out
