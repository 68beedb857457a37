"""The real adapters (official SDKs inside) pointed at the fake server, for tests of every wire
format: ``provider(server, "openai" | "anthropic" | "responses", ...)``, then ``collect(...)``
(``responses``: OpenAI's Responses API)."""

from __future__ import annotations

from typing import Any

from agentcli.config import ProviderProfile, Settings
from agentcli.messages import Message, ResponseDone, TextDelta, ToolDefinition

WIRES = ("openai", "anthropic", "responses")
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
         "responses": "/v1/responses"}
KEY = "sk-test-SECRET-0123456789"
CALC = ToolDefinition("calculator", "Evaluate arithmetic.",
                      {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]})


def base_url(server: Any, wire: str) -> str:
    return server.anthropic_base_url if wire == "anthropic" else server.openai_base_url


def provider(server: Any, wire: str = "openai", *, settings: Settings | None = None,
             **profile_kw: Any) -> Any:
    from agentcli.providers.anthropic import AnthropicProvider
    from agentcli.providers.openai_chat import OpenAIProvider
    from agentcli.providers.openai_responses import OpenAIResponsesProvider

    kw = {"name": wire, "type": "openai" if wire == "responses" else wire,
          "model": "test-model", "base_url": base_url(server, wire), "api_key": KEY,
          **profile_kw}
    cls = {"openai": OpenAIProvider, "anthropic": AnthropicProvider,
           "responses": OpenAIResponsesProvider}[wire]
    return cls(ProviderProfile(**kw), settings or Settings(max_retries=0))


def collect(p: Any, messages: list[Message] | None = None, tools: Any = (),
            into: list | None = None, **kw: Any) -> list:
    """Every event of one request; ``into`` keeps them when the stream raises."""
    events = [] if into is None else into
    for event in p.stream(messages or [Message.user("hi")], list(tools), **kw):
        events.append(event)
    return events


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def done(events: list) -> ResponseDone:
    assert isinstance(events[-1], ResponseDone), events[-1]
    return events[-1]


def sent_key(request: dict[str, Any]) -> str:
    """The key a request carried (x-api-key, or Authorization: Bearer), "" when none."""
    h = request["headers"]
    return h.get("x-api-key") or h.get("authorization", "").removeprefix("Bearer ")
