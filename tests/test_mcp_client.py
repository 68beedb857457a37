"""MCP servers as tool sources, below the CLI: startup (parallel, timeouts, failures), approval on
prefixed names, results, Ctrl-C cancellation, crashes, hangs, hostile servers, no orphans.

The servers are real processes: ``mcp_servers/demo_server.py`` (the official SDK) and
``mcp_servers/hostile_server.py`` (hand-written JSON-RPC that breaks the protocol on purpose).
"""

from __future__ import annotations

import contextlib
import os
import signal

import _thread
import sys
import threading
import time
from pathlib import Path

import pytest

from agentcli.agent.loop import CANCELLED, Agent
from agentcli.toolrun.approval import PolicyApprover, parse_rules
from agentcli.toolrun.executor import Executor
from agentcli.mcp.client import McpHub
from agentcli.mcp.config import parse_servers
from agentcli.mcp.tools import McpExecutor, ToolRouter
from agentcli.messages import Message, ToolCall
from scripted import ScriptedProvider, reply

HERE = Path(__file__).parent / "mcp_servers"
DEMO = [str(HERE / "demo_server.py")]


def hostile(mode: str, **extra) -> dict:
    return {"command": sys.executable, "args": [str(HERE / "hostile_server.py"), mode], **extra}


def demo(**extra) -> dict:
    return {"command": sys.executable, "args": DEMO, **extra}


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")  # a zombie is dead
    except FileNotFoundError:
        return True


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """One demo server and the hostile ones, started together (as ask does)."""
    data = tmp_path_factory.mktemp("mcpdata")
    marker = data / "marker.txt"
    specs = parse_servers({
        "demo": demo(env={"DEMO_MARKER": str(marker)}, output_cap=1000, timeout=20),
        "exits": hostile("exit"),
        "silent": hostile("silent", startup_timeout=1.5),
        "noisy": hostile("garbage"),
        "huge": hostile("huge", startup_timeout=20),
        "junk": hostile("only-junk", startup_timeout=1.5),
        "missing": {"command": str(data / "no-such-program")},
    })
    began = time.monotonic()
    h = McpHub(list(specs.values()), data).start()
    h.wait()
    h.waited = time.monotonic() - began  # type: ignore[attr-defined]
    h.marker = marker  # type: ignore[attr-defined]
    yield h
    h.close()


def executor(hub, *, allow=(), deny=(), yes=False, prompter=None, patterns=()):
    approver = PolicyApprover(allow=parse_rules(list(allow), "tools.allow"),
                              deny=parse_rules(list(deny), "tools.deny"), yes=yes,
                              prompter=prompter)
    warnings: list[str] = []
    ex = McpExecutor(hub, approver, patterns=patterns, warn=warnings.append)
    ex.warnings = warnings  # type: ignore[attr-defined]
    return ex


def call(ex, name, args=None, cid="c1"):
    import json

    return ex.execute(ToolCall(cid, name, json.dumps(args or {})))


# --- startup --------------------------------------------------------------------------------------

def test_each_failure_is_named_and_the_good_servers_work(hub):
    status = {n: (st.status, st.error) for n, st in hub.servers.items()}
    assert status["demo"] == ("ready", None) and status["noisy"] == ("ready", None)
    assert status["exits"] == ("failed", "exited during start-up (exit code 1)")
    assert status["silent"] == ("failed", "did not start within 1.5 s")
    assert status["junk"] == ("failed", "did not start within 1.5 s")
    assert "larger than" in status["huge"][1]  # 40 MB line: stopped at the 16 MB cap
    assert "no-such-program" in status["missing"][1]
    # in parallel: the slowest bounded failure, not the sum of them
    assert hub.waited < 1.5 + 1.5 + 15


def test_one_warning_per_failed_server_naming_it_and_its_log(hub):
    ex = executor(hub)
    names = set(ex.tools())
    assert {"demo__add", "demo__echo", "noisy__ping"} <= names
    assert not any(n.startswith(("exits__", "silent__", "huge__")) for n in names)
    ex.tools()
    assert len(ex.warnings) == 5
    exits = [w for w in ex.warnings if "'exits'" in w][0]
    assert "exit code 1" in exits and str(hub.servers["exits"].log) in exits
    assert "hostile: exiting at once" in hub.servers["exits"].log.read_text()  # its stderr


def test_garbage_on_stdout_is_logged_and_skipped(hub):
    out = call(executor(hub, yes=True), "noisy__ping")
    assert out.result.content == "pong" and not out.result.is_error
    assert "Server running on stdio!" in hub.servers["noisy"].log.read_text()


def test_definitions_carry_the_servers_schema_and_patterns_narrow_them(hub):
    ex = executor(hub, patterns=("demo__a*", "noisy__*", "demo__nosuch"))
    assert sorted(ex.tools()) == ["demo__add", "noisy__ping"], ex.warnings
    assert "no MCP tool matches -t demo__nosuch" in ex.warnings
    add = {d.name: d for d in ex.definitions()}["demo__add"]
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert add.parameters["required"] == ["a", "b"] and add.description == "Add two integers."
    assert ex.tools()["demo__add"].hints() == "read-only"


# --- approval: the same model as plugins ----------------------------------------------------------

class Prompter:
    def __init__(self, answer: bool) -> None:
        self.answer, self.asked, self.notes = answer, [], []

    def confirm(self, tool_name, arguments, note=""):
        from agentcli.toolrun.approval import Decision

        self.asked.append(tool_name)
        self.notes.append(note)
        return Decision(self.answer)


def test_mcp_tools_ask_by_default_even_when_the_server_says_read_only(hub):
    no_terminal = call(executor(hub), "demo__add", {"a": 1, "b": 2})
    assert no_terminal.result.is_error and no_terminal.verdict.source == "no_terminal"
    prompter = Prompter(True)
    asked = call(executor(hub, prompter=prompter), "demo__add", {"a": 1, "b": 2})
    assert prompter.asked == ["demo__add"] and asked.result.content == "3"
    # the server's hint is shown with the question, as its claim, and decided nothing
    assert prompter.notes == ["the server says this tool is read-only (its claim: it approves "
                              "nothing)"]
    refused = call(executor(hub, prompter=Prompter(False)), "demo__add", {"a": 1, "b": 2})
    assert refused.result.is_error and "denied by the user" in refused.result.content


def test_allow_and_deny_rules_match_prefixed_names_with_globs(hub):
    allowed = call(executor(hub, allow=["demo__*"]), "demo__echo", {"text": "hi"})
    assert allowed.result.content == "hi" and allowed.verdict.source == "allow_rule"
    by_args = executor(hub, allow=[{"tool": "demo__echo", "args": {"text": "ok*"}}])
    assert call(by_args, "demo__echo", {"text": "okay"}).result.content == "okay"
    assert call(by_args, "demo__echo", {"text": "no"}).verdict.source == "no_terminal"
    denied = call(executor(hub, deny=["demo__*"], yes=True), "demo__echo", {"text": "hi"})
    assert denied.result.is_error and denied.verdict.source == "deny_rule"
    assert "tools.deny[0]" in denied.result.content


def test_arguments_are_checked_against_the_servers_schema_before_the_call(hub):
    out = call(executor(hub, yes=True), "demo__add", {"a": "one", "b": 2})
    assert out.result.is_error and "invalid arguments" in out.result.content
    assert out.verdict is None  # never reached approval, never reached the server


# --- results --------------------------------------------------------------------------------------

def test_images_are_described_and_errors_are_error_results(hub):
    ex = executor(hub, yes=True)
    pic = call(ex, "demo__picture").result.content.splitlines()
    assert pic[0] == "a caption"
    assert pic[1].startswith("[image result: image/png, 308 bytes; not shown to the model")
    assert pic[2].startswith("[audio result: audio/wav")
    res = call(ex, "demo__resources").result.content.splitlines()
    assert res == ["[resource file:///notes.txt (text/plain): 12 characters of text]",
                   "[resource link file:///big.bin: big.bin (application/octet-stream)]"]
    failed = call(ex, "demo__fail").result
    assert failed.is_error and "this tool always fails" in failed.content


def test_output_is_capped(hub):
    out = call(executor(hub, yes=True), "demo__big", {"n": 50_000}).result
    assert len(out.content) < 1200 and "characters cut" in out.content  # output_cap: 1000


# --- Ctrl-C ---------------------------------------------------------------------------------------

def test_ctrl_c_cancels_the_call_on_the_server_and_the_model_gets_cancelled(hub):
    marker: Path = hub.marker
    marker.unlink(missing_ok=True)
    ex = executor(hub, yes=True)
    router = ToolRouter(Executor({}, ex.approver), ex)

    def ctrl_c_when_started() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if marker.exists() and "started" in marker.read_text():
                _thread.interrupt_main()
                return
            time.sleep(0.01)

    provider = ScriptedProvider([reply(calls=[("demo__slow", {"seconds": 30})])])
    agent = Agent(provider, router)
    threading.Thread(target=ctrl_c_when_started, daemon=True).start()
    events = list(agent.run(Message.user("sleep")))
    done = events[-1]  # had the call not been cancelled, the 30 s tool would have answered
    assert done.stop_reason == "interrupted"
    assert done.calls[0].result.content == CANCELLED and "cancelled" in CANCELLED
    assert agent.history[-1].tool_results[0].content == CANCELLED
    deadline = time.monotonic() + 10
    while "cancelled" not in marker.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text().split() == ["started", "cancelled"]  # notifications/cancelled
    assert call(ex, "demo__add", {"a": 2, "b": 2}).result.content == "4"  # still serving
    unknown = router.execute(ToolCall("u", "demo__nosuch", "{}")).result
    assert unknown.is_error and "unknown tool 'demo__nosuch'" in unknown.content
    assert "demo__add" in unknown.content


# --- crash, hang, orphans (their own servers) -----------------------------------------------------

def test_crash_mid_call_hang_mid_call_and_no_orphans(tmp_path):
    pidfile, marker = tmp_path / "pids", tmp_path / "marker"
    specs = parse_servers({
        "a": demo(env={"DEMO_PIDFILE": str(pidfile)}),
        "b": demo(env={"DEMO_PIDFILE": str(pidfile), "DEMO_MARKER": str(marker)}, timeout=1),
    })
    with McpHub(list(specs.values()), tmp_path) as h:
        ex = executor(h, yes=True)
        assert {"a__crash", "b__slow"} <= set(ex.tools())
        crashed = call(ex, "a__crash").result
        assert crashed.is_error
        assert "MCP server 'a' exited during a call (exit code 3)" in crashed.content
        assert str(h.servers["a"].log) in crashed.content
        assert len(ex.warnings) == 1 and "'a'" in ex.warnings[0]
        again = call(ex, "a__add", {"a": 1, "b": 1}).result
        assert again.is_error and "not running" in again.content
        hung = call(ex, "b__slow", {"seconds": 30}).result
        assert hung.is_error and "no answer within 1 s; the call was cancelled" in hung.content
        assert ex.warnings[1].startswith("MCP server 'b' did not answer b__slow within 1 s")
        assert call(ex, "b__echo", {"text": "alive"}).result.content == "alive"
        pids = [int(p) for p in pidfile.read_text().split()]
        assert len(pids) == 4  # two servers, each with a child of its own
    deadline = time.monotonic() + 5
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if not gone(p)] == []
    assert "cancelled" in marker.read_text()


def wait_for_pid(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, "the daemon never started"
        time.sleep(0.02)
    return int(path.read_text())


def test_a_daemon_the_server_started_ends_with_the_server(tmp_path):
    """A server that double-forks a daemon into a session of its own (setsid): the daemon used
    to outlive agentcli. Under the subreaper it ends when the server does, and at close."""
    daemons = [tmp_path / "daemon-a", tmp_path / "daemon-b"]
    specs = parse_servers({"a": demo(env={"DEMO_ESCAPEE": str(daemons[0])}),
                           "b": demo(env={"DEMO_ESCAPEE": str(daemons[1])})})
    try:
        daemons_end_with_their_servers(specs, daemons, tmp_path)
    finally:  # a failure leaves no daemon behind
        for path in daemons:
            if path.exists() and path.read_text().strip():
                with contextlib.suppress(OSError):
                    os.kill(int(path.read_text()), signal.SIGKILL)


def daemons_end_with_their_servers(specs, daemons, tmp_path):
    with McpHub(list(specs.values()), tmp_path) as h:
        ex = executor(h, yes=True)
        a, b = (wait_for_pid(p) for p in daemons)
        assert not gone(a) and not gone(b)
        assert call(ex, "a__crash").result.is_error  # server a exits by itself...
        deadline = time.monotonic() + 5
        while not gone(a) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(a)  # ...and its daemon goes with it
        assert not gone(b) and call(ex, "b__echo", {"text": "x"}).result.content == "x"
    deadline = time.monotonic() + 5
    while not gone(b) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(b)  # closing the hub ended server b and its daemon


def test_a_missing_command_is_still_named(tmp_path):
    specs = parse_servers({"m": {"command": "no-such-mcp-server-anywhere"}})
    with McpHub(list(specs.values()), tmp_path) as h:
        h.wait()
        assert h.servers["m"].error == ("cannot run no-such-mcp-server-anywhere: No such file "
                                        "or directory")


def test_every_server_process_is_started_before_the_sdk_begins_to_load(tmp_path, monkeypatch):
    """The SDK's import is CPU work under the GIL: begun first, it slowed the thread spawning
    the servers, which are the longest wait of a start. Each server process exists before it."""
    import agentcli.mcp.client as hub_module

    marker = str(tmp_path / "marker")  # an argument the demo server ignores: finds its processes

    def started() -> int:
        mine = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            mine += ppid == os.getpid() and marker.encode() in argv
        return mine

    seen: list[int] = []
    real = hub_module.load_sdk

    def load_sdk(http: bool = False):
        seen.append(started())
        return real(http)

    monkeypatch.setattr(hub_module, "load_sdk", load_sdk)
    specs = parse_servers({"a": demo(args=[*DEMO, marker]), "b": demo(args=[*DEMO, marker])})
    with McpHub(list(specs.values()), tmp_path) as h:
        h.wait()
        assert [st.status for st in h.servers.values()] == ["ready", "ready"]
    assert seen == [2]


def test_an_sdk_that_moved_its_client_parts_gets_its_own_client_and_works(tmp_path, monkeypatch):
    # the client half is built from SDK modules outside its documented API; a release that
    # moves them must not break MCP: the SDK's own Client is used instead
    from agentcli.mcp import sdk as sdk_mod

    def moved() -> None:
        raise ImportError("cannot import name 'run_input_required_driver'")

    monkeypatch.setattr(sdk_mod, "_client_half", moved)
    assert sdk_mod.load_sdk().Client is not None
    specs = parse_servers({"demo": demo()})
    with McpHub(list(specs.values()), tmp_path) as h:
        h.wait()
        assert h.servers["demo"].status == "ready", h.servers["demo"].error
        result = call(executor(h, yes=True), "demo__add", {"a": 2, "b": 3})
    assert not result.result.is_error and "5" in result.result.content, result
