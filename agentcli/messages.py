"""Provider-neutral conversation types and stream events.

Every type is a frozen dataclass with a ``Literal`` ``kind`` so adapters and renderers can match
on it exhaustively and raise on anything unknown. Providers translate these to and from their SDK
types; nothing else in agentcli knows a wire format.
"""

from __future__ import annotations

import functools
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
class Base64Text:
    """Base64 text in a request (the base64 of an attachment, or its data URL): ``head`` (e.g.
    ``data:image/png;base64,``, or nothing) then ``encoded``, kept as the ASCII bytes the
    encoder made. A request body copies those bytes in as they are, once
    (``providers.media.json_pieces``); ``str()`` makes the text, for the rare body an SDK
    encodes itself (``providers.media.plain``)."""

    head: bytes
    encoded: bytes = field(repr=False)

    def __str__(self) -> str:
        return str(self.head + self.encoded, "ascii")


@dataclass(frozen=True)
class MediaPart:
    """An image or PDF: attached by the user (``-a``, ``/attach``) or returned by a tool.

    ``media_type``: image/png, image/jpeg, image/gif, image/webp or application/pdf (known
    from the bytes, never the file name: ``inputs.attachments.sniff``);
    ``name`` is what the user gave (a path, a URL, ``stdin``) or what the tool called it;
    ``data`` the bytes (None only when a resumed session's blob is gone); ``url`` where it came
    from when it was fetched (an API that takes URLs gets the URL instead of the bytes);
    ``sha256`` and ``size`` of ``data``. The session store keeps the bytes once per ``sha256``
    (a blob table), never inside the part."""

    media_type: str
    name: str
    data: bytes | None = field(default=None, repr=False, compare=False)
    url: str | None = None
    sha256: str = ""
    size: int = 0
    kind: Literal["media"] = "media"

    @property
    def is_image(self) -> bool:
        return self.media_type.startswith("image/")

    def describe(self) -> str:
        """``cat.png (image/png, 12,345 bytes)``: what people are shown (never the bytes)."""
        return f"{self.name} ({self.media_type}, {self.size:,} bytes)"

    @functools.cached_property
    def encoded(self) -> bytes:
        """The bytes' base64 (ASCII bytes), made once: every request of a tool loop, and both of
        its spellings (``base64``, ``data_url``), share it. ``inputs.attachments.media_part``
        makes it while the bytes are hashed."""
        import binascii

        return binascii.b2a_base64(self.data or b"", newline=False)

    @property
    def base64(self) -> Base64Text:
        """The bytes as base64 text."""
        return Base64Text(b"", self.encoded)

    @property
    def data_url(self) -> Base64Text:
        """``data:<media type>;base64,<the bytes>``."""
        return Base64Text(f"data:{self.media_type};base64,".encode("ascii"), self.encoded)


@dataclass(frozen=True)
class FileSeen:
    """A file a tool result showed the model (``file_read``) or wrote (``edit``, ``write``):
    its real path and the SHA-256 of the whole file as it was then. The last one per path in
    the conversation is the version the model knows; a change to a file that holds something
    else now is refused (it changed on disk since)."""

    path: str
    sha256: str
    kind: Literal["file_seen"] = "file_seen"


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one ToolCall: exactly one per call id goes back to the model.
    ``media``: images and documents the tool returned besides its text (``content`` describes
    them too, for APIs that take only text in tool results). ``files``: what it showed of files
    or wrote (kept with the conversation, never sent)."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    media: tuple[MediaPart, ...] = ()
    kind: Literal["tool_result"] = "tool_result"
    files: tuple[FileSeen, ...] = ()


@dataclass(frozen=True)
class ReasoningPart:
    """A provider's reasoning, kept opaque inside the assistant message it came with.

    ``data`` is the provider's own item exactly as received (the JSON text of an OpenAI
    Responses ``reasoning`` item with its ``encrypted_content``, or of an Anthropic
    ``thinking``/``redacted_thinking`` block with its ``signature``): stored byte for byte and
    sent back unchanged, but only to the provider ``provider`` (the adapter's wire name:
    ``openai_responses``, ``anthropic``) and the same ``model``; anywhere else it is dropped
    (``providers._common.strip_foreign_reasoning``). ``text`` is what a person may read of it
    (the summary or the thinking text; empty when redacted or encrypted only)."""

    provider: str
    model: str
    data: str
    text: str = ""
    kind: Literal["reasoning"] = "reasoning"


Part = Union[TextPart, ToolCall, ToolResult, ReasoningPart, MediaPart]
Role = Literal["user", "assistant", "tool"]


@dataclass(frozen=True)
class Message:
    """One conversation entry.

    - ``user``: TextParts and MediaParts (attachments).
    - ``assistant``: TextParts and/or ToolCalls, and the ReasoningParts that came with them, in
      the order the provider sent them. ``interrupted`` marks a reply cut short (Ctrl-C or a
      dropped stream); its text is kept so nothing received is lost.
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

    @property
    def reasoning(self) -> tuple[ReasoningPart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ReasoningPart))

    @property
    def media(self) -> tuple[MediaPart, ...]:
        """Every image and document in the message: its own and its tool results'."""
        out: list[MediaPart] = []
        for p in self.parts:
            if isinstance(p, MediaPart):
                out.append(p)
            elif isinstance(p, ToolResult):
                out.extend(p.media)
        return tuple(out)

    @classmethod
    def user(cls, text: str) -> Message:
        return cls("user", (TextPart(text),))


@dataclass(frozen=True)
class Usage:
    """Token counts reported by the provider, the same way for every provider:

    - ``input_tokens``: every input token of the request, cached ones included (OpenAI counts
      so; Anthropic's ``input_tokens`` + ``cache_read_input_tokens`` +
      ``cache_creation_input_tokens``);
    - ``cached_input_tokens``: the part of them read from the provider's prompt cache;
    - ``cache_write_tokens``: the part written to it (Anthropic bills these higher);
    - ``output_tokens``: everything generated, reasoning included;
    - ``reasoning_tokens``: the part of the output spent reasoning (OpenAI reports it).

    ``unreported`` counts the requests whose server sent no usage at all (llama-cpp-python's
    server, some proxies, a request that failed): their tokens are unknown, never shown as 0."""

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    unreported: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def reported(cls, input_tokens: int, output_tokens: int, *, cached: int = 0,
                 cache_write: int = 0, reasoning: int = 0) -> Usage:
        return cls(input_tokens, output_tokens, 1, 0, cached, cache_write, reasoning)

    @classmethod
    def unknown(cls) -> Usage:
        """One request whose usage the server did not report (or that failed)."""
        return cls(requests=1, unreported=1)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens,
                     self.output_tokens + other.output_tokens,
                     self.requests + other.requests, self.unreported + other.unreported,
                     self.cached_input_tokens + other.cached_input_tokens,
                     self.cache_write_tokens + other.cache_write_tokens,
                     self.reasoning_tokens + other.reasoning_tokens)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def known(self) -> bool:
        """Some request reported usage (the counts are at least partly real)."""
        return self.requests > self.unreported

    def describe(self) -> str:
        """For people: ``1,234 in (1,000 cached) + 56 out (20 reasoning)``, ``unknown (...)``,
        or the counts with a note of how many requests did not report."""
        if self.requests and not self.known:
            return "unknown (the server reports no token usage)"
        cache = []
        if self.cached_input_tokens:
            cache.append(f"{self.cached_input_tokens:,} cached")
        if self.cache_write_tokens:
            cache.append(f"{self.cache_write_tokens:,} written to cache")
        text = f"{self.input_tokens:,} in" + (f" ({', '.join(cache)})" if cache else "")
        text += f" + {self.output_tokens:,} out"
        if self.reasoning_tokens:
            text += f" ({self.reasoning_tokens:,} reasoning)"
        if self.unreported:
            text += (f" (+ {self.unreported} request{'s' if self.unreported != 1 else ''} "
                     "with unknown usage)")
        return text

    def as_json(self) -> dict[str, Any]:
        """For --json: counts are null when no request reported them."""
        if self.requests and not self.known:
            return {"input_tokens": None, "output_tokens": None, "total_tokens": None,
                    "cached_input_tokens": None, "cache_write_tokens": None,
                    "reasoning_tokens": None, "complete": False}
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "total_tokens": self.total_tokens,
                "cached_input_tokens": self.cached_input_tokens,
                "cache_write_tokens": self.cache_write_tokens,
                "reasoning_tokens": self.reasoning_tokens, "complete": self.unreported == 0}


@dataclass(frozen=True)
class ToolDefinition:
    """What the model sees of a tool: kept apart from the code that runs it."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class OutputFormat:
    """Structured output asked of a request (``ask --schema``): the reply's text must be JSON
    matching ``schema``, a JSON Schema whose root is an object (``agent.structured`` wraps any
    other root). Each adapter sends it the way its API takes it (``providers.schema_wire``);
    ``name`` names it where the API wants a name."""

    name: str
    schema: dict[str, Any]


# --- stream events (provider -> agent) -----------------------------------------------------------

@dataclass(frozen=True)
class TextDelta:
    """A piece of reply text, for display as it arrives (providers and agent)."""

    text: str
    kind: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the model's reasoning as it arrives (OpenAI reasoning summaries, Anthropic
    thinking): for display only (dim, on stderr); what is kept is the ReasoningPart in the
    ResponseDone message."""

    text: str
    kind: Literal["reasoning_delta"] = "reasoning_delta"


StopReason = Literal["end_turn", "tool_calls", "max_tokens", "content_filter"]
"""Why one provider response ended: finished, wants tools, cut by the reply budget
(``max_tokens``), or withheld by the provider's filter (OpenAI ``content_filter``, Anthropic
``refusal``)."""


@dataclass(frozen=True)
class ResponseDone:
    """The last event of one provider request: the assembled assistant message (text and
    complete tool calls, exactly as the model sent them), why it stopped, and usage
    (``Usage.unknown()`` when the server reported none). Nothing downstream re-assembles
    deltas: this message is the one that goes into history."""

    message: Message
    stop_reason: StopReason
    usage: Usage = field(default_factory=Usage)
    kind: Literal["response_done"] = "response_done"





# --- agent events (agent -> renderers: ask, --json, the REPL, the session store) ---------------

@dataclass(frozen=True)
class ToolCallReady:
    """The agent is about to validate, approve and run this call (ids are unique in the
    conversation: the agent renames a reused id)."""

    call: ToolCall
    kind: Literal["tool_call_ready"] = "tool_call_ready"


@dataclass(frozen=True)
class ToolResultReady:
    """A tool call finished: ran, failed, was denied or refused. ``verdict`` is the approval
    decision (an ``approval.Verdict``), None when the call never reached approval (unknown
    tool, bad arguments)."""

    result: ToolResult
    verdict: Any = None
    kind: Literal["tool_result_ready"] = "tool_result_ready"


@dataclass(frozen=True)
class Notice:
    """Something the user should be told once, that is not an error (duplicate call ids merged,
    history trimmed to fit the context window, ...)."""

    text: str
    level: Literal["info", "warning"] = "warning"
    kind: Literal["notice"] = "notice"


@dataclass(frozen=True)
class HistoryAppended:
    """A message became part of the conversation (the session store persists exactly these).
    ``usage`` and ``stop_reason``: the provider request an assistant message came from;
    ``verdicts``: for a tool message, the approval verdict of each result (None where the call
    never reached approval)."""

    message: Message
    usage: Usage | None = None
    stop_reason: str | None = None
    verdicts: tuple[Any, ...] = ()
    kind: Literal["history_appended"] = "history_appended"


@dataclass(frozen=True)
class FileChange:
    """An approved ``edit``/``write`` that changed a file: its real path, what it held before
    (None: it did not exist) and what was written. The session store keeps it for /undo."""

    path: str
    before: str | None
    after: str
    tool: str = ""
    call_id: str = ""
    kind: Literal["file_change"] = "file_change"


@dataclass(frozen=True)
class FileChanged:
    """A tool call changed a file (after its ToolResultReady); the session store records it, the
    terminal shows it."""

    change: FileChange
    kind: Literal["file_changed"] = "file_changed"


TurnStopReason = Literal["end_turn", "max_tokens", "content_filter", "max_steps", "max_cost",
                         "schema", "interrupted", "error"]
"""``schema``: with ``--schema``, the final answer still did not match it after it was sent
back once with the errors (``AgentDone.output`` holds them)."""


@dataclass(frozen=True)
class CallRecord:
    """One tool call of the turn, in the order they ran (ids may have been renamed to be unique)."""

    call: ToolCall
    result: ToolResult
    verdict: Any = None


@dataclass(frozen=True)
class AgentDone:
    """The last event of ``Agent.run``: what the turn became, decided by the agent alone.

    ``text``: the turn's reply text as shown (every step's text, in order); ``calls``: every
    tool call that was answered; ``steps``: provider requests made (a failed one included);
    ``partial_kept``: a cut-short reply is in history marked interrupted; ``user_dropped``:
    nothing arrived, so the user message left the conversation (the REPL offers /retry);
    ``error``: the ProviderError when ``stop_reason == "error"``; ``reasoning``: the readable
    text of the turn's reasoning (summaries, thinking), every step's, in order; ``output``: with
    a schema, the check of the final answer (``agent.structured.SchemaOutcome``: its ``data``
    when valid, its ``errors`` when not), None without a schema or when no answer was
    checked."""

    stop_reason: TurnStopReason
    usage: Usage
    steps: int
    text: str = ""
    calls: tuple[CallRecord, ...] = ()
    partial_kept: bool = False
    user_dropped: bool = False
    error: Any = None
    reasoning: str = ""
    output: Any = None
    kind: Literal["agent_done"] = "agent_done"


StreamEvent = Union[TextDelta, ReasoningDelta, Notice, ResponseDone]
"""What ``Provider.stream`` yields (``providers/base.py``)."""

AgentEvent = Union[TextDelta, ReasoningDelta, ToolCallReady, ToolResultReady, Notice,
                   HistoryAppended, ResponseDone, FileChanged, AgentDone]
