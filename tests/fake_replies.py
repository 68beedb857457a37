"""The scripted replies of the fake server (``fake_wire.py`` spells them on the wire,
``fake_server.py`` serves them over HTTP).

A reply is built with one of the functions below; ``reply_from_json`` reads the same replies from
a ``--script`` file. Besides well-behaved replies there are the rude ones real servers send:

- ``drip(text, interval)``: the text, then one byte every ``interval`` seconds, forever;
- ``huge(size)``: one SSE line (or JSON body) of ``size`` bytes, generated lazily in 64 KiB pieces
  (never held in memory);
- ``html()``: a 200 ``text/html`` page (a captive portal), streamed or not;
- ``wrong_shape(obj)``: a 200 JSON body of the wrong shape;
- ``gzipped(obj)``: a compressed body nobody asked for; ``redirect(url)``: a 307 elsewhere;
- ``empty_stream()``: a 200 event stream with no event at all;
- modifiers of ``text()`` / ``tool_calls()``: ``usage=False`` (no usage reported), ``ids="none"``
  (tool calls without ids) or ``ids="same"`` (every call under one id), ``finish="none" |
  "max_tokens" | "content_filter"``, and ``split_blocks=N`` (Anthropic stream: each call arrives as
  N ``tool_use`` blocks sharing one id, each with a piece of the arguments, as a LiteLLM proxy did),
  ``thinking="..."`` (Anthropic: a signed thinking block first) and ``redacted=N``
  (redacted_thinking blocks after it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CAPTIVE_PORTAL = ("<!DOCTYPE html>\n<html><head><title>Hotel Wi-Fi</title></head>\n"
                  "<body><h1>Welcome!</h1><p>Please accept the terms to continue.</p>"
                  "</body></html>\n")


@dataclass(frozen=True)
class Reply:
    """One scripted answer; build it with the functions below."""

    kind: str  # text | tool_calls | error | drop | stall | stream_error | drip | huge | raw |
    # conforming
    text: str = ""
    chunks: int | None = None
    calls: tuple[tuple[str, dict[str, Any] | str], ...] = ()
    status: int = 200
    message: str = ""
    error_type: str | None = None
    seconds: float = 0.0
    size: int = 0
    body: bytes = b""
    content_type: str = "application/json"
    usage: bool = True
    ids: str = "normal"  # normal | none | same
    finish: str | None = None  # None (natural) | none | max_tokens | content_filter
    split_blocks: int = 0
    give_up: float | None = None
    headers: tuple[tuple[str, str], ...] = ()  # raw replies: extra response headers
    thinking: str | None = None  # Anthropic: a signed thinking block first (streamed in words)
    redacted: int = 0  # Anthropic: that many redacted_thinking blocks after it


def text(content: str, *, chunks: int | None = None, usage: bool = True,
         finish: str | None = None, thinking: str | None = None, redacted: int = 0) -> Reply:
    """A plain assistant reply; streamed word by word, or in ``chunks`` pieces. ``thinking``
    (Anthropic): a signed thinking block comes first; ``redacted``: redacted_thinking blocks."""
    return Reply("text", text=content, chunks=chunks, usage=usage, finish=finish,
                 thinking=thinking, redacted=redacted)


def tool_calls(*calls: tuple[str, dict[str, Any] | str], text: str = "", usage: bool = True,
               ids: str = "normal", finish: str | None = None, split_blocks: int = 0,
               thinking: str | None = None, redacted: int = 0) -> Reply:
    """One response asking for (parallel) tool calls. A ``str`` argument is sent verbatim.
    ``thinking`` / ``redacted``: as for ``text()``."""
    if not calls:
        raise ValueError("tool_calls() needs at least one (name, arguments) pair")
    if ids not in ("normal", "none", "same"):
        raise ValueError(f"ids must be normal, none or same, not {ids!r}")
    return Reply("tool_calls", text=text, calls=tuple(calls), usage=usage, ids=ids,
                 finish=finish, split_blocks=split_blocks, thinking=thinking, redacted=redacted)


def conforming(*, usage: bool = True) -> Reply:
    """JSON that matches the request's own schema (``response_format``, ``text.format``,
    ``output_config.format``, or the tool an Anthropic request forces): ``fake_structured``."""
    return Reply("conforming", usage=usage)


def error(status: int, message: str = "fake server error", *,
          error_type: str | None = None) -> Reply:
    """An HTTP error in the wire format of the request's path."""
    return Reply("error", status=status, message=message, error_type=error_type)


def drop(after_text: str) -> Reply:
    """Stream ``after_text``, then close the connection without finishing the body."""
    return Reply("drop", text=after_text)


def stall(after_text: str, seconds: float) -> Reply:
    """Stream ``after_text``, send nothing for ``seconds``, then finish the reply normally."""
    return Reply("stall", text=after_text, seconds=seconds)


def stream_error(after_text: str, message: str = "Overloaded") -> Reply:
    """Stream ``after_text``, then an error event inside the stream (as an overloaded server
    does); in a non-streamed reply, an HTTP 500 with ``message``."""
    return Reply("stream_error", text=after_text, message=message, status=500)


def drip(after_text: str = "", interval: float = 0.5, *, give_up: float | None = None) -> Reply:
    """Stream ``after_text``, then one byte (a blank line) every ``interval`` s, forever. Not
    streamed: a 200 JSON body that is nothing but one space every ``interval`` s. ``give_up``
    (a safety net for tests): hang up after that many seconds instead of dripping forever."""
    return Reply("drip", text=after_text, seconds=interval, give_up=give_up)


def huge(size: int, after_text: str = "") -> Reply:
    """Stream ``after_text``, then a single SSE line of ``size`` bytes (a text delta that never
    ends), then finish. Not streamed: a JSON reply whose content is ``size`` bytes long."""
    return Reply("huge", text=after_text, size=size)


def html(page: str = CAPTIVE_PORTAL, status: int = 200) -> Reply:
    """A ``text/html`` page (a captive portal's), whether or not a stream was asked for."""
    return Reply("raw", status=status, body=page.encode(), content_type="text/html; charset=utf-8")


def wrong_shape(obj: Any = None) -> Reply:
    """A 200 ``application/json`` body that is not a completion (default ``{"status": "ok"}``)."""
    data = {"status": "ok", "data": []} if obj is None else obj
    return Reply("raw", body=json.dumps(data).encode())


def empty_stream() -> Reply:
    """A 200 event stream with nothing in it (llama-cpp-python's server sends this when it fails
    mid-request, e.g. asked to stream a tool call with ``tool_choice: auto``)."""
    return Reply("raw", body=b"", content_type="text/event-stream; charset=utf-8")


def gzipped(obj: Any) -> Reply:
    """A 200 JSON body sent gzip-compressed whatever the client asked for (as a gzip bomb is)."""
    import gzip

    return Reply("raw", body=gzip.compress(json.dumps(obj).encode()),
                 headers=(("Content-Encoding", "gzip"),))


def redirect(location: str, status: int = 307) -> Reply:
    """A redirect to ``location`` (another host, say), which the SDKs follow."""
    return Reply("raw", status=status, body=b"", content_type="text/plain",
                 headers=(("Location", location),))


_MODIFIERS = ("usage", "ids", "finish", "split_blocks", "chunks", "thinking", "redacted")


def reply_from_json(spec: dict[str, Any]) -> Reply:
    """A Reply from one entry of a ``--script`` file (see ``fake_server``'s docstring)."""
    mods = {k: spec[k] for k in _MODIFIERS if k in spec}
    if "tool_calls" in spec:
        mods.pop("chunks", None)
        return tool_calls(*[(c[0], c[1]) for c in spec["tool_calls"]],
                          text=spec.get("text", ""), **mods)
    if "text" in spec:
        return text(spec["text"], **{k: v for k, v in mods.items() if k in
                                     ("chunks", "usage", "finish", "thinking", "redacted")})
    if "error" in spec:
        return error(int(spec["error"]), spec.get("message", "fake server error"),
                     error_type=spec.get("error_type"))
    simple = {"drop": lambda: drop(spec["drop"]),
              "stall": lambda: stall(spec["stall"], float(spec.get("seconds", 5))),
              "stream_error": lambda: stream_error(spec["stream_error"],
                                                   spec.get("message", "Overloaded")),
              "drip": lambda: drip(spec["drip"], float(spec.get("interval", 0.5)),
                                   give_up=spec.get("give_up")),
              "huge": lambda: huge(int(spec["huge"]), spec.get("after", "")),
              "html": lambda: html(spec["html"] if isinstance(spec["html"], str)
                                   else CAPTIVE_PORTAL),
              "wrong_shape": lambda: wrong_shape(spec["wrong_shape"]),
              "empty_stream": empty_stream, "conforming": conforming}
    for key, build in simple.items():
        if key in spec:
            return build()
    raise ValueError(f"unknown reply spec: {spec!r}")


def content_text(content: Any) -> str:
    """Text of an OpenAI or Anthropic message ``content`` (string or list of parts/blocks)."""
    if isinstance(content, str):
        return content
    out = []
    for part in content or []:
        if isinstance(part, dict):
            if part.get("type") == "text":
                out.append(part.get("text", ""))
            elif part.get("type") == "tool_result":
                out.append(content_text(part.get("content")))
    return "".join(out)


def echo_reply(body: dict[str, Any]) -> Reply:
    """The ``--echo`` behaviour: echo the last user message, or call the calculator."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content")
    is_tool_result = last.get("role") == "tool" or (
        isinstance(content, list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content))
    said = content_text(content)
    if is_tool_result:
        return text(f"tool said: {said}")
    marker = "use calculator"
    if marker in said.lower():
        expr = said[said.lower().index(marker) + len(marker):].strip(" :") or "2+2"
        return tool_calls(("calculator", {"expression": expr}))
    return text(f"echo: {said}")
