"""`agentcli ask` as a renderer of the agent's turn: exit codes, warnings and --json come from
AgentDone alone. Driven in-process with the scripted provider (no HTTP); stdin idle rules run the
installed binary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli import runtime
from agentcli.cli.app import build_app
from agentcli.errors import ProviderConnectionError, StreamInterruptedError
from agentcli.messages import Usage
from scripted import ScriptedProvider, fail, reply

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
CALC = '{"expression": "%s"}'


@pytest.fixture
def scripted(monkeypatch):
    """Install a ScriptedProvider as the provider `ask` builds; returns a setter."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    box: dict = {}

    def use(*steps):
        box["p"] = ScriptedProvider(list(steps))
        return box["p"]

    monkeypatch.setattr(runtime, "make_provider", lambda settings, profile, warn=None: box["p"])
    return use


def ask(*args: str, input: str | None = None):
    return CliRunner().invoke(build_app(), ["ask", "-p", "openai", *args], input=input)


def test_a_reply_cut_by_max_tokens_is_never_silent(scripted):
    scripted(reply("The first half of a long", stop="max_tokens"))
    result = ask("--no-tools", "essay please")
    assert result.exit_code == 1
    assert result.stdout == "The first half of a long\n"
    assert "cut off by the reply token limit" in result.stderr
    assert "--max-tokens" in result.stderr and "max_tokens" in result.stderr


def test_json_says_max_tokens(scripted):
    scripted(reply("cut", stop="max_tokens"))
    result = ask("--json", "--no-tools", "essay")
    data = json.loads(result.stdout)
    assert result.exit_code == 1
    assert data["stop_reason"] == "max_tokens" and data["text"] == "cut"


def test_max_tokens_flag_reaches_the_profile(scripted, monkeypatch):
    seen = {}
    real = runtime.resolve

    def spy(settings, opts, notice=None):
        seen["profile"] = real(settings, opts, notice)
        return seen["profile"]

    monkeypatch.setattr(runtime, "resolve", spy)
    scripted(reply("ok"))
    assert ask("--max-tokens", "77", "--no-tools", "hi").exit_code == 0
    assert seen["profile"].max_tokens == 77
    assert ask("--max-tokens", "0", "--no-tools", "hi").exit_code == 2


def test_json_lists_every_executed_call_even_with_reused_and_duplicate_ids(scripted):
    # three steps whose calls all say "call_0" (as servers that number per response do), and a
    # step with two different calls sharing one id: five calls ran, five are reported, in order
    scripted(reply(calls=[("calculator", CALC % "1+1")]),
             reply(calls=[("calculator", CALC % "2+2")]),
             reply(calls=[("calculator", CALC % "3+3", "dup"), ("calculator", CALC % "4+4", "dup")]),
             reply(calls=[("calculator", CALC % "5+5")]),
             reply("done"))
    result = ask("--json", "-y", "-t", "calculator", "go")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    calls = data["tool_calls"]
    assert [c["result"] for c in calls] == ["2", "4", "6", "8", "10"]
    assert len({c["id"] for c in calls}) == 5
    assert data["steps"] == 5 and data["stop_reason"] == "end_turn"
    assert all(c["approval"]["decision"] == "allow" for c in calls)


def test_json_escapes_c1_controls_and_bidi_overrides(scripted):
    scripted(reply("safe\u009b31m \u202eevil\u202c \x1b[2J done"))
    result = ask("--json", "--no-tools", "hi")
    raw = result.stdout
    for ch in ("\u009b", "\u202e", "\u202c", "\x1b"):
        assert ch not in raw
    assert "\\u009b" in raw and "\\u202e" in raw and "\\u001b" in raw
    assert json.loads(raw)["text"] == "safe\u009b31m \u202eevil\u202c \x1b[2J done"


def test_json_after_an_error_has_the_steps_that_ran_and_exit_1(scripted):
    scripted(reply(calls=[("calculator", CALC % "1+1")]),
             fail(StreamInterruptedError("the reply was cut off"), after="The answer"))
    result = ask("--json", "-y", "-t", "calculator", "go")
    data = json.loads(result.stdout)
    assert result.exit_code == 1
    assert (data["stop_reason"], data["steps"], data["partial"]) == ("error", 2, True)
    assert data["error"] == "the reply was cut off" and data["text"] == "The answer"
    assert [c["result"] for c in data["tool_calls"]] == ["2"]


def test_error_before_any_reply_has_no_incomplete_note(scripted):
    scripted(fail(ProviderConnectionError("cannot connect to http://x: connection refused")))
    result = ask("--no-tools", "hi")
    assert result.exit_code == 1
    assert "cannot connect" in result.stderr and "incomplete" not in result.stderr


def test_unreported_usage_is_null_in_json_not_zero(scripted):
    scripted(reply("hi", usage=Usage.unknown()))
    data = json.loads(ask("--json", "--no-tools", "hi").stdout)
    assert data["usage"] == {"input_tokens": None, "output_tokens": None,
                             "total_tokens": None, "cached_input_tokens": None,
                             "cache_write_tokens": None, "reasoning_tokens": None,
                             "complete": False}


@pytest.mark.parametrize("json_out", [False, True])
def test_notices_from_the_agent_go_to_stderr(scripted, json_out):
    scripted(reply(calls=[("calculator", CALC % "1+1", "x"), ("calculator", CALC % "1+1", "x")]),
             reply("2"))
    result = ask(*(["--json"] if json_out else []), "-y", "-t", "calculator", "go")
    assert result.exit_code == 0
    assert "twice in one reply" in result.stderr and "→ tool calculator" in result.stderr
    if json_out:
        assert json.loads(result.stdout)["text"] == "2"
    else:
        assert result.stdout == "2\n"


# --- stdin: an idle limit, not a first-byte limit ---------------------------------------------------

needs_bin = pytest.mark.skipif(BIN is None, reason="agentcli is not installed")


def _config(tmp_path: Path, stdin_timeout: float) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"stdin_timeout: {stdin_timeout}\n")
    return cfg


@needs_bin
def test_a_pipe_that_goes_quiet_without_closing_does_not_hang(fake_server, tmp_path):
    from fake_server import text

    fake_server.script(text("got it"))
    env = {**os.environ, "NO_COLOR": "1", "AGENTCLI_CONFIG": str(_config(tmp_path, 1))}
    r, w = os.pipe()
    proc = subprocess.Popen([BIN, "ask", "-p", "openai", "--base-url", fake_server.openai_base_url,
                             "--no-tools", "summarise"], stdin=r,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    os.close(r)
    os.write(w, b"x")  # ...and the pipe stays open: we hold its write end
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        os.close(w)
    assert proc.returncode == 0, err
    assert out == b"got it\n"
    assert b"sent nothing for 1 s" in err
    sent = fake_server.requests[0]["body"]["messages"][-1]["content"]
    assert sent == "summarise\n\n<stdin>\nx\n</stdin>"


@needs_bin
def test_a_slow_writer_that_keeps_writing_is_read_to_the_end(fake_server, tmp_path):
    from fake_server import text

    fake_server.script(text("ok"))
    env = {**os.environ, "NO_COLOR": "1", "AGENTCLI_CONFIG": str(_config(tmp_path, 1))}
    proc = subprocess.Popen([BIN, "ask", "-p", "openai", "--base-url", fake_server.openai_base_url,
                             "--no-tools", "what failed?"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    lines = [f"line {i}\n".encode() for i in range(6)]
    for line in lines:  # 6 lines, 0.4 s apart: 2.4 s in all, longer than the 1 s idle limit
        proc.stdin.write(line)
        proc.stdin.flush()
        time.sleep(0.4)
    proc.stdin.close()
    proc.stdin = None
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    sent = fake_server.requests[0]["body"]["messages"][-1]["content"]
    assert sent.endswith("line 0\nline 1\nline 2\nline 3\nline 4\nline 5\n</stdin>")
    assert b"sent nothing" not in err
