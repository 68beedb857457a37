"""An in-process scripted provider for tests of the agent, ask and REPL logic (like pydantic-ai's
FunctionModel): no HTTP, no SDK, exact control over what a "model" sends.

    provider = ScriptedProvider([
        reply("hello"),                                   # text, streamed word by word
        reply(calls=[("add", {"a": 1, "b": 2})]),         # tool calls (ids call_0, call_1, ...)
        reply("partial", stop="max_tokens"),              # cut by the reply budget
        fail(StreamInterruptedError("cut"), after="par"), # deltas, then an error
        interrupt(after="half a rep"),                    # deltas, then Ctrl-C
        lambda messages, tools, system: reply("computed"),# a function of the request
    ])
    provider.requests  # [(messages, tools, system)] as sent

The loopback HTTP server (``fake_server.py``) stays for the adapter and end-to-end tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence, Union

from agentcli.messages import (Message, ReasoningDelta, ReasoningPart, ResponseDone, TextDelta,
                               TextPart, ToolCall, ToolDefinition, Usage)


@dataclass(frozen=True)
class Scripted:
    text: str = ""
    calls: tuple[ToolCall, ...] = ()
    stop: str | None = None
    usage: Usage | None = None
    error: BaseException | None = None  # raised after the text deltas
    deltas: tuple[str, ...] | None = None
    reasoning: str | None = None  # streamed as ReasoningDelta, kept as a ReasoningPart first


def reply(text: str = "", *, calls: Sequence[tuple[str, Any] | tuple[str, Any, str]] = (),
          stop: str | None = None, usage: Usage | None = None,
          deltas: Sequence[str] | None = None, reasoning: str | None = None) -> Scripted:
    """One response. ``calls``: (name, arguments[, id]); a dict argument is sent as JSON, a str
    verbatim; ids default to call_0, call_1, ... (like servers that number per response)."""
    import json

    built = []
    for i, c in enumerate(calls):
        name, args = c[0], c[1]
        cid = c[2] if len(c) > 2 else f"call_{i}"
        built.append(ToolCall(cid, name, args if isinstance(args, str) else json.dumps(args)))
    return Scripted(text, tuple(built), stop, usage, None,
                    tuple(deltas) if deltas is not None else None, reasoning)


def fail(error: BaseException, *, after: str = "") -> Scripted:
    """Stream ``after`` as text, then raise ``error`` (a ProviderError, say)."""
    return Scripted(after, error=error)


def interrupt(*, after: str = "") -> Scripted:
    """Stream ``after`` as text, then raise KeyboardInterrupt (the user pressed Ctrl-C)."""
    return Scripted(after, error=KeyboardInterrupt())


Step = Union[Scripted, Callable[[Sequence[Message], Sequence[ToolDefinition], "str | None"],
                                Scripted]]


def _words(text: str) -> list[str]:
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch == " ":
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


@dataclass
class ScriptedProvider:
    steps: list[Step]
    name: str = "scripted"
    model: str = "scripted-model"
    wire: str = "scripted"
    cache_key: str | None = None
    requests: list[tuple[list[Message], list[ToolDefinition], str | None]] = field(
        default_factory=list)
    closed: int = 0
    """How many streams were closed before they finished (e.g. by Ctrl-C)."""

    def stream(self, messages: Sequence[Message], tools: Sequence[ToolDefinition], *,
               system: str | None = None, stream: bool = True) -> Iterator[Any]:
        self.requests.append((list(messages), list(tools), system))
        if not self.steps:
            raise AssertionError("ScriptedProvider: no scripted reply left")
        step = self.steps.pop(0)
        if callable(step):
            step = step(messages, tools, system)
        finished = False
        try:
            if step.reasoning is not None:
                for piece in _words(step.reasoning):
                    yield ReasoningDelta(piece)
            pieces = step.deltas if step.deltas is not None else _words(step.text)
            for piece in pieces:
                yield TextDelta(piece)
            if step.error is not None:
                raise step.error
            parts: list[Any] = []
            if step.reasoning is not None:
                data = json.dumps({"type": "thinking", "thinking": step.reasoning,
                                   "signature": f"sig-{len(self.requests)}"})
                parts.append(ReasoningPart(self.wire, self.model, data, step.reasoning))
            if step.text:
                parts.append(TextPart(step.text))
            parts.extend(step.calls)
            stop = step.stop or ("tool_calls" if step.calls else "end_turn")
            usage = step.usage if step.usage is not None else Usage.reported(
                10 * (len(messages) + 1), max(1, len(step.text.split()) + len(step.calls)))
            finished = True
            yield ResponseDone(Message("assistant", tuple(parts)), stop, usage)  # type: ignore[arg-type]
        finally:
            if not finished:
                self.closed += 1
