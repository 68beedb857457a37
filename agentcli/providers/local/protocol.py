"""What agentcli and the model host process say to each other over their two pipes.

Frames are the tool host's (``toolrun.host.frames``: a tag byte, a length, the payload). One
request at a time; the host answers each ``S`` with zero or more ``T``/``K``/``W`` frames and then
exactly one of ``D`` (done), ``X`` (stopped by ``C``) or ``E`` (failed)::

    agentcli -> host  L {config}                     load the model (sent once, at start)
    host -> agentcli  O {"n_ctx", "repack"}          loaded  |  E {...} could not load (it exits)
    agentcli -> host  S {"messages", "tools", "system"}   one reply
    host -> agentcli  T <utf-8 text>                 the reply's text since the last T
                      K {"name", "arguments"}        a tool call, complete
                      W <utf-8 line>                 a warning for the user (said once)
                      D {"stop_reason", "input_tokens", "output_tokens"}
                      X {"output_tokens"}            stopped, answering C
                      E {"type", "message", "hint"}  an AgentCliError; the host goes on
    agentcli -> host  C {}                           stop the reply now (Ctrl-C, stream closed)

Text frames carry raw UTF-8, not JSON: they are the per-token cost of the process boundary.
Standard library and agentcli's own types only: imported on both sides.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ...messages import Message, Part, TextPart, ToolCall, ToolDefinition, ToolResult

LOAD, LOADED, REQUEST, CANCEL = b"L", b"O", b"S", b"C"
TEXT, CALL, WARNING, DONE, STOPPED, ERROR = b"T", b"K", b"W", b"D", b"X", b"E"
ENDS = (DONE, STOPPED, ERROR)


@dataclass(frozen=True)
class ModelConfig:
    """What the host needs to load and run the model (a local profile, resolved)."""

    path: str
    n_ctx: int
    n_threads: int
    temperature: float
    max_tokens: int
    repack: bool | None  # None: off where AMX could run, else on (``repack.resolve``)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ModelConfig:
        return cls(**json.loads(data))


def dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def load(data: bytes) -> Any:
    return json.loads(data.decode("utf-8", "surrogatepass"))


def encode_request(messages: Sequence[Message], tools: Sequence[ToolDefinition],
                   system: str | None) -> bytes:
    return dump({"messages": [_message(m) for m in messages],
                 "tools": [[t.name, t.description, t.parameters] for t in tools],
                 "system": system})


def decode_request(data: bytes) -> tuple[list[Message], list[ToolDefinition], str | None]:
    raw = load(data)
    messages = [Message(m["role"], tuple(_part(p) for p in m["parts"]), m["interrupted"])
                for m in raw["messages"]]
    tools = [ToolDefinition(name, description, parameters)
             for name, description, parameters in raw["tools"]]
    return messages, tools, raw["system"]


def _message(m: Message) -> dict[str, Any]:
    parts: list[list[Any]] = []
    for p in m.parts:
        if isinstance(p, TextPart):
            parts.append(["text", p.text])
        elif isinstance(p, ToolCall):
            parts.append(["call", p.id, p.name, p.arguments])
        elif isinstance(p, ToolResult):
            parts.append(["result", p.call_id, p.name, p.content, p.is_error])
        # reasoning parts: the local model never made any and has no use for others'
    return {"role": m.role, "parts": parts, "interrupted": m.interrupted}


def _part(item: list[Any]) -> Part:
    kind, *fields = item
    if kind == "text":
        return TextPart(*fields)
    if kind == "call":
        return ToolCall(*fields)
    if kind == "result":
        return ToolResult(*fields)
    raise ValueError(f"unknown message part {kind!r}")
