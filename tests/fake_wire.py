"""How each scripted reply (``fake_replies.py``) is spelled on the wire: OpenAI Chat Completions
and Anthropic Messages, JSON and SSE, including the rude parts (finish reasons left out or
changed, no usage, missing or repeated ids, one call split into many tool_use blocks, a huge line
generated lazily). Anthropic replies may start with a signed thinking block (streamed as
thinking_delta then signature_delta) and redacted_thinking blocks, and report usage the 2026
way (cache read and write counts, the thinking share of the output; ``fake_anthropic.py``).
``fake_server.py`` serves them over HTTP.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any, Iterator

from fake_anthropic import input_tokens, redacted_data, sign
from fake_openai_rules import RESPONSES_PATH
from fake_replies import Reply

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"
PIECE = 64 * 1024


# --- helpers ------------------------------------------------------------------------------------

_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                          403: "permission_error", 404: "not_found_error",
                          413: "request_too_large", 429: "rate_limit_error",
                          500: "api_error", 529: "overloaded_error"}
_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
                       403: "invalid_request_error", 404: "invalid_request_error",
                       429: "rate_limit_error", 500: "server_error"}
_FINISH = {"openai": {"max_tokens": "length", "content_filter": "content_filter"},
           "anthropic": {"max_tokens": "max_tokens", "content_filter": "refusal"}}


def _pieces(s: str, chunks: int | None) -> list[str]:
    """Split ``s`` into streaming pieces (words keeping their spaces, or ``chunks`` parts)."""
    if not s:
        return []
    if chunks and chunks > 0:
        size = -(-len(s) // chunks)
        return [s[i:i + size] for i in range(0, len(s), size)]
    return re.findall(r"[^ ]* |[^ ]+$", s)  # each word with the spaces after it


def _split(s: str, n: int = 3) -> list[str]:
    """Split an argument string in (up to) ``n`` pieces, as real streams do."""
    if len(s) < n:
        return [s]
    cuts = [len(s) * i // n for i in range(n + 1)]
    return [s[a:b] for a, b in zip(cuts, cuts[1:])]


def _args_text(args: dict[str, Any] | str) -> str:
    return args if isinstance(args, str) else json.dumps(args)


def _usage(body: dict[str, Any], reply: Reply) -> tuple[int, int]:
    n_messages = len(body.get("messages") or [])
    return 10 * n_messages, max(1, len(reply.text.split()) + len(reply.calls))


def _call_id(prefix: str, reply: Reply, i: int) -> str | None:
    return None if reply.ids == "none" else f"{prefix}_{0 if reply.ids == 'same' else i}"


def _finish(wire: str, reply: Reply) -> str | None:
    if reply.finish == "none":
        return None
    if reply.finish:
        return _FINISH[wire][reply.finish]
    if wire == "openai":
        return "tool_calls" if reply.calls else "stop"
    return "tool_use" if reply.calls else "end_turn"


def null_content_error(body: dict[str, Any]) -> str | None:
    """What llama-cpp-python's server says (HTTP 500) to an assistant message whose ``content``
    is null; None when the request has none."""
    for i, m in enumerate(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "assistant" and m.get("content", "") is None:
            return (f"1 validation error: {{'type': 'string_type', 'loc': ('body', 'messages', "
                    f"{i}, 'ChatCompletionRequestAssistantMessage', 'content'), "
                    "'msg': 'Input should be a valid string', 'input': None}")
    return None


# --- OpenAI -------------------------------------------------------------------------------------

def _openai_usage(body: dict[str, Any], reply: Reply, cached: int) -> dict[str, Any]:
    """Usage as OpenAI reports it: the details always, reasoning tokens for reasoning models."""
    from fake_openai_rules import reasoning_levels

    inp, out = _usage(body, reply)
    model = str(body.get("model") or "")
    effort = body.get("reasoning_effort") or (reasoning_levels(model) or (None,))[0]
    reasoning = 16 if effort not in (None, "none") else 0
    return {"prompt_tokens": inp, "completion_tokens": out + reasoning,
            "total_tokens": inp + out + reasoning,
            "prompt_tokens_details": {"cached_tokens": min(cached, inp), "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def openai_message(body: dict[str, Any], reply: Reply, cached: int = 0) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.calls:
        message["tool_calls"] = []
        for i, (name, args) in enumerate(reply.calls):
            call: dict[str, Any] = {"type": "function",
                                    "function": {"name": name, "arguments": _args_text(args)}}
            if reply.ids != "none":
                call["id"] = _call_id("call", reply, i)
            message["tool_calls"].append(call)
    obj: dict[str, Any] = {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": _finish("openai", reply)}]}
    if reply.usage:
        obj["usage"] = _openai_usage(body, reply, cached)
    return obj


def openai_chunks(body: dict[str, Any], reply: Reply, cached: int = 0
                  ) -> Iterator[dict[str, Any] | None]:
    """Chunks of a streamed completion; ``None`` marks where drop/stall/huge/drip act."""
    model = body.get("model", "fake")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(reply.text, reply.chunks):
        yield chunk({"content": piece})
    if reply.kind != "text" and reply.kind != "tool_calls":
        yield None
    for i, (name, args) in enumerate(reply.calls):
        first: dict[str, Any] = {"index": i, "type": "function",
                                 "function": {"name": name, "arguments": ""}}
        if reply.ids != "none":
            first["id"] = _call_id("call", reply, i)
        yield chunk({"tool_calls": [first]})
        for piece in _split(_args_text(args)):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    finish = _finish("openai", reply)
    if finish is not None:
        yield chunk({}, finish)
    if reply.usage and (body.get("stream_options") or {}).get("include_usage"):
        yield {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
               "model": model, "choices": [], "usage": _openai_usage(body, reply, cached)}


# --- Anthropic ----------------------------------------------------------------------------------

def _tool_input(args: dict[str, Any] | str) -> Any:
    if isinstance(args, dict):
        return args
    try:
        return json.loads(args)
    except ValueError:
        return args  # not JSON: sent as a bare string, as a broken server might


def anthropic_tool_uses(reply: Reply) -> list[dict[str, Any]]:
    """The tool_use blocks of a reply, as a non-streamed reply holds them."""
    out = []
    for i, (name, args) in enumerate(reply.calls):
        block = {"type": "tool_use", "id": _call_id("toolu", reply, i), "name": name,
                 "input": _tool_input(args)}
        out.append({k: v for k, v in block.items() if v is not None})
    return out


def _thinking_blocks(body: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    """The signed thinking block and the redacted ones a reply starts with."""
    model = str(body.get("model", "fake"))
    out: list[dict[str, Any]] = []
    if reply.thinking is not None:
        out.append({"type": "thinking", "thinking": reply.thinking,
                    "signature": sign(model, reply.thinking)})
    out += [{"type": "redacted_thinking", "data": redacted_data(model, n)}
            for n in range(reply.redacted)]
    return out


def _anthropic_usage(body: dict[str, Any], reply: Reply, counts: dict[str, int] | None,
                     *, final: bool = True) -> dict[str, Any]:
    """Usage as the 2026 API reports it: the cache counts beside the uncached input, and the
    thinking share of the output. ``counts``: the server's cache accounting (None: no cache)."""
    if counts is None:
        counts = {"input_tokens": input_tokens(body), "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0}
    thought = len((reply.thinking or "").split()) + reply.redacted
    usage: dict[str, Any] = {**counts, "output_tokens": 1}
    if final:
        usage["output_tokens"] = max(1, len(reply.text.split()) + len(reply.calls)) + thought
        if thought:
            usage["output_tokens_details"] = {"thinking_tokens": thought}
    return usage


def anthropic_message(body: dict[str, Any], reply: Reply,
                      counts: dict[str, int] | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = _thinking_blocks(body, reply)
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    content += anthropic_tool_uses(reply)
    obj = {"id": "msg_fake", "type": "message", "role": "assistant",
           "model": body.get("model", "fake"), "content": content,
           "stop_reason": _finish("anthropic", reply), "stop_sequence": None}
    if reply.usage:
        obj["usage"] = _anthropic_usage(body, reply, counts)
    return obj


def _block_events(index: int, block: dict[str, Any],
                  deltas: list[dict[str, Any]]) -> Iterator[tuple[str, dict]]:
    yield "content_block_start", {"type": "content_block_start", "index": index,
                                  "content_block": block}
    for delta in deltas:
        yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                      "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def _thinking_events(body: dict[str, Any], reply: Reply) -> Iterator[tuple[str, dict]]:
    """thinking: start empty, thinking_delta word by word, signature_delta, stop; redacted:
    start with its data, stop."""
    for index, block in enumerate(_thinking_blocks(body, reply)):
        if block["type"] == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": p}
                      for p in _pieces(block["thinking"], None)]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
            yield from _block_events(index, {"type": "thinking", "thinking": "",
                                             "signature": ""}, deltas)
        else:
            yield from _block_events(index, block, [])


def anthropic_events(body: dict[str, Any], reply: Reply,
                     counts: dict[str, int] | None = None
                     ) -> Iterator[tuple[str, dict] | None]:
    start = {"id": "msg_fake", "type": "message", "role": "assistant",
             "model": body.get("model", "fake"), "content": [], "stop_reason": None,
             "stop_sequence": None}
    if reply.usage:
        start["usage"] = _anthropic_usage(body, reply, counts, final=False)
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    yield from _thinking_events(body, reply)
    index = (reply.thinking is not None) + reply.redacted
    if reply.text or not reply.calls:
        yield "content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {"type": "text", "text": ""}}
        for piece in _pieces(reply.text, reply.chunks):
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": piece}}
        if reply.kind != "text" and reply.kind != "tool_calls":
            yield None
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    for i, (name, args) in enumerate(reply.calls):
        pieces = _split(_args_text(args), reply.split_blocks or 3)
        # split_blocks: one block per piece, all under the same id (what a LiteLLM proxy sent)
        groups = [[p] for p in pieces] if reply.split_blocks else [pieces]
        for group in groups:
            block = {"type": "tool_use", "id": _call_id("toolu", reply, i), "name": name,
                     "input": {}}
            yield from _block_events(
                index, {k: v for k, v in block.items() if v is not None},
                [{"type": "input_json_delta", "partial_json": p} for p in group])
            index += 1
    delta: dict[str, Any] = {"type": "message_delta",
                             "delta": {"stop_reason": _finish("anthropic", reply),
                                       "stop_sequence": None}}
    if reply.usage:
        delta["usage"] = _anthropic_usage(body, reply, counts)
    yield "message_delta", delta
    yield "message_stop", {"type": "message_stop"}


# --- framing ------------------------------------------------------------------------------------

def sse_frames(path: str, body: dict[str, Any], reply: Reply,
               counts: dict[str, int] | None = None, cached: int = 0
               ) -> Iterator[bytes | None]:
    """``counts``: Anthropic's cache read/write counts; ``cached``: OpenAI's cached tokens."""
    if path == RESPONSES_PATH:
        import fake_wire_responses as responses  # it imports this module

        yield from responses.sse_frames(body, reply, cached)
        return
    if path == ANTHROPIC_PATH:
        for item in anthropic_events(body, reply, counts):
            yield None if item is None else (
                f"event: {item[0]}\ndata: {json.dumps(item[1])}\n\n".encode())
        return
    for chunk in openai_chunks(body, reply, cached):
        yield None if chunk is None else f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def sse_error(path: str, reply: Reply) -> bytes:
    """An error event inside a stream (Anthropic: overloaded_error; OpenAI: an error object)."""
    if path == ANTHROPIC_PATH:
        data = json.dumps(error_body(path, replace(reply, status=529)))
        return f"event: error\ndata: {data}\n\n".encode()
    return f"data: {json.dumps(error_body(path, reply))}\n\n".encode()


def error_body(path: str, reply: Reply) -> dict[str, Any]:
    if path.startswith(ANTHROPIC_PATH):
        etype = reply.error_type or _ANTHROPIC_ERROR_TYPES.get(reply.status, "api_error")
        return {"type": "error", "error": {"type": etype, "message": reply.message}}
    etype = reply.error_type or _OPENAI_ERROR_TYPES.get(reply.status, "server_error")
    code = "model_not_found" if reply.status == 404 else None
    return {"error": {"message": reply.message, "type": etype, "param": None, "code": code}}


def huge_pieces(path: str, size: int, streaming: bool) -> Iterator[bytes]:
    """A text of ``size`` bytes inside one SSE data line (streamed) or one JSON body, in 64 KiB
    pieces; the same piece object is yielded again and again, so nothing big is ever built."""
    if path == RESPONSES_PATH and not streaming:  # streamed: spelled in its events
        import fake_wire_responses as responses  # it imports this module

        yield from responses.huge_json(size)
        return
    anthropic = path == ANTHROPIC_PATH
    if streaming:
        head = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                b'"delta":{"type":"text_delta","text":"' if anthropic else
                b'data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":0,'
                b'"model":"fake","choices":[{"index":0,"delta":{"content":"')
        tail = b'"}}\n\n' if anthropic else b'"},"finish_reason":null}]}\n\n'
    else:
        head = (b'{"id":"msg_fake","type":"message","role":"assistant","model":"fake",'
                b'"content":[{"type":"text","text":"' if anthropic else
                b'{"id":"chatcmpl-fake","object":"chat.completion","created":0,"model":"fake",'
                b'"choices":[{"index":0,"message":{"role":"assistant","content":"')
        tail = (b'"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}'
                if anthropic else b'"},"finish_reason":"stop"}]}')
    yield head
    piece = b"x" * PIECE
    left = size
    while left > 0:
        yield piece if left >= PIECE else piece[:left]
        left -= PIECE
    yield tail
