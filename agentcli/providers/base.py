"""The Provider interface and its contract.

A provider turns a provider-neutral conversation into one model request and streams the answer
back as events. Contract for ``stream``:

- Yields zero or more ``TextDelta`` and ``ReasoningDelta`` events (for display), then exactly
  one ``ResponseDone`` as the last event: the assembled assistant message (its text, the
  provider's opaque reasoning as ``ReasoningPart``s in the order they came, and its tool calls
  complete: the
  tool name and the full argument JSON text exactly as the model produced it; the executor
  validates it, not the provider), the typed stop reason (``end_turn``, ``tool_calls``,
  ``max_tokens``, ``content_filter``) and this request's usage (``Usage.unknown()`` when the
  server reported none). The agent decides what the turn became from this event alone.
- A ``Notice`` may be yielded for something the user should be told once that is not an
  error (a request retried another way, a setting the server ignored); the agent forwards it.
- ``cache_key`` (an attribute the caller sets, None by default): a stable id of the
  conversation (the session id) for providers that key their prompt cache by it (OpenAI
  ``prompt_cache_key``).
- ``wire`` names the wire format the adapter speaks now (``openai_chat``,
  ``openai_responses``, ``anthropic``, ``local``). The agent sends an adapter only the
  ``ReasoningPart``s whose ``provider`` is its ``wire`` and whose ``model`` is its ``model``
  (the others are dropped from the request, with one notice); the adapter sends those back
  exactly as they came.
- A call id the server did not send is left empty; the agent gives it one that is unique in the
  conversation (and renames reused ids).
- ``stream=False`` makes one non-streaming request but yields the same events.
- ``output`` (a ``messages.OutputFormat``, given only with ``ask --schema``): the reply's text
  must be JSON matching its schema. The adapter asks for it the API's native way (OpenAI
  ``response_format`` / ``text.format`` json_schema, strict when the schema allows it;
  Anthropic ``output_config.format``, or for a model without it a forced tool whose input the
  adapter hands back as the reply's text) on every request, tools included, and yields a
  ``Notice`` (once) when it had to do so in a weaker way. It does not check the reply: the
  agent does (``agent.structured``). Adapters that cannot do it (the local model) never get
  the keyword: ``ask`` refuses ``--schema`` for them before any request.
- Errors are raised only as ``ProviderError`` subclasses (converted from SDK errors with
  ``raise ... from e``): 401/403 -> AuthenticationError whose hint names where the key came from
  (or that none was sent); cannot connect -> ProviderConnectionError naming the URL; unknown
  model -> ModelNotFoundError with the server's message; a stream cut mid-reply ->
  StreamInterruptedError (the deltas already yielded are the partial text); no bytes for
  ``idle_timeout`` seconds -> IdleTimeoutError; no complete reply within ``request_timeout``
  seconds, or a reply over ``max_response_bytes`` -> StreamInterruptedError once text arrived,
  else ProviderError; a 200 that is not what was asked for (HTML, JSON of the wrong shape, a
  non-SSE body to a streamed request, a stream with nothing in it) -> ProviderError saying what
  came. The hint "the partial reply was kept" appears only when text had arrived.
- Real servers nobody here wrote: an OpenAI stream that ends cleanly without a finish reason is
  taken as finished; no usage -> ``Usage.unknown()``; an Anthropic call split into several
  ``tool_use`` blocks under one id is joined back into one call.
- A key reaches only its own host (``_transport.resolve_api_key``); the HTTP client both SDKs
  get enforces the deadline and the size cap (``_transport``).
- Retries of 429/5xx are the SDK's own (``max_retries``); providers add no second layer.
- ``KeyboardInterrupt`` propagates; closing the generator closes the HTTP response.
- The adapter does nothing else: no printing, no history, no tool running.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence

from ..errors import UsageError

if TYPE_CHECKING:
    from ..config import ProviderProfile, Settings
    from ..messages import Message, OutputFormat, StreamEvent, ToolDefinition


class Provider(Protocol):
    name: str
    """The profile name (e.g. ``openai``, ``ollama``)."""
    model: str
    wire: str
    """The wire format spoken now (it may change: OpenAI ``api: auto`` moves to Responses)."""
    cache_key: str | None
    """Set by the caller: the conversation's id (prompt cache key); None when there is none."""

    def stream(self, messages: Sequence[Message], tools: Sequence[ToolDefinition], *,
               system: str | None = None, stream: bool = True,
               output: OutputFormat | None = None) -> Iterator[StreamEvent]:
        ...


def _import_on_fresh_stack(module: str) -> Any:
    """Import ``module`` in a new thread and wait for it.

    Why: CPython 3.11 keeps frames in 16 KiB stack chunks. Imported from deep inside the CLI's
    call stack (typer -> command -> runtime), the SDK's import sat right on a chunk boundary and
    mapped/unmapped a chunk about 6,000 times (~130 ms, measured with strace). A new thread
    starts with an empty stack, like a script's top-level ``import openai``.
    """
    import importlib
    import threading

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["module"] = importlib.import_module(module)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=target, name=f"import-{module}", daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    settle_gc()
    return box["module"]


def settle_gc() -> None:
    """After the big imports: freeze what exists out of the collector (later collections, e.g.
    once per tool step, no longer re-walk the SDK's objects) and restore the default thresholds
    that ``__main__`` raised for the start. Only then: agentcli used as a library, or a second
    provider (/model), leaves the collector alone."""
    import gc

    from .. import STARTUP_GC_THRESHOLD

    if gc.get_threshold() == STARTUP_GC_THRESHOLD:
        gc.freeze()
        gc.set_threshold(700, 10, 10)  # CPython's defaults


def create_provider(profile: ProviderProfile, settings: Settings,
                    warn: Callable[[str], None] | None = None) -> Provider:
    """Build the adapter for ``profile``; the SDK is imported only here, on first use.
    ``warn``: where the local model's one-time warnings go (the REPL passes its own)."""
    adapters = {"openai": openai_adapter(profile),
                "anthropic": ("anthropic", "AnthropicProvider"),
                "local": ("local.provider", "LocalProvider")}
    if profile.type not in adapters:
        raise UsageError(f"unknown provider type '{profile.type}'",
                         hint="use openai, anthropic or local")
    if profile.type != "openai" and getattr(profile, "api", "auto") != "auto":
        raise UsageError(f"--api {profile.api} is for OpenAI profiles; '{profile.name}' is "
                         f"type {profile.type}", hint="leave out --api (and api: in the profile)")
    module, cls = adapters[profile.type]
    adapter = getattr(_import_on_fresh_stack(f"{__package__}.{module}"), cls)
    return adapter(profile, settings, warn=warn)


OPENAI_HOST = "api.openai.com"


def openai_adapter(profile: ProviderProfile) -> tuple[str, str]:
    """(module, class) for an OpenAI profile's ``api``: ``responses``; ``chat``; ``auto``:
    Responses for OpenAI's own host, else Chat Completions that moves to Responses when the
    model refuses tools with reasoning there (``openai_auto``)."""
    from ._transport import host_of

    api = getattr(profile, "api", "auto")
    if api == "responses" or (api == "auto" and host_of(profile.base_url) in (None, OPENAI_HOST)):
        return "openai_responses", "OpenAIResponsesProvider"
    if api == "chat":
        return "openai_chat", "OpenAIProvider"
    return "openai_auto", "OpenAIAutoProvider"
