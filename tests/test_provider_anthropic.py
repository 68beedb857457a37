"""The Anthropic adapter against the loopback fake server: the real SDK, real HTTP, real SSE."""

from __future__ import annotations

import json
import socket
import time

import pytest
from fake_anthropic import input_tokens
from fake_server import drop, error, stall, stream_error, text, tool_calls

from agentcli.config import ProviderProfile, Settings
from agentcli.errors import (AuthenticationError, IdleTimeoutError, ModelNotFoundError,
                             ProviderConnectionError, StreamInterruptedError, UsageError)
from agentcli.messages import (Message, TextDelta, TextPart, ToolCall, ToolDefinition,
                               ToolResult, Usage)
from agentcli.providers.anthropic import AnthropicProvider, convert_messages

KEY = "sk-ant-test-SECRET-987"
WEATHER = ToolDefinition("weather", "Weather for a city.",
                         {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]})


def provider(server, *, retries: int = 0, idle: float = 60.0, **profile_kw) -> AnthropicProvider:
    profile = ProviderProfile(**{"name": "claude", "type": "anthropic", "model": "claude-test",
                                 "base_url": server.anthropic_base_url, "api_key": KEY,
                                 **profile_kw})
    return AnthropicProvider(profile, Settings(max_retries=retries, idle_timeout=idle))


def collect(p, history=None, tools=(), **kw):
    return list(p.stream(history or [Message.user("hello")], list(tools), **kw))


def sent_key(request) -> str:
    """The key as this SDK version sends it (x-api-key, or Authorization: Bearer)."""
    h = request["headers"]
    return h.get("x-api-key") or h.get("authorization", "").removeprefix("Bearer ")


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize("streaming", [True, False])
def test_plain_reply(fake_server, streaming):
    fake_server.script(text("bonjour tout le monde", chunks=3))
    events = collect(provider(fake_server), system="answer in French", stream=streaming)
    assert text_of(events) == "bonjour tout le monde"
    assert len([e for e in events if isinstance(e, TextDelta)]) == (3 if streaming else 1)
    # the fake counts a token per 4 characters: 4 for the system prompt, 2 for "hello", all
    # written to the prompt cache (the first request)
    assert (events[-1].stop_reason, events[-1].usage) == ("end_turn",
                                                          Usage.reported(6, 4, cache_write=6))
    req = fake_server.requests[0]
    assert req["path"] == "/v1/messages"
    assert sent_key(req) == KEY
    body = req["body"]
    assert body["system"] == [{"type": "text", "text": "answer in French",
                               "cache_control": {"type": "ephemeral"}}]
    assert body["max_tokens"] == 4096
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}]}]
    assert bool(body.get("stream")) is streaming


def test_max_tokens_from_profile(fake_server):
    fake_server.script(text("ok"))
    collect(provider(fake_server, max_tokens=333))
    assert fake_server.requests[0]["body"]["max_tokens"] == 333
    assert "system" not in fake_server.requests[0]["body"]


@pytest.mark.parametrize("streaming", [True, False])
def test_parallel_tool_use_blocks_assembled(fake_server, streaming):
    fake_server.script(tool_calls(("weather", {"city": "Paris", "unit": "celsius"}),
                                  ("weather", {"city": "Oslo"}), text="Checking both. "))
    events = collect(provider(fake_server), tools=[WEATHER], stream=streaming)
    calls = list(events[-1].message.tool_calls)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("toolu_0", "weather", {"city": "Paris", "unit": "celsius"}),
        ("toolu_1", "weather", {"city": "Oslo"})]
    assert text_of(events) == "Checking both. "
    body = fake_server.requests[0]["body"]
    assert (events[-1].stop_reason, events[-1].usage.output_tokens) == ("tool_calls", 4)
    assert events[-1].usage.input_tokens == input_tokens(body) > 0
    assert body["tools"] == [
        {"name": "weather", "description": "Weather for a city.",
         "input_schema": WEATHER.parameters, "cache_control": {"type": "ephemeral"}}]


def test_streamed_arguments_are_kept_verbatim_even_when_broken(fake_server):
    fake_server.script(tool_calls(("weather", '{"city": "Par')))
    calls = list(collect(provider(fake_server))[-1].message.tool_calls)
    assert calls == [ToolCall("toolu_0", "weather", '{"city": "Par')]


def test_tool_results_go_back_in_one_user_turn(fake_server):
    fake_server.script(text("It is sunny in Paris."))
    history = [
        Message.user("weather in Paris and Oslo?"),
        Message("assistant", (TextPart("Checking."),
                              ToolCall("toolu_1", "weather", '{"city": "Paris"}'),
                              ToolCall("toolu_2", "weather", "{broken"))),
        Message("tool", (ToolResult("toolu_1", "weather", "sunny"),
                         ToolResult("toolu_2", "weather", "arguments are not valid JSON",
                                    is_error=True))),
        Message.user("and tomorrow?"),
    ]
    collect(provider(fake_server), history, tools=[WEATHER])
    sent = fake_server.requests[0]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"][-1].pop("cache_control") == {"type": "ephemeral"}
    assert sent[2]["content"][-1].pop("cache_control") == {"type": "ephemeral"}
    assert sent[1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}}]
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2",
         "content": "arguments are not valid JSON", "is_error": True},
        {"type": "text", "text": "and tomorrow?"}]


def test_interrupted_and_empty_messages_convert_cleanly():
    history = [Message.user("hi"),
               Message("assistant", (TextPart("half"), ToolCall("t1", "x", "{}")),
                       interrupted=True),
               Message("assistant", ()),
               Message("assistant", (TextPart("  \n"),)),
               Message("tool", (ToolResult("t2", "x", ""),)),
               Message.user("go on")]
    assert convert_messages(history) == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "half"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2"},
                                     {"type": "text", "text": "go on"}]}]
    with pytest.raises(TypeError):
        convert_messages([Message("tool", (TextPart("nope"),))])


def test_key_is_required_for_the_official_endpoint():
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider(ProviderProfile("anthropic", "anthropic"), Settings())


def test_placeholder_key_for_a_custom_base_url(fake_server):
    fake_server.script(text("proxied"))
    assert text_of(collect(provider(fake_server, api_key=None))) == "proxied"
    assert sent_key(fake_server.requests[0]) == "not-needed"


def test_401_names_the_variable_not_the_key(fake_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # with ANTHROPIC_BASE_URL beside it
    fake_server.script(error(401, f"invalid x-api-key {KEY}"))
    with pytest.raises(AuthenticationError) as info:
        collect(provider(fake_server, retries=2, api_key=None, base_url_source="env"))
    shown = f"{info.value} {info.value.hint}"
    assert "ANTHROPIC_API_KEY" in shown and KEY not in shown
    assert len(fake_server.requests) == 1


def test_404_model_shows_the_server_message(fake_server):
    fake_server.script(error(404, "model: claude-nope"))
    with pytest.raises(ModelNotFoundError, match="model: claude-nope"):
        collect(provider(fake_server))


def test_overloaded_then_success_uses_the_sdk_retry(fake_server):
    fake_server.script(error(529, "Overloaded"), text("there you go"))
    assert text_of(collect(provider(fake_server, retries=2))) == "there you go"
    assert len(fake_server.requests) == 2


def test_connection_refused_names_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    p = AnthropicProvider(ProviderProfile("claude", "anthropic", base_url=url, api_key=KEY),
                          Settings(max_retries=0))
    with pytest.raises(ProviderConnectionError, match=url):
        collect(p)


def test_dropped_stream_keeps_the_partial_text(fake_server):
    fake_server.script(drop("I was saying "))
    got = []
    with pytest.raises(StreamInterruptedError) as info:
        for ev in provider(fake_server).stream([Message.user("x")], []):
            got.append(ev)
    assert text_of(got) == "I was saying " == info.value.partial_text
    assert "cut off" in str(info.value) and not isinstance(info.value, IdleTimeoutError)


def test_idle_stall_times_out_quickly(fake_server):
    fake_server.script(stall("thinking ", seconds=10))
    with pytest.raises(IdleTimeoutError) as info:  # the stall would end in a whole reply
        collect(provider(fake_server, idle=0.5))
    assert info.value.partial_text == "thinking "


def test_closing_early_closes_the_response(fake_server):
    fake_server.script(stall("first ", seconds=0.3))
    gen = provider(fake_server).stream([Message.user("x")], [])
    assert next(gen) == TextDelta("first ")
    gen.close()
    deadline = time.monotonic() + 3
    while not fake_server.disconnects and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_server.disconnects == 1


def test_overloaded_error_event_mid_stream(fake_server):
    fake_server.script(stream_error("partial answer ", "Overloaded"))
    with pytest.raises(StreamInterruptedError) as info:
        collect(provider(fake_server))
    assert info.value.partial_text == "partial answer "
    assert "Overloaded" in str(info.value) and "\n" not in str(info.value)
