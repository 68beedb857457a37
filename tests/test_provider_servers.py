"""What real servers nobody here wrote do (llama-cpp-python's server, a LiteLLM proxy, captive
portals), played by the fake server against both adapters: each gets a clear message or works."""

from __future__ import annotations

import json

import pytest
from fake_clients import CALC, WIRES, collect, done, provider, text_of
from fake_server import (drop, empty_stream, error, html, stream_error, text, tool_calls,
                         wrong_shape)

from agentcli.config import Settings
from agentcli.errors import ProviderError, StreamInterruptedError
from agentcli.messages import Message, TextPart, ToolCall, ToolResult, Usage
from agentcli.providers.anthropic import merge_split_calls
from agentcli.providers.openai_chat import convert_messages

BOTH = pytest.mark.parametrize("wire", WIRES)
STREAMING = pytest.mark.parametrize("streaming", [True, False])


# --- requests real servers accept -------------------------------------------------------------

def test_tool_choice_auto_is_sent_only_when_tools_are_offered(fake_server):
    fake_server.script(text("a"), text("b"))
    p = provider(fake_server)
    collect(p, tools=[CALC])
    collect(p)
    with_tools, without = (r["body"] for r in fake_server.requests)
    assert with_tools["tool_choice"] == "auto"  # llama-cpp-python takes a missing one as "none"
    assert "tool_choice" not in without and "tools" not in without


def test_an_assistant_message_with_only_tool_calls_is_not_sent_with_null_content(fake_server):
    # the fake answers HTTP 500 to `content: null`, as llama-cpp-python's server does
    fake_server.script(text("four"))
    history = [Message.user("2+2?"),
               Message("assistant", (ToolCall("call_1", "calculator", '{"expression": "2+2"}'),)),
               Message("tool", (ToolResult("call_1", "calculator", "4"),))]
    assert text_of(collect(provider(fake_server), history, tools=[CALC])) == "four"
    assert fake_server.requests[0]["body"]["messages"][1]["content"] == ""
    assert convert_messages([Message("assistant", ())], None) == [
        {"role": "assistant", "content": ""}]


# --- replies that leave things out ------------------------------------------------------------

@BOTH
@STREAMING
def test_no_usage_reported_is_unknown_not_zero(fake_server, wire, streaming):
    fake_server.script(text("hello", usage=False))
    events = collect(provider(fake_server, wire), stream=streaming)
    assert done(events).usage == Usage.unknown() and done(events).usage != Usage.reported(0, 0)


@BOTH
@STREAMING
def test_calls_without_ids_arrive_with_empty_ids_for_the_agent_to_name(fake_server, wire,
                                                                       streaming):
    fake_server.script(tool_calls(("calculator", {"expression": "1+1"}),
                                  ("calculator", {"expression": "2+2"}), ids="none"))
    calls = done(collect(provider(fake_server, wire), tools=[CALC], stream=streaming))
    assert [(c.id, json.loads(c.arguments)) for c in calls.message.tool_calls] == [
        ("", {"expression": "1+1"}), ("", {"expression": "2+2"})]


@STREAMING
def test_repeated_ids_keep_each_call_whole(fake_server, streaming):
    fake_server.script(tool_calls(("calculator", {"expression": "1+1"}),
                                  ("calculator", {"expression": "2+2"}), ids="same"))
    calls = done(collect(provider(fake_server), tools=[CALC], stream=streaming)).message.tool_calls
    assert [(c.id, json.loads(c.arguments)) for c in calls] == [
        ("call_0", {"expression": "1+1"}), ("call_0", {"expression": "2+2"})]


@BOTH
@STREAMING
@pytest.mark.parametrize("finish", ["max_tokens", "content_filter"])
def test_a_cut_or_withheld_reply_says_so(fake_server, wire, streaming, finish):
    fake_server.script(text("the start of", finish=finish))
    events = collect(provider(fake_server, wire), stream=streaming)
    assert done(events).stop_reason == finish and text_of(events) == "the start of"


@pytest.mark.parametrize("reply, stop", [(text("all of it", finish="none"), "end_turn"),
                                         (tool_calls(("calculator", "{}"), finish="none"),
                                          "tool_calls")])
def test_a_stream_that_ends_cleanly_without_a_finish_reason_is_finished(fake_server, reply, stop):
    fake_server.script(reply)
    assert done(collect(provider(fake_server), tools=[CALC])).stop_reason == stop


def test_an_event_stream_with_nothing_in_it_is_an_error_not_an_empty_answer(fake_server):
    fake_server.script(empty_stream())  # (with tools offered, the request is made again whole:
    with pytest.raises(ProviderError) as info:  # tests/test_compat_servers.py)
        collect(provider(fake_server))
    assert "ended without a reply" in str(info.value) and "--no-stream" in info.value.hint


# --- a 200 that is not what was asked for ------------------------------------------------------

@BOTH
@STREAMING
def test_an_html_page_says_what_came(fake_server, wire, streaming):
    fake_server.script(html())
    with pytest.raises(ProviderError) as info:
        collect(provider(fake_server, wire), stream=streaming)
    message = str(info.value)
    assert "text/html" in message and "Hotel Wi-Fi" in message and "\n" not in message
    assert "instead of " + ("an event stream" if streaming else "JSON") in message
    assert "captive portal" in info.value.hint


@BOTH
def test_json_of_the_wrong_shape_is_an_error_not_an_empty_answer(fake_server, wire):
    fake_server.script(wrong_shape({"result": "ok", "choices": "none"}))
    with pytest.raises(ProviderError) as info:
        collect(provider(fake_server, wire), stream=False)
    assert "JSON that is not a" in str(info.value) and '"result": "ok"' in str(info.value)


@BOTH
def test_a_json_body_to_a_streamed_request_says_what_came(fake_server, wire):
    fake_server.script(wrong_shape())
    with pytest.raises(ProviderError, match="application/json instead of an event stream"):
        collect(provider(fake_server, wire))


# --- a proxy that splits one call into many tool_use blocks (LiteLLM) --------------------------

def test_one_call_split_into_sixteen_blocks_sharing_an_id_is_one_call(fake_server):
    args = {"expression": "(1 + 2) * 3 - 4 / 5", "note": "split by a proxy into pieces"}
    fake_server.script(tool_calls(("calculator", args), split_blocks=16))
    calls = done(collect(provider(fake_server, "anthropic"), tools=[CALC])).message.tool_calls
    assert len(calls) == 1
    assert (calls[0].id, calls[0].name, json.loads(calls[0].arguments)) == (
        "toolu_0", "calculator", args)


def _block(id_: str, name: str, *pieces: str) -> dict:
    return {"id": id_, "name": name, "pieces": list(pieces), "start": None}


def test_whole_calls_sharing_an_id_stay_apart_and_fragments_never_run_as_calls():
    # two complete calls under one id: both kept (the agent runs identical ones once and gives
    # different ones their own ids); fragments that do not join into an object are one call
    # whose broken arguments the executor answers with an error, never two half calls
    whole = merge_split_calls([_block("t", "calc", '{"a": 1}'), _block("t", "calc", '{"a": 2}')])
    assert [c.arguments for c in whole] == ['{"a": 1}', '{"a": 2}']
    broken = merge_split_calls([_block("t", "calc", '{"a": '), _block("t", "calc", '1}{"b"')])
    assert [(c.id, c.arguments) for c in broken] == [("t", '{"a": 1}{"b"')]
    other = merge_split_calls([_block("t", "calc", '{"a'), _block("u", "calc", '": 1}')])
    assert [c.id for c in other] == ["t", "u"]


# --- error hints that say what is true ----------------------------------------------------------

def test_a_deterministic_500_with_a_validation_body_is_not_try_again_later(fake_server):
    fake_server.script(error(500, "1 validation error: messages.1.content: Input should be a "
                                  "valid string"))
    with pytest.raises(ProviderError) as info:
        collect(provider(fake_server))
    assert "retrying will not help" in info.value.hint and "later" not in info.value.hint


def test_an_overloaded_503_is_still_try_again_later(fake_server):
    fake_server.script(error(503, "Service overloaded"))
    with pytest.raises(ProviderError) as info:
        collect(provider(fake_server, settings=Settings(max_retries=0)))
    assert "try again" in info.value.hint


@BOTH
@pytest.mark.parametrize("reply", [drop(""), stream_error("")])
def test_the_partial_reply_hint_only_when_something_was_kept(fake_server, wire, reply):
    fake_server.script(reply)
    with pytest.raises(StreamInterruptedError) as info:
        collect(provider(fake_server, wire))
    assert info.value.partial_text == "" and "kept" not in (info.value.hint or "")


@BOTH
def test_the_partial_reply_hint_when_text_arrived(fake_server, wire):
    fake_server.script(drop("some words "))
    with pytest.raises(StreamInterruptedError) as info:
        collect(provider(fake_server, wire))
    assert "the partial reply was kept" in info.value.hint


def test_an_interrupted_history_is_sent_as_text_only():
    history = [Message("assistant", (TextPart("half"), ToolCall("c", "calc", "{}")),
                       interrupted=True)]
    assert convert_messages(history, None) == [{"role": "assistant", "content": "half"}]
