"""Images and PDFs that MCP tools return go to the model as images and documents where the API
takes them in tool results (Anthropic tool_result content, the Responses API's
function_call_output), and as a note elsewhere (Chat Completions). The installed binary, a real
MCP server (the official SDK), the loopback fake."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fake_server import text, tool_calls
from media_kit import b64

HERE = Path(__file__).parent / "mcp_servers"
BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
PICTURE = b"\x89PNG\r\n\x1a\n" + b"0" * 300  # what demo_server's `picture` returns
REPORT = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n"
NOTE = ("a caption\n[image result: image/png, 308 bytes]\n"
        "[audio result: audio/wav, 308 bytes; not shown to the model]")


@pytest.fixture
def cfg(tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"mcp_servers": {"demo": {
        "command": sys.executable, "args": [str(HERE / "demo_server.py")],
        "env": {"DEMO_EXTRA": "media"}}}}))
    return path


def ask(server, cfg: Path, *args: str, provider="openai", api=None):
    base = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    argv = [BIN, "ask", "--config", str(cfg), "-p", provider, "--base-url", base, "-m",
            "test-model", "-y", "-t", "demo__*", *(["--api", api] if api else []), *args]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=90, env={**os.environ, "NO_COLOR": "1"},
                          start_new_session=True)


def test_anthropic_gets_the_tools_image_in_its_tool_result(fake_server, cfg):
    fake_server.script(tool_calls(("demo__picture", {})), text("a picture"))
    r = ask(fake_server, cfg, "show me", provider="anthropic")
    assert r.returncode == 0, r.stderr
    result = [b for m in fake_server.requests[1]["body"]["messages"] if m["role"] == "user"
              for b in (m["content"] if isinstance(m["content"], list) else [])
              if b.get("type") == "tool_result"][0]
    assert result["content"][0] == {"type": "text", "text": NOTE}
    assert {k: v for k, v in result["content"][1].items() if k != "cache_control"} == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png",
                                    "data": b64(PICTURE)}}
    assert [(w, t) for w, t, _, _ in fake_server.media_seen[1]] == [("tool", "image/png")]


def test_responses_api_gets_it_in_the_function_call_output(fake_server, cfg):
    fake_server.script(tool_calls(("demo__document", {})), text("a report"))
    r = ask(fake_server, cfg, "read it", api="responses")
    assert r.returncode == 0, r.stderr
    output = [i for i in fake_server.requests[1]["body"]["input"]
              if i.get("type") == "function_call_output"][0]["output"]
    assert output == [
        {"type": "input_text", "text": "[resource file:///report.pdf (application/pdf): "
                                       f"{len(REPORT)} bytes]\n[image result: image/png, 14 "
                                       "bytes; not shown to the model]"},
        {"type": "input_file", "filename": "report.pdf",
         "file_data": f"data:application/pdf;base64,{b64(REPORT)}"}]


def test_chat_completions_gets_the_note_only(fake_server, cfg):
    """Tool messages take only text on Chat Completions: the image stays a note, and the model
    is told it was not shown."""
    fake_server.script(tool_calls(("demo__picture", {})), text("a picture"))
    r = ask(fake_server, cfg, "show me")
    assert r.returncode == 0, r.stderr
    tool = [m for m in fake_server.requests[1]["body"]["messages"] if m["role"] == "tool"][0]
    assert tool["content"] == NOTE + "\n[the image result above could not be shown: this API " \
                                     "takes only text in tool results]"
    assert fake_server.media_seen[1] == []


def test_a_tools_image_is_kept_with_the_session_and_sent_again_on_resume(fake_server, cfg):
    fake_server.script(tool_calls(("demo__picture", {})), text("a picture"), text("still"))
    assert ask(fake_server, cfg, "show me", provider="anthropic").returncode == 0
    again = ask(fake_server, cfg, "-c", "and again?", provider="anthropic")
    assert again.returncode == 0, again.stderr
    images = [c["source"]["data"] for m in fake_server.requests[2]["body"]["messages"]
              for b in (m["content"] if isinstance(m["content"], list) else [])
              if b.get("type") == "tool_result" and isinstance(b.get("content"), list)
              for c in b["content"] if c["type"] == "image"]
    assert [base64.b64decode(d) for d in images] == [PICTURE]
