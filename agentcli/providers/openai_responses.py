"""OpenAI Responses API adapter (``POST /v1/responses``): what today's reasoning models need for
tools. Imports the ``openai`` SDK; only ``create_provider`` (and the Chat Completions adapter,
when it moves a conversation here) imports this module.

The request: ``input`` items (user and assistant messages, ``function_call`` and
``function_call_output`` items, and the model's own ``reasoning`` items sent back as they came),
the system prompt as ``instructions``, function tools with ``strict: false`` (the API's default,
strict, would refuse most plugin schemas), ``store: false`` (nothing of the conversation is kept
on OpenAI's side) with ``include: ["reasoning.encrypted_content"]``, ``reasoning: {effort,
summary}`` and ``prompt_cache_key``.

Reasoning is kept as a ``ReasoningPart`` whose ``data`` is this adapter's own JSON:
``{"item": <the reasoning item exactly as received>, "next": [<the output items that followed
it: {"type", "id", "call_id" | "phase"}>]}``. OpenAI wants a reasoning item back right before the
items it led to, under their own ids (a ``function_call`` whose ``fc_`` id belongs to a
reasoning response is refused without its reasoning item): ``next`` is how those ids survive in
the session store. When a reasoning part is left out (another model, or refused), the items
that followed it are sent without ids, which the API takes as new.
"""

from __future__ import annotations

import json
import re
from contextlib import closing
from typing import Any, Iterator, Sequence

import openai as sdk

from ..errors import ModelNotFoundError, ProviderError, StreamInterruptedError
from ..messages import (Message, Notice, Part, ReasoningDelta, ReasoningPart, ResponseDone,
                        StopReason, StreamEvent, TextDelta, TextPart, ToolCall, ToolDefinition,
                        ToolResult)
from ._common import first_refusal, one_line, parse_arguments, refusal_of
from .openai_chat import OpenAIAdapter, request_options, usage_of

WIRE = "openai_responses"
_REASONING_MODEL = re.compile(r"(o\d|gpt-[5-9])")
_REFUSED_REASONING = re.compile(r"encrypted content|'reasoning'|not persisted", re.IGNORECASE)


def reasons(model: str) -> bool:
    """Does ``model`` reason (o-series, gpt-5 and later, but not the ``-chat`` ones)? Only
    these get ``reasoning`` and ``include`` unasked: other models refuse them."""
    return bool(_REASONING_MODEL.match(model)) and "-chat" not in model


# --- history -> input items ----------------------------------------------------------------------

def convert_input(messages: Sequence[Message], model: str,
                  refused: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Neutral history -> Responses input items. Reasoning parts of another wire format or
    model, or whose item id is in ``refused``, are left out (with the ids of what followed)."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "user":
            for p in m.parts:
                if not isinstance(p, TextPart):
                    raise TypeError(f"a user message holds only TextParts, got {p!r}")
            items.append({"role": "user", "content": m.text})
        elif m.role == "assistant":
            items.extend(_assistant_items(m, model, refused))
        elif m.role == "tool":
            for r in m.parts:
                if not isinstance(r, ToolResult):
                    raise TypeError(f"a tool message holds only ToolResults, got {r!r}")
                output = f"Error: {r.content}" if r.is_error else r.content
                items.append({"type": "function_call_output", "call_id": r.call_id,
                              "output": output})
        else:
            raise ValueError(f"unknown message role {m.role!r}")
    return items


def _unwrap(part: ReasoningPart, model: str, refused: frozenset[str]
            ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(the reasoning item, what followed it), or None when the part is not ours to send."""
    if part.provider != WIRE or part.model != model:
        return None
    try:
        data = json.loads(part.data)
        item, follows = data["item"], data["next"]
    except (ValueError, KeyError, TypeError):
        return None  # not this adapter's JSON: never sent, the turn goes on without it
    if not isinstance(item, dict) or not isinstance(follows, list) or item.get("id") in refused:
        return None
    return item, [f for f in follows if isinstance(f, dict)]


def _assistant_items(m: Message, model: str, refused: frozenset[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    owner: list[int | None] = []  # for each item: the reasoning item whose id list named it
    follows: list[dict[str, Any]] = []  # what followed the last reasoning item sent
    for p in m.parts:
        if isinstance(p, ReasoningPart):
            unwrapped = None if m.interrupted else _unwrap(p, model, refused)
            if unwrapped is not None:
                out.append(unwrapped[0])
                owner.append(None)
                follows = list(unwrapped[1])
            continue
        if isinstance(p, TextPart):
            if not p.text:
                continue
            known = _take(follows, lambda f: f.get("type") == "message")
            item: dict[str, Any] = {"role": "assistant", "content": p.text}
            if known and known.get("id"):
                item = {"type": "message", "role": "assistant", "id": known["id"],
                        "status": "completed",
                        "content": [{"type": "output_text", "text": p.text, "annotations": []}]}
                if known.get("phase"):
                    item["phase"] = known["phase"]
        elif isinstance(p, ToolCall):
            if m.interrupted:
                continue  # a cut-short reply is sent as its text only
            known = _take(follows, lambda f, c=p: f.get("type") == "function_call"
                          and f.get("call_id") == c.id)
            args = p.arguments if parse_arguments(p.arguments) is not None else "{}"
            item = {"type": "function_call", "call_id": p.id, "name": p.name, "arguments": args}
            if known and known.get("id"):
                item["id"] = known["id"]
        else:
            raise TypeError(f"an assistant message cannot hold {p!r}")
        out.append(item)
        owner.append(_last_reasoning(out) if known and known.get("id") else None)
    return _paired(out, owner)


def _last_reasoning(items: list[dict[str, Any]]) -> int | None:
    for i in range(len(items) - 1, -1, -1):
        if items[i].get("type") == "reasoning":
            return i
    return None


def _take(follows: list[dict[str, Any]], match: Any) -> dict[str, Any] | None:
    for i, f in enumerate(follows):
        if match(f):
            return follows.pop(i)
    return None


def _paired(items: list[dict[str, Any]], owner: list[int | None]) -> list[dict[str, Any]]:
    """A reasoning item goes only right before one of its own next items; one that lost them
    (a call that did not run, an empty text) is left out, and the items it vouched for go
    without their ids (the API would look for it)."""
    dropped = {i for i, item in enumerate(items) if item.get("type") == "reasoning"
               and (i + 1 >= len(items) or owner[i + 1] != i)}
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if i in dropped:
            continue
        if owner[i] in dropped:
            if item.get("type") == "message":
                item = {"role": "assistant", "content": item["content"][0]["text"]}
            else:
                item = {k: v for k, v in item.items() if k != "id"}
        out.append(item)
    return out


def convert_tools(tools: Sequence[ToolDefinition]) -> list[dict[str, Any]]:
    return [{"type": "function", "name": t.name, "description": t.description,
             "parameters": t.parameters, "strict": False} for t in tools]


# --- output -> events ----------------------------------------------------------------------------

def _plain(item: Any) -> dict[str, Any]:
    """An SDK item as the JSON it came as (fields the server sent, nothing added)."""
    if isinstance(item, dict):
        return item
    return item.to_dict() if hasattr(item, "to_dict") else dict(item)


def _summary(item: dict[str, Any]) -> str:
    return "\n\n".join(str(s.get("text", "")) for s in item.get("summary") or ()
                       if isinstance(s, dict) and s.get("text"))


def _message_text(item: dict[str, Any]) -> tuple[str, bool]:
    """(the text of an output message, whether the model refused)."""
    text, refused = [], False
    for c in item.get("content") or ():
        if isinstance(c, dict):
            if c.get("type") == "output_text":
                text.append(str(c.get("text") or ""))
            elif c.get("type") == "refusal":
                text.append(str(c.get("refusal") or ""))
                refused = True
    return "".join(text), refused


def assemble(items: list[dict[str, Any]], model: str) -> tuple[list[Part], bool]:
    """The assistant message's parts, in output order; and whether the model refused."""
    parts: list[Part] = []
    refused = False
    for i, item in enumerate(items):
        kind = item.get("type")
        if kind == "reasoning":
            follows = []
            for later in items[i + 1:]:
                if later.get("type") == "reasoning":
                    break
                entry = {k: later[k] for k in ("type", "id", "call_id", "phase") if later.get(k)}
                follows.append(entry)
            data = json.dumps({"item": item, "next": follows}, separators=(",", ":"))
            parts.append(ReasoningPart(WIRE, model, data, _summary(item)))
        elif kind == "message":
            text, no = _message_text(item)
            refused = refused or no
            if text:
                parts.append(TextPart(text))
        elif kind == "function_call":
            parts.append(ToolCall(str(item.get("call_id") or ""), str(item.get("name") or ""),
                                  str(item.get("arguments") or "")))
    return parts, refused


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
        self.pending[index] = {**_plain(item), "arguments": ""} \
            if getattr(item, "type", None) == "function_call" else _plain(item)

    def arguments(self, index: int, delta: str) -> None:
        if index in self.pending and self.pending[index].get("type") == "function_call":
            self.pending[index]["arguments"] += delta

    def done(self, index: int, item: Any) -> None:
        self.items[index] = _plain(item)
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
               system: str | None = None, stream: bool = True) -> Iterator[StreamEvent]:
        sent = _ids(messages) - self._refused
        try:
            refused = yield from first_refusal(
                super().stream(messages, tools, system=system, stream=stream),
                lambda e: bool(sent) and _refuses_reasoning(e))
        except ModelNotFoundError as e:
            raise self._no_responses_api(e) from e
        if refused is None:
            return
        self._refused.update(sent)
        yield Notice(f"the server refused the stored reasoning of this conversation "
                     f"({one_line(str(refused.message))[:160]}): it is left out from now on",
                     level="info")
        yield from super().stream(messages, tools, system=system, stream=stream)

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
        items = [i for i in (_plain(x) for x in getattr(got.final, "output", None) or ())] \
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

        return self.client.post("/responses", body={**params, "stream": True}, cast_to=Response,
                                options=request_options(), stream=True,
                                stream_cls=sdk.Stream[ResponseStreamEvent])

    def _complete(self, params: dict[str, Any]) -> Iterator[StreamEvent]:
        resp, http = self._raw(self.client.responses.with_raw_response.create, params)
        output = getattr(resp, "output", None)
        if not isinstance(output, list) or getattr(resp, "object", "response") != "response":
            raise self.errors.wrong_shape(http, "a Responses API reply")
        if getattr(resp, "status", None) == "failed":
            raise self._failed(resp, "")
        items = [_plain(x) for x in output]
        for item in items:
            if item.get("type") == "reasoning" and _summary(item):
                yield ReasoningDelta(_summary(item))
            elif item.get("type") == "message" and _message_text(item)[0]:
                yield TextDelta(_message_text(item)[0])
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


def _ids(messages: Sequence[Message]) -> set[str]:
    """The item ids of the reasoning parts in ``messages``."""
    out = set()
    for m in messages:
        for p in m.reasoning:
            try:
                out.add(str(json.loads(p.data)["item"]["id"]))
            except (ValueError, KeyError, TypeError):
                continue
    return out
