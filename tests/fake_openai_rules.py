"""What OpenAI's 2026 APIs refuse, for the fake server (``fake_server.py``), with the real
wording; which models reason; the signature on encrypted reasoning; the prompt cache.

- **Reasoning models** (``reasoning_levels``): o-series, gpt-5 and later, each with its default
  effort and the efforts it takes; ``-chat`` models do not reason.
- **Encrypted reasoning** (``seal``/``unseal``): signed, so any change to it is seen.
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
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from typing import Any

RESPONSES_PATH = "/v1/responses"
_SECRET = b"fake-server-reasoning-key"
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


def effective_effort(model: str, sent: Any) -> str | None:
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
    effort = effective_effort(model, sent)
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
