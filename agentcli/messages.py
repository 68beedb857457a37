"""Provider-neutral conversation types and stream events.

Every type is a frozen dataclass with a ``Literal`` ``kind`` so adapters and renderers can match
on it exhaustively and raise on anything unknown. Providers translate these to and from their SDK
types; nothing else in agentcli knows a wire format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Union


def loads_json(text: str) -> Any:
    """``json.loads`` that fails only with ValueError.

    Model text is hostile: ``[[[[...`` nested deeply makes the C decoder raise RecursionError,
    which would escape code that promises to turn bad input into an error result."""
    try:
        return json.loads(text)
    except RecursionError as e:
        raise ValueError("JSON nested too deeply") from e


# --- conversation parts -------------------------------------------------------------------------

@dataclass(frozen=True)
class TextPart:
    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True)
class ToolCall:
    """A model's request to run a tool. ``arguments`` is the raw JSON text the model produced
    (it may be invalid JSON: the executor reports that back to the model instead of running)."""

    id: str
    name: str
    arguments: str
    kind: Literal["tool_call"] = "tool_call"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ValueError when they are not a JSON object."""
        try:
            value = loads_json(self.arguments) if self.arguments.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"arguments are not valid JSON: {e.msg} at position {e.pos}") from e
        except ValueError as e:
            raise ValueError(f"arguments are not valid JSON: {e}") from e
        if not isinstance(value, dict):
            raise ValueError(f"arguments must be a JSON object, got {type(value).__name__}")
        return value


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one ToolCall: exactly one per call id goes back to the model."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    kind: Literal["tool_result"] = "tool_result"


Part = Union[TextPart, ToolCall, ToolResult]
Role = Literal["user", "assistant", "tool"]


@dataclass(frozen=True)
class Message:
    """One conversation entry.

    - ``user``: TextParts.
    - ``assistant``: TextParts and/or ToolCalls. ``interrupted`` marks a reply cut short (Ctrl-C
      or a dropped stream); its text is kept so nothing received is lost.
    - ``tool``: ToolResults answering the previous assistant message's ToolCalls.

    The system prompt is not a Message: it is passed to ``Provider.stream`` separately.
    """

    role: Role
    parts: tuple[Part, ...]
    interrupted: bool = False

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolCall))

    @property
    def tool_results(self) -> tuple[ToolResult, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolResult))

    @classmethod
    def user(cls, text: str) -> Message:
        return cls("user", (TextPart(text),))


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens,
                     self.output_tokens + other.output_tokens)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class ToolDefinition:
    """What the model sees of a tool: kept apart from the code that runs it."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


# --- stream events (provider -> agent -> renderer) ------------------------------------------------

@dataclass(frozen=True)
class TextDelta:
    text: str
    kind: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True)
class ToolCallReady:
    """A complete tool call (arguments fully assembled). Agent: emitted before approval/run."""

    call: ToolCall
    kind: Literal["tool_call_ready"] = "tool_call_ready"


StopReason = Literal["end_turn", "tool_use", "max_tokens", "other"]


@dataclass(frozen=True)
class TurnDone:
    """The last event of one provider request."""

    stop_reason: StopReason
    usage: Usage = field(default_factory=Usage)
    kind: Literal["turn_done"] = "turn_done"


@dataclass(frozen=True)
class ToolResultReady:
    """Agent only: a tool call finished (ran, failed, was denied or refused)."""

    result: ToolResult
    kind: Literal["tool_result_ready"] = "tool_result_ready"


AgentStopReason = Literal["done", "max_steps", "interrupted", "error"]


@dataclass(frozen=True)
class AgentDone:
    """Agent only: the last event of ``Agent.run``."""

    reason: AgentStopReason
    usage: Usage
    steps: int
    kind: Literal["agent_done"] = "agent_done"


StreamEvent = Union[TextDelta, ToolCallReady, TurnDone]
AgentEvent = Union[TextDelta, ToolCallReady, ToolResultReady, TurnDone, AgentDone]
