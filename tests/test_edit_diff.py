"""The diff an approval or /undo shows: unified, inert, and bounded whatever the files."""

from __future__ import annotations

import difflib

from agentcli.ui import diff_view
from agentcli.ui.diff_view import MAX_COMPARED, MAX_SHOWN, as_ansi, diff


def test_a_small_change_is_a_unified_diff_with_context():
    before = "".join(f"{i}\n" for i in range(20))
    after = before.replace("10\n", "ten\n")
    d = diff(before, after, "n.txt")
    assert d.text.splitlines() == ["--- a/n.txt", "+++ b/n.txt", "@@ -8,7 +8,7 @@",
                                   " 7", " 8", " 9", "-10", "+ten", " 11", " 12", " 13"]
    assert (d.added, d.removed) == (1, 1)
    assert d.text == "\n".join(x.rstrip("\n") for x in difflib.unified_diff(
        before.splitlines(True), after.splitlines(True), "a/n.txt", "b/n.txt", n=3))


def test_no_change_is_an_empty_diff_and_a_missing_newline_is_said():
    assert diff("same\n", "same\n", "f").text == ""
    lines = diff("a\nb", "a\nc", "f").text.splitlines()
    assert lines[-4:] == ["-b", "\\ No newline at end of file", "+c",
                          "\\ No newline at end of file"]


def test_escape_sequences_and_bidi_are_inert():
    d = diff("ok\n", "ok\n\x1b]52;c;ZXZpbA==\x07 \x1b[2J \u202egnp.exe\r\n", "f")
    assert "\x1b" not in d.text and "\x07" not in d.text and "\u202e" not in d.text
    assert "␛]52;c;ZXZpbA==␇" in d.text and "<U+202E>" in d.text


def test_a_huge_file_with_one_change_is_compared_only_where_it_differs(monkeypatch):
    sizes = []
    real = difflib.SequenceMatcher

    def spy(junk, a, b, autojunk=True):
        sizes.append((len(a), len(b)))
        return real(junk, a, b, autojunk=autojunk)

    monkeypatch.setattr(diff_view.difflib, "SequenceMatcher", spy)
    before = "".join(f"line {i}\n" for i in range(300_000))
    after = before.replace("line 150000\n", "changed\n")
    d = diff(before, after, "big.log")
    assert (d.added, d.removed) == (1, 1) and len(d.text.splitlines()) == 11
    assert "@@ -149998,7 +149998,7 @@" in d.text
    assert sizes == [(1, 1)]  # the shared start and end were never compared line by line


def test_a_rewrite_of_a_huge_file_is_bounded_and_its_counts_exact(monkeypatch):
    sizes = []
    real = difflib.SequenceMatcher
    monkeypatch.setattr(diff_view.difflib, "SequenceMatcher",
                        lambda junk, a, b, autojunk=True: sizes.append(len(a)) or
                        real(junk, a, b, autojunk=autojunk))
    before = "".join(f"old {i}\n" for i in range(50_000))
    after = "".join(f"new {i}\n" for i in range(60_000))
    d = diff(before, after, "f")
    lines = d.text.splitlines()
    assert (d.added, d.removed) == (60_000, 50_000)
    assert len(lines) == 2 + MAX_SHOWN + 1
    assert lines[-1] == "… more of the diff not shown (60000 lines added and 50000 removed in all)"
    assert sizes == [] or max(sizes) <= MAX_COMPARED


def test_colours_follow_the_kind_of_line():
    text = diff("a\nb\n", "a\nc\n", "f").text
    coloured = as_ansi(text, colour=True).splitlines()
    assert coloured[0] == "\x1b[1m--- a/f\x1b[0m" and coloured[2].startswith("\x1b[36m@@")
    assert "\x1b[31m-b\x1b[0m" in coloured and "\x1b[32m+c\x1b[0m" in coloured
    assert " a" in coloured  # context lines stay plain
    assert as_ansi(text, colour=False) == text
