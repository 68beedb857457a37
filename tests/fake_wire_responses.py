"""The fake server's OpenAI side as of 2026: the Responses API (``POST /v1/responses``), the
model lists of both vendors (``GET /v1/models``), and what the real servers refuse.

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
- **Reasoning models** (``reasoning_levels``): o-series, gpt-5 and later. Their replies start
  with a ``reasoning`` item (unless the effort is ``none``): its ``encrypted_content`` (only with
  ``include: ["reasoning.encrypted_content"]``) is signed by the fake, and its summary is sent
  only when ``reasoning.summary`` is asked for. Item ids share the response's own prefix, as
  OpenAI's do (``rs_<P>00``, ``fc_<P>01``, ``msg_<P>02``).
- **Refusals, with the real wording** (HTTP 400, ``invalid_request_error``):
  - Chat Completions with function tools for gpt-5.2 and later while the reasoning effort (sent,
    or the model's default) is not ``none``;
  - a reasoning effort the model does not take, or any effort for a model that does not reason;
  - a ``function_call`` item whose id came from a reasoning response, sent without that
    response's ``reasoning`` item; a ``reasoning`` item not followed by its own next item;
  - a ``reasoning`` item whose ``encrypted_content`` was altered (``invalid_encrypted_content``),
    or that has none while ``store`` is false;
  - a ``function_call_output`` whose ``call_id`` no function call in the input has, and a
    function call without its output.
- **Prompt cache**: ``cached_tokens`` are the tokens of the longest prefix (the instructions and
  tools, then input items in order) that an earlier request with the same ``prompt_cache_key``
  and model already sent (Chat Completions: the messages), once it reaches
  ``PromptCache.min_tokens`` (1,024, as OpenAI's; ``srv.prompt_cache.min_tokens = 0`` in tests).
  Usage counts 10 tokens per input item (the instructions count as one), like the Chat
  Completions fake counts messages.
- **Model lists**: OpenAI's ``{"object": "list", "data": [...]}``; Anthropic's (the request
  carries ``anthropic-version``) pages of ``limit`` (default 20) with ``has_more``,
  ``first_id``, ``last_id`` and the ``after_id``/``before_id`` cursors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import uuid
from typing import Any, Iterator

from fake_replies import Reply
from fake_wire import _pieces
from fake_wire import _split as _thirds

RESPONSES_PATH = "/v1/responses"
MODELS_PATHS = ("/v1/models", "/models")
DEFAULT_MODELS = ("gpt-5.6-terra", "gpt-5.4-mini", "gpt-4.1-mini", "o4-mini",
                  "claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-4-5", "test-model")
_SECRET = b"fake-server-reasoning-key"
_PIECE = 64 * 1024
Problem = tuple[int, dict[str, Any]]  # (HTTP status, error body)


# --- which models reason, and how much ---------------------------------------------------------

_LEVELS = (
    (r"o\d(-.*)?", "medium", ("low", "medium", "high")),
    (r"gpt-5(-mini|-nano)?(-\d{4}-\d\d-\d\d)?", "medium", ("minimal", "low", "medium", "high")),
    (r"gpt-5\.1(-.*)?", "none", ("none", "low", "medium", "high")),
    (r"gpt-5\.[23](-.*)?", "none", ("none", "low", "medium", "high", "xhigh")),
    (r"gpt-(5\.([4-9]|\d\d+)|[6-9](\.\d+)?)(-.*)?", "medium",
     ("none", "low", "medium", "high", "xhigh")),
)


def reasoning_levels(model: str) -> tuple[str, tuple[str, ...]] | None:
    """(the default effort, the efforts it takes) for a reasoning model; None otherwise
    (``-chat`` models do not reason)."""
    if "-chat" in model:
        return None
    for pattern, default, levels in _LEVELS:
        if re.fullmatch(pattern, model):
            return default, levels
    return None


def _effort(model: str, sent: Any) -> str | None:
    known = reasoning_levels(model)
    if known is None:
        return None
    return sent if isinstance(sent, str) else known[0]


def _bad(message: str, param: str | None = None, code: str | None = None) -> Problem:
    return 400, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                           "code": code}}


def _listed(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _effort_problem(model: str, effort: Any, param: str) -> Problem | None:
    if effort is None:
        return None
    known = reasoning_levels(model)
    if known is None:
        return _bad(f"Unsupported parameter: '{param}' is not supported with this model.",
                    param, "unsupported_parameter")
    if effort not in known[1]:
        return _bad(f"Unsupported value: '{param}' does not support '{effort}' with this model. "
                    f"Supported values are: {_listed(known[1])}.", param, "unsupported_value")
    return None


def chat_problem(body: dict[str, Any]) -> Problem | None:
    """What OpenAI's Chat Completions refuses of a 2026 reasoning model (None: accepted)."""
    model = str(body.get("model") or "")
    sent = body.get("reasoning_effort")
    problem = _effort_problem(model, sent, "reasoning_effort")
    if problem:
        return problem
    effort = _effort(model, sent)
    newer = re.fullmatch(r"gpt-(5\.([2-9]|\d\d+)|[6-9](\.\d+)?)(-.*)?", model)
    if body.get("tools") and newer and effort not in (None, "none"):
        return _bad(f"Function tools with reasoning_effort are not supported for {model} in "
                    "/v1/chat/completions. To use function tools, use /v1/responses or set "
                    "reasoning_effort to 'none'.", "reasoning_effort")
    return None


# --- encrypted reasoning: signed, so the fake sees any change ------------------------------------

def seal(item_id: str, model: str, summary: str) -> str:
    payload = json.dumps({"id": item_id, "model": model, "summary": summary}).encode()
    mac = hmac.new(_SECRET, payload, hashlib.sha256).digest()[:16]
    return "gAAAAA" + base64.urlsafe_b64encode(mac + payload).decode()


def unseal(item_id: str, content: Any) -> bool:
    """Was ``content`` made by ``seal`` for ``item_id``, unchanged?"""
    if not isinstance(content, str) or not content.startswith("gAAAAA"):
        return False
    try:
        raw = base64.urlsafe_b64decode(content[6:].encode())
        mac, payload = raw[:16], raw[16:]
        ok = hmac.compare_digest(mac, hmac.new(_SECRET, payload, hashlib.sha256).digest()[:16])
        return ok and json.loads(payload)["id"] == item_id
    except (ValueError, KeyError, TypeError):
        return False


# --- what /v1/responses refuses -------------------------------------------------------------------

def _prefix(item_id: str) -> str:
    """The response prefix an output item id carries (``fc_<P>01`` -> ``<P>``)."""
    return item_id.split("_", 1)[-1][:-2]


def responses_problem(body: dict[str, Any]) -> Problem | None:
    """The 400 OpenAI answers to this Responses request, or None when it would be accepted."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _bad("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    problem = _effort_problem(model, reasoning.get("effort"), "reasoning.effort")
    if problem:
        return problem
    problem = _tools_problem(body.get("tools"))
    if problem:
        return problem
    items = body.get("input")
    if isinstance(items, str):
        return None
    if not isinstance(items, list):
        return _bad("Invalid type for 'input': expected a string or an array.", "input")
    return _items_problem(items, store=body.get("store", True) is not False)


def _tools_problem(tools: Any) -> Problem | None:
    """Function tools are strict unless ``strict: false`` is sent; a strict schema must close
    every object (``additionalProperties: false``) and require every property."""
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        if tool.get("strict", True) is False:
            continue
        why = _not_strict(tool.get("parameters") or {})
        if why:
            return _bad(f"Invalid schema for function '{tool.get('name')}': In context=(), "
                        f"{why}", f"tools[{i}].parameters", "invalid_function_parameters")
    return None


def _not_strict(schema: dict[str, Any]) -> str | None:
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            return "'additionalProperties' is required to be supplied and to be false."
        props = schema.get("properties") or {}
        missing = [k for k in props if k not in (schema.get("required") or ())]
        if missing:
            return (f"'required' is required to be supplied and to be an array including "
                    f"every key in properties. Missing '{missing[0]}'.")
        for sub in props.values():
            if isinstance(sub, dict) and _not_strict(sub):
                return _not_strict(sub)
    return None


def _items_problem(items: list[Any], store: bool) -> Problem | None:
    seen_reasoning: set[str] = set()
    calls: set[str] = set()
    answered: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return _bad(f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]")
        kind = item.get("type") or ("message" if "role" in item else None)
        item_id = str(item.get("id") or "")
        if kind == "reasoning":
            if not store and "encrypted_content" not in item:
                return _bad(f"Item with id '{item_id}' not found. Items are not persisted when "
                            "`store` is set to false. Try again with `store` set to true, or "
                            "remove this item from your input.", "input")
            if not unseal(item_id, item.get("encrypted_content")):
                return _bad(f"The encrypted content for item {item_id} could not be verified. "
                            "Reason: Encrypted content could not be decrypted or parsed.", None,
                            "invalid_encrypted_content")
            following = items[i + 1] if i + 1 < len(items) else None
            next_id = str(following.get("id") or "") if isinstance(following, dict) else ""
            if not next_id or next_id[:3] not in ("fc_", "msg") or \
                    _prefix(next_id) != _prefix(item_id):
                return _bad(f"Item '{item_id}' of type 'reasoning' was provided without its "
                            "required following item.", "input")
            seen_reasoning.add(_prefix(item_id))
        elif kind == "function_call":
            if item_id.startswith("fc_") and item_id[-3:-2] == "r" and \
                    _prefix(item_id) not in seen_reasoning:
                required = f"rs_{_prefix(item_id)}00"
                return _bad(f"Item '{item_id}' of type 'function_call' was provided without its "
                            f"required 'reasoning' item: '{required}'.", "input")
            calls.add(str(item.get("call_id")))
        elif kind == "function_call_output":
            call_id = str(item.get("call_id"))
            if call_id not in calls:
                return _bad(f"No tool call found for function call output with call_id "
                            f"{call_id}.", "input")
            answered.add(call_id)
    missing = sorted(calls - answered)
    if missing:
        return _bad(f"No tool output found for function call {missing[0]}.", "input")
    return None


# --- the prompt cache -------------------------------------------------------------------------------

class PromptCache:
    """Prefixes sent before, per (prompt_cache_key, model): a repeated prefix is a cache read,
    from ``min_tokens`` on (OpenAI caches prompts of 1,024 tokens or more; tests of the cache
    set it lower)."""

    def __init__(self, min_tokens: int = 1024) -> None:
        self.min_tokens = min_tokens
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], set[tuple[str, ...]]] = {}

    def cached_tokens(self, path: str, body: dict[str, Any]) -> int:
        if path == RESPONSES_PATH:
            head = json.dumps([body.get("instructions"), body.get("tools")], sort_keys=True)
            items = body.get("input")
            units = [head] + ([json.dumps(x, sort_keys=True) for x in items]
                              if isinstance(items, list) else [json.dumps(items)])
        else:
            head = json.dumps(body.get("tools"), sort_keys=True)
            units = [head] + [json.dumps(m, sort_keys=True) for m in body.get("messages") or []]
        hashes = []
        for unit in units:
            prev = hashes[-1] if hashes else ""
            hashes.append(hashlib.sha256((prev + unit).encode()).hexdigest()[:16])
        key = (str(body.get("prompt_cache_key")), str(body.get("model")))
        with self._lock:
            seen = self._seen.setdefault(key, set())
            hit = 0
            for n in range(len(hashes), 1, -1):  # the tools/instructions alone are no prefix
                if hashes[n - 1] in seen:
                    hit = n - 1
                    break
            seen.update(hashes)
        return 10 * hit if 10 * hit >= self.min_tokens else 0


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
        effort = _effort(self.model, reasoning.get("effort"))
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
