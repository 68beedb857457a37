"""MCP tools through `agentcli ask` end to end: the installed binary, the loopback fake provider,
and real MCP servers (stdio and streamable HTTP) written with the official SDK."""

from __future__ import annotations

import contextlib

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
        timeout: float = 60, env: dict | None = None):
    base = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    argv = [BIN, "ask", "--config", str(cfg), "-p", provider, "--base-url", base,
            "-m", "test-model", *args]
    env = {**os.environ, "NO_COLOR": "1", **(env or {})}
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
    }, tools={"allow": ["demo__add", "demo__getenv"]})
    fake_server.script(tool_calls(("demo__add", {"a": 2, "b": 3}),
                                  ("demo__getenv", {"name": "OPENAI_API_KEY"}),
                                  ("demo__echo", {"text": "not allowed"})), text("The sum is 5."))
    # no terminal, no --yes: only the rule approves; the provider key stays with agentcli
    r = ask(fake_server, cfg, "add 2 and 3", env={"OPENAI_API_KEY": "sk-not-for-servers"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "The sum is 5.\n"
    first, second = fake_server.requests
    assert {"calculator", "demo__add", "demo__echo"} <= set(tool_names(first))
    add = [t for t in first["body"]["tools"] if t["function"]["name"] == "demo__add"][0]
    assert add["function"]["parameters"]["properties"]["b"]["type"] == "integer"
    results = [m["content"] for m in second["body"]["messages"] if m["role"] == "tool"]
    assert results[:2] == ["5", "<unset>"]
    assert "denied: there is no terminal" in results[2]
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
        names = tool_names(first)  # -t: no plugins, and 'other' never started
        assert {"web__add", "web__echo"} <= set(names) and len(names) > 5
        assert all(n.startswith("web__") for n in names)
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


SERVER_HALF = ("mcp.server", "mcp.client.client", "mcp.client.streamable_http", "starlette",
               "sse_starlette", "uvicorn")


def test_ask_imports_only_the_client_half_of_the_sdk(fake_server, tmp_path):
    """`import mcp` would import the SDK's server side too (MCPServer, starlette, uvicorn: about
    half of the SDK's import cost, paid while the servers boot on the same cores). A stdio server
    is started, listed and called with the client half alone (no HTTP transport either), and the
    rest of the SDK still imports afterwards in the same process."""
    cfg = write_config(tmp_path, {"demo": demo()})
    fake_server.script(tool_calls(("demo__add", {"a": 2, "b": 3})), text("The sum is 5."))
    code = ("import sys\n"
            "sys.argv = ['agentcli', 'ask', '--config', %r, '-p', 'openai', '--base-url', %r,\n"
            "            '-m', 'test-model', '-y', 'add']\n"
            "from agentcli.__main__ import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(%r))\n"
            "print('SERVER_HALF=' + ','.join(loaded))\n"
            "from mcp import Client, ClientSession\n"
            "from mcp.server.mcpserver import MCPServer\n"
            "from mcp.client import Transport\n"
            "print('REST=' + ','.join(x.__name__ for x in (Client, ClientSession, MCPServer)))\n"
            % (str(cfg), fake_server.openai_base_url, SERVER_HALF))
    r = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
                       start_new_session=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "The sum is 5." in r.stdout
    results = [m["content"] for m in fake_server.requests[1]["body"]["messages"]
               if m["role"] == "tool"]
    assert results == ["5"]
    assert "SERVER_HALF=\n" in r.stdout, r.stdout
    assert "REST=Client,ClientSession,MCPServer\n" in r.stdout, r.stdout


def wait_until_started(proc: subprocess.Popen, marker: Path) -> None:
    """Until the demo server's `slow` tool has begun (it writes "started" in ``marker``)."""
    deadline = time.monotonic() + 30
    while not (marker.exists() and "started" in marker.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)


def test_ctrl_c_during_an_mcp_call_cancels_it_and_leaves_no_process(fake_server, tmp_path):
    pids, marker = tmp_path / "pids", tmp_path / "marker"
    cfg = write_config(tmp_path, {"demo": demo(env={"DEMO_PIDFILE": str(pids),
                                                    "DEMO_MARKER": str(marker)})})
    fake_server.script(tool_calls(("demo__slow", {"seconds": 60})))
    proc = ask(fake_server, cfg, "-y", "sleep", wait=False)
    try:
        wait_until_started(proc, marker)
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


def test_kill_9_of_agentcli_mid_call_ends_the_server_and_everything_it_started(fake_server,
                                                                              tmp_path):
    """No clean-up code of agentcli runs after SIGKILL: the subreaper's parent-death signal
    ends the server, its child and the setsid daemon it double-forked."""
    pids, marker, daemon = tmp_path / "pids", tmp_path / "marker", tmp_path / "daemon"
    cfg = write_config(tmp_path, {"demo": demo(env={
        "DEMO_PIDFILE": str(pids), "DEMO_MARKER": str(marker), "DEMO_ESCAPEE": str(daemon)})})
    fake_server.script(tool_calls(("demo__slow", {"seconds": 60})))
    proc = ask(fake_server, cfg, "-y", "sleep", wait=False)
    try:
        wait_until_started(proc, marker)
        started = [int(p) for p in pids.read_text().split()] + [int(daemon.read_text())]
        assert not any(gone(p) for p in started)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert all_gone(started), [p for p in started if not gone(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in [int(p) for p in pids.read_text().split()] if pids.exists() else []:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)  # a failure leaves nothing behind
        if daemon.exists() and daemon.read_text().strip():
            with contextlib.suppress(OSError):
                os.kill(int(daemon.read_text()), signal.SIGKILL)


@pytest.mark.parametrize("mode", ["silent", "huge", "only-junk"])
def test_a_hostile_server_cannot_hang_or_crash_ask(fake_server, tmp_path, mode):
    cfg = write_config(tmp_path, {"bad": {"command": sys.executable, "startup_timeout": 3,
                                          "args": [str(HERE / "hostile_server.py"), mode]}})
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"})), text("42"))
    r = ask(fake_server, cfg, "-y", "what is 6*7?", timeout=30)  # a hang fails by timeout
    assert r.returncode == 0 and r.stdout == "42\n", r.stderr
    assert "MCP server 'bad'" in r.stderr and "Traceback" not in r.stderr


def test_listings_show_mcp_tools_with_their_source_and_hints(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from agentcli.cli.app import build_app

    cfg = write_config(tmp_path, {"demo": demo(), "broken": {
        "command": sys.executable, "args": [str(HERE / "hostile_server.py"), "exit"]}})
    monkeypatch.setenv("AGENTCLI_CONFIG", str(cfg))
    listed = CliRunner().invoke(build_app(), ["tools", "list"])
    assert listed.exit_code == 0, listed.output
    row = [ln for ln in listed.stdout.splitlines() if ln.startswith("demo__add ")][0]
    assert row.split()[:4] == ["demo__add", "mcp:demo", "ask", "[read-only]"]
    assert "calculator" in listed.stdout and "MCP server 'broken'" in listed.stderr
    servers = CliRunner().invoke(build_app(), ["mcp", "list"])
    assert servers.exit_code == 1  # one failed
    lines = servers.stdout.splitlines()
    at = [i for i, ln in enumerate(lines) if ln.startswith("demo  [stdio] ")][0]
    assert lines[at + 1].startswith("  ready (")
    assert "    demo__add [read-only]  Add two integers." in lines
    assert "failed: exited during start-up (exit code 1)" in servers.stdout
    assert "mcp-broken.log" in servers.stdout


def test_chat_offers_mcp_tools_shows_their_source_and_stops_the_servers(fake_server, tmp_path,
                                                                        monkeypatch):
    import io

    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from rich.console import Console

    from agentcli.ui.repl.app import ChatRepl
    from agentcli.runtime import RunOptions

    pids = tmp_path / "pids"
    cfg = write_config(tmp_path, {"demo": demo(env={"DEMO_PIDFILE": str(pids)})},
                       tools={"allow": ["demo__echo"]})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake_server.script(tool_calls(("demo__echo", {"text": "from chat"})), text("echoed"))
    out, err = io.StringIO(), io.StringIO()
    with create_pipe_input() as pipe:
        repl = ChatRepl(RunOptions(config=str(cfg), provider="openai", model="test-model",
                                   base_url=fake_server.openai_base_url, tools=("demo__*",)),
                        input=pipe, output=DummyOutput(),
                        console=Console(file=out, width=120, force_terminal=False),
                        err=Console(file=err, width=120, force_terminal=False))
        try:
            pipe.send_text("/tools\recho it\r\x04")
            assert repl.run() == 0
        finally:
            repl.close()
    banner = err.getvalue().splitlines()[0]
    assert "demo__add" in banner and "calculator" not in banner  # -t demo__*
    row = [ln for ln in err.getvalue().splitlines() if ln.strip().startswith("demo__add ")][0]
    assert "mcp:demo" in row and "asks" in row and "[read-only] Add two integers." in row
    echo_row = [ln for ln in err.getvalue().splitlines() if ln.strip().startswith("demo__echo ")]
    assert "allowed by config" in echo_row[0]
    assert "echoed" in out.getvalue()
    sent = [m for m in fake_server.requests[-1]["body"]["messages"] if m["role"] == "tool"]
    assert sent[0]["content"] == "from chat"
    assert all_gone([int(p) for p in pids.read_text().split()])
