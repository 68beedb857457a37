"""Which OpenAI API a profile speaks (``api: auto | responses | chat``), the move from Chat
Completions to Responses on the 2026 refusal, and what Chat Completions sends and reads of
reasoning and caching. The real SDK against the loopback fake server."""

from __future__ import annotations

import pytest
from fake_clients import CALC, KEY, collect, done
from fake_server import FakeProviderServer, error, text, tool_calls

from agentcli.config import ProviderProfile, Settings
from agentcli.errors import ProviderError, UsageError
from agentcli.messages import Message, Notice, ToolResult
from agentcli.providers.base import create_provider

MODEL = "gpt-5.6-terra"


def profile(server=None, **kw) -> ProviderProfile:
    base = {"name": "openai", "type": "openai", "model": MODEL, "api_key": KEY,
            "base_url": server.openai_base_url if server else None, **kw}
    return ProviderProfile(**base)


def paths(server) -> list[str]:
    return [r["path"] for r in server.requests]


@pytest.mark.parametrize("base_url, api, cls, wire", [
    (None, "auto", "OpenAIResponsesProvider", "openai_responses"),
    ("https://api.openai.com/v1", "auto", "OpenAIResponsesProvider", "openai_responses"),
    ("http://localhost:11434/v1", "auto", "OpenAIAutoProvider", "openai_chat"),
    ("http://localhost:11434/v1", "responses", "OpenAIResponsesProvider", "openai_responses"),
    (None, "chat", "OpenAIProvider", "openai_chat"),
])
def test_api_auto_is_responses_for_openai_and_chat_completions_elsewhere(base_url, api, cls,
                                                                         wire):
    p = create_provider(profile(base_url=base_url, api=api), Settings())
    assert (type(p).__name__, p.wire) == (cls, wire)


def test_api_is_for_openai_profiles_only():
    with pytest.raises(UsageError, match="--api responses is for OpenAI profiles"):
        create_provider(ProviderProfile("anthropic", "anthropic", api="responses", api_key=KEY),
                        Settings())


def test_the_chat_completions_refusal_moves_the_conversation_to_responses(fake_server):
    p = create_provider(profile(fake_server), Settings(max_retries=0))
    p.cache_key = "session-42"
    fake_server.script(tool_calls(("calculator", {"expression": "2+2"})), text("4"))
    history = [Message.user("2+2?")]
    events = collect(p, history, tools=[CALC])
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "Responses API" in notices[0].text
    assert paths(fake_server) == ["/v1/chat/completions", "/v1/responses"]  # retried once
    assert p.wire == "openai_responses"
    first = done(events).message
    assert first.reasoning and first.reasoning[0].provider == "openai_responses"
    history += [first, Message("tool", (ToolResult(first.tool_calls[0].id, "calculator", "4"),))]
    later = collect(p, history, tools=[CALC])
    assert done(later).message.text == "4" and not [e for e in later if isinstance(e, Notice)]
    assert paths(fake_server)[-1] == "/v1/responses"  # the rest of the conversation stays there
    sent = fake_server.requests[-1]["body"]
    assert sent["prompt_cache_key"] == "session-42"
    assert [i.get("type") for i in sent["input"]][1:3] == ["reasoning", "function_call"]


def test_a_conversation_can_start_on_responses(fake_server):
    p = create_provider(profile(fake_server), Settings(max_retries=0))
    p.use_responses()  # what a resumed conversation that moved there does
    fake_server.script(text("hi"))
    assert done(collect(p, tools=[CALC])).message.text == "hi"
    assert paths(fake_server) == ["/v1/responses"] and p.wire == "openai_responses"


def test_without_tools_chat_completions_serves_a_reasoning_model(fake_server):
    fake_server.prompt_cache.min_tokens = 0
    p = create_provider(profile(fake_server), Settings(max_retries=0))
    fake_server.script(text("one"), text("two"))
    history = [Message.user("hi")]
    history += [done(collect(p, history)).message, Message.user("again")]
    usage = done(collect(p, history)).usage
    assert paths(fake_server) == ["/v1/chat/completions"] * 2 and p.wire == "openai_chat"
    assert (usage.cached_input_tokens, usage.reasoning_tokens) == (10, 16)


def test_chat_completions_sends_the_reasoning_effort(fake_server):
    fake_server.script(text("ok"))
    p = create_provider(profile(fake_server, api="chat", reasoning="none"), Settings())
    assert done(collect(p, tools=[CALC])).message.text == "ok"
    assert fake_server.requests[0]["body"]["reasoning_effort"] == "none"
    assert "prompt_cache_key" not in fake_server.requests[0]["body"]  # not OpenAI's own host


def test_api_chat_is_not_moved_and_the_refusal_says_what_to_do(fake_server):
    p = create_provider(profile(fake_server, api="chat"), Settings(max_retries=0))
    with pytest.raises(ProviderError) as info:
        collect(p, tools=[CALC])
    err = info.value
    assert "Function tools with reasoning_effort are not supported" in str(err)
    assert "--api responses" in err.hint and "--reasoning none" in err.hint
    assert paths(fake_server) == ["/v1/chat/completions"]


def test_a_server_with_neither_way_says_so_and_stays_on_chat_completions():
    with FakeProviderServer(responses_api=False) as srv:
        p = create_provider(profile(srv), Settings(max_retries=0))
        with pytest.raises(ProviderError) as info:
            collect(p, tools=[CALC])
        err = info.value
        assert f"{srv.openai_base_url}/responses does not exist" in str(err)
        assert "--reasoning none" in err.hint and "\n" not in str(err)
        assert p.wire == "openai_chat"
        assert paths(srv) == ["/v1/chat/completions", "/v1/responses"]


def test_chat_completions_on_openais_host_gets_the_conversation_cache_key():
    p = create_provider(profile(api="chat"), Settings())  # nothing is sent: only the body built
    first = p._params([Message.user("hi")], [], None)["prompt_cache_key"]
    assert first == p._params([Message.user("hi")], [], None)["prompt_cache_key"]
    p.cache_key = "session-7"
    assert p._params([Message.user("hi")], [], None)["prompt_cache_key"] == "session-7"
    off = create_provider(profile(api="chat", cache=False), Settings())
    assert "prompt_cache_key" not in off._params([Message.user("hi")], [], None)


def test_a_server_that_does_not_know_the_reasoning_setting_says_to_leave_it_out(fake_server):
    fake_server.script(error(400, "Unrecognized request argument supplied: reasoning_effort"))
    p = create_provider(profile(fake_server, model="llama3.2", reasoning="low"), Settings())
    with pytest.raises(ProviderError) as info:
        collect(p)
    assert "leave out --reasoning" in info.value.hint
