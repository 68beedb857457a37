"""`agentcli ask` end to end against the loopback fake provider: stdin rules, --json, exit codes.

Subprocess tests run the *installed* binary in a new session (no controlling terminal), so
/dev/tty cannot be opened, as in CI or a cron job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from fake_server import drop, error, stall, text, tool_calls

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")


def ask(server, *args: str, input: str | bytes | None = None, provider: str = "openai"):
    base = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    env_args = ["ask", "-p", provider, "--base-url", base, "-m", "test-model", *args]
    return CliRunner().invoke(build_app(), env_args, input=input)


def run_bin(server, *args: str, input: bytes | None = b"", provider: str = "openai",
            timeout: float = 30, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    base = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    env = {**os.environ, "NO_COLOR": "1", **(extra_env or {})}
    return subprocess.run([BIN, "ask", "-p", provider, "--base-url", base, "-m", "test-model",
                           *args], input=input, capture_output=True, timeout=timeout, env=env,
                          start_new_session=True)


def last_user_text(server) -> str:
    body = server.requests[-1]["body"]
    msg = [m for m in body["messages"] if m["role"] == "user"][-1]
    content = msg["content"]
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content)
    return content


def test_streamed_reply_goes_to_stdout(fake_server):
    fake_server.script(text("Hello there, friend.", chunks=4))
    result = ask(fake_server, "hi", "--no-tools")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Hello there, friend.\n"
    assert fake_server.requests[0]["body"]["stream"] is True


def test_no_stream_and_system_prompt(fake_server):
    fake_server.script(text("ok"))
    result = ask(fake_server, "hi", "--no-tools", "--no-stream", "-s", "Be brief.")
    assert result.exit_code == 0 and result.stdout == "ok\n"
    body = fake_server.requests[0]["body"]
    assert not body.get("stream")
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_prompt_then_piped_text_in_one_labelled_message(fake_server):
    fake_server.script(text("feat: add x"))
    result = ask(fake_server, "write a commit message", "--no-tools", input="diff --git a b\n+x\n")
    assert result.exit_code == 0, result.output
    sent = last_user_text(fake_server)
    assert sent.startswith("write a commit message")
    assert "<stdin>\ndiff --git a b\n+x\n</stdin>" in sent
    assert len([m for m in fake_server.requests[0]["body"]["messages"] if m["role"] == "user"]) == 1


@pytest.mark.parametrize("args", [["-"], []])
def test_dash_or_no_prompt_uses_piped_text(fake_server, args):
    fake_server.script(text("4"))
    result = ask(fake_server, *args, "--no-tools", input="what is 2+2?")
    assert result.exit_code == 0, result.output
    assert last_user_text(fake_server) == "what is 2+2?"


def test_nothing_to_ask_is_a_usage_error(fake_server):
    result = ask(fake_server, "--no-tools", input="")
    assert result.exit_code == 2
    assert "nothing to ask" in result.stderr
    assert fake_server.requests == []


def test_json_output_shape(fake_server):
    fake_server.script(text("The answer is 4."))
    result = ask(fake_server, "--json", "--no-tools", "2+2?")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "The answer is 4."
    assert data["provider"] == "openai" and data["model"] == "test-model"
    assert data["stop_reason"] == "end_turn" and data["tool_calls"] == [] and data["steps"] == 1
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] == 4


def test_bad_max_steps_is_usage_error(fake_server):
    result = ask(fake_server, "--max-steps", "0", "hi")
    assert result.exit_code == 2 and "--max-steps" in result.stderr


# --- through the installed binary ------------------------------------------------------------

def test_installed_binary_streams_plain_text_to_a_pipe(fake_server):
    fake_server.script(text("# Title\n\nSome **bold** text.", chunks=5))
    proc = run_bin(fake_server, "--no-tools", "hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"# Title\n\nSome **bold** text.\n"  # plain, no ANSI
    assert b"\x1b" not in proc.stdout and proc.stderr == b""


def test_installed_binary_neutralises_escape_sequences(fake_server):
    fake_server.script(text("a\x1b]52;c;ZXZpbA==\x07b\x1b[2Jc\rd\u202ee"))
    proc = run_bin(fake_server, "--no-tools", "hi")
    assert proc.returncode == 0
    assert b"\x1b" not in proc.stdout and b"\r" not in proc.stdout and b"\x07" not in proc.stdout
    out = proc.stdout.decode()
    assert "\u202e" not in out and "ZXZpbA==" in out  # shown, inert


def test_installed_binary_non_utf8_stdin_warns_and_continues(fake_server):
    fake_server.script(text("ok"))
    proc = run_bin(fake_server, "--no-tools", "summarise", input=b"caf\xe9 \xff\xfe text")
    assert proc.returncode == 0, proc.stderr
    assert b"not valid UTF-8" in proc.stderr
    assert "caf\ufffd" in last_user_text(fake_server)


def test_installed_binary_oversized_stdin_is_refused(fake_server):
    proc = run_bin(fake_server, "--no-tools", "hi", input=b"x" * (1024 * 1024 + 10))
    assert proc.returncode == 2 and b"limit" in proc.stderr
    assert fake_server.requests == []


def test_installed_binary_401_is_one_line_exit_1_naming_the_key(fake_server):
    fake_server.script(error(401, "Incorrect API key provided"))
    proc = run_bin(fake_server, "--no-tools", "hi", extra_env={"OPENAI_API_KEY": "sk-live-secret"})
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "OPENAI_API_KEY" in err and "sk-live-secret" not in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_installed_binary_connection_refused(fake_server):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.run([BIN, "ask", "--no-tools", "-p", "openai", "--base-url",
                           f"http://127.0.0.1:{port}/v1", "hi"], capture_output=True, timeout=60,
                          env={**os.environ, "NO_COLOR": "1"}, start_new_session=True, input=b"")
    assert proc.returncode == 1
    assert f"127.0.0.1:{port}" in proc.stderr.decode()
    assert b"Traceback" not in proc.stderr


def test_installed_binary_dropped_stream_keeps_partial_text(fake_server):
    fake_server.script(drop("The first half of"))
    proc = run_bin(fake_server, "--no-tools", "hi")
    assert proc.returncode == 1
    assert proc.stdout.startswith(b"The first half of")
    assert b"cut off" in proc.stderr.lower() or b"incomplete" in proc.stderr.lower()
    assert b"Traceback" not in proc.stderr


def test_installed_binary_idle_stall_is_abandoned(fake_server, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("idle_timeout: 0.5\nmax_retries: 0\n")
    fake_server.script(stall("waiting", seconds=5))
    proc = run_bin(fake_server, "--no-tools", "--config", str(cfg), "hi", timeout=20)
    assert proc.returncode == 1
    assert proc.stdout.startswith(b"waiting")
    assert b"idle" in proc.stderr.lower() or b"no data" in proc.stderr.lower()


def test_no_provider_is_a_usage_error_showing_the_ways_to_set_one_up(monkeypatch):
    monkeypatch.setattr("agentcli.providers.profiles.local_available", lambda: False)
    result = CliRunner().invoke(build_app(), ["ask", "--no-tools", "hi"], input="")
    assert result.exit_code == 2
    err = result.stderr
    assert "OPENAI_API_KEY" in err and "--base-url" in err and "agentcli[local]" in err
    assert len(err.strip().splitlines()) == 1


def test_local_is_the_zero_config_default_when_installed(monkeypatch):
    monkeypatch.setattr("agentcli.providers.profiles.local_available", lambda: True)
    seen = []
    from agentcli.config import load_settings
    from agentcli.providers.profiles import resolve_profile

    profile = resolve_profile(load_settings(), notice=seen.append)
    assert profile.type == "local" and "local model" in seen[0]


def test_installed_binary_json_on_error_still_one_object(fake_server):
    fake_server.script(error(404, "The model `test-model` does not exist"))
    proc = run_bin(fake_server, "--no-tools", "--json", "hi")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert "does not exist" in data["error"] and data["stop_reason"] == "error"
    assert b"does not exist" in proc.stderr


# --- tools end to end: the model calls each built-in through `agentcli ask` ------------------

def tool_message_content(server, index: int = 1) -> str:
    msgs = server.requests[index]["body"]["messages"]
    return [m for m in msgs if m["role"] == "tool"][-1]["content"]


def test_calculator_runs_without_asking_and_its_result_reaches_the_model(fake_server):
    fake_server.script(tool_calls(("calculator", {"expression": "37*91"})), text("It is 3367."))
    proc = run_bin(fake_server, "what is 37*91?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"It is 3367.\n"
    assert "3367" in tool_message_content(fake_server)
    assert b"calculator" in proc.stderr  # the call is shown, on stderr


def test_file_read_without_terminal_is_denied_and_the_model_is_told(fake_server, tmp_path):
    (tmp_path / "notes.txt").write_text("secret plans\n")
    fake_server.script(tool_calls(("file_read", {"path": "notes.txt"})), text("I could not."))
    proc = subprocess.run([BIN, "ask", "-p", "openai", "--base-url", fake_server.openai_base_url,
                           "read notes.txt"], capture_output=True, timeout=30, cwd=tmp_path,
                          env={**os.environ, "NO_COLOR": "1"}, start_new_session=True, input=b"")
    assert proc.returncode == 0, proc.stderr
    told = tool_message_content(fake_server)
    assert "denied" in told and "terminal" in told and "secret plans" not in told
    assert b"denied" in proc.stderr


def test_file_read_with_yes_sends_the_file(fake_server, tmp_path):
    (tmp_path / "notes.txt").write_text("the plans\n")
    fake_server.script(tool_calls(("file_read", {"path": "notes.txt"})), text("Done."))
    proc = subprocess.run([BIN, "ask", "-y", "-p", "openai", "--base-url",
                           fake_server.openai_base_url, "read notes.txt"], capture_output=True,
                          timeout=30, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"},
                          start_new_session=True, input=b"")
    assert proc.returncode == 0, proc.stderr
    assert "the plans" in tool_message_content(fake_server)


def test_web_fetch_through_ask_with_private_addresses_allowed_by_config(fake_server, tmp_path):
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><body><h1>Hello page</h1><p>Readable paragraph text.</p></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    page = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=page.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{page.server_address[1]}/"
    try:
        guarded = tmp_path / "default.yaml"
        guarded.write_text("max_steps: 3\n")
        fake_server.script(tool_calls(("web_fetch", {"url": url})), text("refused"))
        proc = run_bin(fake_server, "-y", "--config", str(guarded), "fetch it")
        assert proc.returncode == 0, proc.stderr
        refused = tool_message_content(fake_server)
        assert "Readable paragraph" not in refused  # the guard is on by default

        cfg = tmp_path / "lan.yaml"
        cfg.write_text("tools:\n  options:\n    web_fetch:\n      allow_private: true\n")
        fake_server.script(tool_calls(("web_fetch", {"url": url})), text("ok"))
        proc = run_bin(fake_server, "-y", "--config", str(cfg), "fetch it")
        assert proc.returncode == 0, proc.stderr
        assert "Readable paragraph text." in tool_message_content(fake_server, index=3)
    finally:
        page.shutdown()


def test_max_steps_stops_and_says_so(fake_server):
    fake_server.script(tool_calls(("calculator", {"expression": "1+1"})),
                       tool_calls(("calculator", {"expression": "2+2"})))
    proc = run_bin(fake_server, "--max-steps", "2", "loop")
    assert proc.returncode == 1
    assert b"--max-steps" in proc.stderr and len(fake_server.requests) == 2


@pytest.mark.pty
def test_installed_binary_renders_markdown_on_a_terminal(fake_server):
    pexpect = pytest.importorskip("pexpect")
    fake_server.script(text("Some **bold** words.\n\n- one\n- two", chunks=4))
    child = pexpect.spawn(BIN, ["ask", "--no-tools", "-p", "openai", "--base-url",
                                fake_server.openai_base_url, "hi"],
                          env={**os.environ, "TERM": "xterm", "NO_COLOR": "1"},
                          dimensions=(24, 80), timeout=30)
    child.expect(pexpect.EOF)
    child.close()
    pyte = pytest.importorskip("pyte")
    term = pyte.Screen(80, 24)
    pyte.ByteStream(term).feed(child.before)
    screen = "\n".join(line.rstrip() for line in term.display)
    assert child.exitstatus == 0
    assert "Some bold words." in screen and "**" not in screen  # rendered, not raw markdown
    assert "• one" in screen and "• two" in screen
