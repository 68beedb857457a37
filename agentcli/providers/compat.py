"""What real OpenAI-compatible servers need that the official API does not: tool schemas they
can turn into a grammar, and whole replies when they cannot stream tool calls.

Measured against llama-cpp-python's server (0.3.36, ``--chat_format chatml-function-calling``,
the bundled SmolLM2; ``tests/test_llama_server.py`` starts it), one tool with one property:

- a string's ``maxLength`` of 64, 100, 200, 500 or 1000 works; 1200, 1500, 2000 (the built-in
  calculator's), and ``minLength: 1, maxLength: 4000`` (web_fetch's) kill the server with
  SIGSEGV (llama.cpp's grammar parser refuses the grammar, and the NULL sampler is used);
  ``maxItems: 10000`` does too;
- ``minLength: 2000`` and ``minItems: 1000`` make it generate until the client gives up (the
  grammar demands that much output);
- ``minLength: 1`` or ``500``, ``maxItems: 50``, ``pattern`` (even ``^[a-z]{1,900}$``),
  ``format``, ``minimum``/``maximum``/``exclusiveMinimum`` are fine.

So what goes to a server other than the official API keeps every keyword except length and
count bounds (``minLength``, ``maxLength``, ``minItems``, ``maxItems``) above ``BOUND_CAP``
(``sendable``). Those bounds only validate: the executor checks every call against the tool's
full schema before it runs and tells the model what was wrong, so nothing is lost but the
server's own check. The official API gets every schema unchanged.

Streaming with tools: that server answers a streamed request that offers tools with HTTP 200
and an empty event stream (its "Automatic streaming tool choice is not supported" stays in its
log); other servers say it in an error. ``StreamFallback`` asks again without streaming, tells
the user once (a ``Notice``), and asks for whole replies whenever tools are offered for the rest
of the run (the provider's life). A request without tools still streams.

Also used by the local model's grammar (``local.grammar``), which drops ``pattern`` as well.
"""

from __future__ import annotations

import re
from contextlib import closing
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

from ..errors import ProviderError, StreamInterruptedError
from ..messages import Notice, StreamEvent, ToolDefinition

BOUND_CAP = 64
"""Length and count bounds up to this are sent (and put in the local grammar); larger ones are
left to the executor. A single ``maxLength`` of 1000 worked and 1200 crashed (above); bounds
multiply with nesting, so the cap stays far below."""

_BOUNDS = ("minLength", "maxLength", "minItems", "maxItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalItems", "additionalProperties", "not", "if", "then", "else",
               "contains", "propertyNames")
_REFUSAL = (re.compile(r"stream", re.I), re.compile(r"\b(tool|function)", re.I),
            re.compile(r"not supported|unsupported|not implemented|(does not|doesn't|cannot|"
                       r"can't) (support|stream)", re.I))


class EmptyStream(ProviderError):
    """A 200 event stream that ended with nothing in it: no text, no call, no finish reason."""


def without_big_bounds(schema: Any, *, patterns: bool = True) -> Any:
    """A JSON Schema without length/count bounds above ``BOUND_CAP`` (and, with ``patterns``
    false, without ``pattern``). Schema-aware: a property *named* ``pattern`` or ``maxLength``
    is kept, and ``const``, ``enum``, ``default`` and ``examples`` values are data, never
    walked. The schema given is not changed."""
    if isinstance(schema, list):
        return [without_big_bounds(s, patterns=patterns) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if (key == "pattern" and not patterns) or (
                key in _BOUNDS and not (isinstance(value, int) and 0 <= value <= BOUND_CAP)):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: without_big_bounds(v, patterns=patterns) for k, v in value.items()}
        elif key in _SCHEMA_LISTS or key in _SCHEMA_ONE:
            out[key] = without_big_bounds(value, patterns=patterns)
        else:
            out[key] = value
    return out


def sendable(tools: Sequence[ToolDefinition], official: bool) -> list[ToolDefinition]:
    """The tool definitions as sent: unchanged to the official API, without big bounds to any
    other server (see the module docstring)."""
    if official:
        return list(tools)
    return [replace(t, parameters=without_big_bounds(t.parameters)) for t in tools]


def refuses_streamed_tools(e: ProviderError) -> bool:
    """Does this error (before any reply) say the server cannot stream a reply with tools?"""
    if isinstance(e, StreamInterruptedError):
        return False
    return isinstance(e, EmptyStream) or all(r.search(e.message) for r in _REFUSAL)


Run = Callable[..., Iterator[StreamEvent]]


class StreamFallback:
    """One provider's memory that its server cannot stream replies that may call tools."""

    def __init__(self, who: str) -> None:
        self.who = who  # "the server at http://...": the subject of the notice
        self.whole_with_tools = False

    def stream(self, run: Run, messages: Sequence[Any], tools: Sequence[ToolDefinition], *,
               system: str | None, stream: bool, **extra: Any) -> Iterator[StreamEvent]:
        """``run(messages, tools, system=, stream=, **extra)``'s events; a streamed request with
        tools that the server refuses (before any event) is made again without streaming."""
        if not (stream and tools) or self.whole_with_tools:
            yield from run(messages, tools, system=system, stream=stream and not tools, **extra)
            return
        started = False
        try:
            with closing(run(messages, tools, system=system, stream=True, **extra)) as events:
                for event in events:
                    started = True
                    yield event
            return
        except ProviderError as e:
            if started or not refuses_streamed_tools(e):
                raise
        self.whole_with_tools = True
        yield Notice(f"{self.who} cannot stream replies that may call tools: asked again "
                     "without streaming, as every request with tools will be in this run",
                     level="info")
        yield from run(messages, tools, system=system, stream=False, **extra)
