"""Messages <-> the store's JSON, and the repair of a history a crash left open.

The encoding is lossless (every field of every part, ASCII-escaped JSON so even a lone surrogate
a hostile server sent survives the round trip), which is what makes a resumed conversation go out
byte for byte as it went out before. One exception, by design: an attachment's bytes
(``MediaPart.data``) are not in the JSON; the store keeps them once per content hash in its blob
table (``blobs`` gives them for a message) and puts them back when a conversation is resumed.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from ..messages import (FileSeen, MediaPart, Message, Part, ReasoningPart, TextPart, ToolCall,
                        ToolResult, Usage)

CRASHED = "cancelled: agentcli stopped before the tool finished (the result was never recorded)"
"""The result given to a call whose result never reached the store (kill -9 while it ran)."""


def encode_parts(parts: Sequence[Part]) -> str:
    return json.dumps(parts_as_json(parts), separators=(",", ":"))  # ASCII: surrogates escaped


def parts_as_json(parts: Sequence[Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"kind": "text", "text": p.text})
        elif isinstance(p, ToolCall):
            out.append({"kind": "tool_call", "id": p.id, "name": p.name,
                        "arguments": p.arguments})
        elif isinstance(p, ToolResult):
            item: dict[str, Any] = {"kind": "tool_result", "call_id": p.call_id, "name": p.name,
                                    "content": p.content}
            if p.is_error:
                item["is_error"] = True
            if p.files:  # which version of a file the model saw (never sent to a provider)
                item["files"] = [[f.path, f.sha256] for f in p.files]
            if p.media:
                item["media"] = [_media_json(m) for m in p.media]
            out.append(item)
        elif isinstance(p, ReasoningPart):  # opaque: kept byte for byte (``data`` is a str)
            out.append({"kind": "reasoning", "provider": p.provider, "model": p.model,
                        "data": p.data, "text": p.text})
        elif isinstance(p, MediaPart):
            out.append(_media_json(p))
        else:
            raise TypeError(f"cannot store {p!r}")
    return out


def _media_json(p: MediaPart) -> dict[str, Any]:
    """An attachment without its bytes (those are in the blob table, under ``sha256``)."""
    item: dict[str, Any] = {"kind": "media", "media_type": p.media_type, "name": p.name,
                            "sha256": p.sha256, "size": p.size}
    if p.url is not None:
        item["url"] = p.url
    return item


def _media(item: dict[str, Any]) -> MediaPart:
    return MediaPart(item["media_type"], item["name"], None, item.get("url"),
                     item.get("sha256", ""), int(item.get("size", 0)))


def blobs(message: Message) -> dict[str, tuple[str, bytes]]:
    """sha256 -> (media type, bytes) of every attachment in ``message`` that has its bytes."""
    return {p.sha256: (p.media_type, p.data) for p in message.media
            if p.data is not None and p.sha256}


def decode_many(text: str) -> list[tuple[Part, ...]]:
    """A JSON array of stored parts lists -> one tuple of parts per message."""
    return [_parts(items) for items in json.loads(text)]


def _parts(items: list[dict[str, Any]]) -> tuple[Part, ...]:
    parts: list[Part] = []
    for item in items:
        kind = item.get("kind")
        if kind == "text":
            parts.append(TextPart(item["text"]))
        elif kind == "tool_call":
            parts.append(ToolCall(item["id"], item["name"], item["arguments"]))
        elif kind == "tool_result":
            parts.append(ToolResult(item["call_id"], item["name"], item["content"],
                                    bool(item.get("is_error")),
                                    tuple(_media(m) for m in item.get("media") or ()),
                                    files=tuple(FileSeen(str(f[0]), str(f[1]))
                                                for f in item.get("files") or ())))
        elif kind == "reasoning":
            parts.append(ReasoningPart(item["provider"], item["model"], item["data"],
                                       item.get("text", "")))
        elif kind == "media":
            parts.append(_media(item))
        else:
            raise ValueError(f"unknown stored part kind {kind!r}")
    return tuple(parts)


def searchable(message: Message) -> str:
    """The text full-text search sees: prose, tool names and arguments, tool results."""
    pieces: list[str] = []
    for p in message.parts:
        if isinstance(p, TextPart):
            pieces.append(p.text)
        elif isinstance(p, ToolCall):
            pieces.append(f"{p.name} {p.arguments}")
        elif isinstance(p, ToolResult):
            pieces.append(p.content)
        elif isinstance(p, MediaPart):
            pieces.append(p.name)
    return clean("\n".join(pieces))


def clean(text: str) -> str:
    """Text safe to bind as SQLite TEXT (a lone surrogate cannot be UTF-8): replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


USAGE_COLUMNS = ("input_tokens", "output_tokens", "requests", "unreported", "cached_tokens",
                 "cache_write_tokens", "reasoning_tokens")
"""A Usage's fields as the store's columns are named, in ``Usage``'s field order."""


def usage_columns(usage: Usage | None) -> tuple[int | None, ...]:
    if usage is None:
        return (None,) * len(USAGE_COLUMNS)
    return (usage.input_tokens, usage.output_tokens, usage.requests, usage.unreported,
            usage.cached_input_tokens, usage.cache_write_tokens, usage.reasoning_tokens)


def usage_from(row: Sequence[Any]) -> Usage:
    """A Usage from ``USAGE_COLUMNS`` values (NULL counts as 0)."""
    return Usage(*(int(v or 0) for v in row))


def verdicts_json(verdicts: Sequence[Any]) -> str | None:
    if not verdicts:
        return None
    return json.dumps([v.as_json() if hasattr(v, "as_json") else None for v in verdicts],
                      separators=(",", ":"))


def unanswered(history: Sequence[Message]) -> set[int]:
    """Indexes of user messages that never got a reply: agentcli was killed while the request
    ran (followed by another user message, or last). They stay on record, but are not sent
    again: two user messages never follow each other."""
    out = set()
    for i, m in enumerate(history):
        if m.role == "user" and (i + 1 == len(history) or history[i + 1].role == "user"):
            out.add(i)
    return out


def repair(history: Sequence[Message]) -> tuple[list[Message], list[int | None]]:
    """A history both wire formats accept, from whatever the store holds: a tool call whose
    result never arrived (killed mid-tool) gets a cancelled result; results whose call is not
    in the message before them are dropped (a write that failed in between); a prompt that
    never got a reply (killed mid-request: ``unanswered``) is left out. Deterministic, so every
    load of the same rows sends the same bytes. Returns the messages and, per message, its
    index in ``history`` (None: added here)."""
    out: list[Message] = []
    origin: list[int | None] = []
    pending: list[ToolCall] = []  # calls of the last assistant message not answered yet
    skip = unanswered(history)

    def close() -> None:
        if pending:
            out.append(Message("tool", tuple(ToolResult(c.id, c.name, CRASHED, is_error=True)
                                             for c in pending)))
            origin.append(None)
            pending.clear()

    for i, m in enumerate(history):
        if i in skip:
            continue
        if m.role == "tool":
            asked = [c.id for c in pending]
            if [getattr(r, "call_id", None) for r in m.parts] == asked:  # the usual case
                out.append(m)
            else:
                ids = set(asked)
                kept = tuple(r for r in m.tool_results if r.call_id in ids)
                if not kept:
                    continue
                answered = {r.call_id for r in kept}
                extra = tuple(ToolResult(c.id, c.name, CRASHED, is_error=True)
                              for c in pending if c.id not in answered)
                out.append(Message("tool", kept + extra))
            origin.append(i)
            pending.clear()
            continue
        close()
        out.append(m)
        origin.append(i)
        if m.role == "assistant" and not m.interrupted:
            pending = list(m.tool_calls)
    close()
    return out, origin
