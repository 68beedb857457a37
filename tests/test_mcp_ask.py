"""MCP tools through `agentcli ask` end to end: the installed binary, the loopback fake provider,
and real MCP servers (stdio and streamable HTTP) written with the official SDK."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fake_server import text, tool_calls

HERE = Path(__file__).parent / "mcp_servers"
BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")


def demo(**extra) -> dict:
    return {"command": sys.executable, "args": [str(HERE / "demo_server.py")], **extra}


def write_config(tmp_path: Path, servers: dict, **top) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": servers, **top}))
    return cfg


def ask(server, cfg: Path, *args: str, provider: str = "openai", wait: bool = True,
        timeout: float = 60):
    base = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    argv = [BIN, "ask", "--config", str(cfg), "-p", provider, "--base-url", base,
            "-m", "test-model", *args]
    env = {**os.environ, "NO_COLOR": "1"}
    if not wait:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, timeout=timeout, start_new_session=True)


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def all_gone(pids: list[int], within: float = 5) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def tool_names(request: dict) -> list[str]:
    body = request["body"]
    return [t["function"]["name"] if "function" in t else t["name"] for t in body.get("tools", [])]


def test_mcp_tool_offered_approved_by_rule_called_and_answered(fake_server, tmp_path):
    pids = tmp_path / "pids"
    cfg = write_config(tmp_path, {
        "demo": demo(env={"DEMO_PIDFILE": str(pids)}),
        "broken": {"command": sys.executable, "args": [str(HERE / "hostile_server.py"), "exit"]},
    }, tools={"allow": ["demo__add"]})
    fake_server.script(tool_calls(("demo__add", {"a": 2, "b": 3})), text("The sum is 5."))
    r = ask(fake_server, cfg, "add 2 and 3")  # no terminal, no --yes: only the rule approves
    assert r.returncode == 0, r.stderr
    assert r.stdout == "The sum is 5.\n"
    first, second = fake_server.requests
    assert {"calculator", "demo__add", "demo__echo"} <= set(tool_names(first))
    add = [t for t in first["body"]["tools"] if t["function"]["name"] == "demo__add"][0]
    assert add["function"]["parameters"]["properties"]["b"]["type"] == "integer"
    result = [m for m in second["body"]["messages"] if m["role"] == "tool"][0]
    assert result["content"] == "5"
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "MCP server 'broken'" in warnings[0]
    assert "mcp-broken.log" in warnings[0] and "exit code 1" in warnings[0]
    assert all_gone([int(p) for p in pids.read_text().split()])  # server and its child


def test_streamable_http_server_with_tool_filter_and_deny_rule(fake_server, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen([sys.executable, str(HERE / "demo_server.py"), "--http", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        cfg = write_config(tmp_path, {"web": {"url": f"http://127.0.0.1:{port}/mcp"},
                                      "other": demo()},
                           tools={"deny": ["web__add"]})
        fake_server.script(tool_calls(("web__echo", {"text": "over http"}),
                                      ("web__add", {"a": 1, "b": 1})), text("done"))
        r = ask(fake_server, cfg, "-y", "-t", "web__*", "go", provider="anthropic")
        assert r.returncode == 0, r.stderr
        first, second = fake_server.requests
        assert sorted(tool_names(first)) == sorted(
            ["web__add", "web__big", "web__crash", "web__echo", "web__fail", "web__now",
             "web__picture", "web__slow"])  # -t: no plugins, and 'other' never started
        results = {b["tool_use_id"]: b for m in second["body"]["messages"] if m["role"] == "user"
                   for b in (m["content"] if isinstance(m["content"], list) else [])
                   if b.get("type") == "tool_result"}
        contents = [str(b.get("content")) for b in results.values()]
        assert any("over http" in c for c in contents)
        assert any("denied by config rule tools.deny[0]" in c for c in contents)  # over --yes
    finally:
        srv.terminate()
        srv.wait(10)


def test_servers_start_only_when_tools_from_them_can_be_used(fake_server, tmp_path):
    pids = tmp_path / "pids"
    cfg = write_config(tmp_path, {"demo": demo(env={"DEMO_PIDFILE": str(pids)})})
    fake_server.script(text("a"), text("b"))
    assert ask(fake_server, cfg, "--no-tools", "hi").returncode == 0
    assert ask(fake_server, cfg, "-t", "calculator", "hi").returncode == 0
    assert not pids.exists()
    unknown = ask(fake_server, cfg, "-t", "nosuch__tool", "hi")
    assert unknown.returncode == 2 and "unknown tool: nosuch__tool" in unknown.stderr


def test_ctrl_c_during_an_mcp_call_cancels_it_and_leaves_no_process(fake_server, tmp_path):
    pids, marker = tmp_path / "pids", tmp_path / "marker"
    cfg = write_config(tmp_path, {"demo": demo(env={"DEMO_PIDFILE": str(pids),
                                                    "DEMO_MARKER": str(marker)})})
    fake_server.script(tool_calls(("demo__slow", {"seconds": 60})))
    proc = ask(fake_server, cfg, "-y", "sleep", wait=False)
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and "started" in marker.read_text()):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    assert marker.read_text().split() == ["started", "cancelled"]  # notifications/cancelled
    assert all_gone([int(p) for p in pids.read_text().split()])
    assert len(fake_server.requests) == 1  # the turn ended; nothing more was asked


@pytest.mark.parametrize("mode", ["silent", "huge", "only-junk"])
def test_a_hostile_server_cannot_hang_or_crash_ask(fake_server, tmp_path, mode):
    cfg = write_config(tmp_path, {"bad": {"command": sys.executable, "startup_timeout": 3,
                                          "args": [str(HERE / "hostile_server.py"), mode]}})
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"})), text("42"))
    began = time.monotonic()
    r = ask(fake_server, cfg, "-y", "what is 6*7?", timeout=30)
    assert r.returncode == 0 and r.stdout == "42\n", r.stderr
    assert time.monotonic() - began < 20
    assert "MCP server 'bad'" in r.stderr and "Traceback" not in r.stderr
