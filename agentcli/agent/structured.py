"""Structured output (``ask --schema``): what each request asks the provider for, and the check
of the final answer.

- **The request.** Every request of the run carries an ``OutputFormat`` (the providers turn it
  into OpenAI ``response_format``/``text.format``, Anthropic ``output_config.format`` or a
  forced tool). Tools still work: the model calls them as usual and the schema binds the reply
  that ends the turn. A schema whose root is not an object (``{"type": "array", ...}``) travels
  wrapped as ``{"value": ...}`` (the APIs take only objects) and is unwrapped on the way back.
- **The check.** The final answer's text is parsed as JSON (a reply wrapped in one ```` ``` ````
  fence is accepted) and validated with jsonschema against the user's own schema. OpenAI's
  strict mode asks for every property, so an optional one may come back ``null``: when the reply
  is valid only without those nulls, they are dropped.
- **The retry.** An invalid answer is sent back once, as a user message listing the errors; a
  second invalid answer ends the turn as ``schema`` (exit 1, the errors on stderr).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..messages import OutputFormat, loads_json

RETRIES = 1
"""How many times an invalid answer is sent back before the turn ends as ``schema``."""
SHOWN_ERRORS = 20
"""Errors listed in the message sent back to the model (the rest are counted)."""


@dataclass(frozen=True)
class SchemaOutcome:
    """The check of one answer: ``data`` (the JSON value, when valid) or ``errors`` (one line
    each, ``$.path: message``; ``total`` counts them all when more were found)."""

    valid: bool
    data: Any = None
    errors: tuple[str, ...] = ()
    total: int = 0

    def feedback(self) -> str:
        """The user message that sends an invalid answer back to the model."""
        lines = [f"- {e}" for e in self.errors[:SHOWN_ERRORS]]
        if self.total > SHOWN_ERRORS:
            lines.append(f"- … {self.total - SHOWN_ERRORS} more")
        return ("Your reply does not match the required JSON schema:\n" + "\n".join(lines)
                + "\nReply again with only the corrected JSON, nothing else.")


class StructuredOutput:
    """The run's ``--schema``: ``format`` goes with every request, ``check`` judges the final
    answer. ``schema`` is the user's JSON Schema (already checked: ``inputs.schema``)."""

    def __init__(self, schema: dict[str, Any], name: str = "answer") -> None:
        import jsonschema
        from jsonschema.validators import validator_for

        self.schema = schema
        self.wrapped = schema.get("type") != "object"
        self.format = OutputFormat(name, wrap(schema) if self.wrapped else schema)
        cls = validator_for(schema, default=jsonschema.Draft202012Validator)
        self._validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def check(self, text: str) -> SchemaOutcome:
        body = unfence(text)
        if not body:
            return _invalid(["the reply is empty: it must be JSON that matches the schema"])
        try:
            value = loads_json(body)
        except json.JSONDecodeError as e:
            return _invalid([f"the reply is not JSON ({e.msg} at line {e.lineno} column "
                             f"{e.colno}): it must be JSON that matches the schema"])
        except ValueError as e:
            return _invalid([f"the reply is not JSON ({e})"])
        if self.wrapped and isinstance(value, dict) and set(value) == {"value"}:
            value = value["value"]
        first = self._errors(value)
        if not first:
            return SchemaOutcome(True, value)
        stripped = drop_nulls(value, self.schema, self.schema)
        if stripped is not value:
            second = self._errors(stripped)
            if not second:
                return SchemaOutcome(True, stripped)
            first = second  # the nulls strict mode asked for are not the problem
        return _invalid(first)

    def _errors(self, value: Any) -> list[str]:
        try:
            found = sorted(self._validator.iter_errors(value),
                           key=lambda e: (list(map(str, e.absolute_path)), e.message))
        except Exception as e:  # e.g. an anchor $ref that does not resolve: still one line
            return [f"the schema could not be applied: {_short(str(e))}"]
        return [f"{e.json_path}: {_short(e.message)}" for e in found]


def _invalid(errors: list[str]) -> SchemaOutcome:
    return SchemaOutcome(False, None, tuple(errors[:SHOWN_ERRORS * 5]), len(errors))


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unfence(text: str) -> str:
    """The reply without surrounding whitespace and one surrounding ```` ``` ```` fence (a
    language tag after the opening fence is dropped)."""
    body = text.strip()
    if body.startswith("```") and body.endswith("```") and len(body) >= 6:
        inner = body[3:-3]
        first, newline, rest = inner.partition("\n")
        if newline and (not first.strip() or first.strip().isalnum()):
            inner = rest
        return inner.strip()
    return body


def wrap(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema whose root is not an object, as the object ``{"value": ...}`` the APIs take:
    ``$defs``/``definitions`` move to the new root, and every other local ``$ref`` is rewritten
    to point inside ``value``."""
    inner = {k: v for k, v in schema.items() if k not in ("$defs", "definitions", "$schema")}
    out: dict[str, Any] = {"type": "object",
                           "properties": {"value": _rewrite_refs(inner)},
                           "required": ["value"], "additionalProperties": False}
    for key in ("$defs", "definitions"):
        if key in schema:
            out[key] = _rewrite_refs(schema[key])
    return out


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite_refs(v) for k, v in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")) and not \
                ref.startswith(("#/$defs/", "#/definitions/")):
            out["$ref"] = "#/properties/value" + ref[1:]
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def drop_nulls(value: Any, schema: Any, root: dict[str, Any], depth: int = 0) -> Any:
    """``value`` without the ``null``s of optional properties whose schema does not take null
    (what OpenAI's strict mode makes a model send for a property it would leave out). Returns
    ``value`` itself when nothing changed."""
    schema = _resolved(schema, root)
    if depth > 64 or not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            sub = props.get(key)
            if item is None and key in props and key not in required and \
                    not _takes_null(sub, root):
                changed = True
                continue
            new = drop_nulls(item, sub, root, depth + 1) if sub is not None else item
            changed = changed or new is not item
            out[key] = new
        if not changed:
            for branch in schema.get("anyOf") or schema.get("oneOf") or ():
                new = drop_nulls(value, branch, root, depth + 1)
                if new is not value:
                    return new
        return out if changed else value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = [drop_nulls(v, schema["items"], root, depth + 1) for v in value]
        return items if any(a is not b for a, b in zip(items, value)) else value
    return value


def _resolved(schema: Any, root: dict[str, Any]) -> Any:
    from ..inputs.schema import resolve_pointer

    for _ in range(32):
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            return schema
        schema = resolve_pointer(root, ref)
    return schema


def _takes_null(schema: Any, root: dict[str, Any]) -> bool:
    schema = _resolved(schema, root)
    if not isinstance(schema, dict):
        return True
    if not any(k in schema for k in ("type", "enum", "const", "anyOf", "oneOf", "allOf", "not")):
        return True  # no constraint on the value at all
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if None in (schema.get("enum") or ()) or ("const" in schema and schema["const"] is None):
        return True
    return any(_takes_null(b, root) for b in schema.get("anyOf") or schema.get("oneOf") or ())
