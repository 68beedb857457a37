"""What the fake server knows of the 2026 Anthropic Messages API beyond spelling replies: the
requests it refuses (with the real API's wording), thinking signatures, and prompt caching.

Refused, HTTP 400 ``invalid_request_error`` (the request consumes no scripted reply):

- a ``thinking`` setting the model does not take (by model name: Claude before 4.6 refuses
  ``adaptive``; Opus 4.7/4.8, the Claude 5 family, Mythos and Fable refuse ``enabled``; Mythos
  and Fable refuse ``disabled``; a name without a Claude version takes everything), a
  ``budget_tokens`` under 1024 or not under ``max_tokens``, an ``output_config.effort`` that is
  not ``low|medium|high|xhigh|max``, and a ``temperature`` other than 1 with thinking on;
- more than 4 blocks with ``cache_control``;
- a ``thinking`` block whose signature does not match its text and model (altered, or made by
  another model), a ``redacted_thinking`` block whose data is not one this fake issued, a
  thinking block without its signature;
- with thinking on, a final assistant message (the one before the last ``tool_result`` turn)
  that the fake answered with thinking, sent back without a thinking block first.

Signatures are an HMAC of the model and the thinking text, so they check the block byte for
byte without the fake keeping any history.

Prompt caching is a deterministic model of the real one. The request is a sequence of blocks
(each tool, the system prompt's blocks, each message's content blocks); a block costs
``max(1, ceil(chars / 4))`` tokens (its text, tool input, tool result, thinking or
definition). A ``cache_control`` marks a breakpoint: its prefix (everything up to and
including that block, for the same model) is written to the cache. A later request reads the
longest prefix written before that ends at one of its breakpoints or at most 20 blocks before
one (the API's lookback window). Usage: ``cache_read_input_tokens`` = that prefix,
``cache_creation_input_tokens`` = from there to the last breakpoint, ``input_tokens`` = the
rest. Prefixes shorter than ``min_cache_tokens`` (0 by default; 1024 on the real Sonnet) are
not cached. Nothing expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

SECRET = b"fake-anthropic-signing-key"
LOOKBACK = 20
MAX_CACHE_CONTROL = 4
EFFORTS = ("low", "medium", "high", "xhigh", "max")
DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
EXPECTED_THINKING = (
    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
    "`{found}`. When `thinking` is enabled, a final `assistant` message must start with a "
    "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
    "recommend you include thinking blocks from previous turns. To avoid this requirement, "
    "disable `thinking`. Please consult our documentation at " + DOCS)


# --- signatures ---------------------------------------------------------------------------------

def _mac(*parts: str) -> str:
    digest = hmac.new(SECRET, "\0".join(parts).encode("utf-8", "surrogatepass"),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign(model: str, thinking: str) -> str:
    """The signature of a thinking block this fake sends."""
    return "EqQB" + _mac("thinking", model, thinking)


def redacted_data(model: str, n: int = 0) -> str:
    """The opaque data of a redacted_thinking block this fake sends."""
    nonce = f"{n:04d}"
    return f"EmwK{nonce}" + _mac("redacted", model, nonce)


def _redacted_ok(model: str, data: Any) -> bool:
    return isinstance(data, str) and len(data) > 8 and hmac.compare_digest(
        data, redacted_data(model, int(data[4:8])) if data[4:8].isdigit() else "")


# --- the model table --------------------------------------------------------------------------

def _version(model: str) -> tuple[int, int] | None:
    m = re.search(r"claude-(?:[a-z]+-)?(\d{1,2})(?:-(\d{1,2})(?!\d))?", model)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def _refuses(model: str, kind: str) -> bool:
    v = _version(model)
    family = ("mythos" in model or "fable" in model)
    if kind == "adaptive":
        return v is not None and v < (4, 6)
    if kind == "enabled":
        return family or (v is not None and v >= (4, 7))
    if kind == "disabled":
        return family
    return False


def _not_supported(kind: str) -> str:
    if kind == "adaptive":
        return "adaptive thinking is not supported on this model"
    return (f'"thinking.type.{kind}" is not supported for this model. Use '
            '"thinking.type.adaptive" and "output_config.effort" to control thinking behavior.')


def thinking_on(body: dict[str, Any]) -> bool:
    t = body.get("thinking")
    return isinstance(t, dict) and t.get("type") in ("enabled", "adaptive")


def _settings_refusal(body: dict[str, Any]) -> str | None:
    model = str(body.get("model", ""))
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        kind = thinking.get("type")
        if kind not in ("enabled", "adaptive", "disabled"):
            return (f"thinking: Input tag '{kind}' found using 'type' does not match any of the "
                    "expected tags: 'adaptive', 'disabled', 'enabled'")
        if _refuses(model, kind):
            return _not_supported(kind)
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                return "thinking.enabled.budget_tokens: Input should be greater than or equal " \
                       "to 1024"
            if budget >= int(body.get("max_tokens") or 0):
                return ("`max_tokens` must be greater than `thinking.budget_tokens`. Please "
                        f"consult our documentation at {DOCS}#max-tokens-and-context-window-size")
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and effort not in EFFORTS:
        return ("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or "
                "'max'")
    temperature = body.get("temperature")
    if thinking_on(body) and temperature is not None and temperature != 1:
        return ("`temperature` may only be set to 1 when thinking is enabled. Please consult "
                f"our documentation at {DOCS}#important-considerations-when-using-extended-"
                "thinking")
    return None


# --- the request as blocks ----------------------------------------------------------------------

def _blocks(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """(where, block) for every block of the request, in the order the cache sees them."""
    out: list[tuple[str, Any]] = [("tool", t) for t in body.get("tools") or []]
    system = body.get("system")
    if isinstance(system, str):
        out.append(("system", {"type": "text", "text": system}))
    elif isinstance(system, list):
        out += [("system", b) for b in system]
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        role = m.get("role") if isinstance(m, dict) else None
        if isinstance(content, str):
            out.append((f"msg:{role}", {"type": "text", "text": content}))
        else:
            out += [(f"msg:{role}", b) for b in content or []]
    return out


def _chars(block: Any) -> int:
    if not isinstance(block, dict):
        return len(str(block))
    kind = block.get("type")
    if kind == "text":
        return len(str(block.get("text", "")))
    if kind == "tool_use":
        return len(str(block.get("name", ""))) + len(json.dumps(block.get("input")))
    if kind == "tool_result":
        content = block.get("content", "")
        return len(content if isinstance(content, str) else json.dumps(content))
    if kind == "thinking":
        return len(str(block.get("thinking", "")))
    if kind == "redacted_thinking":
        return len(str(block.get("data", "")))
    bare = {k: v for k, v in block.items() if k != "cache_control"}
    return len(json.dumps(bare, sort_keys=True))  # a tool definition


def tokens(block: Any) -> int:
    return max(1, -(-_chars(block) // 4))


def input_tokens(body: dict[str, Any]) -> int:
    """Every input token of the request (cached or not)."""
    return sum(tokens(b) for _, b in _blocks(body))


def _marked(block: Any) -> bool:
    return isinstance(block, dict) and block.get("cache_control") is not None


# --- the state: prompt cache, thinking given ------------------------------------------------------

def _calls_key(content: Any) -> str:
    uses = [(b.get("id"), b.get("name"), b.get("input")) for b in content or []
            if isinstance(b, dict) and b.get("type") == "tool_use"]
    return json.dumps(uses, sort_keys=True)


@dataclass
class AnthropicState:
    """The fake's memory across requests (one per server)."""

    min_cache_tokens: int = 0
    _cache: set[str] = field(default_factory=set)
    _thought: set[str] = field(default_factory=set)  # tool_use sets answered with thinking
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, tool_uses: list[dict[str, Any]]) -> None:
        """The fake answered with thinking before these tool_use blocks."""
        with self._lock:
            self._thought.add(_calls_key(tool_uses))

    def refusal(self, body: dict[str, Any]) -> str | None:
        """The 400 message the real API would answer ``body`` with, or None."""
        return (_settings_refusal(body) or self._cache_refusal(body)
                or self._thinking_refusal(body))

    @staticmethod
    def _cache_refusal(body: dict[str, Any]) -> str | None:
        found = sum(1 for _, b in _blocks(body) if _marked(b))
        if found > MAX_CACHE_CONTROL:
            return (f"A maximum of {MAX_CACHE_CONTROL} blocks with cache_control may be "
                    f"provided. Found {found}.")
        return None

    def _thinking_refusal(self, body: dict[str, Any]) -> str | None:
        model = str(body.get("model", ""))
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        for i, m in enumerate(messages):
            content = m.get("content")
            if m.get("role") != "assistant" or not isinstance(content, list):
                continue
            for j, b in enumerate(content):
                if not isinstance(b, dict):
                    continue
                if b.get("type") == "thinking":
                    if "signature" not in b:
                        return f"messages.{i}.content.{j}.thinking.signature: Field required"
                    if not hmac.compare_digest(str(b["signature"]),
                                               sign(model, str(b.get("thinking", "")))):
                        return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                elif b.get("type") == "redacted_thinking" and not _redacted_ok(model,
                                                                               b.get("data")):
                    return (f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` "
                            "block")
        return self._final_needs_thinking(body, messages)

    def _final_needs_thinking(self, body: dict[str, Any],
                              messages: list[dict[str, Any]]) -> str | None:
        if not thinking_on(body) or len(messages) < 2:
            return None
        last, final = messages[-1], messages[-2]
        results = last.get("content") if last.get("role") == "user" else None
        if not isinstance(results, list) or not any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in results):
            return None
        content = final.get("content")
        if final.get("role") != "assistant" or not isinstance(content, list) or not content:
            return None
        with self._lock:
            thought = _calls_key(content) in self._thought
        first = content[0].get("type") if isinstance(content[0], dict) else "text"
        if thought and first not in ("thinking", "redacted_thinking"):
            return EXPECTED_THINKING.format(i=len(messages) - 2, found=first)
        return None

    def account(self, body: dict[str, Any]) -> dict[str, int]:
        """Usage of ``body``'s input, reading and writing the cache as the real API does."""
        blocks = _blocks(body)
        model = str(body.get("model", ""))
        cum: list[int] = []
        hashes: list[str] = []
        h = hashlib.sha256(model.encode()).hexdigest()
        total = 0
        for where, b in blocks:
            total += tokens(b)
            bare = {k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) \
                else b
            h = hashlib.sha256((h + where + json.dumps(bare, sort_keys=True)).encode(
                "utf-8", "surrogatepass")).hexdigest()
            cum.append(total)
            hashes.append(h)
        points = [i for i, (_, b) in enumerate(blocks) if _marked(b)]
        read = 0
        with self._lock:
            for p in points:
                for q in range(p, max(-1, p - LOOKBACK), -1):
                    if hashes[q] in self._cache:
                        read = max(read, cum[q])
                        break
            written = 0
            if points and cum[points[-1]] > read and cum[points[-1]] >= self.min_cache_tokens:
                written = cum[points[-1]] - read
            for p in points:
                if cum[p] >= self.min_cache_tokens:
                    self._cache.add(hashes[p])
        return {"input_tokens": total - read - written, "cache_read_input_tokens": read,
                "cache_creation_input_tokens": written}
