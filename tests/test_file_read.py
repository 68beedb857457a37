"""file_read: only regular text files inside the roots; nothing blocks, nothing escapes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agentcli.toolrun.approval import PolicyApprover
from agentcli.config import load_settings
from agentcli.errors import ToolError
from agentcli.toolrun.executor import Executor, ToolContext
from agentcli.messages import ToolCall
from agentcli.toolrun.manifest import load_tools


@pytest.fixture
def fr():
    return load_tools(load_settings(), warn=lambda line: None)["file_read"].function()


@pytest.fixture
def root(tmp_path, monkeypatch):
    r = tmp_path / "root"
    r.mkdir()
    (r / "notes.txt").write_text("line 1\nline 2\nline 3\nline 4\nline 5\n")
    (r / "sub").mkdir()
    (r / "sub" / "deep.txt").write_text("deep\n")
    evil = tmp_path / "root-evil"
    evil.mkdir()
    (evil / "secret.txt").write_text("secret\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    monkeypatch.chdir(r)
    return r


def ctx(root: Path, **options) -> ToolContext:
    return ToolContext("file_read", options, cwd=str(root))


def refused(fr, root, path, words, **options):
    with pytest.raises(ToolError) as e:
        fr(path=path, context=ctx(root, **options))
    assert words in e.value.message, e.value.message
    return e.value.message


def test_reads_relative_and_absolute_inside(fr, root):
    assert fr(path="notes.txt", context=ctx(root)).startswith("line 1\n")
    assert fr(path=str(root / "sub" / "deep.txt"), context=ctx(root)) == "deep\n"
    assert fr(path="sub/../notes.txt", context=ctx(root)).startswith("line 1")


@pytest.mark.parametrize("path", ["../outside.txt", "../../../../../../etc/passwd",
                                  "sub/../../outside.txt"])
def test_traversal_refused(fr, root, path):
    refused(fr, root, path, "outside the allowed folders")


def test_absolute_path_outside_refused(fr, root):
    refused(fr, root, "/etc/passwd", "outside the allowed folders")


def test_prefix_sibling_refused(fr, root):
    refused(fr, root, "../root-evil/secret.txt", "outside")
    refused(fr, root, str(root) + "-evil/secret.txt", "outside")


def test_symlink_escape_refused(fr, root, tmp_path):
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    (root / "linkdir").symlink_to(tmp_path / "root-evil")
    refused(fr, root, "link.txt", "outside")
    refused(fr, root, "linkdir/secret.txt", "outside")


def test_symlink_inside_is_fine(fr, root):
    (root / "alias.txt").symlink_to(root / "notes.txt")
    assert fr(path="alias.txt", context=ctx(root)).startswith("line 1")


def test_fifo_refused_without_blocking(fr, root):
    """Opening a FIFO with no writer would block forever; the thread is only a safety net."""
    import threading

    os.mkfifo(root / "pipe")
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault(
        "message", refused(fr, root, "pipe", "FIFO")), daemon=True)
    worker.start()
    worker.join(30)
    assert "FIFO" in box.get("message", "(blocked)")


def test_dev_zero_refused(fr, root):
    refused(fr, root, "/dev/zero", "outside")
    refused(fr, root, "/dev/zero", "device", roots=["/"])


def test_directory_says_so(fr, root):
    refused(fr, root, "sub", "is a directory")


def test_missing_file(fr, root):
    refused(fr, root, "nope.txt", "does not exist")


def test_binary_refused(fr, root):
    (root / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    refused(fr, root, "img.png", "binary")


def test_nul_bytes_after_the_first_8_kb_are_refused_too(fr, root):
    """Binary detection is on what is returned: NULs after the first 8 KB used to come back
    (a file returned ~90 KB of NULs)."""
    (root / "late.bin").write_bytes(b"a" * 8192 + b"\x00" * 90_000)
    refused(fr, root, "late.bin", "binary")
    (root / "lines.bin").write_bytes(b"text line\n" * 2000 + b"\x00" * 100 + b"\n")
    with pytest.raises(ToolError, match="NUL bytes on line 2001"):
        fr(path="lines.bin", offset=1900, context=ctx(root))
    assert "text line" in fr(path="lines.bin", offset=10, limit=5, context=ctx(root))


def test_nul_bytes_beyond_what_is_returned_do_not_matter(fr, root):
    (root / "tail.bin").write_bytes(b"b" * 10_000 + b"\x00" * 10)
    out = fr(path="tail.bin", context=ctx(root, max_bytes=9000))
    assert out.startswith("b" * 9000) and "\x00" not in out and "[truncated" in out


def test_big_file_capped_with_a_note(fr, root):
    (root / "big.txt").write_text("".join(f"row {i}\n" for i in range(200_000)))
    out = fr(path="big.txt", context=ctx(root, max_bytes=1000))
    body, _, note = out.partition("\n\n[truncated")
    assert len(body.encode()) <= 1000 and body.startswith("row 0\n")
    assert "offset/limit" in note and str((root / "big.txt").stat().st_size) in note


def test_line_range(fr, root):
    out = fr(path="notes.txt", offset=2, limit=2, context=ctx(root))
    assert out.splitlines()[:3] == ["[lines 2-3 of 'notes.txt']", "line 2", "line 3"]
    assert "continue with offset=4" in out
    tail = fr(path="notes.txt", offset=5, context=ctx(root))
    assert "line 5" in tail and "continue" not in tail
    past = fr(path="notes.txt", offset=50, context=ctx(root))
    assert "no lines" in past


def test_line_range_in_a_big_file_is_bounded(fr, root):
    (root / "big.txt").write_text("".join(f"row {i}\n" for i in range(300_000)))
    out = fr(path="big.txt", offset=250_000, limit=3, context=ctx(root))
    assert out == ("[lines 250000-250002 of 'big.txt']\nrow 249999\nrow 250000\nrow 250001\n"
                   "[more lines follow; continue with offset=250003]")
    out = fr(path="big.txt", offset=1, limit=1_000_000, context=ctx(root, max_bytes=500))
    assert "stopped at the size cap" in out


def test_non_utf8_replaced_and_said_so(fr, root):
    (root / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    out = fr(path="latin1.txt", context=ctx(root))
    assert "caf\ufffd" in out and "not valid UTF-8" in out
    out = fr(path="latin1.txt", offset=1, context=ctx(root))
    assert "caf\ufffd" in out and "not valid UTF-8" in out


def test_utf8_cut_at_the_cap_is_not_called_invalid(fr, root):
    (root / "u.txt").write_text("é" * 1000)
    out = fr(path="u.txt", context=ctx(root, max_bytes=101))
    assert "not valid UTF-8" not in out


def test_configured_roots(fr, root, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x\n")
    assert fr(path=str(other / "x.txt"), context=ctx(root, roots=[str(other)])) == "x\n"
    refused(fr, root, "notes.txt", "outside", roots=[str(other)])


def test_through_executor_with_config_options(root, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"tools:\n  options:\n    file_read:\n      roots: [{json.dumps(str(root / 'sub'))}]\n")
    tools = load_tools(load_settings(cfg), warn=lambda line: None)
    ex = Executor(tools, PolicyApprover(yes=True))
    ok = ex.execute(ToolCall("1", "file_read", json.dumps({"path": str(root / "sub/deep.txt")}))).result
    assert ok.content == "deep\n"
    bad = ex.execute(ToolCall("2", "file_read", json.dumps({"path": "notes.txt"}))).result
    assert bad.is_error and "outside the allowed folders" in bad.content
