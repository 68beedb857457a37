"""``ask --schema SCHEMA``: the JSON Schema a run's final answer must match.

SCHEMA is one of (checked in this order):

1. inline JSON: text that starts with ``{``;
2. a file holding a JSON Schema (any path that exists; at most ``MAX_SCHEMA_BYTES``);
3. llm's short form, ``'name, age int, bio: a short bio'``: fields separated by commas, or by
   newlines when there is a newline (then a description may hold commas); each field is
   ``NAME [TYPE][: description]``, TYPE one of ``str`` (the default), ``int``, ``float``,
   ``bool``; every field is required. A short form has a comma, a space or a newline: one
   word alone is taken as a file name.

Whatever the source, the result must be a JSON object that is a valid JSON Schema (checked with
jsonschema's meta-schema: draft 2020-12 unless ``$schema`` names another), whose ``$ref``s point
inside it. Anything else is a ``UsageError`` (exit 2) naming what is wrong, before any request.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from ..errors import UsageError

MAX_SCHEMA_BYTES = 1024 * 1024
SHORT_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
SHORT_HINT = "the short form is 'name, age int, bio: a description' (types: str, int, float, bool)"


def load_schema(arg: str) -> dict[str, Any]:
    """The JSON Schema that ``--schema arg`` names, checked (UsageError on any problem)."""
    text = arg.strip()
    if not text:
        raise UsageError("--schema is empty", hint=SHORT_HINT)
    if text.startswith("{"):
        schema = _json(text, "--schema")
        label = "--schema"
    elif os.path.lexists(arg):
        schema = _json(_read_file(arg), f"--schema {arg}")
        label = f"--schema {arg}"
    elif any(c in text for c in ", \t\n"):
        return check_schema(parse_short(text), "--schema")
    else:
        raise UsageError(f"--schema {arg}: no such file",
                         hint="a schema is a file, inline JSON ('{...}') or a short form; "
                              + SHORT_HINT)
    return check_schema(schema, label)


def _read_file(path: str) -> str:
    where = f"--schema {path}"
    try:
        info = os.stat(path)  # follows a symlink: what would be read
    except OSError as e:
        raise UsageError(f"{where}: cannot read it ({e.strerror or e})") from e
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{where}: is a directory, not a JSON Schema file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block, a device never ends
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise UsageError(f"{where}: is {kind}, not a regular file")
    if info.st_size > MAX_SCHEMA_BYTES:
        raise UsageError(f"{where}: is {info.st_size:,} bytes; a schema file may hold at most "
                         f"{MAX_SCHEMA_BYTES:,} (1 MiB)")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SCHEMA_BYTES + 1)
    except OSError as e:
        raise UsageError(f"{where}: cannot read it ({e.strerror or e})") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"{where}: is not UTF-8 text (byte {e.start})") from e


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{where}: not valid JSON: {e.msg} (line {e.lineno} column {e.colno})",
                         hint="a schema is a JSON object, e.g. '{\"type\": \"object\", "
                              "\"properties\": {\"name\": {\"type\": \"string\"}}}'") from e
    except RecursionError as e:
        raise UsageError(f"{where}: not valid JSON: nested too deeply") from e


def parse_short(text: str) -> dict[str, Any]:
    """llm's short form -> a JSON Schema of an object with those fields, all required."""
    separator = "\n" if "\n" in text else ","
    fields = [f.strip() for f in text.split(separator) if f.strip()]
    properties: dict[str, Any] = {}
    for n, field in enumerate(fields, 1):
        info, colon, description = field.partition(":")
        words = info.split()
        if not words:
            raise UsageError(f"--schema: field {n} ('{field}') has no name", hint=SHORT_HINT)
        name = words[0]
        if len(words) > 2:
            raise UsageError(f"--schema: field '{name}' has more than a name and a type "
                             f"('{info.strip()}'); put a description after a colon",
                             hint=SHORT_HINT)
        kind = words[1] if len(words) == 2 else "str"
        if kind not in SHORT_TYPES:
            raise UsageError(f"--schema: unknown type '{kind}' for field '{name}'",
                             hint="the short form's types are str (the default), int, float "
                                  "and bool")
        if name in properties:
            raise UsageError(f"--schema: field '{name}' is named twice", hint=SHORT_HINT)
        properties[name] = {"type": SHORT_TYPES[kind]}
        if colon and description.strip():
            properties[name]["description"] = description.strip()
    return {"type": "object", "properties": properties, "required": list(properties)}


def check_schema(schema: Any, where: str) -> dict[str, Any]:
    """``schema`` if it is a JSON object and a valid JSON Schema whose ``$ref``s resolve
    inside it; else a UsageError naming the problem."""
    if not isinstance(schema, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(schema),
                                                                          "a number or null")
        raise UsageError(f"{where}: a JSON Schema here is a JSON object, not {kind}",
                         hint=SHORT_HINT)
    import jsonschema
    from jsonschema.validators import validator_for

    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        at = "" if e.json_path == "$" else f" (at {e.json_path})"
        raise UsageError(f"{where}: not a valid JSON Schema: {_short(e.message)}{at}",
                         hint="see https://json-schema.org/understanding-json-schema") from e
    _check_refs(schema, schema, where)
    return schema


def _check_refs(node: Any, root: dict[str, Any], where: str, depth: int = 0) -> None:
    if depth > 200:
        raise UsageError(f"{where}: the schema is nested more than 200 levels deep")
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#"):
                raise UsageError(f"{where}: $ref '{_short(ref)}' points outside the schema",
                                 hint="only references inside the schema ('#/$defs/NAME') "
                                      "are followed: nothing is fetched")
            if ref.startswith("#/") or ref == "#":
                if resolve_pointer(root, ref) is None:
                    raise UsageError(f"{where}: $ref '{_short(ref)}' points at nothing in "
                                     "the schema")
        for value in node.values():
            _check_refs(value, root, where, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _check_refs(value, root, where, depth + 1)


def resolve_pointer(root: Any, ref: str) -> Any:
    """The value ``ref`` (``#`` or ``#/a/b``, a JSON pointer in the document) names, or None."""
    from urllib.parse import unquote

    node = root
    for raw in ref[2:].split("/") if ref != "#" else ():
        key = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
