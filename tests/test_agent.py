"""The agent loop driven by real providers on the fake server and a real Executor."""

from __future__ import annotations

import json
import os
import time

import pytest
from fake_anthropic import input_tokens
from fake_server import drop, stall, text, tool_calls
from scripted import ScriptedProvider, fail, interrupt, reply

from agentcli.agent.loop import CANCELLED, Agent, drive
from agentcli.toolrun.approval import PolicyApprover
from agentcli.config import ProviderProfile, Settings
from agentcli.errors import ProviderConnectionError, StreamInterruptedError
from agentcli.toolrun.executor import Executor, Tool
from agentcli.messages import (AgentDone, HistoryAppended, Message, Notice, ReasoningDelta,
                               TextDelta,
                               ToolDefinition, ToolResultReady, Usage)
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


def executor() -> Executor:
    return Executor({t.name: t for t in TOOLS}, PolicyApprover(yes=True))


def scripted(*steps, **agent_kw) -> tuple[Agent, ScriptedProvider]:
    provider = ScriptedProvider(list(steps))
    return Agent(provider, executor(), **agent_kw), provider


def make_agent(server, kind: str = "openai", **agent_kw) -> Agent:
    base = server.openai_base_url if kind == "openai" else server.anthropic_base_url
    profile = ProviderProfile(name=kind, type=kind, model="test-model", base_url=base,
                              api_key="test-key")
    provider = create_provider(profile, Settings(max_retries=0))
    return Agent(provider, executor(), **agent_kw)


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


# --- end to end: the real SDK adapters on the loopback server --------------------------------------

@pytest.mark.parametrize("kind,stream", [("openai", True), ("openai", False),
                                         ("anthropic", True), ("anthropic", False)])
def test_tool_call_then_final_answer(fake_server, kind, stream):
    fake_server.script(tool_calls(("add", {"a": 2, "b": 3})), text("The answer is 5"))
    agent = make_agent(fake_server, kind, stream=stream)
    events = list(agent.run(Message.user("what is 2+3?")))
    kinds = [e.kind for e in events if e.kind != "history_appended"]
    assert kinds == ["response_done", "tool_call_ready", "tool_result_ready", "text_delta",
                     *(["text_delta"] * 3 if stream else []), "response_done", "agent_done"]
    result = next(e.result for e in events if isinstance(e, ToolResultReady))
    assert (result.content, result.is_error) == ("5", False)
    assert ran() == [("add", {"a": 2, "b": 3})]
    done = events[-1]
    assert done.text == "The answer is 5"
    # OpenAI: 10 tokens a message (1, then 3); Anthropic: a token per 4 characters of every
    # block; output: request 1 one call, request 2 four words
    sent_in = 40 if kind == "openai" else sum(input_tokens(r["body"])
                                               for r in fake_server.requests)
    assert (done.stop_reason, done.steps) == ("end_turn", 2)
    assert (done.usage.input_tokens, done.usage.output_tokens, done.usage.requests) == (
        sent_in, 5, 2)
    assert [(r.call.name, r.result.content) for r in done.calls] == [("add", "5")]
    assert sent_tool_results(fake_server.requests[1]) == {_id(kind, 0): "5"}
    assert [m.role for m in agent.history] == ["user", "assistant", "tool", "assistant"]
    assert [e.message for e in events if isinstance(e, HistoryAppended)] == list(agent.history)


def _id(kind: str, i: int) -> str:
    return f"call_{i}" if kind == "openai" else f"toolu_{i}"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_dropped_stream_keeps_partial_text_in_history(fake_server, kind):
    fake_server.script(drop("Here is the first half "))
    agent = make_agent(fake_server, kind)
    events = list(agent.run(Message.user("tell me")))
    done = events[-1]
    assert done.stop_reason == "error" and isinstance(done.error, StreamInterruptedError)
    assert done.partial_kept and not done.user_dropped and done.steps == 1
    assert done.text == "Here is the first half "
    last = agent.history[-1]
    assert (last.role, last.text, last.interrupted) == ("assistant", "Here is the first half ",
                                                        True)
    # the next turn sends the partial reply as plain text
    fake_server.script(text("continuing"))
    list(agent.run(Message.user("go on")))
    if kind == "openai":
        assert fake_server.requests[1]["body"]["messages"][1] == {
            "role": "assistant", "content": "Here is the first half "}


def test_closing_the_run_keeps_the_partial_turn(fake_server):
    fake_server.script(stall("partial ", seconds=0.5))
    agent = make_agent(fake_server)
    run = agent.run(Message.user("hi"))
    assert next(run) == HistoryAppended(Message.user("hi"))  # the prompt is in before the request
    assert next(run) == TextDelta("partial ")
    run.close()
    assert agent.history[-1].interrupted and agent.history[-1].text == "partial "


# --- the loop's logic, with an in-process scripted provider -------------------------------------

def test_parallel_calls_are_all_answered():
    agent, provider = scripted(reply(calls=[("add", {"a": 1, "b": 1}), ("add", {"a": 2, "b": 2}),
                                            ("boom", {})]), reply("done"))
    done = list(agent.run(Message.user("go")))[-1]
    assert [r.call.id for r in done.calls] == ["call_0", "call_1", "call_2"]
    results = {r.call_id: r.content for r in agent.history[2].tool_results}
    assert results["call_0"] == "2" and results["call_1"] == "4"
    assert "the tool exploded" in results["call_2"]
    assert done.stop_reason == "end_turn"
    assert provider.requests[1][0] == list(agent.history[:3])


def _one_bad_call(call) -> str:
    agent, _ = scripted(reply(calls=[call]), reply("sorry, fixing that"))
    done = list(agent.run(Message.user("go")))[-1]
    assert done.stop_reason == "end_turn"
    assert len(done.calls) == 1 and done.calls[0].result.is_error
    assert [r.call_id for r in agent.history[2].tool_results] == ["call_0"]
    return done.calls[0].result.content


def test_malformed_json_arguments_are_not_run():
    assert "not valid JSON" in _one_bad_call(("add", '{"a": 1, "b":'))
    assert ran() == []


def test_unknown_tool_is_reported_to_the_model():
    content = _one_bad_call(("rm_rf", {"path": "/"}))
    assert "unknown tool 'rm_rf'" in content and "add" in content


def test_schema_failure_is_not_run():
    content = _one_bad_call(("add", {"a": "two", "b": 3}))
    assert ran() == []
    assert "invalid arguments" in content and "a" in content


def test_raising_tool_becomes_an_error_result():
    assert "ValueError: the tool exploded" in _one_bad_call(("boom", {}))
    assert ran() == [("boom", {})]


def test_hanging_tool_times_out():
    assert "timed out after 0.3 s" in _one_bad_call(("sleepy", {}))


def test_max_steps_stops_the_loop():
    agent, provider = scripted(*[reply(calls=[("add", {"a": i, "b": 1})]) for i in range(3)],
                               max_steps=2)
    done = list(agent.run(Message.user("loop forever")))[-1]
    assert (done.stop_reason, done.steps, len(done.calls)) == ("max_steps", 2, 2)
    assert len(provider.requests) == 2
    # every call still got its result: the history can be sent again
    assert agent.history[-1].role == "tool" and len(agent.history[-1].tool_results) == 1


def test_usage_accumulates_on_the_agent():
    agent, _ = scripted(reply("one two", usage=Usage.reported(10, 2)),
                        reply("three", usage=Usage.reported(30, 1)))
    first = list(agent.run(Message.user("a")))
    second = list(agent.run(Message.user("b")))
    assert first[-1].usage == Usage(10, 2, 1) and second[-1].usage == Usage(30, 1, 1)
    assert agent.usage == Usage(40, 3, 2)


def test_usage_a_server_does_not_report_is_unknown_not_zero():
    agent, _ = scripted(reply("hi", usage=Usage.unknown()), reply("again"))
    done = list(agent.run(Message.user("a")))[-1]
    assert not done.usage.known and done.usage.as_json()["input_tokens"] is None
    assert done.usage.describe().startswith("unknown")
    list(agent.run(Message.user("b")))
    assert agent.usage.known and agent.usage.unreported == 1
    assert agent.usage.as_json()["complete"] is False


def test_max_tokens_is_the_turns_stop_reason_and_cut_calls_do_not_run():
    agent, _ = scripted(reply("a long answ", stop="max_tokens"))
    done = list(agent.run(Message.user("essay")))[-1]
    assert done.stop_reason == "max_tokens" and done.text == "a long answ"
    agent, _ = scripted(reply("calling", calls=[("add", '{"a": 1, "b"')], stop="max_tokens"))
    events = list(agent.run(Message.user("go")))
    assert events[-1].stop_reason == "max_tokens" and events[-1].calls == ()
    assert any(isinstance(e, Notice) and "not run" in e.text for e in events)
    assert agent.history[-1].tool_calls == () and ran() == []


def test_content_filter_is_reported():
    agent, _ = scripted(reply("I can't", stop="content_filter"))
    assert list(agent.run(Message.user("x")))[-1].stop_reason == "content_filter"


def test_ids_reused_across_steps_are_renamed_to_stay_unique():
    # a server that numbers calls from 0 in every response: call_0, then call_0 again
    agent, provider = scripted(reply(calls=[("add", {"a": 1, "b": 2})]),
                               reply(calls=[("add", {"a": 3, "b": 4})]), reply("7 and 3"))
    done = list(agent.run(Message.user("go")))[-1]
    assert [r.call.id for r in done.calls] == ["call_0", "call_0_2"]
    assert [r.result.content for r in done.calls] == ["3", "7"]
    ids = [c.id for m in agent.history for c in m.tool_calls]
    results = [r.call_id for m in agent.history for r in m.tool_results]
    assert ids == results == ["call_0", "call_0_2"]


def test_identical_duplicate_ids_in_one_reply_run_once_and_say_so():
    agent, _ = scripted(reply(calls=[("add", {"a": 1, "b": 2}, "x"), ("add", {"a": 1, "b": 2}, "x")]),
                        reply("3"))
    events = list(agent.run(Message.user("go")))
    assert len(events[-1].calls) == 1 and ran() == [("add", {"a": 1, "b": 2})]
    assert any(isinstance(e, Notice) and "twice" in e.text for e in events)
    assert [r.call_id for r in agent.history[2].tool_results] == ["x"]


def test_different_calls_sharing_an_id_get_distinct_ids():
    agent, _ = scripted(reply(calls=[("add", {"a": 1, "b": 2}, "x"), ("add", {"a": 5, "b": 5}, "x")]),
                        reply("ok"))
    events = list(agent.run(Message.user("go")))
    done = events[-1]
    assert [(r.call.id, r.result.content) for r in done.calls] == [("x", "3"), ("x_2", "10")]
    assert any(isinstance(e, Notice) and "x_2" in e.text for e in events)


def test_missing_ids_are_filled_in_uniquely():
    agent, _ = scripted(reply(calls=[("add", {"a": 1, "b": 1}, ""), ("add", {"a": 2, "b": 2}, "")]),
                        reply("ok"))
    done = list(agent.run(Message.user("go")))[-1]
    ids = [r.call.id for r in done.calls]
    assert len(set(ids)) == 2 and all(ids)


def test_error_before_anything_arrived_drops_the_user_message():
    agent, _ = scripted(fail(ProviderConnectionError("cannot connect")))
    agent.conversation.append(Message.user("earlier"))
    seen: list = []
    agent.conversation.subscribe(seen.append)
    events = list(agent.run(Message.user("hello?")))
    done = events[-1]
    assert (done.stop_reason, done.steps, done.user_dropped, done.partial_kept) == (
        "error", 1, True, False)
    assert isinstance(done.error, ProviderConnectionError)
    assert list(agent.history) == [Message.user("earlier")]
    # the prompt was in the conversation before the request (so the store has it), then left
    kinds = [e.kind for e in seen]
    assert kinds == ["turn_started", "history_appended", "history_truncated", "agent_done"]
    # the failed request counts, with unknown usage: never 0 and complete
    assert done.usage.requests == 1 and not done.usage.known
    assert done.usage.as_json()["complete"] is False


def test_error_on_a_later_step_counts_the_steps_that_ran():
    agent, _ = scripted(reply(calls=[("add", {"a": 1, "b": 1})]),
                        fail(StreamInterruptedError("cut"), after="The sum "))
    done = list(agent.run(Message.user("go")))[-1]
    assert (done.stop_reason, done.steps, done.partial_kept, done.user_dropped) == (
        "error", 2, True, False)
    assert [m.role for m in agent.history] == ["user", "assistant", "tool", "assistant"]
    assert agent.history[-1].interrupted


def test_ctrl_c_in_the_provider_keeps_the_partial_reply_once():
    agent, provider = scripted(interrupt(after="half a reply"))
    events = list(agent.run(Message.user("hi")))
    done = events[-1]
    assert (done.stop_reason, done.partial_kept, done.user_dropped) == ("interrupted", True, False)
    assert [m.role for m in agent.history] == ["user", "assistant"]
    assert agent.history[-1].text == "half a reply" and agent.history[-1].interrupted
    appended = [e.message for e in events if isinstance(e, HistoryAppended)]
    assert appended == list(agent.history)


def test_ctrl_c_before_any_text_drops_the_message():
    agent, _ = scripted(interrupt())
    done = list(agent.run(Message.user("hi")))[-1]
    assert (done.stop_reason, done.user_dropped) == ("interrupted", True)
    assert list(agent.history) == []


def test_ctrl_c_in_the_renderer_is_thrown_into_the_agent():
    """drive(): a KeyboardInterrupt raised while a renderer draws a delta ends the turn exactly
    like one inside the provider: the stream is closed, the partial reply kept once."""
    agent, provider = scripted(reply("one two three four"))
    seen = []

    def handle(event):
        seen.append(event)
        if isinstance(event, TextDelta) and event.text == "two ":
            raise KeyboardInterrupt

    done = drive(agent.run(Message.user("count")), handle)
    assert done.stop_reason == "interrupted" and done.partial_kept
    assert agent.history[-1].text == "one two " and agent.history[-1].interrupted
    assert provider.closed == 1
    assert isinstance(seen[-1], AgentDone)


def test_ctrl_c_while_tools_run_cancels_the_rest():
    def slow_then_interrupt(*_):
        raise KeyboardInterrupt

    tools = {t.name: t for t in TOOLS}
    tools["halt"] = Tool(ToolDefinition("halt", "Ctrl-C lands here."), load=lambda: None,
                         confirm="never")

    class Interrupting(Executor):
        def execute(self, call, seen=None):
            if call.name == "halt":
                raise KeyboardInterrupt
            return super().execute(call, seen)

    provider = ScriptedProvider([reply(calls=[("add", {"a": 1, "b": 1}), ("halt", {}),
                                              ("add", {"a": 2, "b": 2})])])
    agent = Agent(provider, Interrupting(tools, PolicyApprover(yes=True)))
    done = list(agent.run(Message.user("go")))[-1]
    assert done.stop_reason == "interrupted"
    results = agent.history[-1].tool_results
    assert [r.content for r in results] == ["2", CANCELLED, CANCELLED]
    assert [r.call_id for r in results] == ["call_0", "call_1", "call_2"]


def test_prepare_shapes_what_is_sent_and_its_notices_are_shown():
    def prepare(history, tools, system):
        return history[-1:], ["trimmed 1 old message to fit"]

    agent, provider = scripted(reply("a"), reply("b"), prepare=prepare)
    list(agent.run(Message.user("first")))
    events = list(agent.run(Message.user("second")))
    assert provider.requests[1][0] == [Message.user("second")]
    assert len(agent.history) == 4  # the history keeps everything
    assert any(isinstance(e, Notice) and "trimmed" in e.text for e in events)


# --- reasoning: kept in order, sent back only where it can be read -------------------------------

def test_reasoning_stays_before_the_calls_it_came_with_and_goes_back_unchanged():
    agent, provider = scripted(reply(calls=[("add", {"a": 1, "b": 2})], reasoning="add them"),
                               reply("3", reasoning="done adding"))
    events = list(agent.run(Message.user("go")))
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == [
        "add ", "them", "done ", "adding"]
    first = agent.history[1]
    assert [p.kind for p in first.parts] == ["reasoning", "tool_call"]
    assert first.reasoning[0].text == "add them"
    # the second request carries the first reply exactly as it came, reasoning included
    sent = provider.requests[1][0]
    assert sent[1] == first
    assert events[-1].reasoning == "add them\n\ndone adding"


def test_reasoning_from_another_model_is_left_out_of_the_request_with_one_notice():
    agent, provider = scripted(reply("a", reasoning="r1"), reply("b"), reply("c"))
    list(agent.run(Message.user("one")))
    provider.model = "another-model"  # /model: the old model's reasoning cannot go to this one
    events = list(agent.run(Message.user("two")))
    events += list(agent.run(Message.user("three")))
    notes = [e for e in events if isinstance(e, Notice) and "reasoning" in e.text]
    assert len(notes) == 1 and "another-model" in notes[0].text
    for messages, _, _ in provider.requests[1:]:
        assert not any(m.reasoning for m in messages)
    assert agent.history[1].reasoning  # the conversation keeps it
