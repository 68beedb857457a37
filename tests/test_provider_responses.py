"""The Responses API adapter against the loopback fake server (the real SDK, real HTTP, real SSE),
and the fake itself: it must spell what the SDK's types say, and refuse what OpenAI refuses."""

from __future__ import annotations

import json
from dataclasses import replace

import openai
import pytest
from fake_clients import CALC, KEY, collect, done, text_of
from fake_server import FakeProviderServer, error, text, tool_calls
from pydantic import TypeAdapter

from agentcli.config import ProviderProfile, Settings
from agentcli.errors import ProviderError
from agentcli.messages import (Message, Notice, ReasoningDelta, ReasoningPart, TextPart,
                               ToolCall, ToolResult, Usage)
from agentcli.providers.openai_responses import OpenAIResponsesProvider, reasons
from agentcli.providers.responses_items import convert_input, convert_tools

MODEL = "gpt-5.6-terra"  # reasons by default, like OpenAI's 2026 models


def make(server, *, settings: Settings | None = None, **kw) -> OpenAIResponsesProvider:
    profile = {"name": "openai", "type": "openai", "model": MODEL, "api": "responses",
               "base_url": server.openai_base_url, "api_key": KEY, **kw}
    return OpenAIResponsesProvider(ProviderProfile(**profile), settings or Settings(max_retries=0))


def body(server, i: int = -1) -> dict:
    return server.requests[i]["body"]


def tool_turn(server, p, *calls, streaming: bool = True):
    """One request answered with tool calls; returns (the history so far, the ResponseDone)."""
    server.script(tool_calls(*calls, text="Let me compute."))
    history = [Message.user("what is 2+2 and 3*3?")]
    d = done(collect(p, history, tools=[CALC], stream=streaming))
    history.append(d.message)
    results = tuple(ToolResult(c.id, c.name, str(i)) for i, c in enumerate(d.message.tool_calls))
    history.append(Message("tool", results))
    return history, d


# --- the fake speaks the SDK's types, and refuses what OpenAI refuses ------------------------

def test_the_fake_streams_the_sdk_event_types_with_sequence_numbers(fake_server):
    from openai.types.responses import Response, ResponseStreamEvent

    client = openai.OpenAI(base_url=fake_server.openai_base_url, api_key=KEY, max_retries=0)
    fake_server.script(tool_calls(("calculator", {"expression": "1+1"}),
                                  ("calculator", {"expression": "2+2"}), text="Two calls."),
                       text("plain"))
    stream = client.responses.create(model=MODEL, input="hi", stream=True, store=False,
                                     include=["reasoning.encrypted_content"],
                                     reasoning={"effort": "low", "summary": "auto"},
                                     tools=convert_tools([CALC]))
    events = list(stream)
    adapter = TypeAdapter(ResponseStreamEvent)
    for ev in events:  # strict validation, not the SDK's lenient construct
        adapter.validate_python(ev.to_dict())
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-1] == "response.completed"
    for kind in ("response.reasoning_summary_text.delta", "response.output_text.delta",
                 "response.function_call_arguments.delta", "response.output_item.done"):
        assert kind in kinds
    final = events[-1].response
    assert [o.type for o in final.output] == ["reasoning", "message", "function_call",
                                              "function_call"]
    rs, _, fc1, fc2 = final.output
    assert rs.encrypted_content and rs.summary[0].text
    assert fc1.call_id != fc2.call_id and fc1.id.startswith("fc_")
    assert final.usage.output_tokens_details.reasoning_tokens > 0
    plain = client.responses.create(model="gpt-4.1-mini", input="hi")
    Response.model_validate(plain.to_dict())
    assert [o.type for o in plain.output] == ["message"]  # a model that does not reason


def _refused(client, **kw) -> str:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, store=False, **kw)
    return info.value.body["message"]


def test_the_fake_refuses_what_openai_refuses(fake_server):
    client = openai.OpenAI(base_url=fake_server.openai_base_url, api_key=KEY, max_retries=0)
    fake_server.script(tool_calls(("calculator", {"expression": "1+1"})))
    first = client.responses.create(model=MODEL, input="hi", store=False,
                                    include=["reasoning.encrypted_content"],
                                    tools=convert_tools([CALC]))
    rs, fc = (o.to_dict() for o in first.output)
    answer = {"type": "function_call_output", "call_id": fc["call_id"], "output": "2"}
    user = {"role": "user", "content": "hi"}
    assert _refused(client, input=[user, fc, answer]) == (
        f"Item '{fc['id']}' of type 'function_call' was provided without its required "
        f"'reasoning' item: '{rs['id']}'.")
    altered = {**rs, "encrypted_content": rs["encrypted_content"][:-4] + "AAAA"}
    assert "could not be verified" in _refused(client, input=[user, altered, fc, answer])
    assert "without its required following item" in _refused(client, input=[user, rs, answer])
    assert "not persisted when `store` is set to false" in _refused(
        client, input=[user, {k: v for k, v in rs.items() if k != "encrypted_content"}, fc,
                       answer])
    assert "No tool output found for function call" in _refused(client, input=[user, rs, fc])
    assert "No tool call found" in _refused(client, input=[user, answer])
    strict = {"type": "function", "name": "calculator", "parameters": CALC.parameters}
    assert "'additionalProperties' is required" in _refused(client, input="hi", tools=[strict])
    assert "does not support 'minimal'" in _refused(client, input="hi",
                                                    reasoning={"effort": "minimal"})
    with pytest.raises(openai.BadRequestError, match="use /v1/responses"):
        client.chat.completions.create(model=MODEL, messages=[user],
                                       tools=[{"type": "function", "function": {
                                           "name": "calculator", "parameters": {}}}])
    # the same items, whole and in order, are taken
    fake_server.script(text("2"))
    again = client.responses.create(model=MODEL, input=[user, rs, fc, answer], store=False)
    assert again.output_text == "2"


def test_the_fake_reports_cached_tokens_for_a_repeated_prefix(fake_server):
    fake_server.prompt_cache.min_tokens = 0
    p = make(fake_server)
    p.cache_key = "session-1"
    fake_server.script(text("one"), text("two"), text("three"))
    history = [Message.user("first question")]
    seen = []
    for follow_up in ("second", "third"):
        d = done(collect(p, history))
        seen.append((d.usage.input_tokens, d.usage.cached_input_tokens))
        history += [d.message, Message.user(follow_up)]
    last = done(collect(p, history)).usage
    seen.append((last.input_tokens, last.cached_input_tokens))
    # each request repeats the one before it (reasoning item and answer included)
    assert seen == [(10, 0), (40, 10), (70, 40)]
    assert {body(fake_server, i)["prompt_cache_key"] for i in (0, 1, 2)} == {"session-1"}


# --- requests ---------------------------------------------------------------------------------

def test_the_request_keeps_nothing_on_openais_side_and_asks_for_the_reasoning(fake_server):
    fake_server.script(text("ok"), text("ok"))
    p = make(fake_server, reasoning="high", max_tokens=300)
    collect(p, system="Be brief.", tools=[CALC])
    sent = body(fake_server)
    assert sent["store"] is False and sent["include"] == ["reasoning.encrypted_content"]
    assert sent["reasoning"] == {"effort": "high", "summary": "auto"}
    assert sent["instructions"] == "Be brief." and sent["max_output_tokens"] == 300
    assert sent["input"] == [{"role": "user", "content": "hi"}]
    assert sent["tools"] == [{"type": "function", "name": "calculator",
                              "description": CALC.description, "parameters": CALC.parameters,
                              "strict": False}]
    collect(p)
    assert body(fake_server)["prompt_cache_key"] == sent["prompt_cache_key"]  # one conversation
    assert sent["prompt_cache_key"].startswith("agentcli-")  # no session: its own stable key


def test_summaries_are_asked_only_when_shown_and_models_that_do_not_reason_get_no_reasoning(
        fake_server):
    fake_server.script(text("a"), text("b"), text("c"))
    collect(make(fake_server, settings=Settings(max_retries=0, hide_reasoning=True)))
    assert body(fake_server)["reasoning"] == {}
    collect(make(fake_server, model="gpt-4.1-mini", cache=False))
    assert "reasoning" not in body(fake_server) and "include" not in body(fake_server)
    assert "prompt_cache_key" not in body(fake_server)
    collect(make(fake_server, reasoning="none"))
    assert body(fake_server)["reasoning"] == {"effort": "none"}


@pytest.mark.parametrize("model, reasoning", [
    ("gpt-5.6-terra", True), ("o4-mini", True), ("openai/gpt-5.4-mini", True), ("gpt-6", True),
    ("gpt-5-chat-latest", False), ("gpt-4.1-mini", False), ("llama3.2", False)])
def test_which_models_get_reasoning_unasked(model, reasoning):
    assert reasons(model) is reasoning


# --- replies ----------------------------------------------------------------------------------

@pytest.mark.parametrize("streaming", [True, False])
def test_reasoning_text_and_parallel_calls(fake_server, streaming):
    p = make(fake_server)
    fake_server.script(tool_calls(("calculator", {"expression": "2+2"}),
                                  ("calculator", {"expression": "3*3"}), text="Let me compute."))
    events = collect(p, [Message.user("what is 2+2 and 3*3?")], tools=[CALC], stream=streaming)
    d = done(events)
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert "The user asks 'what is 2+2 and 3*3?'" in reasoning
    assert text_of(events) == "Let me compute."
    kinds = [type(part).__name__ for part in d.message.parts]
    assert kinds == ["ReasoningPart", "TextPart", "ToolCall", "ToolCall"]
    part = d.message.parts[0]
    assert (part.provider, part.model, part.text) == ("openai_responses", MODEL, reasoning)
    data = json.loads(part.data)
    assert data["item"]["encrypted_content"].startswith("gAAAA")
    assert [f["type"] for f in data["next"]] == ["message", "function_call", "function_call"]
    assert [json.loads(c.arguments) for c in d.message.tool_calls] == [
        {"expression": "2+2"}, {"expression": "3*3"}]
    assert [f.get("call_id") for f in data["next"][1:]] == [c.id for c in d.message.tool_calls]
    assert d.stop_reason == "tool_calls"
    assert d.usage == Usage.reported(10, 5 + 16, reasoning=16)  # 3 words, 2 calls


@pytest.mark.parametrize("streaming", [True, False])
def test_the_tool_loop_sends_the_reasoning_back_unchanged_before_its_calls(fake_server, streaming):
    p = make(fake_server)
    history, first = tool_turn(fake_server, p, ("calculator", {"expression": "2+2"}),
                               ("calculator", {"expression": "3*3"}), streaming=streaming)
    fake_server.script(text("4 and 9"))
    d = done(collect(p, history, tools=[CALC], stream=streaming))
    assert d.message.text == "4 and 9" and d.stop_reason == "end_turn"
    sent = body(fake_server)["input"]
    assert [i.get("type", "message") for i in sent] == [
        "message", "reasoning", "message", "function_call", "function_call",
        "function_call_output", "function_call_output"]
    assert sent[1] == json.loads(first.message.parts[0].data)["item"]  # exactly as received
    assert [i["id"][:3] for i in sent[2:5]] == ["msg", "fc_", "fc_"]
    ids = [c.id for c in first.message.tool_calls]
    assert [i["call_id"] for i in sent[3:]] == ids + ids


def test_reasoning_of_another_model_is_left_out_with_the_ids_that_point_to_it(fake_server):
    p = make(fake_server)
    history, _ = tool_turn(fake_server, p, ("calculator", {"expression": "2+2"}))
    other = make(fake_server, model="gpt-5.4-mini")
    items = convert_input(history, "gpt-5.4-mini")
    assert [i.get("type", "message") for i in items] == [
        "message", "message", "function_call", "function_call_output"]
    assert "id" not in items[2] and items[1] == {"role": "assistant", "content": "Let me compute."}
    fake_server.script(text("4"))  # the fake takes it: no id points at a missing reasoning item
    assert done(collect(other, history, tools=[CALC])).message.text == "4"


def test_a_reasoning_item_whose_calls_did_not_run_is_left_out():
    part = ReasoningPart("openai_responses", MODEL, json.dumps({
        "item": {"id": "rs_x00", "type": "reasoning", "summary": [], "encrypted_content": "e"},
        "next": [{"type": "function_call", "id": "fc_x01", "call_id": "call_0"}]}))
    # the agent dropped the call (a duplicate, or cut by max_tokens): nothing may point back
    items = convert_input([Message.user("q"), Message("assistant", (part, TextPart("hm")))], MODEL)
    assert items == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "hm"}]
    broken = replace(part, data="{not json")  # a damaged store: left out, the turn goes on
    assert convert_input([Message("assistant", (broken, ToolCall("c", "calc", "{}")))], MODEL) == [
        {"type": "function_call", "call_id": "c", "name": "calc", "arguments": "{}"}]


def test_stored_reasoning_the_server_refuses_is_left_out_with_one_notice(fake_server):
    p = make(fake_server)
    history, first = tool_turn(fake_server, p, ("calculator", {"expression": "2+2"}))
    data = json.loads(first.message.parts[0].data)
    data["item"]["encrypted_content"] = "gAAAAAforeign-organisation"  # another key's reasoning
    part = replace(first.message.parts[0], data=json.dumps(data))
    history[1] = replace(history[1], parts=(part, *history[1].parts[1:]))
    fake_server.script(text("4"), text("more"))
    events = collect(p, history, tools=[CALC])
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "could not be verified" in notices[0].text
    assert done(events).message.text == "4"
    assert [r["path"] for r in fake_server.requests[-2:]] == ["/v1/responses"] * 2
    assert "reasoning" not in [i.get("type") for i in body(fake_server)["input"]]
    history += [done(events).message, Message.user("go on")]
    later = collect(p, history, tools=[CALC])  # left out from now on: no second refusal
    assert not [e for e in later if isinstance(e, Notice)] and done(later).message.text == "more"


@pytest.mark.parametrize("streaming", [True, False])
@pytest.mark.parametrize("finish, stop", [("max_tokens", "max_tokens"),
                                          ("content_filter", "content_filter")])
def test_an_incomplete_response_says_why(fake_server, streaming, finish, stop):
    fake_server.script(text("cut here", finish=finish))
    d = done(collect(make(fake_server), stream=streaming))
    assert d.stop_reason == stop and d.message.text == "cut here"


# --- bad input: one line, what to do -------------------------------------------------------------

def test_a_reasoning_level_the_model_refuses_is_one_line_with_the_hint(fake_server):
    with pytest.raises(ProviderError) as info:
        collect(make(fake_server, reasoning="minimal"))
    err = info.value
    assert "does not support 'minimal'" in str(err) and "\n" not in str(err)
    assert "--reasoning none" in err.hint and err.exit_code == 1
    with pytest.raises(ProviderError) as info:
        collect(make(fake_server, model="gpt-4.1-mini", reasoning="low"))
    assert "takes no reasoning setting" in info.value.hint
    with pytest.raises(ProviderError) as info:
        collect(make(fake_server, model="o4-mini", reasoning="none"))
    assert "cannot turn reasoning off" in info.value.hint


def test_a_server_without_the_responses_api_names_the_url_and_api_chat():
    with FakeProviderServer(responses_api=False) as srv:
        with pytest.raises(ProviderError) as info:
            collect(make(srv))
    err = info.value
    assert f"{srv.openai_base_url}/responses does not exist" in str(err)
    assert "--api chat" in err.hint and "\n" not in str(err)


def test_an_unknown_model_is_still_an_unknown_model(fake_server):
    fake_server.script(error(404, "The model `gpt-9` does not exist or you do not have access "
                                  "to it.", error_type="invalid_request_error"))
    with pytest.raises(ProviderError) as info:
        collect(make(fake_server, model="gpt-9"))
    assert "gpt-9" in str(info.value) and "--model" in info.value.hint
