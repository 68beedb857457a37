"""Every failure of a provider is one line with a hint: the fake server's rude replies, each
through `agentcli ask`, on both wire formats, streamed and not. (The README: "Failures are one
line with a hint, never a traceback".)"""

from __future__ import annotations

import socket

import pytest
from fake_replies import Reply
from fake_server import (drop, empty_stream, error, gzipped, html, huge, redirect, stall,
                         stream_error, wrong_shape)
from typer.testing import CliRunner

from agentcli.cli.app import build_app

from test_cli import agentcli, one_error_line


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sse(body: bytes) -> Reply:
    return Reply("raw", body=body, content_type="text/event-stream")


RUDE = {
    "400": lambda: error(400, "Unrecognized request argument supplied: frobnicate"),
    "422": lambda: error(422, "unprocessable"),
    "400 plain text": lambda: Reply("raw", status=400, body=b"Bad Request",
                                    content_type="text/plain"),
    "422 empty body": lambda: Reply("raw", status=422, body=b"", content_type="text/plain"),
    "402": lambda: error(402, "insufficient credit"),
    "405": lambda: error(405, "method not allowed"),
    "409": lambda: error(409, "conflict"),
    "413": lambda: error(413, "request too large"),
    "429": lambda: error(429, "slow down"),
    "500": lambda: error(500, "boom"),
    "500 invalid": lambda: error(500, "invalid schema for function"),
    "503": lambda: error(503, "down"),
    "401": lambda: error(401, "bad key"),
    "403": lambda: error(403, "forbidden"),
    "404": lambda: error(404, "no such model"),
    "html": html,
    "html 502": lambda: html(status=502),
    "wrong shape": wrong_shape,
    "empty stream": empty_stream,
    "gzip": lambda: gzipped({"a": 1}),
    "dropped mid-reply": lambda: drop("half a "),
    "error event mid-reply": lambda: stream_error("half a "),
    "too large": lambda: huge(300_000),
    "idle": lambda: stall("half a ", 3),
    "sse data not json": lambda: sse(b"data: <html>oops</html>\n\n"),
    "sse broken json": lambda: sse(b'event: message_start\ndata: {"id": 1, broken\n\n'),
    "json not json": lambda: Reply("raw", body=b"{not json"),
    "redirect to nowhere": lambda: redirect(f"http://127.0.0.1:{_closed_port()}/v1/x"),
}
CONFIG = "max_retries: 0\nmax_response_bytes: 100000\nidle_timeout: 1\n"


def assert_one_line_with_a_hint(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], stderr
    assert set(lines[:-1]) <= {"(the reply above is incomplete)"}, stderr  # after a partial reply
    assert "(hint: " in errors[0] and errors[0].endswith(")"), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return errors[0]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_every_rude_reply_is_one_line_with_a_hint(fake_server, tmp_path, provider, stream):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG)
    url = fake_server.openai_base_url if provider == "openai" else fake_server.anthropic_base_url
    seen = {}
    for name, reply in RUDE.items():
        fake_server.script(reply())
        result = CliRunner().invoke(build_app(), [
            "ask", "--config", str(cfg), "-p", provider, "--base-url", url, "--no-tools",
            *([] if stream else ["--no-stream"]), "hi"])
        with fake_server._lock:
            fake_server._queue.clear()  # a reply the request never reached (a redirect)
        assert result.exit_code == 1, (name, result.output)
        seen[name] = assert_one_line_with_a_hint(result.stderr)
    assert "(no message)" in seen["422 empty body"]  # not the SDK's "Error code: 422"
    if stream and provider == "openai":  # (Anthropic's SDK skips data without an event name)
        assert "not valid JSON" in seen["sse data not json"]
        assert "'<html>oops</html>'" in seen["sse data not json"]


@pytest.mark.parametrize("reply, says", [
    (lambda: error(400, "Unrecognized request argument supplied: frobnicate"), "HTTP 400"),
    (lambda: Reply("raw", status=422, body=b"", content_type="text/plain"), "HTTP 422"),
    (lambda: sse(b"data: <html>oops</html>\n\n"), "not valid JSON"),
])
def test_the_installed_binary_gives_the_hint_too(fake_server, tmp_path, reply, says):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG)
    fake_server.script(reply())
    proc = agentcli("ask", "--config", str(cfg), "--no-tools", "--base-url",
                    fake_server.openai_base_url, "hi")
    assert proc.returncode == 1 and proc.stdout == b""
    line = one_error_line(proc.stderr)
    assert says in line and "(hint: " in line
