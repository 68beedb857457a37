"""Tool calling for local models: the prompt format, the output parser and the stream splitter.

The format is the Hermes / Qwen2.5 one, which most open instruct models were trained on (and which
SmolLM2's own ``<tool_call>`` convention resembles): tools are listed as JSON inside ``<tools>`` in
the system prompt, a call is ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` in the
assistant's reply, and a result goes back in a user turn inside ``<tool_response>``. Nothing here
needs llama.cpp, so it is tested on recorded model outputs alone.

Parsing is lenient about shape (a list inside one tag, ``parameters``/``args`` instead of
``arguments``, arguments given as a JSON string, bare JSON without tags when it names a known
tool) and strict about validity: anything that is not a well-formed call stays text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from ...errors import UsageError
from ...messages import (MediaPart, Message, TextPart, ToolCall, ToolDefinition, ToolResult,
                         loads_json)

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"
DEFAULT_SYSTEM = "You are a helpful assistant."

_TOOLS_PROMPT = """

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


def system_prompt(system: str | None, tools: Sequence[ToolDefinition]) -> str:
    """The system text with the tools advertised (Qwen2.5's own wording, so it matches there)."""
    base = system if system else DEFAULT_SYSTEM
    if not tools:
        return base
    lines = "\n".join(json.dumps({"type": "function", "function": {
        "name": t.name, "description": t.description, "parameters": t.parameters}},
        ensure_ascii=False) for t in tools)
    return base + _TOOLS_PROMPT.format(tools=lines)


def format_call(call: ToolCall) -> str:
    """An earlier call as the model would have written it (arguments kept verbatim)."""
    args = call.arguments.strip() or "{}"
    try:
        loads_json(args)
    except ValueError:
        args = json.dumps(args)  # keep the prompt well-formed; the model sees what it sent
    return f'{OPEN_TAG}\n{{"name": {json.dumps(call.name)}, "arguments": {args}}}\n{CLOSE_TAG}'


def format_result(result: ToolResult) -> str:
    content = f"error: {result.content}" if result.is_error else result.content
    return f"<tool_response>\n{content}\n</tool_response>"


# Chat-template control tokens of the common families (ChatML/SmolLM/Qwen, Llama 3, Gemma, Phi,
# Mistral). The prompt is tokenized with special tokens enabled (the template's markers must
# become control tokens), so these strings inside message text would forge turn boundaries.
_CONTROL = re.compile(r"<\|(?:im_start|im_end|im_sep|endoftext|eot_id|start_header_id|"
                      r"end_header_id|begin_of_text|end_of_text|eom_id|end|user|assistant|"
                      r"system)\|>|<(?:start_of_turn|end_of_turn)>|\[/?INST\]|</?s>")


def defang(text: str) -> str:
    """Break control-token strings in message text with a zero-width space so they are read as
    plain text (a pasted file or a tool result cannot open a fake system turn)."""
    return _CONTROL.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)


def chat_messages(messages: Sequence[Message], system: str) -> list[dict[str, str]]:
    """Neutral history -> chat-template messages (system/user/assistant only, alternating).

    Tool results become user turns (as Qwen's template renders role ``tool``), so every chat
    template can render them; consecutive turns of one role are merged because some templates
    refuse anything that does not alternate.
    """
    out: list[dict[str, str]] = [{"role": "system", "content": defang(system)}]
    for m in messages:
        chunks: list[str] = []
        for p in m.parts:
            if isinstance(p, TextPart):
                if p.text:
                    chunks.append(p.text)
            elif isinstance(p, ToolCall):
                chunks.append(format_call(p))
            elif isinstance(p, ToolResult):
                chunks.append(format_result(p))
            elif isinstance(p, MediaPart):  # (ask and chat refuse it before any request)
                raise UsageError(f"attachment {p.describe()}: the local model takes no images "
                                 "or PDFs", hint="leave it out, or use another provider")
            else:  # pragma: no cover - a new part type must be handled here
                raise TypeError(f"unknown message part {p!r}")
        if m.role == "assistant":
            role = "assistant"
        elif m.role in ("user", "tool"):
            role = "user"
        else:  # pragma: no cover
            raise TypeError(f"unknown role {m.role!r}")
        text = defang("\n".join(chunks))
        if out[-1]["role"] == role and len(out) > 1:
            out[-1]["content"] += "\n\n" + text
        elif text or role == "user":
            out.append({"role": role, "content": text})
    return out


# --- parsing ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: str  # JSON object text


def _as_call(obj: Any, known: set[str] | None) -> ParsedCall | None:
    """One decoded JSON value -> a call, or None when it is not shaped like one."""
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    if isinstance(fn, dict):  # OpenAI-ish {"function": {"name", "arguments"}}
        obj = fn
    name = obj.get("name", obj.get("tool", fn if isinstance(fn, str) else None))
    if not isinstance(name, str) or not name.strip():
        return None
    name = name.strip()
    if known is not None and name not in known:
        return None
    args: Any = {}
    for key in ("arguments", "parameters", "args", "input"):
        if key in obj:
            args = obj[key]
            break
    if isinstance(args, str):  # arguments sent as a JSON string
        try:
            args = loads_json(args) if args.strip() else {}
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ParsedCall(name, json.dumps(args, ensure_ascii=False))


def _decode_calls(text: str, known: set[str] | None) -> list[ParsedCall] | None:
    """A JSON object or list of objects -> calls; None when any piece is not a valid call."""
    text = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.S)
    if fence:
        text = fence.group(1)
    try:
        value = loads_json(text)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(v, known) for v in items]
    if not calls or any(c is None for c in calls):
        return None
    return calls  # type: ignore[return-value]


def parse_reply(text: str, tool_names: Sequence[str]) -> tuple[str, list[ParsedCall]]:
    """A whole reply -> (text to show, calls). Anything not a valid call (malformed JSON, wrong
    shape, a tool that does not exist) stays in the text."""
    known = set(tool_names)
    if OPEN_TAG in text:
        calls: list[ParsedCall] = []
        kept: list[str] = []
        pos = 0
        while True:
            start = text.find(OPEN_TAG, pos)
            if start < 0:
                kept.append(text[pos:])
                break
            end = text.find(CLOSE_TAG, start)
            body_end = end if end >= 0 else len(text)
            block_end = end + len(CLOSE_TAG) if end >= 0 else len(text)
            decoded = _decode_calls(text[start + len(OPEN_TAG):body_end], known)
            if decoded is None:
                kept.append(text[pos:block_end])
            else:
                kept.append(text[pos:start])
                calls.extend(decoded)
            pos = block_end
        rest = "".join(kept)
        return (rest.strip() if calls else rest), calls
    stripped = text.strip()
    if stripped[:1] in ("{", "[", "`"):
        decoded = _decode_calls(stripped, known)
        if decoded:
            return "", decoded
    return text, []


def might_be_bare_call(text: str) -> bool:
    """Could a reply starting like this be a tool call written without tags?"""
    return text.lstrip()[:1] in ("{", "[", "`")


# --- streaming ----------------------------------------------------------------------------------

@dataclass
class Splitter:
    """Decides, as tokens arrive, what can be shown now and when a tool call starts.

    ``feed`` returns the text that is safe to stream. Text is held back only while it might still
    turn out to be a call: a reply that opens with ``{``/``[``/a code fence is held whole (bare
    JSON calls), and a tail that could be the beginning of ``<tool_call>`` waits for one more
    piece. ``call_started`` becomes true when the tag is complete; ``before_call`` is then the
    text before it (already streamed).
    """

    held: str = ""
    streamed: list[str] = field(default_factory=list)
    call_started: bool = False
    bare: bool = False
    decided: bool = False

    def feed(self, piece: str) -> str:
        if self.call_started:
            return ""
        self.held += piece
        if not self.decided:
            head = self.held.lstrip()
            if not head:
                return ""
            if might_be_bare_call(head):
                self.decided = self.bare = True
                return ""
            if OPEN_TAG.startswith(head[:len(OPEN_TAG)]) and len(head) < len(OPEN_TAG):
                return ""
            self.decided = True
        if self.bare:
            return ""
        idx = self.held.find(OPEN_TAG)
        if idx >= 0:
            out, self.held = self.held[:idx], self.held[idx:]
            self.call_started = True
            self.streamed.append(out)
            return out
        keep = _partial_tag_tail(self.held)
        out = self.held[:len(self.held) - keep]
        self.held = self.held[len(self.held) - keep:]
        self.streamed.append(out)
        return out

    def flush(self) -> str:
        """The end of generation: whatever is still held."""
        out, self.held = self.held, ""
        return out


def _partial_tag_tail(text: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``<tool_call>``."""
    for n in range(min(len(OPEN_TAG) - 1, len(text)), 0, -1):
        if OPEN_TAG.startswith(text[-n:]):
            return n
    return 0
