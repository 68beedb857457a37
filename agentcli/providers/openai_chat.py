"""OpenAI Chat Completions adapter (and so every OpenAI-compatible server: Ollama, vLLM,
LM Studio, llama.cpp server, OpenRouter). Imports the ``openai`` SDK; only ``create_provider``
imports this module."""

from __future__ import annotations

import functools
from contextlib import closing
from typing import Any, Iterator, Sequence

import openai as sdk

from ..messages import (Message, Part, ResponseDone, StopReason, StreamEvent, TextDelta,
                        TextPart, ToolCall, ToolDefinition, ToolResult, Usage)
from . import compat
from ._common import SDKAdapter, parse_arguments
from .media import chat_part, post_body, unsent_note, user_content

OFFICIAL_HOST = "api.openai.com"
DEFAULT_URL = "https://api.openai.com/v1"

_STOP_REASONS: dict[str, StopReason] = {"stop": "end_turn", "tool_calls": "tool_calls",
                                        "function_call": "tool_calls", "length": "max_tokens",
                                        "content_filter": "content_filter"}


def convert_messages(messages: Sequence[Message], system: str | None,
                     urls: bool = False) -> list[dict[str, Any]]:
    """Neutral history -> Chat Completions messages (system prompt first). ``urls``: the server
    fetches image URLs itself (OpenAI's own API); else images go as data URLs."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        if m.role == "user":
            out.append({"role": "user",
                        "content": user_content(m, lambda p: chat_part(p, urls), "text")})
        elif m.role == "assistant":
            out.append(_assistant(m))
        elif m.role == "tool":
            for r in m.parts:
                if not isinstance(r, ToolResult):
                    raise TypeError(f"a tool message holds only ToolResults, got {r!r}")
                content = f"Error: {r.content}" if r.is_error else r.content
                if r.media:  # tool messages take only text
                    content += "\n" + unsent_note(r.media)
                out.append({"role": "tool", "tool_call_id": r.call_id, "content": content})
        else:
            raise ValueError(f"unknown message role {m.role!r}")
    return out


def _assistant(m: Message) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []
    for p in m.parts:
        if isinstance(p, TextPart):
            continue
        if isinstance(p, ToolCall):
            if m.interrupted:
                continue  # a cut-short reply is sent as its text only
            # A call whose arguments were not a JSON object was answered with an error result;
            # some compatible servers parse the arguments, so send them an empty object.
            args = p.arguments if parse_arguments(p.arguments) is not None else "{}"
            calls.append({"id": p.id, "type": "function",
                          "function": {"name": p.name, "arguments": args}})
        else:
            raise TypeError(f"an assistant message cannot hold {p!r}")
    # never `content: null`: llama-cpp-python's server answers HTTP 500 to it (and to a missing
    # content), while "" is accepted by it, OpenAI, Ollama, vLLM and llama.cpp alike
    msg: dict[str, Any] = {"role": "assistant", "content": m.text}
    if calls:
        msg["tool_calls"] = calls
    return msg


def convert_tools(tools: Sequence[ToolDefinition]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in tools]


def _stop_reason(finish: str | None, has_calls: bool) -> StopReason:
    reason = _STOP_REASONS.get(finish or "", "end_turn")
    if has_calls and reason == "end_turn":  # some compatible servers say "stop" with tool calls
        return "tool_calls"
    return reason


def usage_of(u: Any, inp: str = "prompt", out: str = "completion") -> Usage:
    """OpenAI's usage object, with its cached and reasoning details (Chat Completions names the
    counts ``prompt``/``completion``, the Responses API ``input``/``output``)."""
    if u is None:
        return Usage.unknown()
    given = getattr(u, f"{inp}_tokens_details", None)
    made = getattr(u, f"{out}_tokens_details", None)
    return Usage.reported(int(getattr(u, f"{inp}_tokens", 0) or 0),
                          int(getattr(u, f"{out}_tokens", 0) or 0),
                          cached=int(getattr(given, "cached_tokens", 0) or 0),
                          cache_write=int(getattr(given, "cache_write_tokens", 0) or 0),
                          reasoning=int(getattr(made, "reasoning_tokens", 0) or 0))


def _response(text: str, calls: list[ToolCall], finish: str | None, usage: Usage) -> ResponseDone:
    parts: list[Part] = [TextPart(text)] if text else []
    parts.extend(calls)
    return ResponseDone(Message("assistant", tuple(parts)), _stop_reason(finish, bool(calls)),
                        usage)


class _CallSlots:
    """Tool calls assembled from streamed pieces, keyed by index (a new id at a used index starts
    a new call: some compatible servers send every call at index 0)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._by_index: dict[int, int] = {}

    def add(self, piece: Any) -> None:
        index = piece.index if piece.index is not None else len(self.calls)
        slot = self._by_index.get(index)
        known_id = self.calls[slot]["id"] if slot is not None else ""
        if slot is None or (piece.id and known_id and piece.id != known_id):
            self.calls.append({"id": "", "name": "", "arguments": []})
            slot = self._by_index[index] = len(self.calls) - 1
        call = self.calls[slot]
        if piece.id:
            call["id"] = piece.id
        fn = piece.function
        if fn is not None:
            if fn.name and not call["name"]:
                call["name"] = fn.name
            if fn.arguments:
                call["arguments"].append(fn.arguments)

    def ready(self) -> list[ToolCall]:
        """The assembled calls; an id the server did not send stays empty (the agent names it)."""
        return [ToolCall(c["id"], c["name"], "".join(c["arguments"])) for c in self.calls]


@functools.lru_cache(maxsize=1)
def request_options() -> Any:
    """The request options ``create`` passes: newer SDKs add the bearer key only when asked."""
    from openai._base_client import make_request_options

    try:
        return make_request_options(security={"bearer_auth": True})
    except TypeError:  # an SDK without per-request security always sends the key
        return make_request_options()


class OpenAIAdapter(SDKAdapter):
    """What both OpenAI adapters (Chat Completions, Responses) share: the SDK and its client."""

    cache_key: str | None = None
    sdk = sdk
    client_class = sdk.OpenAI
    vendor = "OpenAI"
    official_host = OFFICIAL_HOST
    default_url = DEFAULT_URL

    def conversation_key(self) -> str:
        """``prompt_cache_key``: the caller's ``cache_key`` (the session id), else a key of this
        adapter's own that stays the same for the conversation."""
        if self.cache_key:
            return self.cache_key
        if "_own_key" not in self.__dict__:
            import uuid

            self._own_key = f"agentcli-{uuid.uuid4()}"
        return self._own_key


class OpenAIProvider(OpenAIAdapter):
    """Chat Completions over the official SDK; see ``providers.base`` for the contract."""

    wire = "openai_chat"
    _stream_options = True  # cleared on a server that refuses stream_options

    def stream(self, messages: Sequence[Message], tools: Sequence[ToolDefinition], *,
               system: str | None = None, stream: bool = True,
               output: Any = None) -> Iterator[StreamEvent]:
        if "fallback" not in vars(self):  # a server that cannot stream tool calls: once a run
            self.fallback = compat.StreamFallback(self.errors.who)
        return self.fallback.stream(super().stream, messages, tools, system=system,
                                    stream=stream, output=output)

    def _params(self, messages: Sequence[Message], tools: Sequence[ToolDefinition],
                system: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model,
                                  "messages": convert_messages(messages, system, self.official)}
        if tools:
            params["tools"] = convert_tools(compat.sendable(tools, self.official))
            # OpenAI's default, but llama-cpp-python's server takes a missing one as "none"
            params["tool_choice"] = "auto"
        if self.profile.max_tokens:
            key = "max_completion_tokens" if self.official else "max_tokens"
            params[key] = self.profile.max_tokens
        if self.profile.reasoning is not None:
            params["reasoning_effort"] = self.profile.reasoning
        if self.official and self.profile.cache:  # other servers may refuse the field
            params["prompt_cache_key"] = self.conversation_key()
        return params

    def _output(self, params: dict[str, Any], output: Any) -> list[str]:
        """``response_format: {type: json_schema, json_schema: {name, schema, strict}}``, which
        OpenAI and the compatible servers (Ollama, vLLM, llama.cpp) take alike."""
        from .schema_wire import openai_json_schema

        spec, notes = openai_json_schema(output)
        params["response_format"] = {"type": "json_schema", "json_schema": spec}
        return notes

    def _stream(self, params: dict[str, Any]) -> Iterator[StreamEvent]:
        text: list[str] = []
        slots = _CallSlots()
        usage = Usage.unknown()
        finish: str | None = None
        refused = False  # a strict-mode refusal streams as `refusal` instead of `content`
        chunks = self.errors.iterate(lambda: self._open_stream(params), text)
        with closing(chunks):  # closing this generator early closes the HTTP response
            for chunk in chunks:
                if getattr(chunk, "usage", None):
                    usage = usage_of(chunk.usage)
                for choice in chunk.choices or ():
                    if choice.index not in (0, None):
                        continue
                    delta = choice.delta
                    if delta is not None:
                        piece = delta.content or getattr(delta, "refusal", None)
                        if piece:
                            refused = refused or not delta.content
                            text.append(piece)
                            yield TextDelta(piece)
                        for piece in delta.tool_calls or ():
                            slots.add(piece)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        calls = slots.ready()
        if finish is None and not text and not calls:
            raise self.errors.empty_stream()
        # a stream that ended cleanly without a finish reason (some compatible servers never
        # send one; a dropped connection is an error above) is taken as finished
        yield _response("".join(text), calls, "content_filter" if refused else finish, usage)

    def _open_stream(self, params: dict[str, Any]) -> Any:
        if self._stream_options:
            try:
                return self._post_stream({**params, "stream_options": {"include_usage": True}})
            except sdk.BadRequestError as e:
                if "stream_options" not in str(e):
                    raise
                self._stream_options = False  # an older compatible server: no usage then
        return self._post_stream(params)

    def _post_stream(self, params: dict[str, Any]) -> Any:
        """What ``client.chat.completions.create(stream=True)`` does — the same client, request,
        retries, errors and SSE parsing — minus its ``maybe_transform`` of the body, which
        re-walks every message against the SDK's TypedDicts on each request (26 ms for a
        120-message history here, so a long tool chain grew quadratically). Our body is plain
        JSON already (``convert_messages``), which that transform leaves unchanged."""
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        body = post_body(self.client, {**params, "stream": True}, request_options())
        return self.client.post("/chat/completions", **body, cast_to=ChatCompletion,
                                stream=True, stream_cls=sdk.Stream[ChatCompletionChunk])

    def _complete(self, params: dict[str, Any]) -> Iterator[StreamEvent]:
        resp, http = self._raw(self.client.chat.completions.with_raw_response.create, params)
        choices = getattr(resp, "choices", None)
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = getattr(choice, "message", None)
        if message is None or isinstance(message, (str, list)):
            raise self.errors.wrong_shape(http, "a chat completion")
        content = getattr(message, "content", None) or ""
        refusal = getattr(message, "refusal", None) if not content else None
        if refusal:
            content = str(refusal)
        if content:
            yield TextDelta(content)
        assembled = []
        for c in getattr(message, "tool_calls", None) or []:
            fn = getattr(c, "function", None)
            assembled.append(ToolCall(getattr(c, "id", None) or "",
                                      getattr(fn, "name", None) or "",
                                      getattr(fn, "arguments", None) or ""))
        yield _response(content, assembled, "content_filter" if refusal else
                        getattr(choice, "finish_reason", None),
                        usage_of(getattr(resp, "usage", None)))
