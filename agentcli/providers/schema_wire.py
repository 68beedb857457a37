"""Structured output on the wire (``ask --schema``): the user's JSON Schema in the form each API
takes. Pure functions over plain values; no SDK import.

**OpenAI strict mode** (Chat Completions ``response_format``, Responses ``text.format``, and
what compatible servers take): the model's output is constrained to the schema, but only to a
subset of JSON Schema: every object closed (``additionalProperties: false``) and every property
listed in ``required``, a type on every schema, ``anyOf`` but no ``allOf``/``not``/``if``...
``strict_schema`` rewrites the schema into that subset when it can:

- every object gets ``additionalProperties: false`` (the user's schema is still what the
  reply is checked against, so nothing it allows is lost: a strict model just never adds keys);
- an optional property becomes required and nullable (``anyOf: [its schema, {"type":
  "null"}]``); the check drops such nulls again (``agent.structured.drop_nulls``);
- ``oneOf`` is sent as ``anyOf`` (a superset: the check still applies ``oneOf``);
- keywords strict mode does not take but that only narrow a value (``minLength``,
  ``uniqueItems``, an unsupported ``format``, ``default``...) move into the description, as
  the Anthropic SDK does, and are enforced by the check.

When it cannot (a free-form object, ``additionalProperties`` that is a schema, ``allOf``,
``not``, ``if``/``then``, ``patternProperties``, a schema without a type...) the schema is sent
as it is with ``strict: false`` and the user is told once why; the reply is still checked.
"""

from __future__ import annotations

import json
from typing import Any

STRUCTURAL = ("allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
              "patternProperties", "unevaluatedProperties", "unevaluatedItems", "propertyNames",
              "prefixItems", "contains", "minContains", "maxContains")
"""Keywords that shape which values are allowed in ways strict mode cannot express."""
KEPT = ("type", "properties", "required", "additionalProperties", "items", "anyOf", "enum",
        "const", "$ref", "$defs", "definitions", "description", "title", "pattern", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems",
        "maxItems")
"""What OpenAI's strict mode takes (2026); ``format`` only for ``STRICT_FORMATS``."""
STRICT_FORMATS = ("date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6",
                  "uuid")
DROPPED = ("$schema", "$id", "$comment", "$anchor")
NULL = {"type": "null"}


class NotStrict(ValueError):
    """The schema cannot be written in strict mode's subset; the message says where and why."""


def free_form(schema: Any, path: str = "$", depth: int = 0) -> str | None:
    """Where ``schema`` has an object whose keys are not all named (no ``properties``, or
    ``additionalProperties``/``patternProperties`` that admit more): such an object cannot be
    closed, which both strict mode and Anthropic's structured output require. None: none."""
    if depth > 100 or not isinstance(schema, dict):
        return None
    kinds = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    if "object" in kinds or "properties" in schema:
        extra = schema.get("additionalProperties")
        if "properties" not in schema and extra is not False:
            return f"an object without properties at {path}"
        if extra not in (None, False):
            return f"additionalProperties that is not false at {path}"
        if "patternProperties" in schema:
            return f"patternProperties at {path}"
    for key, sub in _children(schema, path):
        found = free_form(sub, key, depth + 1)
        if found:
            return found
    return None


def _children(schema: dict[str, Any], path: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name, sub in (schema.get("properties") or {}).items():
        out.append((f"{path}.{name}", sub))
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            out.append((f"{path}.{key}.{name}", sub))
    if isinstance(schema.get("items"), dict):
        out.append((f"{path}[]", schema["items"]))
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or ()):
            out.append((f"{path}.{key}[{i}]", sub))
    return out


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an object root) rewritten for OpenAI's strict mode; NotStrict when it
    cannot be."""
    where = free_form(schema)
    if where:
        raise NotStrict(where)
    return _strict(schema, "$", 0)


def _strict(node: Any, path: str, depth: int) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise NotStrict(f"a schema that is not an object at {path}")
    if depth > 60:
        raise NotStrict(f"nesting deeper than strict mode allows at {path}")
    for key in STRUCTURAL:
        if key in node:
            raise NotStrict(f"'{key}' at {path}")
    if not any(k in node for k in ("type", "anyOf", "oneOf", "enum", "const", "$ref")):
        raise NotStrict(f"a schema without a type at {path}")
    if "items" in node and not isinstance(node["items"], dict):
        raise NotStrict(f"items that is not one schema at {path}")
    kinds = node["type"] if isinstance(node.get("type"), list) else [node.get("type")]
    if "array" in kinds and "items" not in node:
        raise NotStrict(f"an array without items at {path}")
    out: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED:
            continue
        if key == "properties":
            out[key] = {name: _strict(sub, f"{path}.{name}", depth + 1)
                        for name, sub in value.items()}
        elif key in ("$defs", "definitions"):
            out[key] = {name: _strict(sub, f"{path}.{key}.{name}", depth + 1)
                        for name, sub in value.items()}
        elif key == "items":
            out[key] = _strict(value, f"{path}[]", depth + 1)
        elif key in ("anyOf", "oneOf"):
            out["anyOf"] = [_strict(sub, f"{path}.{key}[{i}]", depth + 1)
                            for i, sub in enumerate(value)]
        elif key == "format" and value in STRICT_FORMATS:
            out[key] = value
        elif key in KEPT:
            out[key] = value
        else:
            notes[key] = value
    if "properties" in out:
        _close(out, node)
    if notes:
        said = ", ".join(f"{k}: {json.dumps(v)}" for k, v in notes.items())
        out["description"] = (out.get("description", "") + "\n\n" if out.get("description")
                              else "") + "{" + said + "}"
    return out


def _close(out: dict[str, Any], node: dict[str, Any]) -> None:
    """Every property required, the optional ones nullable; no other key allowed."""
    required = set(node.get("required") or ())
    for name, sub in out["properties"].items():
        if name not in required and not _takes_null(sub):
            out["properties"][name] = {"anyOf": [sub, NULL]}
    out["required"] = list(out["properties"])
    out["additionalProperties"] = False


def _takes_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(isinstance(b, dict) and _takes_null(b) for b in schema.get("anyOf") or ())


def openai_json_schema(output: Any) -> tuple[dict[str, Any], list[str]]:
    """(``{name, schema, strict}`` for OpenAI's json_schema format, what the user is told: why
    it is not strict, when it is not) for a ``messages.OutputFormat``."""
    try:
        return {"name": output.name, "schema": strict_schema(output.schema), "strict": True}, []
    except NotStrict as e:
        return {"name": output.name, "schema": output.schema, "strict": False}, [
            f"the schema is sent without OpenAI's strict mode, which cannot express it ({e}); "
            "the reply is still checked against it"]
