"""The fake server's OpenAI side as of 2026: the Responses API (``POST /v1/responses``) and the
model lists of both vendors (``GET /v1/models``).

Spelled after the SDK's own types (``openai/types/responses/``) and the public error texts:

- **Responses**, JSON or SSE (``event: <type>`` + ``data:``, every event with a
  ``sequence_number`` from 0): ``response.created``, ``response.in_progress``, then per output
  item ``response.output_item.added`` ... ``response.output_item.done`` (a reasoning item with
  ``response.reasoning_summary_part.added`` / ``response.reasoning_summary_text.delta`` /
  ``.done`` / ``response.reasoning_summary_part.done``; a message with
  ``response.content_part.added``, ``response.output_text.delta``, ``response.output_text.done``,
  ``response.content_part.done``; a function call with
  ``response.function_call_arguments.delta`` / ``.done``), and last ``response.completed`` or
  ``response.incomplete`` (``incomplete_details.reason``: ``max_output_tokens`` or
  ``content_filter``). A server error inside the stream is an ``error`` event.
- **Which models reason, what is refused, the prompt cache**: ``fake_openai_rules.py``. A
  reasoning model's reply starts with a ``reasoning`` item (unless the effort is ``none``): its
  ``encrypted_content`` (only with ``include: ["reasoning.encrypted_content"]``) is signed, and
  its summary is sent only when ``reasoning.summary`` is asked for. Item ids share the
  response's own prefix, as OpenAI's do (``rs_<P>00``, ``fc_<P>01``, ``msg_<P>02``).
- **Model lists**: OpenAI's ``{"object": "list", "data": [...]}``; Anthropic's (the request
  carries ``anthropic-version``) pages of ``limit`` (default 20) with ``has_more``,
  ``first_id``, ``last_id`` and the ``after_id``/``before_id`` cursors.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterator

from fake_openai_rules import effective_effort, seal
from fake_replies import Reply
from fake_wire import _pieces
from fake_wire import _split as _thirds

MODELS_PATHS = ("/v1/models", "/models")
DEFAULT_MODELS = ("gpt-5.6-terra", "gpt-5.4-mini", "gpt-4.1-mini", "o4-mini",
                  "claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-4-5", "test-model")
_PIECE = 64 * 1024


# --- the reply ----------------------------------------------------------------------------------

def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or () if isinstance(p, dict))


def chat_view(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses request seen as Chat Completions messages (for the echo mode and the bench
    server, which choose replies from ``messages``)."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    items = body.get("input")
    for item in [{"role": "user", "content": items}] if isinstance(items, str) else items or ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type") or "message"
        if kind == "message":
            messages.append({"role": item.get("role"), "content": _text_of(item.get("content"))})
        elif kind == "function_call":
            if not messages or messages[-1].get("role") != "assistant":
                messages.append({"role": "assistant", "content": ""})
            messages[-1].setdefault("tool_calls", []).append(
                {"id": item.get("call_id"), "type": "function",
                 "function": {"name": item.get("name"), "arguments": item.get("arguments")}})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": str(item.get("output"))})
    return {**body, "messages": messages}


class _Plan:
    """One reply's output items and usage, shared by the JSON and the SSE spelling."""

    def __init__(self, body: dict[str, Any], reply: Reply, cached: int) -> None:
        self.body = body
        self.reply = reply
        self.model = str(body.get("model") or "fake")
        reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
        effort = effective_effort(self.model, reasoning.get("effort"))
        self.reasons = effort not in (None, "none")
        self.prefix = uuid.uuid4().hex[:20] + ("r" if self.reasons else "n")
        self.summarize = bool(reasoning.get("summary")) and self.reasons
        self.encrypted = "reasoning.encrypted_content" in (body.get("include") or ())
        view = chat_view(body)["messages"]
        asked = next((_text_of(m.get("content")) for m in reversed(view)
                      if m.get("role") == "user"), "")
        plan = (f"call {', '.join(n for n, _ in reply.calls)}" if reply.calls
                else "answer directly")
        self.summary = f"**Planning** The user asks {asked[:40]!r}; I will {plan}."
        items = body.get("input")
        n_items = len(items) if isinstance(items, list) else 1
        self.input_tokens = 10 * (n_items + (1 if body.get("instructions") else 0))
        self.cached = min(cached, self.input_tokens)
        self.reasoning_tokens = 16 if self.reasons else 0
        self.output_tokens = max(1, len(reply.text.split()) + len(reply.calls)) + \
            self.reasoning_tokens

    def item_id(self, kind: str, index: int) -> str:
        return f"{kind}_{self.prefix}{index:02x}"

    def reasoning_item(self, done: bool = True) -> dict[str, Any]:
        rid = self.item_id("rs", 0)
        item: dict[str, Any] = {"id": rid, "type": "reasoning", "summary": []}
        if done and self.summarize:
            item["summary"] = [{"type": "summary_text", "text": self.summary}]
        if self.encrypted:
            item["encrypted_content"] = seal(rid, self.model, self.summary) if done else ""
        return item

    def message_item(self, index: int, text: str, status: str = "completed") -> dict[str, Any]:
        content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        return {"id": self.item_id("msg", index), "type": "message", "role": "assistant",
                "status": status, "content": content if status == "completed" or text else []}

    def call_item(self, index: int, i: int, status: str = "completed") -> dict[str, Any]:
        name, args = self.reply.calls[i]
        # unique in the conversation, as OpenAI's are (ids="same": one id for every call)
        call_id = "" if self.reply.ids == "none" else "call_0" if self.reply.ids == "same" \
            else f"call_{self.prefix[:10]}{i}"
        text = args if isinstance(args, str) else json.dumps(args)
        return {"id": self.item_id("fc", index), "type": "function_call", "status": status,
                "call_id": call_id, "name": name,
                "arguments": text if status == "completed" else ""}

    def output(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [self.reasoning_item()] if self.reasons else []
        if self.reply.text or not self.reply.calls:
            out.append(self.message_item(len(out), self.reply.text))
        start = len(out)
        out.extend(self.call_item(start + i, i) for i in range(len(self.reply.calls)))
        return out

    def status(self) -> tuple[str, dict[str, Any] | None]:
        finish = self.reply.finish
        if finish == "max_tokens":
            return "incomplete", {"reason": "max_output_tokens"}
        if finish == "content_filter":
            return "incomplete", {"reason": "content_filter"}
        return "completed", None

    def usage(self) -> dict[str, Any] | None:
        if not self.reply.usage:
            return None
        return {"input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": self.cached, "cache_write_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
                "total_tokens": self.input_tokens + self.output_tokens}

    def response(self, status: str, output: list[dict[str, Any]], final: bool) -> dict[str, Any]:
        body = self.body
        obj: dict[str, Any] = {
            "id": f"resp_{self.prefix}", "object": "response", "created_at": 1767225600,
            "model": self.model, "status": status, "output": output,
            "parallel_tool_calls": True, "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [], "store": body.get("store", True),
            "instructions": body.get("instructions"), "error": None,
            "incomplete_details": None, "usage": None,
            "max_output_tokens": body.get("max_output_tokens"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"),
                          "summary": (body.get("reasoning") or {}).get("summary")}}
        if final:
            obj["status"], obj["incomplete_details"] = self.status()
            obj["usage"] = self.usage()
        return obj


def response_object(body: dict[str, Any], reply: Reply, cached: int = 0) -> dict[str, Any]:
    plan = _Plan(body, reply, cached)
    return plan.response("completed", plan.output(), final=True)


def events(body: dict[str, Any], reply: Reply, cached: int = 0
           ) -> Iterator[tuple[str, dict[str, Any]] | bytes | None]:
    """The SSE events of one streamed response, in order, each with its sequence number.
    ``None`` marks where drop, stall and drip act; a huge line and a stream error are spelled
    here (bytes), so their sequence numbers stay in order."""
    plan = _Plan(body, reply, cached)
    seq = iter(range(1 << 30))

    def ev(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, "sequence_number": next(seq), **fields}

    yield ev("response.created", response=plan.response("in_progress", [], final=False))
    yield ev("response.in_progress", response=plan.response("in_progress", [], final=False))
    output: list[dict[str, Any]] = []
    if plan.reasons:
        yield from _reasoning_events(plan, ev)
        output.append(plan.reasoning_item())
    if reply.text or not reply.calls:
        index = len(output)
        item_id = plan.item_id("msg", index)
        yield ev("response.output_item.added", output_index=index,
                 item=plan.message_item(index, "", "in_progress"))
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield ev("response.content_part.added", item_id=item_id, output_index=index,
                 content_index=0, part=part)
        where = dict(item_id=item_id, output_index=index, content_index=0)
        for piece in _pieces(reply.text, reply.chunks):
            yield ev("response.output_text.delta", **where, delta=piece, logprobs=[])
        if reply.kind == "huge":
            yield from _huge_delta(next(seq), item_id, index, reply.size)
        elif reply.kind == "stream_error":
            yield _frame(*ev("error", code="server_error", message=reply.message, param=None))
            return
        elif reply.kind not in ("text", "tool_calls"):
            yield None
        full = reply.text + ("x" * reply.size if reply.kind == "huge" else "")
        yield ev("response.output_text.done", **where, text=full, logprobs=[])
        yield ev("response.content_part.done", **where, part={**part, "text": full})
        message = plan.message_item(index, full)
        yield ev("response.output_item.done", output_index=index, item=message)
        output.append(message)
    for i, (_, args) in enumerate(reply.calls):
        index = len(output)
        item_id = plan.item_id("fc", index)
        yield ev("response.output_item.added", output_index=index,
                 item=plan.call_item(index, i, "in_progress"))
        text = args if isinstance(args, str) else json.dumps(args)
        for piece in _thirds(text):
            yield ev("response.function_call_arguments.delta", item_id=item_id,
                     output_index=index, delta=piece)
        yield ev("response.function_call_arguments.done", item_id=item_id, output_index=index,
                 arguments=text)
        call = plan.call_item(index, i)
        yield ev("response.output_item.done", output_index=index, item=call)
        output.append(call)
    if reply.finish == "none":
        return  # the stream ends without its final event
    final = plan.response("completed", output, final=True)
    kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
    yield ev(kind, response=final)


def _reasoning_events(plan: _Plan, ev: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    item_id = plan.item_id("rs", 0)
    yield ev("response.output_item.added", output_index=0, item=plan.reasoning_item(done=False))
    if plan.summarize:
        where = dict(item_id=item_id, output_index=0, summary_index=0)
        yield ev("response.reasoning_summary_part.added", **where,
                 part={"type": "summary_text", "text": ""})
        for piece in _pieces(plan.summary, None):
            yield ev("response.reasoning_summary_text.delta", **where, delta=piece)
        yield ev("response.reasoning_summary_text.done", **where, text=plan.summary)
        yield ev("response.reasoning_summary_part.done", **where,
                 part={"type": "summary_text", "text": plan.summary})
    yield ev("response.output_item.done", output_index=0, item=plan.reasoning_item())


def _frame(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def _huge_delta(seq: int, item_id: str, index: int, size: int) -> Iterator[bytes]:
    """One ``response.output_text.delta`` event whose delta is ``size`` bytes, in pieces."""
    yield (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
           b'"sequence_number":%d,"item_id":"%s","output_index":%d,"content_index":0,'
           b'"logprobs":[],"delta":"' % (seq, item_id.encode(), index))
    yield from _xs(size)
    yield b'"}\n\n'


def _xs(size: int) -> Iterator[bytes]:
    piece = b"x" * _PIECE
    left = size
    while left > 0:
        yield piece if left >= _PIECE else piece[:left]
        left -= _PIECE


def sse_frames(body: dict[str, Any], reply: Reply, cached: int = 0) -> Iterator[bytes | None]:
    for item in events(body, reply, cached):
        yield item if item is None or isinstance(item, bytes) else _frame(*item)


def huge_json(size: int) -> Iterator[bytes]:
    """A non-streamed Response whose one output text is ``size`` bytes."""
    yield (b'{"id":"resp_fake","object":"response","created_at":0,"model":"fake",'
           b'"status":"completed","parallel_tool_calls":true,"tool_choice":"auto","tools":[],'
           b'"output":[{"id":"msg_fake00","type":"message","role":"assistant",'
           b'"status":"completed","content":[{"type":"output_text","annotations":[],"text":"')
    yield from _xs(size)
    yield b'"}]}],"usage":null}'


# --- GET /v1/models ---------------------------------------------------------------------------

def models_page(names: tuple[str, ...] | list[str], anthropic: bool,
                query: dict[str, list[str]]) -> dict[str, Any]:
    """The model list in the vendor's shape (Anthropic's paged by ``limit`` and cursors)."""
    if not anthropic:
        return {"object": "list",
                "data": [{"id": n, "object": "model", "created": 1767225600 - i,
                          "owned_by": "openai" if n.startswith(("gpt", "o")) else "system"}
                         for i, n in enumerate(names)]}
    infos = [{"type": "model", "id": n, "display_name": _display(n),
              "created_at": f"2026-0{1 + i % 9}-01T00:00:00Z", "lifecycle": "active",
              "max_input_tokens": 1_000_000, "max_tokens": 128_000}
             for i, n in enumerate(names)]
    limit = int((query.get("limit") or ["20"])[0])
    ids = [m["id"] for m in infos]
    after = (query.get("after_id") or [None])[0]
    before = (query.get("before_id") or [None])[0]
    if after in ids:
        start = ids.index(after) + 1
        window = infos[start:start + limit]
        more = start + limit < len(infos)
    elif before in ids:
        end = ids.index(before)
        window = infos[max(0, end - limit):end]
        more = end - limit > 0
    else:
        window, more = infos[:limit], limit < len(infos)
    return {"data": window, "has_more": more,
            "first_id": window[0]["id"] if window else None,
            "last_id": window[-1]["id"] if window else None}


def _display(name: str) -> str:
    words = name.replace("-", " ").split()
    return " ".join(w.capitalize() if w.isalpha() else w for w in words)
