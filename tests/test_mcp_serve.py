"""`agentcli mcp serve` driven by the official SDK's own client over stdio (installed binary)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
import yaml
from mcp import Client, StdioServerParameters

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
EXAMPLE_TOOL = Path(__file__).parent / "data" / "example_tool"


@pytest.fixture
def workdir(tmp_path):
    """A config that denies one rule, a folder file_read may read, and a tool that hangs."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "note.txt").write_text("hello from the note\n")
    (root / ".env").write_text("SECRET=1\n")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "sleepy.yaml").write_text(textwrap.dedent("""\
        name: sleepy
        description: Sleeps too long.
        entrypoint: sleepy:run
        timeout: 1
        parameters: {type: object, properties: {}}
        """))
    (tools / "sleepy.py").write_text("import time\n\ndef run():\n    time.sleep(30)\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"tools": {
        "deny": [{"tool": "file_read", "args": {"path": "**/.env"}}],
        "options": {"file_read": {"roots": [str(root)]}}}}))
    return tmp_path, cfg


def serve(cfg: Path, *extra: str, **calls):
    """Start `agentcli mcp serve`, list its tools and make ``calls`` {key: (tool, args)}."""
    params = StdioServerParameters(command=BIN, args=["mcp", "serve", "--config", str(cfg),
                                                      *extra],
                                   env=dict(os.environ), cwd=str(cfg.parent))
    out: dict = {}

    async def main() -> None:
        with anyio.fail_after(60):
            async with Client(params, mode="legacy") as client:
                out["tools"] = {t.name: t for t in (await client.list_tools()).tools}
                for key, (name, args) in calls.items():
                    result = await client.call_tool(name, args)
                    out[key] = (result.is_error, "".join(c.text for c in result.content))

    anyio.run(main)
    return out


def test_lists_and_calls_every_builtin_with_agentclis_guards(workdir):
    tmp, cfg = workdir
    out = serve(cfg, "--tools-dir", str(tmp / "tools"), "--tools-dir", str(EXAMPLE_TOOL),
                calc=("calculator", {"expression": "6*7"}),
                read=("file_read", {"path": str(tmp / "docs" / "note.txt")}),
                outside=("file_read", {"path": "/etc/hostname"}),
                denied=("file_read", {"path": str(tmp / "docs" / ".env")}),
                fetch=("web_fetch", {"url": "http://127.0.0.1:9/"}),
                bad=("calculator", {"expression": 42}),
                slow=("sleepy", {}),
                words=("word_count", {"text": "a b a"}))
    assert {"calculator", "file_read", "web_fetch", "sleepy", "word_count"} <= set(out["tools"])
    assert out["tools"]["calculator"].input_schema["required"] == ["expression"]
    assert out["calc"] == (False, "42")
    assert out["read"] == (False, "hello from the note\n")
    assert out["outside"][0] is True and "outside the allowed folders" in out["outside"][1]
    # a tool's ToolError is its message alone, for an MCP host too (no "tool 'x' failed: ")
    assert out["fetch"][1].startswith("refused: 127.0.0.1 is a loopback address;")
    assert not out["outside"][1].startswith("tool ")
    assert out["denied"][0] is True and "denied by config rule tools.deny[0]" in out["denied"][1]
    assert out["fetch"][0] is True and "loopback address" in out["fetch"][1]
    assert out["bad"][0] is True and "invalid arguments" in out["bad"][1]
    assert out["slow"] == (True, "tool 'sleepy' timed out after 1 s and was stopped")
    assert out["words"][0] is False and "3" in out["words"][1]


def test_dash_t_limits_the_tools(workdir):
    _, cfg = workdir
    out = serve(cfg, "-t", "calculator")
    assert list(out["tools"]) == ["calculator"]


def test_nothing_but_protocol_messages_on_stdout(workdir):
    tmp, cfg = workdir
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "calculator", "arguments": {"expression": "1+1"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
    ]
    # a warning is printed while loading (a missing --tools-dir): it must go to stderr
    proc = subprocess.Popen([BIN, "mcp", "serve", "--config", str(cfg), "--tools-dir",
                             str(tmp / "missing")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
    try:
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        proc.stdin.flush()
        lines = [proc.stdout.readline() for _ in range(3)]  # the host keeps stdin open...
        proc.stdin.close()  # ...until it is done: then the server ends
        proc.wait(30)
        rest, err = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and rest == "", (lines, rest, err)
    replies = [json.loads(ln) for ln in lines]
    assert sorted(r["id"] for r in replies) == [1, 2, 3]
    replies.sort(key=lambda r: r["id"])
    assert all(r["jsonrpc"] == "2.0" for r in replies)
    assert replies[1]["result"]["content"][0]["text"] == "2"
    assert "does not exist" in err


@pytest.mark.pty
def test_started_by_hand_on_a_terminal_it_says_what_it_is_and_ctrl_c_quits(tmp_path):
    import pexpect

    child = pexpect.spawn(BIN, ["mcp", "serve", "-t", "calculator"], encoding="utf-8",
                          timeout=30, env={**os.environ, "AGENTCLI_HOME": str(tmp_path)})
    try:
        child.expect("serving 1 tool\\(s\\) over MCP on stdin/stdout; an MCP host starts")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 130


class RawHost:
    """`agentcli mcp serve` driven by hand over pipes: a host that sends anything."""

    def __init__(self, cfg: Path) -> None:
        self.proc = subprocess.Popen([BIN, "mcp", "serve", "--config", str(cfg), "-t",
                                      "calculator"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=cfg.parent)
        self.buffer = b""
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}})
        assert self.reply()["id"] == 0
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict | bytes) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def reply(self, timeout: float = 30) -> dict:
        """The next line the server writes (fails after ``timeout`` seconds of silence)."""
        import select

        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            if not select.select([fd], [], [], timeout)[0]:
                pytest.fail(f"no answer within {timeout} s")
            data = os.read(fd, 65536)
            assert data, self.proc.stderr.read().decode()
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            hwm = [ln for ln in f if ln.startswith("VmHWM:")][0]
        return int(hwm.split()[1]) / 1024

    def close(self) -> str:
        self.proc.stdin.close()
        self.proc.wait(30)
        return self.proc.stderr.read().decode()


@pytest.fixture
def host(workdir):
    h = RawHost(workdir[1])
    yield h
    if h.proc.poll() is None:
        h.proc.kill()
        h.proc.wait()


@pytest.mark.parametrize("message,code,words", [
    ({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": "x"}, -32602,
     "params must be an object"),
    ({"jsonrpc": "2.0", "id": 7}, -32600, "a request needs a method"),
    ({"jsonrpc": "2.0", "id": 7, "method": 5}, -32600, "the method must be a string"),
    ({"id": 7, "method": "tools/list"}, -32600, 'jsonrpc must be "2.0"'),
    (b'{"jsonrpc": "2.0", "id": "seven", "method": "tools/list", ', -32700, "not JSON"),
    ([1, 2], -32600, "must be a JSON object"),
    ({"jsonrpc": "2.0", "id": True, "method": "tools/list"}, -32600, "id must be a string"),
])
def test_a_malformed_request_gets_an_error_with_its_id_and_serving_goes_on(host, message,
                                                                          code, words):
    """These got no answer at all: a host waited for its request forever."""
    host.send(message if isinstance(message, (dict, bytes)) else json.dumps(message).encode())
    reply = host.reply()
    expected_id = 7 if isinstance(message, dict) and message.get("id") == 7 else None
    assert reply["id"] == expected_id and reply["error"]["code"] == code
    assert words in reply["error"]["message"]
    host.send({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
               "params": {"name": "calculator", "arguments": {"expression": "6*7"}}})
    assert host.reply()["result"]["content"][0]["text"] == "42"


def test_a_notification_with_bad_params_is_not_answered(host):
    host.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": "x"})
    host.send({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
    assert host.reply()["id"] == 9  # the first answer is to the next request


def test_a_huge_message_is_skipped_without_being_held_and_answered(host):
    """A 100 MB line used to be read whole (a 150 MB one: 650 MiB of RSS). Now it is refused
    at the client's cap, 16 MiB, with its id, and the server goes on."""
    head = b'{"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": ' \
           b'"calculator", "arguments": {"expression": "'
    host.proc.stdin.write(head)
    chunk = b"1" * 1_000_000
    for _ in range(100):
        host.proc.stdin.write(chunk)
    host.send(b'"}}}')
    reply = host.reply()
    assert reply["id"] == 11 and reply["error"]["code"] == -32600
    assert "larger than 16,777,216 bytes" in reply["error"]["message"]
    host.send({"jsonrpc": "2.0", "id": 12, "method": "tools/call",
               "params": {"name": "calculator", "arguments": {"expression": "1+1"}}})
    assert host.reply()["result"]["content"][0]["text"] == "2"
    assert host.peak_rss_mib() < 200
    assert "skipped a message larger than 16,777,216 bytes (id 11)" in host.close()


@pytest.mark.parametrize("head,rid", [
    (b'{"jsonrpc": "2.0", "id": 5, "method": "x", "params": {"a": "xxxx', 5),
    (b'{ "id" : "abc" , "params": {"a": "xxx', "abc"),
    (b'{"jsonrpc": "2.0", "method": "x", "params": {"a": "xxxxxx', None),  # id after the bulk
    (b'{"jsonrpc": "2.0", "id": true, "params": {"a": "xxxx', None),
    (b'[{"id": 1', None),
    (b'garbage', None),
])
def test_the_id_of_an_oversized_message_is_read_from_its_start(head, rid):
    from agentcli.mcp.serve_stdio import leading_id

    assert leading_id(head) == rid


def test_tool_annotations_from_the_manifests_reach_the_host(workdir):
    """The SDK's own client sees what each built-in manifest says of its tool; a plugin
    without annotations sends none (a host then assumes the worst)."""
    tmp, cfg = workdir
    tools = serve(cfg, "--tools-dir", str(EXAMPLE_TOOL))["tools"]
    calc, read, fetch = tools["calculator"], tools["file_read"], tools["web_fetch"]
    assert calc.title == calc.annotations.title == "Calculator"
    assert (calc.annotations.read_only_hint, calc.annotations.idempotent_hint,
            calc.annotations.open_world_hint) == (True, True, False)
    assert read.title == "Read a text file" and read.annotations.read_only_hint is True
    assert read.annotations.open_world_hint is False
    assert fetch.title == "Fetch a web page"
    assert (fetch.annotations.read_only_hint, fetch.annotations.open_world_hint) == (True, True)
    assert all(t.annotations.destructive_hint is False for t in (calc, read, fetch))
    assert tools["word_count"].annotations is None and tools["word_count"].title is None
