"""``ask --jsonl``: the run as a stream of JSON objects, one per line, flushed as it happens.

Schema version 1 (``"v": 1`` in the first object; fields are only ever added within a version).
Every object has ``type``; strings are escaped like ``--json`` (``json_output.json_text``), so
no control sequence reaches a terminal or ``jq -r`` raw.

=============  ==============================================================================
type           fields
=============  ==============================================================================
session        v, id (the saved conversation's id, null with --no-save), provider, model
text           text (a piece of the reply, as it streams)
reasoning      text (a piece of the model's reasoning, when it shows any; none with
               --hide-reasoning)
tool_call      id, name, arguments (the JSON object; the raw text when it is not valid JSON)
approval       id, decision (allow/deny), source, rule, reason (every call that reached it)
tool_result    id, name, is_error, result (capped as the model gets it)
notice         level (info/warning), text
usage          one request's tokens (``Usage.as_json``: input/output/total, cached, cache-write,
               reasoning, complete)
done           stop_reason, steps, usage (the run's), cost ({usd, complete} or null),
               exit_code, text (the whole reply), reasoning (the whole reasoning text); with
               --schema also data (the answer's JSON, null when there is none) and, when the
               answer did not match, schema_errors
error          message, hint, exit_code (the run failed; ``done`` still follows)
=============  ==============================================================================

A reader that goes away (``| head -3``) stops the run quietly: ``closed`` is set, nothing more
is written, and the turn ends as if interrupted (the conversation is saved as far as it got).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from ..messages import (AgentDone, AgentEvent, HistoryAppended, Notice, ReasoningDelta,
                        ResponseDone, TextDelta, ToolCallReady, ToolResultReady)
from .json_output import json_text, schema_fields, text_event

VERSION = 1


class OutputClosed(KeyboardInterrupt):
    """The reader closed stdout: thrown into the agent like Ctrl-C, so the turn ends cleanly."""


class JsonlOutput:
    def __init__(self, file: TextIO | None = None, *, show_reasoning: bool = True,
                 schema: bool = False) -> None:
        self.file = file if file is not None else sys.stdout
        self.show_reasoning = show_reasoning
        self.schema = schema
        self.closed = False

    def emit(self, payload: dict[str, Any]) -> None:
        self._write(json_text(payload))

    def _write(self, line: str) -> None:
        if self.closed:
            return
        try:
            self.file.write(line + "\n")
            self.file.flush()
        except (BrokenPipeError, ValueError) as e:  # ValueError: write to a closed file
            self.closed = True
            raise OutputClosed() from e

    def session(self, session_id: str | None, provider: str, model: str) -> None:
        self.emit({"type": "session", "v": VERSION, "id": session_id, "provider": provider,
                   "model": model})

    def handle(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self._write(text_event("text", event.text))
        elif isinstance(event, ReasoningDelta):
            if self.show_reasoning:  # --hide-reasoning: none (``done`` still carries it)
                self._write(text_event("reasoning", event.text))
        elif isinstance(event, ToolCallReady):
            call = event.call
            try:
                args: Any = call.parsed_arguments()
            except ValueError:
                args = call.arguments
            self.emit({"type": "tool_call", "id": call.id, "name": call.name,
                       "arguments": args})
        elif isinstance(event, ToolResultReady):
            r = event.result
            verdict = event.verdict
            if verdict is not None and hasattr(verdict, "as_json"):
                self.emit({"type": "approval", "id": r.call_id, **verdict.as_json()})
            self.emit({"type": "tool_result", "id": r.call_id, "name": r.name,
                       "is_error": r.is_error, "result": r.content})
        elif isinstance(event, Notice):
            self.emit({"type": "notice", "level": event.level, "text": event.text})
        elif isinstance(event, ResponseDone):
            self.emit({"type": "usage", **event.usage.as_json()})
        elif not isinstance(event, (HistoryAppended, AgentDone)):  # pragma: no cover
            raise TypeError(f"unknown event {event!r}")

    def error(self, error: Any, exit_code: int) -> None:
        self.emit({"type": "error", "message": getattr(error, "message", str(error)),
                   "hint": getattr(error, "hint", None), "exit_code": exit_code})

    def done(self, done: AgentDone, cost: Any, exit_code: int) -> None:
        self.emit({"type": "done", "stop_reason": done.stop_reason, "steps": done.steps,
                   "usage": done.usage.as_json(),
                   "cost": cost.as_json() if cost is not None else None,
                   "exit_code": exit_code, "text": done.text, "reasoning": done.reasoning,
                   **(schema_fields(done) if self.schema else {})})
