"""The OpenAI adapter against the loopback fake server: the real SDK, real HTTP, real SSE."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import replace

import pytest
from fake_server import drop, error, stall, stream_error, text, tool_calls

from agentcli.config import ProviderProfile, Settings
from agentcli.errors import (AuthenticationError, IdleTimeoutError, ModelNotFoundError,
                             ProviderConnectionError, ProviderError, StreamInterruptedError,
                             UsageError)
from agentcli.messages import (Message, TextDelta, TextPart, ToolCall,
                               ToolDefinition, ToolResult, ResponseDone, Usage)
from agentcli.providers.base import create_provider
from agentcli.providers.openai_chat import OpenAIProvider, convert_messages

SECRET = "sk-test-SECRET-0123456789"
CALC = ToolDefinition("calculator", "Evaluate arithmetic.",
                      {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]})


def make(server, *, settings: Settings | None = None, **profile_kw) -> OpenAIProvider:
    kw = {"name": "openai", "type": "openai", "model": "gpt-test",
          "base_url": server.openai_base_url, "api_key": SECRET, **profile_kw}
    return OpenAIProvider(ProviderProfile(**kw), settings or Settings(max_retries=0))


def run(provider, messages=None, tools=(), **kw) -> list:
    return list(provider.stream(messages or [Message.user("hi")], list(tools), **kw))


def joined(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# --- replies --------------------------------------------------------------------------------------

def test_plain_reply_without_streaming(fake_server):
    fake_server.script(text("hello there"))
    events = run(make(fake_server), system="be brief", stream=False)
    assert events == [TextDelta("hello there"),
                      ResponseDone(Message("assistant", (TextPart("hello there"),)), "end_turn",
                                   Usage.reported(20, 2))]
    body = fake_server.requests[0]["body"]
    assert fake_server.requests[0]["path"] == "/v1/chat/completions"
    assert not body.get("stream")
    assert body["model"] == "gpt-test"
    assert body["messages"] == [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "hi"}]
    assert "tools" not in body


def test_streamed_reply_arrives_in_pieces_with_usage(fake_server):
    fake_server.script(text("one two three four five", chunks=4))
    events = run(make(fake_server))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 4
    assert joined(events) == "one two three four five"
    assert (events[-1].stop_reason, events[-1].usage) == ("end_turn", Usage.reported(10, 5))
    body = fake_server.requests[0]["body"]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("streaming", [True, False])
def test_tool_call_arguments_assembled(fake_server, streaming):
    args = {"expression": "6 * 7", "note": "a longer argument, split in pieces"}
    fake_server.script(tool_calls(("calculator", args), text="Let me compute. "))
    events = run(make(fake_server), tools=[CALC], stream=streaming)
    ready = list(events[-1].message.tool_calls)
    assert ready == [ToolCall("call_0", "calculator", json.dumps(args))]
    assert joined(events) == "Let me compute. "
    assert (events[-1].stop_reason, events[-1].usage) == ("tool_calls", Usage.reported(10, 4))
    assert fake_server.requests[0]["body"]["tools"] == [
        {"type": "function",
         "function": {"name": "calculator", "description": "Evaluate arithmetic.",
                      "parameters": CALC.parameters}}]


@pytest.mark.parametrize("streaming", [True, False])
def test_parallel_tool_calls(fake_server, streaming):
    fake_server.script(tool_calls(("calculator", {"expression": "1+1"}),
                                  ("calculator", {"expression": "2+2"}),
                                  ("other", "{not json")))
    events = run(make(fake_server), tools=[CALC], stream=streaming)
    calls = list(events[-1].message.tool_calls)
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_0", "calculator", '{"expression": "1+1"}'),
        ("call_1", "calculator", '{"expression": "2+2"}'),
        ("call_2", "other", "{not json")]
    assert isinstance(events[-1], ResponseDone) and events[-1].stop_reason == "tool_calls"


def test_tool_results_reach_the_server_in_wire_shape(fake_server):
    fake_server.script(text("done"))
    call_a = ToolCall("call_a", "calculator", '{"expression": "1+1"}')
    call_b = ToolCall("call_b", "calculator", "{broken")
    history = [
        Message.user("add things"),
        Message("assistant", (TextPart("Computing."), call_a, call_b)),
        Message("tool", (ToolResult("call_a", "calculator", "2"),
                         ToolResult("call_b", "calculator", "arguments are not valid JSON",
                                    is_error=True))),
    ]
    run(make(fake_server), history, tools=[CALC])
    sent = fake_server.requests[0]["body"]["messages"]
    assert sent[1] == {"role": "assistant", "content": "Computing.", "tool_calls": [
        {"id": "call_a", "type": "function",
         "function": {"name": "calculator", "arguments": '{"expression": "1+1"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "calculator", "arguments": "{}"}},
    ]}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_a", "content": "2"}
    assert sent[3]["role"] == "tool" and sent[3]["tool_call_id"] == "call_b"
    assert "arguments are not valid JSON" in sent[3]["content"]


def test_interrupted_assistant_message_is_sent_as_its_text():
    history = [Message.user("hi"),
               Message("assistant", (TextPart("half a rep"),), interrupted=True),
               Message.user("go on")]
    assert convert_messages(history, None) == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "half a rep"},
        {"role": "user", "content": "go on"}]


def test_unknown_parts_are_refused():
    with pytest.raises(TypeError):
        convert_messages([Message("user", (ToolResult("x", "t", "r"),))], None)
    with pytest.raises(TypeError):
        convert_messages([Message("tool", (TextPart("x"),))], None)
    with pytest.raises(ValueError):
        convert_messages([Message("robot", (TextPart("x"),))], None)  # type: ignore[arg-type]


def test_profile_options_are_sent(fake_server):
    fake_server.script(text("ok"))
    run(make(fake_server, max_tokens=123, temperature=0.25))
    body = fake_server.requests[0]["body"]
    assert body["max_tokens"] == 123 and body["temperature"] == 0.25


# --- keys -----------------------------------------------------------------------------------------

def test_no_key_for_the_official_endpoint_is_a_usage_error():
    with pytest.raises(UsageError) as info:
        OpenAIProvider(ProviderProfile("openai", "openai"), Settings())
    assert "OPENAI_API_KEY" in str(info.value) and info.value.hint


def test_custom_key_variable_is_named(monkeypatch):
    with pytest.raises(UsageError, match="OPENROUTER_KEY"):
        create_provider(ProviderProfile("router", "openai", api_key_env="OPENROUTER_KEY"),
                        Settings())
    monkeypatch.setenv("OPENROUTER_KEY", "k")
    assert create_provider(ProviderProfile("router", "openai", api_key_env="OPENROUTER_KEY"),
                           Settings()).name == "router"


def test_a_named_key_variable_is_required_even_for_other_hosts(fake_server):
    with pytest.raises(UsageError, match="OPENROUTER_API_KEY"):
        make(fake_server, api_key=None, api_key_env="OPENROUTER_API_KEY")


def test_local_server_needs_no_key(fake_server):
    fake_server.script(text("from ollama"))
    provider = make(fake_server, api_key=None)
    assert joined(run(provider)) == "from ollama"
    assert fake_server.requests[0]["headers"]["authorization"] == "Bearer not-needed"


def test_key_from_environment_goes_only_with_its_base_url(fake_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    fake_server.script(text("ok"), text("ok"))
    run(make(fake_server, api_key=None, base_url_source="env"))  # OPENAI_BASE_URL beside it
    run(make(fake_server, api_key=None, base_url_source="flag"))  # --base-url: not its host
    assert [r["headers"]["authorization"] for r in fake_server.requests] == [
        "Bearer sk-from-env", "Bearer not-needed"]


# --- errors ---------------------------------------------------------------------------------------

def test_401_names_the_variable_and_hides_the_key(fake_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    fake_server.script(error(401, f"Incorrect API key provided: {SECRET}"))
    with pytest.raises(AuthenticationError) as info:
        run(make(fake_server, api_key=None, base_url_source="env"))
    shown = f"{info.value} {info.value.hint}"
    assert "OPENAI_API_KEY" in shown
    assert SECRET not in shown
    assert "\n" not in str(info.value)
    assert len(fake_server.requests) == 1  # a 401 is not retried


def test_404_model_shows_the_server_message(fake_server):
    fake_server.script(error(404, "The model `gpt-nope` does not exist or you do not have access"))
    with pytest.raises(ModelNotFoundError, match="The model `gpt-nope` does not exist"):
        run(make(fake_server))


def test_500_then_success_uses_the_sdk_retry(fake_server):
    fake_server.script(error(500, "upstream hiccup"), text("recovered"))
    events = run(make(fake_server, settings=Settings(max_retries=2)))
    assert joined(events) == "recovered"
    assert len(fake_server.requests) == 2


def test_500_without_retries_left_is_a_provider_error(fake_server):
    fake_server.script(error(503, "overloaded"))
    with pytest.raises(ProviderError, match="HTTP 503.*overloaded"):
        run(make(fake_server))


def test_stream_options_rejected_falls_back(fake_server):
    fake_server.script(error(400, "Unrecognized request argument supplied: stream_options"),
                       text("fine"))
    assert joined(run(make(fake_server))) == "fine"
    assert "stream_options" not in fake_server.requests[1]["body"]


def test_connection_refused_names_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    provider = OpenAIProvider(ProviderProfile("openai", "openai", base_url=url, api_key=SECRET),
                              Settings(max_retries=0))
    with pytest.raises(ProviderConnectionError) as info:
        run(provider)
    assert url in str(info.value)
    assert SECRET not in str(info.value)


def test_dropped_stream_keeps_the_partial_text(fake_server):
    fake_server.script(drop("the first half "))
    seen = []
    with pytest.raises(StreamInterruptedError) as info:
        for event in make(fake_server).stream([Message.user("hi")], []):
            seen.append(event)
    assert not isinstance(info.value, IdleTimeoutError)
    assert joined(seen) == "the first half "
    assert info.value.partial_text == "the first half "
    assert "cut off" in str(info.value)


def test_idle_stall_times_out_quickly(fake_server):
    fake_server.script(stall("waiting ", seconds=10))
    provider = make(fake_server, settings=Settings(max_retries=0, idle_timeout=0.5))
    with pytest.raises(IdleTimeoutError) as info:  # the stall would end in a whole reply
        run(provider)
    assert info.value.partial_text == "waiting "
    assert "0.5 s" in str(info.value) and "idle_timeout" in (info.value.hint or "")


def test_slow_but_alive_stream_is_not_an_idle_timeout(fake_server):
    fake_server.script(stall("slow ", seconds=0.3))
    provider = make(fake_server, settings=Settings(max_retries=0, idle_timeout=2))
    assert joined(run(provider)) == "slow "


def test_closing_the_stream_early_closes_the_response(fake_server):
    fake_server.script(stall("first ", seconds=0.3))
    gen = make(fake_server).stream([Message.user("hi")], [])
    assert next(gen) == TextDelta("first ")
    gen.close()
    deadline = time.monotonic() + 3
    while fake_server.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_server.disconnects == 1


def test_settings_reach_the_client(fake_server):
    provider = make(fake_server, settings=replace(Settings(), max_retries=5, idle_timeout=7,
                                                  request_timeout=99))
    assert provider.client.max_retries == 5
    assert provider.client.timeout.read == 7
    assert provider.client.timeout.write == 99


def test_error_event_mid_stream_keeps_the_partial_text(fake_server):
    fake_server.script(stream_error("so far ", "The server is overloaded"))
    with pytest.raises(StreamInterruptedError) as info:
        run(make(fake_server))
    assert info.value.partial_text == "so far "
    assert "cut off" in str(info.value) and "The server is overloaded" in str(info.value)


def test_dropped_reply_without_streaming_is_a_connection_error(fake_server):
    fake_server.script(drop("half a JSON body"))
    with pytest.raises(ProviderConnectionError) as info:
        run(make(fake_server), stream=False)
    assert fake_server.openai_base_url in str(info.value)
    assert "cannot connect" not in str(info.value)


def test_idle_stall_before_the_reply_without_streaming(fake_server):
    fake_server.script(stall("", seconds=10))
    with pytest.raises(IdleTimeoutError):  # the stall would end in a whole reply
        run(make(fake_server, settings=Settings(max_retries=0, idle_timeout=0.5)), stream=False)


def test_messages_name_the_vendor_for_the_official_endpoint():
    provider = OpenAIProvider(ProviderProfile("openai", "openai", api_key=SECRET), Settings())
    assert provider.errors.who == "OpenAI"
    assert provider.errors.base_url == "https://api.openai.com/v1"


def test_conftest_blocks_the_real_network():
    with pytest.raises(RuntimeError, match="network"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    with socket.socket(socket.AF_INET6) as s, pytest.raises(RuntimeError, match="network"):
        s.connect(("2001:db8::1", 443))


def test_streamed_requests_skip_the_sdk_body_transform_but_send_the_same_body(fake_server,
                                                                              monkeypatch):
    """The SDK's maybe_transform re-walks the whole history on every request (quadratic over a
    long tool chain); our body is plain JSON, so it is posted as is — and is what create() sends."""
    import openai._utils._transform as transform
    from openai.types.chat import completion_create_params

    history = [Message.user("go")]
    for i in range(5):
        call = ToolCall(f"c{i}", "calculator", json.dumps({"expression": f"{i}+{i}"}))
        history += [Message("assistant", (TextPart("computing "), call)),
                    Message("tool", (ToolResult(f"c{i}", "calculator", str(2 * i)),))]
    calls = {"n": 0}
    real = transform.maybe_transform

    def counting(*a, **kw):
        calls["n"] += 1
        return real(*a, **kw)

    monkeypatch.setattr(transform, "maybe_transform", counting)
    fake_server.script(text("done"))
    provider = make(fake_server)
    run(provider, history, tools=[CALC], system="be brief")
    assert calls["n"] == 0
    sent = fake_server.requests[0]["body"]
    expected = real({**provider._params(history, [CALC], "be brief"), "stream": True,
                     "stream_options": {"include_usage": True}},
                    completion_create_params.CompletionCreateParamsStreaming)
    assert sent == json.loads(json.dumps(expected))
    assert fake_server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
