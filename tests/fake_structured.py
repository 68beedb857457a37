"""Structured output at the fake server (``fake_server.py``): what the 2026 APIs refuse of it,
and a reply that conforms to the request's schema (``conforming()``).

Refused, HTTP 400 (the request consumes no scripted reply):

- **OpenAI** (Chat Completions ``response_format``, Responses ``text.format``): a json_schema
  format without a valid ``name`` (``^[a-zA-Z0-9_-]{1,64}$``) or ``schema``; with ``strict:
  true`` (the default is false), a root that is not ``type: object``, an object without
  ``additionalProperties: false`` or whose ``required`` misses a property, a schema without a
  type, and the keywords strict mode does not take (``allOf``, ``not``, ``if``,
  ``patternProperties``, ``minLength``, ``uniqueItems``...), each with OpenAI's wording
  (``Invalid schema for response_format 'NAME': In context=(...), ...``); a json_schema format
  on a model that has none (gpt-3.5, gpt-4 before gpt-4o);
- **Anthropic** (``output_config.format``): on a model before Claude 4.5; an object without
  ``additionalProperties: false``; the constraints it does not take (``minimum``,
  ``maxLength``, ...); a ``tool_choice`` that forces a tool (``tool``/``any``) while thinking
  is on (the real wording), or names a tool the request does not have.

The Anthropic and model-support wordings are modelled on the real ones, not copied.

``conforming()`` replies with JSON made from the request's own schema (strict mode's nullable
optional properties come back ``null``, as a strict model sends them); for an Anthropic
request that forces a tool, as a call of that tool.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fake_replies import Reply, text, tool_calls

OPENAI_UNSUPPORTED = ("allOf", "not", "if", "then", "else", "dependentRequired",
                      "dependentSchemas", "patternProperties", "unevaluatedProperties",
                      "unevaluatedItems", "propertyNames", "prefixItems", "contains",
                      "minContains", "maxContains", "minLength", "maxLength", "uniqueItems",
                      "minProperties", "maxProperties", "oneOf")
ANTHROPIC_UNSUPPORTED = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                         "multipleOf", "minLength", "maxLength", "pattern", "maxItems",
                         "uniqueItems", "minProperties", "maxProperties", "not", "if")
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NO_JSON_SCHEMA = re.compile(r"gpt-3\.5.*|gpt-4(-\d{4}.*|-turbo.*|-32k.*)?")
Problem = tuple[int, dict[str, Any]]


def _openai_bad(message: str, param: str, code: str | None = None) -> Problem:
    return 400, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                           "code": code}}


def _anthropic_bad(message: str) -> Problem:
    return 400, {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


# --- OpenAI -----------------------------------------------------------------------------------

def openai_format(path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The request's json_schema format as ``{name, schema, strict}`` (None: none asked)."""
    if path.endswith("/responses"):
        fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) \
            else None
        return fmt if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        inner = fmt.get("json_schema")
        return inner if isinstance(inner, dict) else {}
    return None


def openai_problem(path: str, body: dict[str, Any]) -> Problem | None:
    fmt = openai_format(path, body)
    if fmt is None:
        return None
    param = "text.format" if path.endswith("/responses") else "response_format"
    model = str(body.get("model") or "")
    if _NO_JSON_SCHEMA.fullmatch(model):
        return _openai_bad(f"Invalid parameter: '{param}' of type 'json_schema' is not "
                           "supported with this model.", param)
    name = fmt.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return _openai_bad(f"Invalid '{param}.name': string does not match pattern. Expected "
                           "a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                           f"{param}.name", "invalid_value")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        return _openai_bad(f"Missing required parameter: '{param}.schema'.", f"{param}.schema",
                           "missing_required_parameter")
    if fmt.get("strict") is not True:
        return None
    why = _strict_problem(schema, schema, ())
    if why:
        return _openai_bad(f"Invalid schema for response_format '{name}': {why}",
                           f"{param}.schema" if "text" in param else param,
                           "invalid_json_schema")
    return None


def _strict_problem(schema: dict[str, Any], node: Any, where: tuple[str, ...]) -> str | None:
    if not isinstance(node, dict):
        return f"In context={where!r}, schema must be an object."
    if not where and node.get("type") != "object":
        return (f"schema must be a JSON Schema of 'type: \"object\"', got "
                f"'type: \"{node.get('type')}\"'.")
    context = f"In context={where!r}, "
    for key in OPENAI_UNSUPPORTED:
        if key in node:
            return f"{context}'{key}' is not permitted."
    if not any(k in node for k in ("type", "anyOf", "enum", "const", "$ref")):
        return f"{context}schema must have a 'type' key."
    kinds = node["type"] if isinstance(node.get("type"), list) else [node.get("type")]
    if "object" in kinds:
        if node.get("additionalProperties") is not False:
            return f"{context}'additionalProperties' is required to be supplied and to be false."
        props = node.get("properties") or {}
        missing = [k for k in props if k not in (node.get("required") or ())]
        if missing:
            return (f"{context}'required' is required to be supplied and to be an array "
                    f"including every key in properties. Missing '{missing[0]}'.")
    for key, sub in _subschemas(node, where):
        why = _strict_problem(schema, sub, key)
        if why:
            return why
    return None


def _subschemas(node: dict[str, Any], where: tuple[str, ...]) -> list[tuple[tuple, Any]]:
    out: list[tuple[tuple, Any]] = []
    for name, sub in (node.get("properties") or {}).items():
        out.append(((*where, "properties", name), sub))
    for key in ("$defs", "definitions"):
        for name, sub in (node.get(key) or {}).items():
            out.append(((*where, key, name), sub))
    if isinstance(node.get("items"), dict):
        out.append(((*where, "items"), node["items"]))
    for i, sub in enumerate(node.get("anyOf") or ()):
        out.append(((*where, "anyOf", str(i)), sub))
    return out


# --- Anthropic --------------------------------------------------------------------------------

def _version(model: str) -> tuple[int, int] | None:
    m = re.search(r"claude-(?:[a-z]+-)?(\d{1,2})(?:-(\d{1,2})(?!\d))?", model)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def anthropic_problem(body: dict[str, Any]) -> Problem | None:
    model = str(body.get("model", ""))
    choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
    thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    if choice.get("type") in ("tool", "any") and thinking:
        return _anthropic_bad("Thinking may not be enabled when tool_choice forces tool use.")
    if choice.get("type") == "tool" and choice.get("name") not in \
            [t.get("name") for t in body.get("tools") or () if isinstance(t, dict)]:
        return _anthropic_bad(f"tool_choice: tool '{choice.get('name')}' not found in tools")
    fmt = (body.get("output_config") or {}).get("format")
    if fmt is None:
        return None
    version = _version(model)
    if version is not None and version < (4, 5):
        return _anthropic_bad(f"'{model}' does not support output_config.format (structured "
                              "outputs)")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or \
            not isinstance(fmt.get("schema"), dict):
        return _anthropic_bad("output_config.format: Input tag does not match the expected "
                              "tag: 'json_schema'")
    why = _anthropic_schema_problem(fmt["schema"], ())
    return _anthropic_bad(f"output_config.format.schema: {why}") if why else None


def _anthropic_schema_problem(node: Any, where: tuple[str, ...]) -> str | None:
    if not isinstance(node, dict):
        return None
    at = "/".join(where) or "(root)"
    for key in ANTHROPIC_UNSUPPORTED:
        if key in node:
            return f"'{key}' is not supported (at {at})"
    if node.get("type") == "object" and node.get("additionalProperties") is not False:
        return f"For 'object' type, 'additionalProperties' must be explicitly set to false " \
               f"(at {at})"
    for key, sub in _subschemas(node, where):
        why = _anthropic_schema_problem(sub, key)
        if why:
            return why
    return None


# --- a conforming reply -----------------------------------------------------------------------

def conform(path: str, body: dict[str, Any], reply: Reply) -> Reply:
    """``conforming()`` made concrete for this request: JSON from its schema."""
    if path.endswith("/messages"):
        fmt = (body.get("output_config") or {}).get("format") or {}
        if isinstance(fmt.get("schema"), dict):
            return text(json.dumps(sample(fmt["schema"], fmt["schema"])), usage=reply.usage)
        choice = body.get("tool_choice") or {}
        tools = {t.get("name"): t for t in body.get("tools") or ()}
        name = choice.get("name") if choice.get("type") == "tool" else \
            next(iter(tools), None) if choice.get("type") == "any" else None
        if name in tools:
            schema = tools[name].get("input_schema") or {}
            return tool_calls((name, sample(schema, schema)), usage=reply.usage)
        return text("fake server: conforming() needs a schema in the request")
    fmt = openai_format(path, body)
    schema = (fmt or {}).get("schema")
    if not isinstance(schema, dict):
        return text("fake server: conforming() needs a schema in the request")
    return text(json.dumps(sample(schema, schema)), usage=reply.usage)


def sample(node: Any, root: dict[str, Any], depth: int = 0) -> Any:
    """A value matching ``node`` (strict mode's ``anyOf [X, null]``: null)."""
    if not isinstance(node, dict) or depth > 30:
        return None
    if isinstance(node.get("$ref"), str):
        target: Any = root
        for key in node["$ref"].lstrip("#/").split("/") if node["$ref"] != "#" else ():
            target = target.get(key, {}) if isinstance(target, dict) else {}
        return sample(target, root, depth + 1)
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        if any(b == {"type": "null"} for b in branches):
            return None
        return sample(branches[0], root, depth + 1)
    kinds = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
    kind = next((k for k in kinds if k != "null"), kinds[0])
    if kind == "object" or "properties" in node:
        return {k: sample(v, root, depth + 1) for k, v in (node.get("properties") or {}).items()}
    if kind == "array":
        return [sample(node.get("items") or {}, root, depth + 1)
                for _ in range(max(1, int(node.get("minItems") or 1)))]
    return _scalar(kind, node)


def _scalar(kind: Any, node: dict[str, Any]) -> Any:
    if kind == "integer":
        return int(node.get("minimum", 1))
    if kind == "number":
        return float(node.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "string":
        return {"date": "2026-01-02", "date-time": "2026-01-02T03:04:05Z",
                "email": "someone@example.com"}.get(node.get("format"), "text")
    return None
