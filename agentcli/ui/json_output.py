"""``--json`` output: one JSON object, escaped so that no terminal or ``jq -r`` receives a
control sequence raw."""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from ..messages import AgentDone

_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(payload: Any, indent: int | None = None) -> str:
    """``json_line``'s escaping, for any JSON value (``sessions`` exports and listings)."""
    return _escape_unsafe(json.dumps(payload, ensure_ascii=False, indent=indent))


def text_event(kind: str, text: str) -> str:
    """``json_text({"type": kind, "text": text})``, exactly, made without the generic encoder:
    ``--jsonl`` writes one per streamed delta (thousands in a long reply). ``kind`` is one of
    agentcli's own plain ASCII event names."""
    return _escape_unsafe(f'{{"type": "{kind}", "text": {encode_basestring(text)}}}')


def _escape_unsafe(text: str) -> str:
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def turn_json(done: AgentDone, provider: str, model: str, *,
              schema: bool = False) -> dict[str, Any]:
    """The --json object, made from the agent's AgentDone alone. ``reasoning``: the readable
    reasoning of the turn (thinking, summaries; "" when none was shown). With ``schema``
    (--schema): ``data`` and, for an answer that did not match, ``schema_errors``."""
    calls = []
    for record in done.calls:
        try:
            args: Any = record.call.parsed_arguments()
        except ValueError:
            args = record.call.arguments
        entry: dict[str, Any] = {"id": record.call.id, "name": record.call.name,
                                 "arguments": args, "result": record.result.content,
                                 "is_error": record.result.is_error}
        verdict = record.verdict
        if verdict is not None and hasattr(verdict, "as_json"):
            entry["approval"] = verdict.as_json()
        calls.append(entry)
    payload: dict[str, Any] = {
        "text": done.text,
        "reasoning": done.reasoning,
        "tool_calls": calls,
        "usage": done.usage.as_json(),
        "provider": provider,
        "model": model,
        "stop_reason": done.stop_reason,
        "steps": done.steps,
        "partial": done.partial_kept,
    }
    if done.error is not None:
        payload["error"] = done.error.message
    if schema:
        payload.update(schema_fields(done))
    return payload


def schema_fields(done: AgentDone) -> dict[str, Any]:
    """--schema's part of --json and of --jsonl's ``done``: ``data`` (the answer, null when
    there is none) and ``schema_errors`` (every error, when the answer did not match)."""
    outcome = done.output
    ok = done.stop_reason == "end_turn" and outcome is not None and outcome.valid
    fields: dict[str, Any] = {"data": outcome.data if ok else None}
    if done.stop_reason == "schema" and outcome is not None:
        fields["schema_errors"] = list(outcome.errors)
    return fields
