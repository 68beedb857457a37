"""OpenAI Responses API adapter (``POST /v1/responses``): what today's reasoning models need for
tools. Imports the ``openai`` SDK; only ``create_provider`` (and the Chat Completions adapter,
when it moves a conversation here) imports this module.

The request: ``input`` items (user and assistant messages, ``function_call`` and
``function_call_output`` items, and the model's own ``reasoning`` items sent back as they came),
the system prompt as ``instructions``, function tools with ``strict: false`` (the API's default,
strict, would refuse most plugin schemas), ``store: false`` (nothing of the conversation is kept
on OpenAI's side) with ``include: ["reasoning.encrypted_content"]``, ``reasoning: {effort,
summary}`` and ``prompt_cache_key``.

Items and reasoning parts are converted in ``responses_items``.
"""

from __future__ import annotations

import re
from contextlib import closing
from typing import Any, Iterator, Sequence

import openai as sdk

from ..errors import ModelNotFoundError, ProviderError, StreamInterruptedError
from ..messages import (Message, Notice, ReasoningDelta, ResponseDone, StopReason, StreamEvent,
                        TextDelta, TextPart, ToolCall, ToolDefinition)
from ._common import first_refusal, one_line, refusal_of
from .media import post_body
from .openai_chat import OpenAIAdapter, request_options, usage_of
from .responses_items import (WIRE, assemble, convert_input, convert_tools, message_text,
                              plain_item, reasoning_ids, summary_of)

_REASONING_MODEL = re.compile(r"(o\d|gpt-[5-9])")
_REFUSED_REASONING = re.compile(r"encrypted content|'reasoning'|not persisted", re.IGNORECASE)


def reasons(model: str) -> bool:
    """Does ``model`` reason (o-series, gpt-5 and later, but not the ``-chat`` ones; a proxy's
    ``openai/`` prefix aside)? Only these get ``reasoning`` and ``include`` unasked: other models
    refuse them."""
    name = model.rsplit("/", 1)[-1]
    return bool(_REASONING_MODEL.match(name)) and "-chat" not in name


def _stop_reason(status: Any, details: Any, has_calls: bool, refused: bool) -> StopReason:
    if status == "incomplete":
        reason = getattr(details, "reason", None) if not isinstance(details, dict) else \
            details.get("reason")
        if reason == "content_filter":
            return "content_filter"
        return "max_tokens"
    if refused:
        return "content_filter"
    return "tool_calls" if has_calls else "end_turn"


class _Collector:
    """The stream's events folded into the output items (``response.output_item.done`` holds
    each complete item; added items and argument deltas stand in when a proxy leaves it out)."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}
        self.pending: dict[int, dict[str, Any]] = {}
        self.final: Any = None

    def added(self, index: int, item: Any) -> None:
        self.pending[index] = {**plain_item(item), "arguments": ""} \
            if getattr(item, "type", None) == "function_call" else plain_item(item)

    def arguments(self, index: int, delta: str) -> None:
        if index in self.pending and self.pending[index].get("type") == "function_call":
            self.pending[index]["arguments"] += delta

    def done(self, index: int, item: Any) -> None:
        self.items[index] = plain_item(item)
        self.pending.pop(index, None)

    def output(self) -> list[dict[str, Any]]:
        merged = {**self.pending, **self.items}
        return [merged[i] for i in sorted(merged)]


class OpenAIResponsesProvider(OpenAIAdapter):
    """The Responses API over the official SDK; see ``providers.base`` for the contract."""

    wire = WIRE

    def __init__(self, profile: Any, settings: Any, warn: Any = None) -> None:
        super().__init__(profile, settings, warn)
        self.hide_reasoning = bool(getattr(settings, "hide_reasoning", False))
        self._refused: set[str] = set()  # reasoning items the server would not take back

    @classmethod
    def beside(cls, chat: Any) -> OpenAIResponsesProvider:
        """A Responses adapter sharing ``chat``'s client, key, bounds and conversation key."""
        new = cls.__new__(cls)
        for name in ("name", "profile", "model", "official", "errors", "budget", "client"):
            setattr(new, name, getattr(chat, name))
        new.hide_reasoning = bool(getattr(chat.errors.settings, "hide_reasoning", False))
        new._refused = set()
        new.cache_key = getattr(chat, "cache_key", None)
        new._own_key = chat.conversation_key()  # the cache key stays the conversation's
        return new

    def stream(self, messages: Sequence[Message], tools: Sequence[ToolDefinition], *,
               system: str | None = None, stream: bool = True,
               output: Any = None) -> Iterator[StreamEvent]:
        sent = reasoning_ids(messages) - self._refused
        try:
            refused = yield from first_refusal(
                super().stream(messages, tools, system=system, stream=stream, output=output),
                lambda e: bool(sent) and _refuses_reasoning(e))
        except ModelNotFoundError as e:
            raise self._no_responses_api(e) from e
        if refused is None:
            return
        self._refused.update(sent)
        yield Notice(f"the server refused the stored reasoning of this conversation "
                     f"({one_line(str(refused.message))[:160]}): it is left out from now on",
                     level="info")
        yield from super().stream(messages, tools, system=system, stream=stream, output=output)

    def _no_responses_api(self, e: ModelNotFoundError) -> ProviderError:
        refusal = refusal_of(e)
        if refusal is not None and (refusal.code == "model_not_found"
                                    or re.search(r"\bmodel\b", refusal.message, re.I)):
            return e
        url = f"{self.errors.base_url}/responses"
        return ProviderError(f"{url} does not exist: this server has no Responses API "
                             f"({one_line(str(e))})",
                             hint="use --api chat (Chat Completions), or api: chat in the "
                                  "profile")

    def _params(self, messages: Sequence[Message], tools: Sequence[ToolDefinition],
                system: str | None) -> dict[str, Any]:
        profile = self.profile
        params: dict[str, Any] = {
            "model": self.model, "store": False,
            "input": convert_input(messages, self.model, frozenset(self._refused))}
        if system:
            params["instructions"] = system
        if tools:
            params["tools"] = convert_tools(tools)
        if profile.max_tokens:
            params["max_output_tokens"] = profile.max_tokens
        if profile.reasoning is not None or reasons(self.model):
            reasoning: dict[str, Any] = {}
            if profile.reasoning is not None:
                reasoning["effort"] = profile.reasoning
            if not self.hide_reasoning and profile.reasoning != "none":
                reasoning["summary"] = "auto"
            params["reasoning"] = reasoning
            params["include"] = ["reasoning.encrypted_content"]
        if profile.cache:
            params["prompt_cache_key"] = self.conversation_key()
        return params

    def _output(self, params: dict[str, Any], output: Any) -> list[str]:
        """``text: {format: {type: json_schema, name, schema, strict}}``."""
        from .schema_wire import openai_json_schema

        spec, notes = openai_json_schema(output)
        params["text"] = {"format": {"type": "json_schema", **spec}}
        return notes

    def _stream(self, params: dict[str, Any]) -> Iterator[StreamEvent]:
        text: list[str] = []
        got = _Collector()
        events = self.errors.iterate(lambda: self._post_stream(params), text)
        with closing(events):  # closing this generator early closes the HTTP response
            for ev in events:
                kind = getattr(ev, "type", None)
                if kind == "response.output_text.delta" or kind == "response.refusal.delta":
                    if ev.delta:
                        text.append(ev.delta)
                        yield TextDelta(ev.delta)
                elif kind == "response.reasoning_summary_text.delta":
                    if ev.delta:
                        yield ReasoningDelta(ev.delta)
                elif kind == "response.reasoning_summary_part.added":
                    if getattr(ev, "summary_index", 0):
                        yield ReasoningDelta("\n\n")
                elif kind == "response.output_item.added":
                    got.added(ev.output_index, ev.item)
                elif kind == "response.function_call_arguments.delta":
                    got.arguments(ev.output_index, ev.delta)
                elif kind == "response.output_item.done":
                    got.done(ev.output_index, ev.item)
                elif kind in ("response.completed", "response.incomplete"):
                    got.final = ev.response
                elif kind in ("error", "response.failed"):
                    raise self._failed(ev, "".join(text))
        yield self._done(got, "".join(text))

    def _failed(self, ev: Any, partial: str) -> ProviderError:
        error = getattr(ev, "error", None) or getattr(getattr(ev, "response", None), "error",
                                                      None) or ev
        message = one_line(str(getattr(error, "message", "") or "the server failed the reply"),
                           self.errors.secret)
        return StreamInterruptedError(f"the reply was cut off by a server error: {message}",
                                      partial_text=partial,
                                      hint=("the partial reply was kept; " if partial else "")
                                      + "try again")

    def _done(self, got: _Collector, streamed: str) -> ResponseDone:
        items = [i for i in (plain_item(x) for x in getattr(got.final, "output", None) or ())] \
            if got.final is not None and not got.items else got.output()
        parts, refused = assemble(items, self.model)
        if not any(isinstance(p, TextPart) for p in parts) and streamed:
            parts.append(TextPart(streamed))  # the text came, its item did not
        calls = [p for p in parts if isinstance(p, ToolCall)]
        if got.final is None:
            if not parts:
                raise self.errors.empty_stream()
            if got.pending:  # an item never finished: the stream was cut
                raise self.errors.cut_off([streamed], "response.completed")
        final = got.final
        stop = _stop_reason(getattr(final, "status", None),
                            getattr(final, "incomplete_details", None), bool(calls), refused)
        return ResponseDone(Message("assistant", tuple(parts)), stop,
                            usage_of(getattr(final, "usage", None), "input", "output"))

    def _post_stream(self, params: dict[str, Any]) -> Any:
        """``client.responses.create(stream=True)`` without its per-request transform of the
        body (see the Chat Completions adapter's ``_post_stream``): same client, retries, errors
        and SSE parsing."""
        from openai.types.responses import Response, ResponseStreamEvent

        body = post_body(self.client, {**params, "stream": True}, request_options())
        return self.client.post("/responses", **body, cast_to=Response, stream=True,
                                stream_cls=sdk.Stream[ResponseStreamEvent])

    def _complete(self, params: dict[str, Any]) -> Iterator[StreamEvent]:
        resp, http = self._raw(self.client.responses.with_raw_response.create, params)
        output = getattr(resp, "output", None)
        if not isinstance(output, list) or getattr(resp, "object", "response") != "response":
            raise self.errors.wrong_shape(http, "a Responses API reply")
        if getattr(resp, "status", None) == "failed":
            raise self._failed(resp, "")
        items = [plain_item(x) for x in output]
        for item in items:
            if item.get("type") == "reasoning" and summary_of(item):
                yield ReasoningDelta(summary_of(item))
            elif item.get("type") == "message" and message_text(item)[0]:
                yield TextDelta(message_text(item)[0])
        got = _Collector()
        got.final = resp
        yield self._done(got, "")


def _refuses_reasoning(err: ProviderError) -> bool:
    """Is ``err`` the server refusing reasoning items it was sent (altered, another
    organisation's, or not its own)?"""
    refusal = refusal_of(err)
    return refusal is not None and refusal.status == 400 and (
        refusal.code == "invalid_encrypted_content"
        or bool(_REFUSED_REASONING.search(refusal.message)))
