"""Anthropic Messages API adapter. Imports the ``anthropic`` SDK; only ``create_provider``
imports this module."""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any, Iterator, Sequence

import anthropic as sdk

from ..messages import (Message, Part, ResponseDone, StopReason, StreamEvent, TextDelta,
                        TextPart, ToolCall, ToolDefinition, ToolResult, Usage)
from ._common import SDKAdapter, parse_arguments

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
            if not isinstance(p, TextPart):
                raise TypeError(f"a user message holds only TextParts, got {p!r}")
            if p.text.strip():  # the API refuses blank text blocks
                blocks.append({"type": "text", "text": p.text})
        return "user", blocks
    if m.role == "assistant":
        for p in m.parts:
            if isinstance(p, TextPart):
                if p.text.strip():
                    blocks.append({"type": "text", "text": p.text})
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
            if r.content:  # optional in the API, and an empty string is refused
                block["content"] = r.content
            if r.is_error:
                block["is_error"] = True
            blocks.append(block)
        return "user", blocks
    raise ValueError(f"unknown message role {m.role!r}")


def convert_tools(tools: Sequence[ToolDefinition]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in tools]


def _stop_reason(reason: str | None, has_calls: bool) -> StopReason:
    stop = _STOP_REASONS.get(reason or "", "end_turn")
    if has_calls and stop == "end_turn":
        return "tool_calls"
    return stop


def _usage(u: Any, previous: Usage | None = None) -> Usage:
    """Merge a usage object (message_start has both counts, message_delta the final output and
    sometimes the input) into what is known so far; unknown until one arrives."""
    previous = previous or Usage.unknown()
    if u is None:
        return previous
    inp = getattr(u, "input_tokens", None)
    out = getattr(u, "output_tokens", None)
    if inp is None and out is None:
        return previous
    return Usage.reported(int(inp) if inp is not None else previous.input_tokens,
                          int(out) if out is not None else previous.output_tokens)


def _response(text: str, calls: list[ToolCall], stop: str | None, usage: Usage) -> ResponseDone:
    parts: list[Part] = [TextPart(text)] if text else []
    parts.extend(calls)
    return ResponseDone(Message("assistant", tuple(parts)), _stop_reason(stop, bool(calls)),
                        usage)


class AnthropicProvider(SDKAdapter):
    """Messages API over the official SDK; see ``providers.base`` for the contract."""

    wire = "anthropic"
    cache_key: str | None = None

    sdk = sdk
    client_class = sdk.Anthropic
    vendor = "Anthropic"
    official_host = OFFICIAL_HOST
    default_url = DEFAULT_URL

    def _params(self, messages: Sequence[Message], tools: Sequence[ToolDefinition],
                system: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model,
                                  "max_tokens": self.profile.max_tokens or DEFAULT_MAX_TOKENS,
                                  "messages": convert_messages(messages)}
        if system:
            params["system"] = system
        if tools:
            params["tools"] = convert_tools(tools)
        return params

    def _stream(self, params: dict[str, Any]) -> Iterator[StreamEvent]:
        text: list[str] = []
        blocks: list[dict[str, Any]] = []  # finished tool_use blocks, in order
        usage = Usage.unknown()
        stop: str | None = None
        stopped = False
        tool_blocks: dict[int, dict[str, Any]] = {}  # content block index -> id, name, pieces
        events = self.errors.iterate(
            lambda: self.client.messages.create(**params, stream=True), text)
        with closing(events):  # closing this generator early closes the HTTP response
            for ev in events:
                kind = ev.type
                if kind == "message_start":
                    usage = _usage(ev.message.usage, usage)
                elif kind == "content_block_start":
                    block = ev.content_block
                    if block.type == "tool_use":
                        start = block.input if isinstance(block.input, dict) else None
                        # a compatible server may leave the id out: the agent names it
                        tool_blocks[ev.index] = {"id": getattr(block, "id", None) or "",
                                                 "name": getattr(block, "name", None) or "",
                                                 "pieces": [], "start": start}
                    elif block.type == "text" and block.text:
                        text.append(block.text)
                        yield TextDelta(block.text)
                elif kind == "content_block_delta":
                    delta = ev.delta
                    if delta.type == "text_delta" and delta.text:
                        text.append(delta.text)
                        yield TextDelta(delta.text)
                    elif delta.type == "input_json_delta" and ev.index in tool_blocks:
                        tool_blocks[ev.index]["pieces"].append(delta.partial_json)
                    # thinking, signature and citation deltas are not part of our model
                elif kind == "content_block_stop":
                    tb = tool_blocks.pop(ev.index, None)
                    if tb is not None:
                        blocks.append(tb)
                elif kind == "message_delta":
                    stop = ev.delta.stop_reason or stop
                    usage = _usage(ev.usage, usage)
                elif kind == "message_stop":
                    stopped = True
        if not stopped:
            raise self.errors.cut_off(text, "message_stop")
        yield _response("".join(text), merge_split_calls(blocks), stop, usage)

    def _complete(self, params: dict[str, Any]) -> Iterator[StreamEvent]:
        resp, http = self._raw(self.client.messages.with_raw_response.create, params)
        content = getattr(resp, "content", None)
        if not isinstance(content, list):
            raise self.errors.wrong_shape(http, "a Messages API reply")
        text: list[str] = []
        blocks: list[dict[str, Any]] = []
        for block in content:
            kind = getattr(block, "type", None)
            if kind == "text" and getattr(block, "text", None):
                text.append(block.text)
                yield TextDelta(block.text)
            elif kind == "tool_use":
                start = getattr(block, "input", None)
                blocks.append({"id": getattr(block, "id", None) or "",
                               "name": getattr(block, "name", None) or "", "pieces": [],
                               "start": start if isinstance(start, dict) else None})
        yield _response("".join(text), merge_split_calls(blocks),
                        getattr(resp, "stop_reason", None), _usage(getattr(resp, "usage", None)))


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
