"""MCP progress: agentcli asks servers for progress (a progress token on every call) and shows
it while the call runs: one line rewritten in place on a terminal, an occasional plain line in
a pipe. It used to send no token, so a long call showed nothing until it ended."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agentcli.mcp.client import McpHub
from agentcli.mcp.config import parse_servers
from agentcli.ui.progress import ProgressLine
from fake_server import text, tool_calls

DEMO = Path(__file__).parent / "mcp_servers" / "demo_server.py"
BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_rewritten_in_place_and_erased(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = Terminal()
    line = ProgressLine(out)
    line.show("demo__steps", 1, 4, "step 1")
    line.show("demo__steps", 1, 4, "step 1")  # no change: nothing written
    line.show("demo__steps", 2, 4, "step \x1b]52;c;QQ==\x07 2\nnext")
    line.clear()
    assert out.getvalue() == ("\r… demo__steps: 1/4 (25%) step 1\x1b[K"
                              "\r… demo__steps: 2/4 (50%) step ␛]52;c;QQ==␇ 2 next\x1b[K"
                              "\r\x1b[K")


def test_in_a_pipe_a_plain_line_now_and_then():
    now = [0.0]
    out = io.StringIO()
    line = ProgressLine(out, pipe_every=10, clock=lambda: now[0])
    for i in range(1, 30):  # 29 updates over 14 s
        now[0] = i * 0.5
        line.show("demo__steps", i, None, None)
    line.clear()
    assert out.getvalue() == "… demo__steps: 1\n… demo__steps: 21\n"


def demo_spec(**extra) -> dict:
    return {"command": sys.executable, "args": [str(DEMO)],
            "env": {"DEMO_EXTRA": "progress"}, **extra}


def test_the_hub_asks_for_progress_and_hands_it_to_the_caller(tmp_path):
    seen: list[tuple] = []
    specs = parse_servers({"demo": demo_spec()})
    with McpHub(list(specs.values()), tmp_path) as hub:
        hub.wait()
        result = hub.call("demo", "steps", {"n": 10},
                          on_progress=lambda *p: seen.append(p))
        plain = hub.call("demo", "steps", {"n": 3})  # nobody listening: no token asked for
    assert result.content[0].text == "did 10 steps" and plain.content[0].text == "did 3 steps"
    assert len(seen) >= 2, seen  # updates reach the caller while the call runs
    assert all(total == 10 and msg == f"step {int(done)} of 10" for done, total, msg in seen)
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)


def write_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": {"demo": demo_spec()}}))
    return cfg


def test_ask_in_a_pipe_shows_progress_as_an_occasional_plain_line(fake_server, tmp_path):
    if BIN is None:
        pytest.skip("agentcli is not installed as a command")
    fake_server.script(tool_calls(("demo__steps", {"n": 20})), text("all done"))
    r = subprocess.run([BIN, "ask", "--json", "-y", "--config", str(write_config(tmp_path)),
                        "-p", "openai", "--base-url", fake_server.openai_base_url, "-m", "m",
                        "count"], capture_output=True, text=True, timeout=90,
                       stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tool_calls"][0]["result"] == "did 20 steps"
    progress = [ln for ln in r.stderr.splitlines() if ln.startswith("… demo__steps: ")]
    assert len(progress) == 1, r.stderr  # 20 updates in about 1 s: one line, not 20
    assert re.fullmatch(r"… demo__steps: \d+/20 \(\d+%\) step \d+ of 20", progress[0])
    assert "\x1b" not in r.stderr and "\r" not in r.stderr


@pytest.mark.pty
def test_ask_on_a_terminal_rewrites_one_progress_line(fake_server, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    if BIN is None:
        pytest.skip("agentcli is not installed as a command")
    fake_server.script(tool_calls(("demo__steps", {"n": 20})), text("all done"))
    child = pexpect.spawn(BIN, ["ask", "-y", "--config", str(write_config(tmp_path)),
                                "-p", "openai", "--base-url", fake_server.openai_base_url,
                                "-m", "m", "count"], encoding="utf-8", timeout=60,
                          env={**os.environ, "TERM": "xterm", "NO_COLOR": "1"})
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before
    assert child.exitstatus == 0 and "all done" in screen, screen
    updates = re.findall(r"(.)… demo__steps: (\d+)/20 \(\d+%\) step \d+ of 20\x1b\[K", screen,
                         re.S)
    assert len(updates) >= 2, screen  # several updates...
    assert all(before == "\r" for before, _ in updates)  # ...each over the last, no new line
    assert [int(n) for _, n in updates] == sorted(int(n) for _, n in updates)
    last = screen.rindex("… demo__steps: ")
    assert "\r\x1b[K" in screen[last:]  # erased before the reply


def test_the_repl_shows_progress_on_its_stderr(fake_server, tmp_path, monkeypatch, capsys):
    """chat gets the same progress line as ask (on stderr, where the REPL's panels go)."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from rich.console import Console

    from agentcli.runtime import RunOptions
    from agentcli.ui.repl.app import ChatRepl

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake_server.script(tool_calls(("demo__steps", {"n": 20})), text("counted"))
    out, err = io.StringIO(), io.StringIO()
    with create_pipe_input() as pipe:
        repl = ChatRepl(RunOptions(config=str(write_config(tmp_path)), provider="openai",
                                   model="m", base_url=fake_server.openai_base_url, yes=True),
                        input=pipe, output=DummyOutput(),
                        console=Console(file=out, width=120, force_terminal=False),
                        err=Console(file=err, width=120, force_terminal=False))
        try:
            pipe.send_text("count\r\x04")
            assert repl.run() == 0
        finally:
            repl.close()
    assert "counted" in out.getvalue() and "did 20 steps" in err.getvalue()
    progress = [ln for ln in capsys.readouterr().err.splitlines()
                if ln.startswith("… demo__steps: ")]
    assert len(progress) == 1 and "of 20" in progress[0]
