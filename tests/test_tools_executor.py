"""Executor: validation before approval, errors as data, output cap. The process guarantees
(timeout, quiet tools, nothing outlives a call) are in test_isolation*.py."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from agentcli.toolrun.approval import PolicyApprover, Verdict
from agentcli.toolrun.executor import Executor, Tool, cap_output, validate_arguments
from agentcli.toolrun.host.isolation import run_isolated, run_threaded
from agentcli.messages import ToolCall, ToolDefinition

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}},
          "required": ["n"], "additionalProperties": False}


def make_tool(fn: Any, name: str = "t", timeout: float = 5, cap: int = 1000,
              confirm: str = "ask", options: dict | None = None,
              schema: dict | None = None) -> Tool:
    return Tool(ToolDefinition(name, "test tool", schema or SCHEMA), load=lambda: fn,
                confirm=confirm, timeout=timeout, output_cap=cap, options=options or {})


class Recorder:
    def __init__(self, decision: Verdict = Verdict("allow", "user", "approved by the user")
                 ) -> None:
        self.calls: list[tuple[str, dict, str]] = []
        self.decision = decision

    def approve(self, call: ToolCall, arguments: dict, confirm: str, note: str = "") -> Verdict:
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
            Recorder(Verdict("deny", "user", "denied by the user: not now")))
    assert r.is_error and r.content.startswith("denied by the user: not now")


def test_approver_that_raises_denies():
    class Broken:
        def approve(self, *a):
            raise RuntimeError("boom")

    r = run(make_tool(lambda n: n), {"n": 1}, Broken())
    assert r.is_error and "approval failed" in r.content


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
    assert run_threaded(lambda: time.sleep(2), timeout=0.1).status == "timeout"
    done = run_threaded(lambda: "x", timeout=5)
    assert (done.status, done.value) == ("done", "x")


def test_isolated_job_results():
    assert run_isolated(lambda: ["a", 1], timeout=5, max_bytes=100).value == ["a", 1]
    failed = run_isolated(lambda: 1 / 0, timeout=5, max_bytes=100)
    assert (failed.status, failed.detail) == ("failed", "ZeroDivisionError: division by zero")
    big = run_isolated(lambda: "x" * 100_000, timeout=5, max_bytes=1000)
    assert big.status == "toobig"
    crashed = run_isolated(lambda: os.kill(os.getpid(), 9), timeout=5, max_bytes=100)
    assert (crashed.status, crashed.detail) == ("crash", "killed by signal 9")


def test_hostile_nesting_in_arguments_is_an_error_result_not_a_crash():
    """`[[[[...` 100,000 deep makes json's C decoder raise RecursionError; execute never raises."""
    ran = []
    r = run(make_tool(lambda **kw: ran.append(kw)), "[" * 100_000)
    assert r.is_error and "not valid JSON" in r.content and not ran
