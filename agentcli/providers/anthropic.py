"""Anthropic Messages API adapter. Imports the ``anthropic`` SDK; only ``create_provider``
imports this module."""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any, Iterator, Sequence

import anthropic as sdk

from ..errors import ProviderError
from ..messages import (MediaPart, Message, Part, ReasoningDelta, ReasoningPart, ResponseDone,
                        StopReason, StreamEvent, TextDelta, TextPart, ToolCall, ToolDefinition,
                        ToolResult, Usage)
from ._common import SDKAdapter, parse_arguments
from .anthropic_request import (add_cache_breakpoints, answer_items, merge_usage,
                                reasoning_hint, structured_params, thinking_params, usage_of)
from .media import anthropic_block, plain, post_body

OFFICIAL_HOST = "api.anthropic.com"
DEFAULT_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 4096

_STOP_REASONS: dict[str, StopReason] = {"end_turn": "end_turn", "stop_sequence": "end_turn",
                                        "tool_use": "tool_calls", "max_tokens": "max_tokens",
                                        "model_context_window_exceeded": "max_tokens",
                                        "refusal": "content_filter"}


def convert_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Neutral history -> Messages API turns. Tool results travel in a user turn, and
    consecutive turns of one role are merged (tool results then a user message are one turn)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role, blocks = _blocks(m)
        if not blocks:
            continue  # the API refuses empty turns and empty text blocks
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _blocks(m: Message) -> tuple[str, list[dict[str, Any]]]:
    blocks: list[dict[str, Any]] = []
    if m.role == "user":
        for p in m.parts:
            if isinstance(p, MediaPart):
                blocks.append(anthropic_block(p))
            elif not isinstance(p, TextPart):
                raise TypeError(f"a user message holds only TextParts and MediaParts, got {p!r}")
            elif p.text.strip():  # the API refuses blank text blocks
                blocks.append({"type": "text", "text": p.text})
        return "user", blocks
    if m.role == "assistant":
        for p in m.parts:
            if isinstance(p, TextPart):
                if p.text.strip():
                    blocks.append({"type": "text", "text": p.text})
            elif isinstance(p, ReasoningPart):
                block = _reasoning_block(p)
                if block is not None and not m.interrupted:
                    blocks.append(block)
            elif isinstance(p, ToolCall):
                if m.interrupted:
                    continue  # a cut-short reply is sent as its text only
                # invalid arguments were answered with an error result; the API wants an object
                blocks.append({"type": "tool_use", "id": p.id, "name": p.name,
                               "input": parse_arguments(p.arguments) or {}})
            else:
                raise TypeError(f"an assistant message cannot hold {p!r}")
        return "assistant", blocks
    if m.role == "tool":
        for r in m.parts:
            if not isinstance(r, ToolResult):
                raise TypeError(f"a tool message holds only ToolResults, got {r!r}")
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": r.call_id}
            if r.media:  # text, then the tool's images and documents
                text = [{"type": "text", "text": r.content}] if r.content.strip() else []
                block["content"] = [*text, *(anthropic_block(p) for p in r.media)]
            elif r.content:  # optional in the API, and an empty string is refused
                block["content"] = r.content
            if r.is_error:
                block["is_error"] = True
            blocks.append(block)
        return "user", blocks
    raise ValueError(f"unknown message role {m.role!r}")


def _reasoning_block(p: ReasoningPart) -> dict[str, Any] | None:
    """The thinking block exactly as it came (the agent sends only this wire's and model's);
    None for another provider's item or data that is not a block."""
    if p.provider != "anthropic":
        return None
    try:
        block = json.loads(p.data)
    except ValueError:
        return None
    return block if isinstance(block, dict) else None


def convert_tools(tools: Sequence[ToolDefinition]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in tools]


def _stop_reason(reason: str | None, has_calls: bool) -> StopReason:
    stop = _STOP_REASONS.get(reason or "", "end_turn")
    if has_calls and stop == "end_turn":
        return "tool_calls"
    return stop


_REASONING_BLOCKS = ("thinking", "redacted_thinking")


def reasoning_part(model: str, block: dict[str, Any]) -> ReasoningPart:
    """A thinking or redacted_thinking block, kept whole (signature or data included)."""
    text = block.get("thinking") if block.get("type") == "thinking" else ""
    return ReasoningPart("anthropic", model, json.dumps(block),
                         text if isinstance(text, str) else "")


def _parts(items: list[tuple[str, Any]]) -> list[Part]:
    """The reply's blocks, in order, as message parts: adjacent text joined, each run of
    tool_use blocks through ``merge_split_calls``, reasoning kept where it came."""
    parts: list[Part] = []
    tools: list[dict[str, Any]] = []
    for kind, value in [*items, ("end", None)]:
        if kind != "tool" and tools:
            parts.extend(merge_split_calls(tools))
            tools = []
        if kind == "tool":
            tools.append(value)
        elif kind == "text" and value:
            if parts and isinstance(parts[-1], TextPart):
                parts[-1] = TextPart(parts[-1].text + value)
            else:
                parts.append(TextPart(value))
        elif kind == "reasoning":
            parts.append(value)
    return parts


def _response(items: list[tuple[str, Any]], stop: str | None, usage: Usage) -> ResponseDone:
    parts = _parts(items)
    has_calls = any(isinstance(p, ToolCall) for p in parts)
    reason = _stop_reason(stop, has_calls)
    if reason == "tool_calls" and not has_calls:  # the answer tool was the only call
        reason = "end_turn"
    return ResponseDone(Message("assistant", tuple(parts)), reason, usage)


def _tool_block(block: Any) -> dict[str, Any]:
    start = getattr(block, "input", None)
    # a compatible server may leave the id out: the agent names it
    return {"id": getattr(block, "id", None) or "", "name": getattr(block, "name", None) or "",
            "pieces": [], "start": start if isinstance(start, dict) else None}


class _Blocks:
    """The content blocks of one streamed reply, assembled by index: text (shown as it comes),
    thinking (shown as reasoning, kept verbatim with its signature), redacted thinking, and
    tool_use (arguments joined from their pieces). ``items`` holds the finished ones in order."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.text: list[str] = []  # every text delta: the partial reply if the stream breaks
        self.items: list[tuple[str, Any]] = []
        self._open: dict[int, dict[str, Any]] = {}

    def start(self, index: int, block: Any) -> Iterator[StreamEvent]:
        kind = getattr(block, "type", None)
        if kind == "tool_use":
            self._open[index] = {"kind": "tool", "tool": _tool_block(block)}
        elif kind in _REASONING_BLOCKS:
            raw = block.to_dict() if hasattr(block, "to_dict") else {"type": kind}
            self._open[index] = {"kind": "reasoning", "block": raw,
                                 "pieces": [raw.get("thinking") or ""]}
            yield from self._reasoning(raw.get("thinking") or "")
        elif kind == "text":
            self._open[index] = {"kind": "text", "pieces": []}
            yield from self._text(index, getattr(block, "text", None) or "")

    def delta(self, index: int, delta: Any) -> Iterator[StreamEvent]:
        kind = delta.type
        entry = self._open.get(index)
        if kind == "text_delta":
            if entry is None:  # a server that skipped content_block_start
                entry = self._open[index] = {"kind": "text", "pieces": []}
            yield from self._text(index, delta.text or "")
        elif entry is None:
            return
        elif kind == "input_json_delta" and entry["kind"] == "tool":
            entry["tool"]["pieces"].append(delta.partial_json)
        elif kind == "thinking_delta" and entry["kind"] == "reasoning":
            entry["pieces"].append(delta.thinking or "")
            yield from self._reasoning(delta.thinking or "")
        elif kind == "signature_delta" and entry["kind"] == "reasoning":
            entry["block"]["signature"] = (entry["block"].get("signature") or "") + \
                (delta.signature or "")
        # citation deltas are not part of our model

    def stop(self, index: int) -> None:
        entry = self._open.pop(index, None)
        if entry is None:
            return
        if entry["kind"] == "tool":
            self.items.append(("tool", entry["tool"]))
        elif entry["kind"] == "text":
            self.items.append(("text", "".join(entry["pieces"])))
        else:
            block = entry["block"]
            if block.get("type") == "thinking":
                block["thinking"] = "".join(entry["pieces"])
            self.items.append(("reasoning", reasoning_part(self.model, block)))

    def close(self) -> None:
        """The message ended: text and thinking still open are kept (a tool_use block that
        never finished is not: its arguments may be cut)."""
        for index in sorted(self._open):
            if self._open[index]["kind"] != "tool":
                self.stop(index)
        self._open.clear()

    def _text(self, index: int, piece: str) -> Iterator[StreamEvent]:
        if piece:
            self._open[index]["pieces"].append(piece)
            self.text.append(piece)
            yield TextDelta(piece)

    @staticmethod
    def _reasoning(piece: str) -> Iterator[StreamEvent]:
        if piece:
            yield ReasoningDelta(piece)


class AnthropicProvider(SDKAdapter):
    """Messages API over the official SDK; see ``providers.base`` for the contract."""

    wire = "anthropic"
    cache_key: str | None = None

    sdk = sdk
    client_class = sdk.Anthropic
    vendor = "Anthropic"
    official_host = OFFICIAL_HOST
    default_url = DEFAULT_URL

    _answer: str | None = None  # the forced answer tool of the request in flight, if any

    def stream(self, messages: Sequence[Any], tools: Sequence[Any], *,
               system: str | None = None, stream: bool = True,
               output: Any = None) -> Iterator[Any]:
        self._answer = None
        try:
            yield from super().stream(messages, tools, system=system, stream=stream,
                                      output=output)
        except ProviderError as e:
            reasoning_hint(e, self.profile.reasoning)
            raise

    def _params(self, messages: Sequence[Message], tools: Sequence[ToolDefinition],
                system: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model,
                                  **thinking_params(self.model, self.profile.reasoning,
                                                    self.profile.max_tokens
                                                    or DEFAULT_MAX_TOKENS),
                                  "messages": convert_messages(messages)}
        if system:
            params["system"] = system
        if tools:
            params["tools"] = convert_tools(tools)
        if self.profile.cache:
            add_cache_breakpoints(params)
        return params

    def _output(self, params: dict[str, Any], output: Any) -> list[str]:
        self._answer, notes = structured_params(params, self.model, output.schema,
                                                getattr(sdk, "transform_schema", None))
        return notes

    def _stream(self, params: dict[str, Any]) -> Iterator[StreamEvent]:
        blocks = _Blocks(self.model)
        usage: dict[str, int] = {}
        stop: str | None = None
        stopped = False
        events = self.errors.iterate(lambda: self._open_stream(params), blocks.text)
        with closing(events):  # closing this generator early closes the HTTP response
            for ev in events:
                kind = ev.type
                if kind == "message_start":
                    usage = merge_usage(getattr(ev.message, "usage", None), usage)
                elif kind == "content_block_start":
                    yield from blocks.start(ev.index, ev.content_block)
                elif kind == "content_block_delta":
                    yield from blocks.delta(ev.index, ev.delta)
                elif kind == "content_block_stop":
                    blocks.stop(ev.index)
                elif kind == "message_delta":
                    stop = ev.delta.stop_reason or stop
                    usage = merge_usage(ev.usage, usage)
                elif kind == "message_stop":
                    stopped = True
        if not stopped:
            raise self.errors.cut_off(blocks.text, "message_stop")
        blocks.close()
        yield from self._done(blocks.items, stop, usage_of(usage))

    def _done(self, items: list[tuple[str, Any]], stop: str | None,
              usage: Usage) -> Iterator[StreamEvent]:
        items, answer = answer_items(items, self._answer)
        if answer:  # shown like any reply text
            yield TextDelta(answer)
        yield _response(items, stop, usage)

    def _open_stream(self, params: dict[str, Any]) -> Any:
        """``messages.create(stream=True)``; a request with attachments is posted as the same
        JSON with their base64 copied in rather than re-encoded (``media.json_pieces``)."""
        body = post_body(self.client, {**params, "stream": True})
        if "content" not in body:
            return self.client.messages.create(**_sendable(plain(params)), stream=True)
        from anthropic.types import Message as WireMessage
        from anthropic.types import RawMessageStreamEvent

        return self.client.post("/v1/messages", **body, cast_to=WireMessage, stream=True,
                                stream_cls=sdk.Stream[RawMessageStreamEvent])

    def _complete(self, params: dict[str, Any]) -> Iterator[StreamEvent]:
        params = _sendable(params)
        resp, http = self._raw(self.client.messages.with_raw_response.create, params)
        content = getattr(resp, "content", None)
        if not isinstance(content, list):
            raise self.errors.wrong_shape(http, "a Messages API reply")
        raw = _raw_content(http)
        items: list[tuple[str, Any]] = []
        for i, block in enumerate(content):
            kind = getattr(block, "type", None)
            if kind == "text" and getattr(block, "text", None):
                items.append(("text", block.text))
                yield TextDelta(block.text)
            elif kind == "tool_use":
                items.append(("tool", _tool_block(block)))
            elif kind in _REASONING_BLOCKS:
                sent = raw[i] if i < len(raw) and isinstance(raw[i], dict) \
                    and raw[i].get("type") == kind else block.to_dict()
                part = reasoning_part(self.model, sent)
                items.append(("reasoning", part))
                if part.text:
                    yield ReasoningDelta(part.text)
        yield from self._done(items, getattr(resp, "stop_reason", None),
                              usage_of(merge_usage(getattr(resp, "usage", None), {})))


def _sendable(params: dict[str, Any]) -> dict[str, Any]:
    """The SDK (2026) has no sampling parameters any more, while the API still takes
    ``temperature`` on the models that allow it: it goes as an extra body key."""
    if "temperature" not in params:
        return params
    rest = {k: v for k, v in params.items() if k != "temperature"}
    return {**rest, "extra_body": {"temperature": params["temperature"]}}


def _raw_content(http: Any) -> list[Any]:
    """The reply's content blocks exactly as the server sent them (every field, its order)."""
    try:
        body = json.loads(http.content)
    except ValueError:
        return []
    content = body.get("content") if isinstance(body, dict) else None
    return content if isinstance(content, list) else []


def _arguments(tool_block: dict[str, Any]) -> str:
    """The streamed input JSON exactly as sent, or the start block's input when none streamed."""
    if tool_block["pieces"]:
        return "".join(tool_block["pieces"])
    return json.dumps(tool_block["start"] or {})


def merge_split_calls(blocks: list[dict[str, Any]]) -> list[ToolCall]:
    """Tool calls from finished tool_use blocks. Consecutive blocks sharing one id are one call
    a proxy split up (a LiteLLM proxy sent one call as 16 blocks, each with a piece of the
    arguments): their pieces are joined. Blocks that are each a whole call stay apart (the agent
    runs identical ones once and renames the rest); nothing is run blindly: arguments that are
    not one JSON object are answered with an error result, never executed."""
    calls: list[ToolCall] = []
    group: list[dict[str, Any]] = []

    def flush() -> None:
        if len(group) > 1 and not all(_whole(b) for b in group):
            pieces = [p for b in group
                      for p in (b["pieces"] or ([json.dumps(b["start"])] if b["start"] else []))]
            calls.append(ToolCall(group[0]["id"], group[0]["name"] or group[-1]["name"],
                                  "".join(pieces)))
        else:
            calls.extend(ToolCall(b["id"], b["name"], _arguments(b)) for b in group)
        group.clear()

    for b in blocks:
        if group and not (b["id"] and b["id"] == group[0]["id"]
                          and b["name"] in ("", group[0]["name"])):
            flush()
        group.append(b)
    flush()
    return calls


def _whole(block: dict[str, Any]) -> bool:
    """Does this block alone carry a complete call (its arguments a JSON object)?"""
    return parse_arguments(_arguments(block)) is not None
