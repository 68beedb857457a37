"""The agent loop driven by real providers on the fake server and a real Executor."""

from __future__ import annotations

import json
import os
import time

import pytest
from fake_server import drop, stall, text, tool_calls

from agentcli.agent import Agent
from agentcli.approval import PolicyApprover
from agentcli.config import ProviderProfile, Settings
from agentcli.errors import StreamInterruptedError
from agentcli.executor import Executor, Tool
from agentcli.messages import (AgentDone, Message, TextDelta, ToolCallReady, ToolDefinition,
                               ToolResultReady, TurnDone, Usage)
from agentcli.providers.base import create_provider

# Tools may run in a forked child process: they record their runs in a file, not in memory.
RAN_FILE = "AGENT_TEST_RAN_FILE"


def _record(name: str, args: dict) -> None:
    with open(os.environ[RAN_FILE], "a", encoding="utf-8") as f:
        f.write(json.dumps([name, args]) + "\n")


def ran() -> list[tuple[str, dict]]:
    with open(os.environ[RAN_FILE], encoding="utf-8") as f:
        return [tuple(json.loads(line)) for line in f]


def _add(a: int, b: int) -> int:
    _record("add", {"a": a, "b": b})
    return a + b


def _boom() -> None:
    _record("boom", {})
    raise ValueError("the tool exploded")


def _sleepy() -> str:
    _record("sleepy", {})
    time.sleep(2)
    return "woke up"


INT = {"type": "integer"}
TOOLS = [
    Tool(ToolDefinition("add", "Add two integers.",
                        {"type": "object", "properties": {"a": INT, "b": INT},
                         "required": ["a", "b"], "additionalProperties": False}),
         load=lambda: _add, confirm="never"),
    Tool(ToolDefinition("boom", "Always fails."), load=lambda: _boom, confirm="never"),
    Tool(ToolDefinition("sleepy", "Takes too long."), load=lambda: _sleepy, confirm="never",
         timeout=0.3),
]


@pytest.fixture(autouse=True)
def _ran_file(tmp_path, monkeypatch):
    path = tmp_path / "ran.jsonl"
    path.touch()
    monkeypatch.setenv(RAN_FILE, str(path))


def make_agent(server, kind: str = "openai", **agent_kw) -> Agent:
    base = server.openai_base_url if kind == "openai" else server.anthropic_base_url
    profile = ProviderProfile(name=kind, type=kind, model="test-model", base_url=base,
                              api_key="test-key")
    provider = create_provider(profile, Settings(max_retries=0))
    return Agent(provider, Executor({t.name: t for t in TOOLS}, PolicyApprover(yes=True)), **agent_kw)


def sent_tool_results(request: dict) -> dict[str, str]:
    """call id -> result content, from one request of either wire format."""
    out: dict[str, str] = {}
    for m in request["body"]["messages"]:
        if m["role"] == "tool":
            assert m["tool_call_id"] not in out
            out[m["tool_call_id"]] = m["content"]
        elif isinstance(m.get("content"), list):
            for block in m["content"]:
                if block.get("type") == "tool_result":
                    assert block["tool_use_id"] not in out
                    out[block["tool_use_id"]] = block["content"]
    return out


@pytest.mark.parametrize("kind,stream", [("openai", True), ("openai", False),
                                         ("anthropic", True), ("anthropic", False)])
def test_tool_call_then_final_answer(fake_server, kind, stream):
    fake_server.script(tool_calls(("add", {"a": 2, "b": 3})), text("The answer is 5"))
    agent = make_agent(fake_server, kind, stream=stream)
    events = list(agent.run(Message.user("what is 2+3?")))
    kinds = [e.kind for e in events]
    assert kinds == ["turn_done", "tool_call_ready", "tool_result_ready", "text_delta",
                     *(["text_delta"] * 3 if stream else []), "turn_done", "agent_done"]
    result = next(e.result for e in events if isinstance(e, ToolResultReady))
    assert (result.content, result.is_error) == ("5", False)
    assert ran() == [("add", {"a": 2, "b": 3})]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The answer is 5"
    # request 1: 1 message, 1 call; request 2: 3 messages, 4 words
    assert events[-1] == AgentDone("done", Usage(10 + 30, 1 + 4), 2)
    assert sent_tool_results(fake_server.requests[1]) == {_id(kind, 0): "5"}
    assert [m.role for m in agent.history] == ["user", "assistant", "tool", "assistant"]
    assert agent.history[-1].text == "The answer is 5"


def _id(kind: str, i: int) -> str:
    return f"call_{i}" if kind == "openai" else f"toolu_{i}"


def test_parallel_calls_are_all_answered(fake_server):
    fake_server.script(tool_calls(("add", {"a": 1, "b": 1}), ("add", {"a": 2, "b": 2}),
                                  ("boom", {})),
                       text("done"))
    events = list(make_agent(fake_server).run(Message.user("go")))
    assert [e.call.id for e in events if isinstance(e, ToolCallReady)] == ["call_0", "call_1",
                                                                          "call_2"]
    results = sent_tool_results(fake_server.requests[1])
    assert set(results) == {"call_0", "call_1", "call_2"}
    assert results["call_0"] == "2" and results["call_1"] == "4"
    assert "the tool exploded" in results["call_2"]
    assert events[-1].reason == "done"


def _one_bad_call(server, call, kind: str = "openai") -> tuple[str, list]:
    server.script(tool_calls(call), text("sorry, fixing that"))
    events = list(make_agent(server, kind).run(Message.user("go")))
    results = [e.result for e in events if isinstance(e, ToolResultReady)]
    assert len(results) == 1 and results[0].is_error
    assert events[-1].reason == "done"
    sent = sent_tool_results(server.requests[1])
    assert list(sent) == [_id(kind, 0)]
    return next(iter(sent.values())), results


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_malformed_json_arguments_are_not_run(fake_server, kind):
    content, _ = _one_bad_call(fake_server, ("add", '{"a": 1, "b":'), kind)
    assert ran() == []
    assert "not valid JSON" in content


def test_unknown_tool_is_reported_to_the_model(fake_server):
    content, _ = _one_bad_call(fake_server, ("rm_rf", {"path": "/"}))
    assert "unknown tool 'rm_rf'" in content and "add" in content


def test_schema_failure_is_not_run(fake_server):
    content, _ = _one_bad_call(fake_server, ("add", {"a": "two", "b": 3}))
    assert ran() == []
    assert "invalid arguments" in content and "a" in content


def test_raising_tool_becomes_an_error_result(fake_server):
    content, _ = _one_bad_call(fake_server, ("boom", {}))
    assert ran() == [("boom", {})]
    assert "ValueError: the tool exploded" in content


def test_hanging_tool_times_out(fake_server):
    start = time.monotonic()
    content, _ = _one_bad_call(fake_server, ("sleepy", {}))
    assert time.monotonic() - start < 1.5
    assert "timed out after 0.3 s" in content


def test_max_steps_stops_the_loop(fake_server):
    fake_server.script(tool_calls(("add", {"a": 1, "b": 2})), tool_calls(("add", {"a": 3, "b": 4})),
                       tool_calls(("add", {"a": 5, "b": 6})))
    agent = make_agent(fake_server, max_steps=2)
    events = list(agent.run(Message.user("loop forever")))
    assert events[-1].reason == "max_steps" and events[-1].steps == 2
    assert len(fake_server.requests) == 2
    assert fake_server.pending == 1
    # every call still got its result: the history can be sent again
    assert agent.history[-1].role == "tool" and len(agent.history[-1].tool_results) == 1


def test_dropped_stream_keeps_partial_text_in_history(fake_server):
    fake_server.script(drop("Here is the first half "))
    agent = make_agent(fake_server)
    seen = []
    with pytest.raises(StreamInterruptedError) as info:
        for event in agent.run(Message.user("tell me")):
            seen.append(event)
    assert "".join(e.text for e in seen if isinstance(e, TextDelta)) == "Here is the first half "
    assert info.value.partial_text == "Here is the first half "
    last = agent.history[-1]
    assert (last.role, last.text, last.interrupted) == ("assistant", "Here is the first half ",
                                                        True)
    # the next turn sends the partial reply as plain text
    fake_server.script(text("continuing"))
    list(agent.run(Message.user("go on")))
    assert fake_server.requests[1]["body"]["messages"][1] == {
        "role": "assistant", "content": "Here is the first half "}


def test_closing_the_run_keeps_the_partial_turn(fake_server):
    fake_server.script(stall("partial ", seconds=0.5))
    agent = make_agent(fake_server)
    run = agent.run(Message.user("hi"))
    assert next(run) == TextDelta("partial ")
    run.close()
    assert agent.history[-1].interrupted and agent.history[-1].text == "partial "


def test_usage_accumulates_on_the_agent(fake_server):
    fake_server.script(text("one two"), text("three"))
    agent = make_agent(fake_server)
    first = list(agent.run(Message.user("a")))
    second = list(agent.run(Message.user("b")))
    assert first[-2] == TurnDone("end_turn", Usage(10, 2))
    assert second[-2] == TurnDone("end_turn", Usage(30, 1))
    assert agent.usage == Usage(40, 3)
