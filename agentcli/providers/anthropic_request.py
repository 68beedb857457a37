"""The Anthropic Messages wire besides the conversation: what a request carries (thinking from
the profile's ``reasoning``, prompt-cache breakpoints, structured output: ``output_config.format``
or a forced answer tool whose call becomes the reply's text), the usage a reply reports (cache reads
and writes, thinking tokens), and the hint for a model that refuses a reasoning setting. Pure
functions over plain values; no SDK import.

Thinking, by model (Anthropic's docs, 2026):

- Claude 4.6 and later (Opus/Sonnet 4.6, Opus 4.7/4.8, the Claude 5 family, Mythos) and any
  model name without a Claude version take ``thinking: {type: "adaptive"}`` with
  ``output_config.effort`` (Opus 4.7 and later refuse the budget form);
- earlier models (Sonnet/Opus 4.5, Haiku 4.5, Claude 4.0/4.1, Claude 3.7) take only
  ``thinking: {type: "enabled", budget_tokens: N}``.

``none`` sends ``thinking: {type: "disabled"}`` (a model that cannot stop thinking refuses it,
and the user is told so in one line). Thinking counts toward ``max_tokens``, so the level's
room (the budget, or the same amount for adaptive thinking) is added on top of the reply limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..messages import Usage

ADAPTIVE_FROM = (4, 6)
"""The first Claude version that takes adaptive thinking."""
THINKING_ROOM = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
"""Tokens of thinking per level: ``budget_tokens`` where a budget is needed, and the room added
to ``max_tokens`` either way."""
EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh"}
"""``output_config.effort`` per level (Anthropic has no ``minimal``)."""
MAX_BREAKPOINTS = 4
"""The API refuses a request with more ``cache_control`` blocks than this."""
EPHEMERAL = {"type": "ephemeral"}

_VERSION = re.compile(r"claude-(?:[a-z]+-)?(\d{1,2})(?:[-.](\d{1,2})(?!\d))?")
_ABOUT_REASONING = re.compile(r"thinking|effort|budget|temperature|max_tokens|reasoning",
                              re.IGNORECASE)


def claude_version(model: str) -> tuple[int, int] | None:
    """``claude-sonnet-4-5-20250929`` -> (4, 5); ``claude-3-7-sonnet`` -> (3, 7);
    ``claude-opus-4-20250514`` -> (4, 0); None when the name carries no Claude version."""
    m = _VERSION.search(model.lower())
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2) or 0)


def takes_adaptive(model: str) -> bool:
    """Does this model take adaptive thinking (else: a thinking budget)?"""
    version = claude_version(model)
    return version is None or version >= ADAPTIVE_FROM


def thinking_params(model: str, level: str | None, reply_tokens: int) -> dict[str, Any]:
    """The request keys for reasoning ``level`` (None: nothing is sent, the model's default),
    ``max_tokens`` included: ``reply_tokens`` is the reply's own limit."""
    if level is None:
        return {"max_tokens": reply_tokens}
    if level == "none":
        return {"max_tokens": reply_tokens, "thinking": {"type": "disabled"}}
    room = THINKING_ROOM[level]
    if takes_adaptive(model):
        return {"max_tokens": reply_tokens + room,
                "thinking": {"type": "adaptive", "display": "summarized"},
                "output_config": {"effort": EFFORT[level]}}
    return {"max_tokens": reply_tokens + room,
            "thinking": {"type": "enabled", "budget_tokens": room}}


STRUCTURED_FROM = (4, 5)
"""The first Claude version with structured outputs (``output_config.format``): Sonnet, Opus
and Haiku 4.5, and every later model; earlier ones get the answer as a forced tool's input."""
ANSWER_TOOL = "final_answer"


def takes_structured_output(model: str) -> bool:
    version = claude_version(model)
    return version is None or version >= STRUCTURED_FROM


def structured_params(params: dict[str, Any], model: str, schema: dict[str, Any],
                      transform: Any) -> tuple[str | None, list[str]]:
    """Structured output in the request: ``output_config.format`` (json_schema, every object
    closed by ``transform``, the SDK's own ``transform_schema``) for the models that take it;
    else the answer as the input of a forced tool (also for a schema structured outputs cannot
    express). Returns (the answer tool's name or None, what the user is told)."""
    from .schema_wire import free_form

    why = None if takes_structured_output(model) else f"{model} has no structured output"
    if why is None and transform is None:
        why = "this anthropic SDK is too old for it (no transform_schema)"
    why = why or free_form(schema)
    if why is None:
        try:
            closed = transform(schema)
        except (ValueError, TypeError) as e:
            why = str(e).split(". ")[0]
        else:
            params["output_config"] = {**params.get("output_config", {}),
                                       "format": {"type": "json_schema", "schema": closed}}
            return None, []
    name = answer_tool(params, schema)
    return name, [f"structured output goes through a tool ({name}) whose input is the answer: "
                  f"{why}"]


def answer_tool(params: dict[str, Any], schema: dict[str, Any]) -> str:
    """Structured output for a model without it: a tool whose input is the answer, put first
    (the cache breakpoint stays on the last tool) and forced: by name when it is the only tool,
    as "any tool" beside others (the model may still call them first), and only asked for in
    its description when thinking is on (the API refuses forced tool use with thinking).
    Returns the tool's name (a user tool of that name keeps it: ours gets a ``_``)."""
    tools = params.setdefault("tools", [])
    name = ANSWER_TOOL
    while any(t.get("name") == name for t in tools):
        name += "_"
    tools.insert(0, {"name": name, "input_schema": schema,
                     "description": "Give your final answer with this tool: its input is the "
                                    "answer, in the required JSON format. Call it once, when you "
                                    "have everything you need (after any other tool calls)."})
    thinking = (params.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    params["tool_choice"] = {"type": "auto"} if thinking else \
        {"type": "tool", "name": name} if len(tools) == 1 else {"type": "any"}
    return name


def answer_items(items: list[tuple[str, Any]], answer: str | None
                 ) -> tuple[list[tuple[str, Any]], str]:
    """A call of the answer tool (structured output by forced tool) becomes the reply's text,
    where the call was: its input is the answer. Text written beside it is left out (it is not
    the answer). Returns the items and the answer's text ("" when the tool was not called)."""
    given = [_input_text(v) for k, v in items if k == "tool" and v["name"] == answer]
    if answer is None or not given:
        return items, ""
    out: list[tuple[str, Any]] = []
    for kind, value in items:
        if kind == "tool" and value["name"] == answer:
            if not any(k == "text" for k, _ in out):  # one answer: the last one given
                out.append(("text", given[-1]))
        elif kind != "text":
            out.append((kind, value))
    return out, given[-1]


def _input_text(tool_block: dict[str, Any]) -> str:
    """A tool_use block's input as JSON text: the streamed pieces joined, else its start."""
    return "".join(tool_block["pieces"]) if tool_block["pieces"] else \
        json.dumps(tool_block["start"] or {})


def add_cache_breakpoints(params: dict[str, Any]) -> int:
    """Mark the request's stable prefixes for Anthropic's prompt cache: the last tool, the
    system prompt, the newest message, and the user message before the latest reply (the newest
    message of the previous request, so each step reads what the step before wrote even when a
    step adds many blocks). Never more than ``MAX_BREAKPOINTS``; thinking blocks are never
    marked (only user turns are). Returns how many were placed."""
    placed = 0
    tools = params.get("tools")
    if tools:
        tools[-1] = {**tools[-1], "cache_control": EPHEMERAL}
        placed += 1
    system = params.get("system")
    if isinstance(system, str) and system:
        params["system"] = [{"type": "text", "text": system, "cache_control": EPHEMERAL}]
        placed += 1
    messages = params.get("messages") or []
    for index in (len(messages) - 1, len(messages) - 3):
        if placed >= MAX_BREAKPOINTS or index < 0:
            break
        message = messages[index]
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list) or not content:
            continue
        content[-1] = {**content[-1], "cache_control": EPHEMERAL}
        placed += 1
    return placed


def reasoning_hint(error: Any, level: str | None) -> None:
    """A 400 about thinking, effort or the token limit, to a request that carried a reasoning
    setting: the model refused that setting. Give the error a hint saying how to get past it."""
    if level is None:  # (it replaces the general hint every 400 gets: this one says more)
        return
    status = getattr(error.__cause__, "status_code", None)
    if status != 400 or not _ABOUT_REASONING.search(error.message) \
            or "signature" in error.message:  # an altered block: no setting gets past that
        return
    if level == "none":
        error.hint = ("this model cannot turn thinking off: leave --reasoning unset (and "
                      "reasoning: out of the profile), or choose a level such as --reasoning low")
    else:
        error.hint = (f"the model refused --reasoning {level}: try --reasoning none (or another "
                      "level)")


_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
               "cache_creation_input_tokens")


def _count(value: Any) -> int | None:
    """A token count as the server sent it; None when it sent none (or nonsense)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return int(value)


def merge_usage(u: Any, known: dict[str, int]) -> dict[str, int]:
    """Add what a usage object says (message_start has every count, message_delta the final
    output and, cumulatively, sometimes the input and cache counts) to what is known so far."""
    if u is None:
        return known
    merged = dict(known)
    for key in _USAGE_KEYS:
        value = _count(getattr(u, key, None))
        if value is not None:
            merged[key] = value
    thinking = _count(getattr(getattr(u, "output_tokens_details", None), "thinking_tokens",
                              None))
    if thinking is not None:
        merged["thinking_tokens"] = thinking
    return merged


def usage_of(known: dict[str, int]) -> Usage:
    """Anthropic's counts in agentcli's meaning: ``input_tokens`` there excludes the tokens
    read from and written to the cache; here it is every input token (``messages.Usage``)."""
    if "input_tokens" not in known and "output_tokens" not in known:
        return Usage.unknown()
    read = known.get("cache_read_input_tokens", 0)
    written = known.get("cache_creation_input_tokens", 0)
    return Usage.reported(known.get("input_tokens", 0) + read + written,
                          known.get("output_tokens", 0), cached=read, cache_write=written,
                          reasoning=known.get("thinking_tokens", 0))
