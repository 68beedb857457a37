"""A loopback fake of the OpenAI and Anthropic HTTP APIs, so the official SDKs run for real.

It is a real HTTP/1.1 server on 127.0.0.1 (ephemeral port, ``ThreadingHTTPServer`` in a
background thread) answering

- OpenAI ``POST /v1/chat/completions``: JSON, or SSE when ``"stream": true`` (text in pieces,
  tool_calls deltas split into several argument pieces by index, a final ``finish_reason`` chunk,
  a usage chunk when ``stream_options.include_usage``, then ``data: [DONE]``);
- Anthropic ``POST /v1/messages``: JSON, or SSE (message_start, ping, content_block_start
  text|tool_use, content_block_delta text_delta|input_json_delta with split partial_json,
  content_block_stop, message_delta with stop_reason and usage, message_stop).

Use in tests (the ``fake_server`` fixture in ``conftest.py`` starts one per test)::

    with FakeProviderServer() as srv:
        srv.script(text("hello"), tool_calls(("calculator", {"expression": "1+1"})),
                   error(500), drop("partial "), stall("slow ", seconds=2),
                   stream_error("partial ", "Overloaded"))
        ... point an SDK at srv.openai_base_url or srv.anthropic_base_url ...
        srv.requests   # [{"method", "path", "headers", "body", "raw"}], body parsed from JSON
        srv.disconnects  # how many replies the client hung up on mid-way

Scripted replies are consumed one per request, in order, whatever the path. With nothing left
the server answers HTTP 500 ``fake server: no scripted reply left`` with ``x-should-retry:
false`` so a test fails loudly and at once instead of hanging or retrying.

Usage numbers are deterministic and non-zero: ``input_tokens = 10 * len(messages)`` of the
request (OpenAI counts the system message, Anthropic's ``system`` field is not a message) and
``output_tokens = max(1, words in the reply text + number of tool calls)``.

Error replies carry ``retry-after-ms: 10`` so the SDKs' own retries are quick in tests.

Run as a script for manual / pty testing (prints ``listening on http://127.0.0.1:PORT`` and
flushes, then serves until killed)::

    python tests/fake_server.py [--port 8765] [--script replies.json] [--echo]

- ``--script FILE``: a JSON list of replies, each one of
  ``{"text": "hi", "chunks": 3}``, ``{"tool_calls": [["calculator", {"expression": "2+2"}]],
  "text": ""}``, ``{"error": 500, "message": "boom", "error_type": null}``,
  ``{"drop": "partial text"}``, ``{"stall": "partial text", "seconds": 5}``,
  ``{"stream_error": "partial text", "message": "Overloaded"}``.
- ``--echo`` (also the default when no script is given): once the script is used up, every reply
  echoes the last user message as ``echo: <message>``. A user message containing
  ``use calculator`` gets a ``calculator`` tool call instead, with ``{"expression": <the text
  after "use calculator", or "2+2">}``; when the last message is a tool result the reply is
  ``tool said: <result>``.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

NO_REPLY_LEFT = "fake server: no scripted reply left"
OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


# --- replies ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with text(), tool_calls(), error(), drop() or stall()."""

    kind: str  # text | tool_calls | error | drop | stall | stream_error
    text: str = ""
    chunks: int | None = None
    calls: tuple[tuple[str, dict[str, Any] | str], ...] = ()
    status: int = 200
    message: str = ""
    error_type: str | None = None
    seconds: float = 0.0


def text(content: str, *, chunks: int | None = None) -> Reply:
    """A plain assistant reply; streamed word by word, or in ``chunks`` pieces."""
    return Reply("text", text=content, chunks=chunks)


def tool_calls(*calls: tuple[str, dict[str, Any] | str], text: str = "") -> Reply:
    """One response asking for (parallel) tool calls. A ``str`` argument is sent verbatim."""
    if not calls:
        raise ValueError("tool_calls() needs at least one (name, arguments) pair")
    return Reply("tool_calls", text=text, calls=tuple(calls))


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


def reply_from_json(spec: dict[str, Any]) -> Reply:
    """A Reply from one entry of a ``--script`` file (see the module docstring)."""
    if "text" in spec and "tool_calls" not in spec:
        return text(spec["text"], chunks=spec.get("chunks"))
    if "tool_calls" in spec:
        return tool_calls(*[(c[0], c[1]) for c in spec["tool_calls"]], text=spec.get("text", ""))
    if "error" in spec:
        return error(int(spec["error"]), spec.get("message", "fake server error"),
                     error_type=spec.get("error_type"))
    if "drop" in spec:
        return drop(spec["drop"])
    if "stall" in spec:
        return stall(spec["stall"], float(spec.get("seconds", 5)))
    if "stream_error" in spec:
        return stream_error(spec["stream_error"], spec.get("message", "Overloaded"))
    raise ValueError(f"unknown reply spec: {spec!r}")


# --- helpers ------------------------------------------------------------------------------------

_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                          403: "permission_error", 404: "not_found_error",
                          413: "request_too_large", 429: "rate_limit_error",
                          500: "api_error", 529: "overloaded_error"}
_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
                       403: "invalid_request_error", 404: "invalid_request_error",
                       429: "rate_limit_error", 500: "server_error"}


def _pieces(s: str, chunks: int | None) -> list[str]:
    """Split ``s`` into streaming pieces (words keeping their spaces, or ``chunks`` parts)."""
    if not s:
        return []
    if chunks and chunks > 0:
        size = -(-len(s) // chunks)
        return [s[i:i + size] for i in range(0, len(s), size)]
    out, cur = [], ""
    for ch in s:
        cur += ch
        if ch == " ":
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def _split3(s: str) -> list[str]:
    """Split an argument string in (up to) three pieces, as real streams do."""
    if len(s) < 3:
        return [s]
    a, b = len(s) // 3, 2 * len(s) // 3
    return [s[:a], s[a:b], s[b:]]


def _args_text(args: dict[str, Any] | str) -> str:
    return args if isinstance(args, str) else json.dumps(args)


def _usage(body: dict[str, Any], reply: Reply) -> tuple[int, int]:
    n_messages = len(body.get("messages") or [])
    return 10 * n_messages, max(1, len(reply.text.split()) + len(reply.calls))


def _content_text(content: Any) -> str:
    """Text of an OpenAI or Anthropic message ``content`` (string or list of parts/blocks)."""
    if isinstance(content, str):
        return content
    out = []
    for part in content or []:
        if isinstance(part, dict):
            if part.get("type") == "text":
                out.append(part.get("text", ""))
            elif part.get("type") == "tool_result":
                out.append(_content_text(part.get("content")))
    return "".join(out)


def echo_reply(body: dict[str, Any]) -> Reply:
    """The ``--echo`` behaviour: echo the last user message, or call the calculator."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    role = last.get("role")
    content = last.get("content")
    is_tool_result = role == "tool" or (
        isinstance(content, list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content))
    said = _content_text(content)
    if is_tool_result:
        return text(f"tool said: {said}")
    marker = "use calculator"
    if marker in said.lower():
        expr = said[said.lower().index(marker) + len(marker):].strip(" :") or "2+2"
        return tool_calls(("calculator", {"expression": expr}))
    return text(f"echo: {said}")


# --- wire formats -------------------------------------------------------------------------------

def _openai_message(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    inp, out = _usage(body, reply)
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": name, "arguments": _args_text(args)}}
            for i, (name, args) in enumerate(reply.calls)]
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if reply.calls else "stop"}],
            "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}}


def _openai_chunks(body: dict[str, Any], reply: Reply) -> Iterator[dict[str, Any] | None]:
    """Chunks of a streamed completion; ``None`` marks where drop/stall act."""
    model = body.get("model", "fake")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(reply.text, reply.chunks):
        yield chunk({"content": piece})
    if reply.kind in ("drop", "stall", "stream_error"):
        yield None
    for i, (name, args) in enumerate(reply.calls):
        yield chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                     "function": {"name": name, "arguments": ""}}]})
        for piece in _split3(_args_text(args)):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if reply.calls else "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        inp, out = _usage(body, reply)
        yield {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
               "model": model, "choices": [],
               "usage": {"prompt_tokens": inp, "completion_tokens": out,
                         "total_tokens": inp + out}}


def _tool_input(args: dict[str, Any] | str) -> Any:
    if isinstance(args, dict):
        return args
    try:
        return json.loads(args)
    except ValueError:
        return args  # not JSON: sent as a bare string, as a broken server might


def _anthropic_message(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    inp, out = _usage(body, reply)
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for i, (name, args) in enumerate(reply.calls):
        content.append({"type": "tool_use", "id": f"toolu_{i}", "name": name,
                        "input": _tool_input(args)})
    return {"id": "msg_fake", "type": "message", "role": "assistant",
            "model": body.get("model", "fake"), "content": content,
            "stop_reason": "tool_use" if reply.calls else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": inp, "output_tokens": out}}


def _anthropic_events(body: dict[str, Any], reply: Reply) -> Iterator[tuple[str, dict] | None]:
    inp, out = _usage(body, reply)
    yield "message_start", {"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant",
        "model": body.get("model", "fake"), "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": inp, "output_tokens": 1}}}
    yield "ping", {"type": "ping"}
    index = 0
    if reply.text or not reply.calls:
        yield "content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}
        for piece in _pieces(reply.text, reply.chunks):
            yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": piece}}
        if reply.kind in ("drop", "stall", "stream_error"):
            yield None
        yield "content_block_stop", {"type": "content_block_stop", "index": 0}
        index = 1
    for i, (name, args) in enumerate(reply.calls):
        yield "content_block_start", {
            "type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": f"toolu_{i}", "name": name,
                              "input": {}}}
        for piece in _split3(_args_text(args)):
            yield "content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": piece}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": "tool_use" if reply.calls else "end_turn",
                                      "stop_sequence": None},
                            "usage": {"output_tokens": out}}
    yield "message_stop", {"type": "message_stop"}


def _sse_frames(path: str, body: dict[str, Any], reply: Reply) -> Iterator[bytes | None]:
    if path == ANTHROPIC_PATH:
        for item in _anthropic_events(body, reply):
            yield None if item is None else (
                f"event: {item[0]}\ndata: {json.dumps(item[1])}\n\n".encode())
        return
    for chunk in _openai_chunks(body, reply):
        yield None if chunk is None else f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _sse_error(path: str, reply: Reply) -> bytes:
    """An error event inside a stream (Anthropic: overloaded_error; OpenAI: an error object)."""
    if path == ANTHROPIC_PATH:
        data = json.dumps(_error_body(path, replace(reply, status=529)))
        return f"event: error\ndata: {data}\n\n".encode()
    return f"data: {json.dumps(_error_body(path, reply))}\n\n".encode()


def _error_body(path: str, reply: Reply) -> dict[str, Any]:
    if path.startswith(ANTHROPIC_PATH):
        etype = reply.error_type or _ANTHROPIC_ERROR_TYPES.get(reply.status, "api_error")
        return {"type": "error", "error": {"type": etype, "message": reply.message}}
    etype = reply.error_type or _OPENAI_ERROR_TYPES.get(reply.status, "server_error")
    code = "model_not_found" if reply.status == 404 else None
    return {"error": {"message": reply.message, "type": etype, "param": None, "code": code}}


# --- the server ---------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked bodies, so a dropped stream is detectable
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        if self.server.owner.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._record(None)
        self._send_json(404, {"error": {"message": f"fake server: no GET {self.path}"}},
                        retry=False)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self._record(body, raw)
        path = self.path.split("?", 1)[0]
        if path not in (OPENAI_PATH, ANTHROPIC_PATH):
            self._send_json(404, {"error": {"message": f"fake server: unknown path {path}"}},
                            retry=False)
            return
        body = body if isinstance(body, dict) else {}
        reply = self.server.owner._next_reply(body)
        if reply is None:
            self._send_raw(500, NO_REPLY_LEFT.encode(), "text/plain", retry=False)
            return
        try:
            self._answer(path, body, reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (e.g. after an idle timeout)
            self.server.owner._client_gone()

    # -- recording / sending

    def _record(self, body: Any, raw: bytes = b"") -> None:
        self.server.owner._record({"method": self.command, "path": self.path,
                                   "headers": {k.lower(): v for k, v in self.headers.items()},
                                   "body": body, "raw": raw})

    def _send_raw(self, status: int, data: bytes, ctype: str, *, retry: bool | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("retry-after-ms", "10")
        if retry is not None:
            self.send_header("x-should-retry", "true" if retry else "false")
        self.end_headers()
        self.wfile.write(data)

    def _send_json(self, status: int, obj: Any, *, retry: bool | None = None) -> None:
        self._send_raw(status, json.dumps(obj).encode(), "application/json", retry=retry)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _abort(self) -> None:
        """Close the connection mid-body, as a crashed server or proxy would."""
        self.close_connection = True
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _sleep(self, seconds: float) -> None:
        self.server.owner._stopping.wait(seconds)

    # -- answering

    def _answer(self, path: str, body: dict[str, Any], reply: Reply) -> None:
        anthropic = path == ANTHROPIC_PATH
        if reply.kind == "error" or (reply.kind == "stream_error" and not body.get("stream")):
            self._send_json(reply.status, _error_body(path, reply), retry=False
                            if reply.kind == "stream_error" else None)
            return
        if not body.get("stream"):
            if reply.kind == "stall":
                self._sleep(reply.seconds)
            obj = _anthropic_message(body, reply) if anthropic else _openai_message(body, reply)
            data = json.dumps(obj).encode()
            if reply.kind == "drop":  # promise more bytes than are sent, then hang up
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self._abort()
                return
            self._send_raw(200, data, "application/json", retry=None)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for frame in _sse_frames(path, body, reply):
            if frame is None:  # where drop / stall / stream_error act
                if reply.kind == "drop":
                    self._abort()
                    return
                if reply.kind == "stream_error":
                    self._write_chunk(_sse_error(path, reply))
                    break
                self._sleep(reply.seconds)
                continue
            self._write_chunk(frame)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: FakeProviderServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client hanging up (dropped keep-alive, closed stream) is not news
        super().handle_error(request, client_address)


@dataclass
class FakeProviderServer:
    """The fake server; a context manager (or call start()/stop())."""

    port: int = 0
    echo: bool = False
    verbose: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: list[Reply] = []
        self.disconnects = 0
        """Replies the client hung up on before they were fully sent (e.g. a closed stream)."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeProviderServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server(("127.0.0.1", self.port), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fake-provider-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes stalled handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    # -- scripting

    def script(self, *replies: Reply) -> None:
        """Queue replies; each request consumes the next one, in order."""
        for r in replies:
            if not isinstance(r, Reply):
                raise TypeError(f"script() takes Reply objects (text(), tool_calls(), ...), "
                                f"got {r!r}")
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._lock:
            return len(self._queue)

    def _next_reply(self, body: dict[str, Any]) -> Reply | None:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        return echo_reply(body) if self.echo else None

    def _record(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(request)

    def _client_gone(self) -> None:
        with self._lock:
            self.disconnects += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Loopback fake of the OpenAI and Anthropic APIs "
                                             "(see the module docstring for the modes).")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free)")
    ap.add_argument("--script", help="JSON file: a list of replies, consumed in order")
    ap.add_argument("--echo", action="store_true",
                    help="after the script (default without --script): echo the last user "
                         "message; 'use calculator EXPR' gets a calculator tool call")
    ap.add_argument("-v", "--verbose", action="store_true", help="log each request to stderr")
    args = ap.parse_args(argv)
    srv = FakeProviderServer(port=args.port, echo=args.echo or not args.script,
                             verbose=args.verbose)
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            specs = json.load(f)
        srv.script(*[reply_from_json(s) for s in specs])
    srv.start()
    print(f"listening on {srv.url}", flush=True)
    print(f"  OpenAI:    --base-url {srv.openai_base_url}", flush=True)
    print(f"  Anthropic: --base-url {srv.anthropic_base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
