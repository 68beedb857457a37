"""The Responses API's items <-> agentcli's neutral messages (``openai_responses`` speaks them).

History -> ``input`` items: user and assistant messages, ``function_call`` and
``function_call_output`` items, and the model's own ``reasoning`` items sent back as they came.
Output items -> the assistant message's parts, in output order.

Reasoning is kept as a ``ReasoningPart`` whose ``data`` is this module's JSON:
``{"item": <the reasoning item exactly as received>, "next": [<the output items that followed
it: {"type", "id", "call_id" | "phase"}>]}``. OpenAI wants a reasoning item back right before the
items it led to, under their own ids (a ``function_call`` whose ``fc_`` id belongs to a
reasoning response is refused without its reasoning item): ``next`` is how those ids survive in
the session store. When a reasoning part is left out (another model, or refused), the items
that followed it are sent without ids, which the API takes as new. No SDK import here.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from ..messages import (Message, Part, ReasoningPart, TextPart, ToolCall, ToolDefinition,
                        ToolResult)
from ._common import parse_arguments
from .media import responses_part, user_content

WIRE = "openai_responses"


# --- history -> input items ----------------------------------------------------------------------

def convert_input(messages: Sequence[Message], model: str,
                  refused: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Neutral history -> Responses input items. Reasoning parts of another wire format or
    model, or whose item id is in ``refused``, are left out (with the ids of what followed)."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "user":
            items.append({"role": "user",
                          "content": user_content(m, responses_part, "input_text")})
        elif m.role == "assistant":
            items.extend(_assistant_items(m, model, refused))
        elif m.role == "tool":
            for r in m.parts:
                if not isinstance(r, ToolResult):
                    raise TypeError(f"a tool message holds only ToolResults, got {r!r}")
                output: Any = f"Error: {r.content}" if r.is_error else r.content
                if r.media:  # text, then the tool's images and documents
                    output = [{"type": "input_text", "text": output},
                              *(responses_part(p) for p in r.media)]
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


# --- output items -> parts ----------------------------------------------------------------------------

def plain_item(item: Any) -> dict[str, Any]:
    """An SDK item as the JSON it came as (fields the server sent, nothing added)."""
    if isinstance(item, dict):
        return item
    return item.to_dict() if hasattr(item, "to_dict") else dict(item)


def summary_of(item: dict[str, Any]) -> str:
    return "\n\n".join(str(s.get("text", "")) for s in item.get("summary") or ()
                       if isinstance(s, dict) and s.get("text"))


def message_text(item: dict[str, Any]) -> tuple[str, bool]:
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
            parts.append(ReasoningPart(WIRE, model, data, summary_of(item)))
        elif kind == "message":
            text, no = message_text(item)
            refused = refused or no
            if text:
                parts.append(TextPart(text))
        elif kind == "function_call":
            parts.append(ToolCall(str(item.get("call_id") or ""), str(item.get("name") or ""),
                                  str(item.get("arguments") or "")))
    return parts, refused


def reasoning_ids(messages: Sequence[Message]) -> set[str]:
    """The item ids of the reasoning parts in ``messages``."""
    out = set()
    for m in messages:
        for p in m.reasoning:
            try:
                out.add(str(json.loads(p.data)["item"]["id"]))
            except (ValueError, KeyError, TypeError):
                continue
    return out
