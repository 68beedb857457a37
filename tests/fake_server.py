"""A loopback fake of the OpenAI and Anthropic HTTP APIs, so the official SDKs run for real.

It is a real HTTP/1.1 server on 127.0.0.1 (ephemeral port, ``ThreadingHTTPServer`` in a
background thread) answering

- OpenAI ``POST /v1/chat/completions``: JSON, or SSE when ``"stream": true`` (text in pieces,
  tool_calls deltas split into several argument pieces by index, a final ``finish_reason`` chunk,
  a usage chunk when ``stream_options.include_usage``, then ``data: [DONE]``);
- Anthropic ``POST /v1/messages``: JSON, or SSE (message_start, ping, content_block_start
  thinking|redacted_thinking|text|tool_use, content_block_delta thinking_delta|signature_delta|
  text_delta|input_json_delta with split partial_json, content_block_stop, message_delta with
  stop_reason and usage, message_stop). Like the 2026 API it refuses (HTTP 400, no scripted reply
  used) what the real one refuses: an altered or dropped thinking block, a thinking setting the
  model does not take, more than 4 ``cache_control`` blocks; and it keeps a prompt cache, so
  usage reports cache reads and writes (``fake_anthropic.py``; ``srv.anthropic`` is its state);
- OpenAI ``POST /v1/responses`` (the Responses API, its reasoning items and the 400s OpenAI
  answers; Chat Completions' 400 for reasoning models with tools; ``cached_tokens`` on repeated
  prefixes) and ``GET /v1/models`` in both vendors' shapes: ``fake_wire_responses.py``.
  ``srv.models`` is the list (None: no such path), ``srv.models_reply`` a reply served instead,
  ``srv.responses_api = False`` a server without ``/v1/responses``,
  ``srv.prompt_cache.min_tokens`` the smallest prefix counted as cached (1,024, as OpenAI's).
- structured output (``response_format``, ``text.format``, ``output_config.format``, forced
  tools): what the APIs refuse, and ``conforming()`` replies: ``fake_structured.py``.
- images and PDFs in all three, validated as the real APIs do (``fake_media.py``;
  ``srv.media_seen`` lists what each request carried).

The replies live in ``fake_replies.py`` (re-exported here) and their wire spelling in
``fake_wire.py``. Use in tests
(the ``fake_server`` fixture in ``conftest.py`` starts one per test)::

    with FakeProviderServer() as srv:
        srv.script(text("hello"), tool_calls(("calculator", {"expression": "1+1"})),
                   error(500), drop("partial "), stall("slow ", seconds=2),
                   stream_error("partial ", "Overloaded"), drip("so far ", interval=0.5),
                   huge(300_000_000), html(), wrong_shape({"result": 1}),
                   text("cut", finish="max_tokens", usage=False),
                   tool_calls(("calculator", "{}"), ids="none"))
        ... point an SDK at srv.openai_base_url or srv.anthropic_base_url ...
        srv.requests   # [{"method", "path", "headers", "body", "raw"}], body parsed from JSON
        srv.disconnects  # how many replies the client hung up on mid-way

Scripted replies are consumed one per request, in order, whatever the path. With nothing left
the server answers HTTP 500 ``fake server: no scripted reply left`` with ``x-should-retry:
false`` so a test fails loudly and at once instead of hanging or retrying.

Like llama-cpp-python's server, an OpenAI request holding an assistant message with ``content:
null`` is answered HTTP 500 with a validation error (``reject_null_content=False`` turns that off);
such a request consumes no scripted reply. ``no_streamed_tools=True`` copies that server's
answer to a streamed request that offers tools (``tool_choice: auto``): HTTP 200 and an empty
event stream (it fails inside with "Automatic streaming tool choice is not supported" and says
nothing); such a request consumes no scripted reply either.

Usage numbers are deterministic and non-zero: OpenAI ``input_tokens = 10 * len(messages)`` of the
request (the system message counts); Anthropic a token per 4 characters of every block (tools,
system, messages), split into read from the cache, written to it and the rest; and
``output_tokens = max(1, words in the reply text + number of tool calls)`` (+ the thinking's
words).

Error replies carry ``retry-after-ms: 10`` so the SDKs' own retries are quick in tests.

Run as a script for manual / pty testing (prints ``listening on http://127.0.0.1:PORT`` and
flushes, then serves until killed)::

    python tests/fake_server.py [--port 8765] [--script replies.json] [--echo]

- ``--script FILE``: a JSON list of replies, each one of
  ``{"text": "hi", "chunks": 3}``, ``{"tool_calls": [["calculator", {"expression": "2+2"}]],
  "text": ""}``, ``{"error": 500, "message": "boom", "error_type": null}``,
  ``{"drop": "partial text"}``, ``{"stall": "partial text", "seconds": 5}``,
  ``{"stream_error": "partial text", "message": "Overloaded"}``,
  ``{"drip": "partial text", "interval": 0.5}``, ``{"huge": 300000000, "after": "text"}``,
  ``{"html": true}`` (or the page as a string), ``{"wrong_shape": {"any": "json"}}``,
  ``{"empty_stream": true}``, ``{"conforming": true}`` (JSON matching the request's schema).
  ``text`` and ``tool_calls`` entries also take ``"usage": false``, ``"finish": "none" |
  "max_tokens" | "content_filter"``, ``"thinking": "text"`` and ``"redacted": 1`` (Anthropic);
  ``tool_calls`` entries ``"ids": "none" | "same"`` and ``"split_blocks": 16``.
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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fake_replies import (CAPTIVE_PORTAL, Reply, conforming, drip, drop,  # noqa: F401
                          echo_reply, empty_stream, error, gzipped, html, huge, redirect,
                          reply_from_json, stall, stream_error, text, tool_calls, wrong_shape)
from fake_anthropic import AnthropicState
from fake_structured import anthropic_problem, conform, openai_problem
from fake_media import Seen, anthropic_media_problem, chat_media_problem, responses_media_problem
from fake_openai_rules import RESPONSES_PATH, PromptCache, chat_problem, responses_problem
from fake_wire import (ANTHROPIC_PATH, OPENAI_PATH, anthropic_message, anthropic_tool_uses,
                       error_body, huge_pieces, null_content_error, openai_message, sse_error,
                       sse_frames)
from fake_wire_responses import (DEFAULT_MODELS, MODELS_PATHS, chat_view, models_page,
                                 response_object)

NO_REPLY_LEFT = "fake server: no scripted reply left"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked bodies, so a dropped stream is detectable
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        if self.server.owner.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._record(None)
        path, _, query = self.path.partition("?")
        owner = self.server.owner
        if path in MODELS_PATHS and owner.models is not None:
            if owner.models_reply is not None:
                self._answer(path, {}, owner.models_reply)
                return
            from urllib.parse import parse_qs

            anthropic = "anthropic-version" in {k.lower() for k in self.headers}
            self._send_json(200, models_page(owner.models, anthropic, parse_qs(query)))
            return
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
        owner = self.server.owner
        if path not in (OPENAI_PATH, ANTHROPIC_PATH, RESPONSES_PATH) or (
                path == RESPONSES_PATH and not owner.responses_api):
            self._send_json(404, {"error": {"message": f"fake server: unknown path {path}"}},
                            retry=False)
            return
        body = body if isinstance(body, dict) else {}
        invalid = null_content_error(body) if path == OPENAI_PATH else None
        if invalid and owner.reject_null_content:
            self._send_json(500, {"error": {"message": invalid, "type": "internal_server_error",
                                            "param": None, "code": None}})
            return
        if owner.no_streamed_tools and path == OPENAI_PATH and body.get("stream") \
                and body.get("tools"):
            self._send_raw(200, b"", "text/event-stream; charset=utf-8", retry=None)
            return
        seen = Seen()  # the attachments it carries (fake_media.py)
        if path == ANTHROPIC_PATH:
            problem = owner.anthropic.refusal(body) or anthropic_media_problem(body, seen)
            refused = (400, error_body(path, error(400, problem))) if problem else \
                anthropic_problem(body)
        else:
            refused = {OPENAI_PATH: chat_problem, RESPONSES_PATH: responses_problem}.get(
                path, lambda b: None)(body) or (chat_media_problem if path == OPENAI_PATH
                                                else responses_media_problem)(body, seen) \
                or openai_problem(path, body)
        owner.media_seen.append(seen)
        if refused:  # what the 2026 APIs answer HTTP 400 (consumes no scripted reply)
            self._send_json(*refused, retry=False)
            return
        cached = owner.prompt_cache.cached_tokens(path, body) if path != ANTHROPIC_PATH else 0
        reply = owner._next_reply(chat_view(body) if path == RESPONSES_PATH else body)
        if reply is None:
            self._send_raw(500, NO_REPLY_LEFT.encode(), "text/plain", retry=False)
            return
        if reply.kind == "conforming":  # JSON made from the request's own schema
            reply = conform(path, body, reply)
        try:
            self._answer(path, body, reply, cached)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (e.g. after an idle timeout)
            owner._client_gone()

    # -- recording / sending

    def _record(self, body: Any, raw: bytes = b"") -> None:
        self.server.owner._record({"method": self.command, "path": self.path,
                                   "headers": {k.lower(): v for k, v in self.headers.items()},
                                   "body": body, "raw": raw})

    def _send_raw(self, status: int, data: bytes, ctype: str, *, retry: bool | None,
                  headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        if status >= 400:
            self.send_header("retry-after-ms", "10")
        if retry is not None:
            self.send_header("x-should-retry", "true" if retry else "false")
        self.end_headers()
        self.wfile.write(data)

    def _send_json(self, status: int, obj: Any, *, retry: bool | None = None) -> None:
        self._send_raw(status, json.dumps(obj).encode(), "application/json", retry=retry)

    def _start_chunked(self, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _abort(self) -> None:
        """Close the connection mid-body, as a crashed server or proxy would."""
        self.close_connection = True
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _sleep(self, seconds: float) -> bool:
        """Wait; False when the server is stopping (then stop sending)."""
        return not self.server.owner._stopping.wait(seconds)

    def _drip(self, byte: bytes, reply: Reply) -> None:
        """One byte every ``interval`` s until the client hangs up or the server stops (or, with
        ``give_up``, that many seconds have passed)."""
        end = None if reply.give_up is None else time.monotonic() + reply.give_up
        while self._sleep(reply.seconds) and (end is None or time.monotonic() < end):
            self._write_chunk(byte)
        self._abort()

    # -- answering

    def _answer(self, path: str, body: dict[str, Any], reply: Reply, cached: int = 0) -> None:
        streaming = bool(body.get("stream"))
        counts = None
        if path == ANTHROPIC_PATH and reply.kind not in ("raw", "error"):
            counts = self.server.owner.anthropic.account(body)  # the prompt cache, read+written
            if reply.thinking is not None and reply.calls:
                self.server.owner.anthropic.remember(anthropic_tool_uses(reply))
        if reply.kind == "raw":
            self._send_raw(reply.status, reply.body, reply.content_type, retry=None,
                           headers=reply.headers)
            return
        if reply.kind == "error" or (reply.kind == "stream_error" and not streaming):
            self._send_json(reply.status, error_body(path, reply), retry=False
                            if reply.kind == "stream_error" else None)
            return
        if not streaming:
            self._answer_json(path, body, reply, counts, cached)
            return
        self._start_chunked("text/event-stream")
        for frame in sse_frames(path, body, reply, counts, cached):
            if frame is not None:
                self._write_chunk(frame)
                continue
            # where drop / stall / stream_error / drip / huge act
            if reply.kind == "drop":
                self._abort()
                return
            if reply.kind == "stream_error":
                self._write_chunk(sse_error(path, reply))
                break
            if reply.kind == "drip":
                self._drip(b"\n", reply)  # blank lines: valid SSE, no event
                return
            if reply.kind == "huge":
                for piece in huge_pieces(path, reply.size, streaming=True):
                    self._write_chunk(piece)
                continue
            if not self._sleep(reply.seconds):
                self._abort()
                return
        self._end_chunked()

    def _answer_json(self, path: str, body: dict[str, Any], reply: Reply,
                     counts: dict[str, int] | None = None, cached: int = 0) -> None:
        if reply.kind == "drip":
            self._start_chunked("application/json")
            self._drip(b" ", reply)  # JSON whitespace, forever
            return
        if reply.kind == "huge":
            self._start_chunked("application/json")
            for piece in huge_pieces(path, reply.size, streaming=False):
                self._write_chunk(piece)
            self._end_chunked()
            return
        if reply.kind == "stall" and not self._sleep(reply.seconds):
            return
        obj = anthropic_message(body, reply, counts) if path == ANTHROPIC_PATH else \
            response_object(body, reply, cached) if path == RESPONSES_PATH else \
            openai_message(body, reply, cached)
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
    reject_null_content: bool = True
    no_streamed_tools: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    anthropic: AnthropicState = field(default_factory=AnthropicState)
    """The Anthropic side's memory: prompt cache, thinking given (``fake_anthropic.py``)."""
    models: list[str] | None = field(default_factory=lambda: list(DEFAULT_MODELS))
    """What ``GET /v1/models`` lists (None: the path does not exist, HTTP 404)."""
    models_reply: Reply | None = None
    """Served to ``GET /v1/models`` instead of the list (an error, a page of HTML, ...)."""
    prompt_cache: PromptCache = field(default_factory=PromptCache)
    responses_api: bool = True
    """False: no ``/v1/responses`` (HTTP 404, as most compatible servers)."""
    media_seen: list[list[tuple[str, str, int, Any]]] = field(default_factory=list)
    """Per POST, the images and documents it carried (``fake_media.py``): (where, media type,
    bytes, url)."""

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
        self._stopping.set()  # wakes stalled and dripping handlers
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
    ap.add_argument("--accept-null-content", action="store_true",
                    help="accept assistant messages with content: null (default: HTTP 500, as "
                         "llama-cpp-python's server answers)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log each request to stderr")
    args = ap.parse_args(argv)
    srv = FakeProviderServer(port=args.port, echo=args.echo or not args.script,
                             verbose=args.verbose,
                             reject_null_content=not args.accept_null_content)
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            specs = json.load(f)
        srv.script(*[reply_from_json(s) for s in specs])
    return serve(srv, lambda: time.sleep(1e9), banner=True)


def serve(srv: FakeProviderServer, wait: Any, banner: bool = False) -> int:
    """Start ``srv``, say where it listens, serve until ``wait()`` returns or Ctrl-C, stop."""
    srv.start()
    print(f"listening on {srv.url}", flush=True)
    if banner:
        print(f"  OpenAI:    --base-url {srv.openai_base_url}", flush=True)
        print(f"  Anthropic: --base-url {srv.anthropic_base_url}", flush=True)
    try:
        wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
