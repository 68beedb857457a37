"""Executor: validation before approval, errors as data, hard timeout, output cap, quiet tools."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from agentcli.approval import Decision, PolicyApprover
from agentcli.executor import (Executor, Tool, ToolContext, cap_output, run_forked, run_threaded,
                               validate_arguments)
from agentcli.messages import ToolCall, ToolDefinition

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}},
          "required": ["n"], "additionalProperties": False}


def make_tool(fn: Any, name: str = "t", timeout: float = 5, cap: int = 1000,
              confirm: str = "ask", options: dict | None = None,
              schema: dict | None = None) -> Tool:
    return Tool(ToolDefinition(name, "test tool", schema or SCHEMA), load=lambda: fn,
                confirm=confirm, timeout=timeout, output_cap=cap, options=options or {})


class Recorder:
    def __init__(self, decision: Decision = Decision(True)) -> None:
        self.calls: list[tuple[str, dict, str]] = []
        self.decision = decision

    def approve(self, call: ToolCall, arguments: dict, confirm: str) -> Decision:
        self.calls.append((call.name, arguments, confirm))
        return self.decision


def run(tool: Tool, args: Any, approver: Any = None):
    text = args if isinstance(args, str) else json.dumps(args)
    return Executor({tool.name: tool}, approver or PolicyApprover(yes=True)).execute(
        ToolCall("id1", tool.name, text)).result


def test_ok_result_and_json_values():
    r = run(make_tool(lambda n: {"double": n * 2}), {"n": 2})
    assert not r.is_error and json.loads(r.content) == {"double": 4}
    assert r.call_id == "id1" and r.name == "t"
    assert run(make_tool(lambda n: None), {"n": 1}).content == ""


def test_unknown_tool():
    r = Executor({}, PolicyApprover(yes=True)).execute(ToolCall("x", "nope", "{}")).result
    assert r.is_error and "unknown tool 'nope'" in r.content


@pytest.mark.parametrize("args,expected", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"n": "two"}, "n: 'two' is not of type 'integer'"),
    ({"n": -1}, "n: -1 is less than the minimum"),
    ({}, "'n' is a required property"),
    ({"n": 1, "extra": 2}, "Additional properties"),
])
def test_bad_arguments_never_reach_approval_or_the_tool(args, expected):
    ran = []
    approver = Recorder()
    r = run(make_tool(lambda n: ran.append(n)), args, approver)
    assert r.is_error and expected in r.content and "not run" in r.content
    assert approver.calls == [] and ran == []


def test_approval_gets_parsed_args_and_confirm_default():
    approver = Recorder()
    run(make_tool(lambda n: n, confirm="never"), {"n": 3}, approver)
    assert approver.calls == [("t", {"n": 3}, "never")]


def test_denial_is_an_error_result_with_the_reason():
    r = run(make_tool(lambda n: n), {"n": 1},
            Recorder(Decision(False, "denied by the user: not now")))
    assert r.is_error and r.content.startswith("denied by the user: not now")


def test_approver_that_raises_denies():
    class Broken:
        def approve(self, *a):
            raise RuntimeError("boom")

    r = run(make_tool(lambda n: n), {"n": 1}, Broken())
    assert r.is_error and "approval failed" in r.content


def test_exception_is_data():
    def fails(n):
        raise KeyError("missing thing")

    r = run(make_tool(fails), {"n": 1})
    assert r.is_error and "failed: KeyError: 'missing thing'" in r.content


def test_tool_error_message_is_shown_plainly():
    from agentcli.errors import ToolError

    def refuses(n):
        raise ToolError("that file is outside the allowed folders")

    r = run(make_tool(refuses), {"n": 1})
    assert r.content == "tool 't' failed: that file is outside the allowed folders"


def test_timeout_really_stops_the_tool(tmp_path):
    marker = tmp_path / "still-running"

    def hangs(n):
        time.sleep(1.5)
        marker.write_text("the tool was not stopped")

    start = time.monotonic()
    r = run(make_tool(hangs, timeout=0.3), {"n": 1})
    assert time.monotonic() - start < 1.2
    assert r.is_error and "timed out after 0.3 s and was stopped" in r.content
    time.sleep(1.6)
    assert not marker.exists()


def test_timeout_kills_grandchildren(tmp_path):
    marker = tmp_path / "grandchild"

    def spawns(n):
        import subprocess
        subprocess.Popen(["sh", "-c", f"sleep 1; touch {marker}"])
        time.sleep(30)

    r = run(make_tool(spawns, timeout=0.5), {"n": 1})
    assert "timed out" in r.content
    time.sleep(1.3)
    assert not marker.exists()


def test_busy_loop_is_stopped():
    def spins(n):
        while True:
            pass

    start = time.monotonic()
    assert "timed out" in run(make_tool(spins, timeout=0.3), {"n": 1}).content
    assert time.monotonic() - start < 1.5


def test_printing_tool_does_not_touch_the_terminal(capfd):
    def noisy(n):
        import sys
        print("\x1b[2J garbage on stdout")
        sys.stderr.write("garbage on stderr\n")
        os.write(1, b"raw fd write\n")
        return "result"

    r = run(make_tool(noisy), {"n": 1})
    out, err = capfd.readouterr()
    assert r.content == "result"
    assert out == "" and err == ""


def test_fifty_megabytes_printed_and_returned_are_capped(capfd):
    def huge(n):
        chunk = "x" * 1_000_000
        for _ in range(50):
            print(chunk)
        return "A" * 25_000_000 + "B" * 25_000_000

    start = time.monotonic()
    r = run(make_tool(huge, cap=1000, timeout=20), {"n": 1})
    assert time.monotonic() - start < 15
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert len(r.content) < 1200
    assert r.content.startswith("A") and r.content.endswith("B")
    assert "characters cut" in r.content and "50000000 characters" in r.content


def test_tool_that_exits_the_process_is_reported():
    r = run(make_tool(lambda n: os._exit(3)), {"n": 1})
    assert r.is_error and "ended without a result" in r.content and "exit code 3" in r.content


def test_stdin_is_not_shared_with_the_tool():
    import sys
    r = run(make_tool(lambda n: repr(sys.stdin.read())), {"n": 1})
    assert r.content == "''"


def test_context_brings_the_tool_options():
    def with_context(n, context):
        assert isinstance(context, ToolContext)
        return f"{context.name}:{context.options['greeting']}:{n}"

    r = run(make_tool(with_context, options={"greeting": "hi"}), {"n": 7})
    assert r.content == "t:hi:7"


def test_module_import_happens_once_in_the_parent():
    loads = []

    def load():
        loads.append(1)
        return lambda n: n

    tool = Tool(ToolDefinition("t", "d", SCHEMA), load=load)
    ex = Executor({"t": tool}, PolicyApprover(yes=True))
    for i in range(3):
        assert ex.execute(ToolCall(str(i), "t", '{"n": 5}')).result.content == "5"
    assert loads == [1]


def test_cap_output_head_and_tail():
    text = "".join(f"{i:05d}\n" for i in range(10_000))
    capped = cap_output(text, 600)
    assert capped.startswith("00000\n") and capped.endswith("09999\n")
    assert "characters cut" in capped and str(len(text)) in capped
    assert cap_output("short", 600) == "short"


def test_validate_arguments_one_line():
    assert validate_arguments({"n": 1}, SCHEMA) is None
    assert "required" in validate_arguments({}, SCHEMA)


def test_threaded_fallback_reports_timeout():
    status, _ = run_threaded(lambda: time.sleep(2), {}, 0.1, 100)
    assert status == "timeout"
    assert run_threaded(lambda: "x", {}, 1, 100) == ("ok", "x")


def test_forked_call_overhead_is_small():
    run_forked(lambda: "1", {}, 5, 100)
    start = time.perf_counter()
    for _ in range(20):
        assert run_forked(lambda: "1", {}, 5, 100) == ("ok", "1")
    per_call = (time.perf_counter() - start) / 20
    assert per_call < 0.05, f"{per_call * 1000:.1f} ms per forked call"


def test_keyboard_interrupt_kills_the_child(tmp_path, monkeypatch):
    import select as select_mod
    marker = tmp_path / "survived"
    calls = {"n": 0}
    real_select = select_mod.select

    def interrupting_select(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.2)
            raise KeyboardInterrupt
        return real_select(*a, **k)

    monkeypatch.setattr("agentcli.executor.select.select", interrupting_select)

    def slow():
        time.sleep(1)
        Path(marker).write_text("x")

    with pytest.raises(KeyboardInterrupt):
        run_forked(slow, {}, 5, 100)
    time.sleep(1.2)
    assert not marker.exists()


def test_runs_from_a_worker_thread():
    """The REPL may run the agent off the main thread: forking from there works too."""
    import threading

    box = {}
    tool = make_tool(lambda n: n + 1)
    t = threading.Thread(target=lambda: box.setdefault("r", run(tool, {"n": 1})))
    t.start()
    t.join(10)
    assert box["r"].content == "2"


def test_hostile_nesting_in_arguments_is_an_error_result_not_a_crash():
    """`[[[[...` 100,000 deep makes json's C decoder raise RecursionError; execute never raises."""
    ran = []
    r = run(make_tool(lambda **kw: ran.append(kw)), "[" * 100_000)
    assert r.is_error and "not valid JSON" in r.content and not ran
