"""The installed `agentcli ask` in a pseudo-terminal: the approval question of an edit shows
its diff in colour (removed lines red, added lines green), escape sequences in it inert, and the
edit is made once approved."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from fake_server import text, tool_calls

pexpect = pytest.importorskip("pexpect")
BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
pytestmark = [pytest.mark.pty,
              pytest.mark.skipif(BIN is None, reason="agentcli is not installed"),
              pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")]


def test_the_approval_prompt_shows_a_coloured_inert_diff(fake_server, tmp_path):
    tmp_path = tmp_path / "work"  # not the folder holding the data folder (the sandbox hides it)
    tmp_path.mkdir()
    (tmp_path / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    fake_server.script(
        tool_calls(("edit", {"path": "notes.txt", "old": "beta",
                             "new": "BETA \x1b]52;c;ZXZpbA==\x07"})),
        text("Edited."))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "AGENTCLI_CONFIG")}
    env.update(OPENAI_API_KEY="sk-test", TERM="xterm-256color")
    child = pexpect.spawn(BIN, ["ask", "-p", "openai", "--base-url", fake_server.openai_base_url,
                                "-m", "test-model", "edit my notes"], env=env, cwd=str(tmp_path),
                          dimensions=(40, 120), encoding="utf-8", codec_errors="replace")
    try:
        child.expect(r"run it\?", timeout=30)
        shown = child.before
        assert "\x1b[31m-beta\x1b[0m" in shown  # red
        assert "\x1b[32m+BETA ␛]52;c;ZXZpbA==␇\x1b[0m" in shown  # green, and inert
        assert "\x1b]52" not in shown and "\x07" not in shown
        child.send("y\r")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    deadline = time.monotonic() + 5
    while (tmp_path / "notes.txt").read_text() == "alpha\nbeta\ngamma\n" and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "notes.txt").read_text() == "alpha\nBETA \x1b]52;c;ZXZpbA==\x07\ngamma\n"
