"""The installed `agentcli` as a user meets it: flag errors in one line, bad URLs and variables
named at once, and a hostile server ending in one clear line with the right exit code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from fake_server import drip, html, huge, text, wrong_shape
from typer.testing import CliRunner

from agentcli.cli.app import build_app, run_command
from agentcli.errors import debug_enabled

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")


def agentcli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """The installed binary, no terminal, nothing on stdin."""
    return subprocess.run([BIN, *args], input=b"", capture_output=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})},
                          start_new_session=True)


def one_error_line(stderr: bytes | str) -> str:
    err = stderr.decode() if isinstance(stderr, bytes) else stderr
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


# --- flags ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message, hint", [
    (["ask", "--frobnicate", "hi"], "no such option: --frobnicate", "agentcli ask --help"),
    (["sesions"], "no such command 'sesions' (did you mean 'sessions'?)",
     "agentcli sessions --help; to send 'sesions' to the model: agentcli ask sesions"),
    (["ask", "--max-steps", "x", "hi"], "invalid value for '--max-steps'", "agentcli ask --help"),
    (["tools", "show"], "missing argument 'name'", "agentcli tools show --help"),
    (["chat", "-p"], "option '-p' requires an argument", "agentcli chat --help"),
])
def test_flag_errors_are_one_line_with_a_hint_exit_2(args, message, hint):
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: {message}") and line.endswith(f"(hint: {hint})")
    assert result.stdout == ""


def test_the_installed_binary_prints_flag_errors_in_one_line():
    proc = agentcli("ask", "--frobnicate")
    assert proc.returncode == 2 and proc.stdout == b""
    assert one_error_line(proc.stderr) == (
        "error: no such option: --frobnicate (hint: agentcli ask --help)")


def test_help_still_works_and_a_bare_group_shows_its_help():
    assert CliRunner().invoke(build_app(), ["ask", "--help"]).exit_code == 0
    result = CliRunner().invoke(build_app(), ["config"])
    assert result.exit_code == 2 and "show" in result.output and "error:" not in result.output


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("YES", True), ("0", False),
                                       ("false", False), ("no", False), ("", False)])
def test_agentcli_debug_turns_tracebacks_on_only_when_it_says_so(monkeypatch, capsys, value, on):
    monkeypatch.setenv("AGENTCLI_DEBUG", value)
    assert debug_enabled() is on

    def bug() -> int:
        raise RuntimeError("boom")

    if on:
        with pytest.raises(RuntimeError):
            run_command(bug)
    else:
        with pytest.raises(typer.Exit) as info:
            run_command(bug)
        assert info.value.exit_code == 1
        assert "internal error: RuntimeError: boom" in capsys.readouterr().err


# --- bad URLs and variables, named at once -------------------------------------------------------

@pytest.mark.parametrize("url", ["http://[::1", "notaurl"])
def test_a_bad_base_url_is_a_usage_error_at_once(url):
    proc = agentcli("ask", "--no-tools", "--base-url", url, "hi",
                    env={"OPENAI_API_KEY": "sk-x", "AGENTCLI_DEBUG": "0"})
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert line.startswith("error: --base-url ") and "try again" not in line


def test_agentcli_provider_naming_nothing_blames_the_variable():
    proc = agentcli("ask", "--no-tools", "hi", env={"AGENTCLI_PROVIDER": "nosuch"})
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "AGENTCLI_PROVIDER is 'nosuch'" in line and "config.yaml" not in line


# --- a hostile server, end to end ----------------------------------------------------------------

def ask(server, *args: str, config: str = "max_retries: 0\n", tmp_path: Path,
        env: dict | None = None) -> subprocess.CompletedProcess:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config)
    return agentcli("ask", "--no-tools", "--config", str(cfg), "--base-url",
                    server.openai_base_url, "-m", "test-model", *args, env=env)


def test_no_stream_html_200_is_one_line_exit_1(fake_server, tmp_path):
    fake_server.script(html())
    proc = ask(fake_server, "--no-stream", "hi", tmp_path=tmp_path)
    assert proc.returncode == 1 and proc.stdout == b""
    line = one_error_line(proc.stderr)
    assert "text/html" in line and "Hotel Wi-Fi" in line and "bug" not in line


def test_no_stream_json_of_the_wrong_shape_is_exit_1_not_an_empty_answer(fake_server, tmp_path):
    fake_server.script(wrong_shape({"status": "ok"}))
    proc = ask(fake_server, "--no-stream", "hi", tmp_path=tmp_path)
    assert proc.returncode == 1 and proc.stdout == b""
    assert "not a chat completion" in one_error_line(proc.stderr)


def test_streaming_html_200_says_what_came(fake_server, tmp_path):
    fake_server.script(html())
    proc = ask(fake_server, "hi", tmp_path=tmp_path)
    assert proc.returncode == 1
    line = one_error_line(proc.stderr)
    assert "text/html instead of an event stream" in line.replace("; charset=utf-8", "")
    assert "finish reason" not in line


def test_a_dripping_server_is_stopped_at_request_timeout_keeping_the_partial_reply(fake_server,
                                                                                   tmp_path):
    fake_server.script(drip("so far ", interval=0.2, give_up=40))
    proc = ask(fake_server, "--json", "hi", tmp_path=tmp_path,
               config="max_retries: 0\nrequest_timeout: 1\nidle_timeout: 30\n")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert (out["text"], out["partial"], out["stop_reason"]) == ("so far ", True, "error")
    assert "request_timeout (1 s)" in out["error"]
    assert "request_timeout" in one_error_line(proc.stderr)


def test_a_300_mb_line_is_cut_at_max_response_bytes(fake_server, tmp_path):
    fake_server.script(huge(300_000_000, after_text="head "))
    proc = ask(fake_server, "hi", tmp_path=tmp_path,
               config="max_retries: 0\nmax_response_bytes: 1048576\n")
    assert proc.returncode == 1 and proc.stdout.startswith(b"head")
    assert "larger than max_response_bytes (1 MiB)" in proc.stderr.decode()


def test_the_exported_key_does_not_reach_a_base_url_server(fake_server, tmp_path):
    fake_server.script(text("hi there"))
    proc = ask(fake_server, "hi", tmp_path=tmp_path, env={"OPENAI_API_KEY": "sk-live-SECRET"})
    assert proc.returncode == 0, proc.stderr
    assert fake_server.requests[0]["headers"]["authorization"] == "Bearer not-needed"


def test_base_url_with_only_an_anthropic_key_talks_openai_without_the_key(fake_server, tmp_path):
    fake_server.script(text("hello"))
    proc = ask(fake_server, "hi", tmp_path=tmp_path, env={"ANTHROPIC_API_KEY": "sk-ant-SECRET"})
    assert proc.returncode == 0 and proc.stdout == b"hello\n"
    request = fake_server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert "sk-ant-SECRET" not in json.dumps(request["headers"])
