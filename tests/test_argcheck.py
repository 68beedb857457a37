"""Tool arguments are checked without importing jsonschema for the common schemas
(``toolrun/argcheck.py``), with jsonschema's own verdicts and messages: both are run on a corpus
of schemas (the built-in tools', typical plugin and MCP server schemas, every keyword of the
subset, several drafts) against hand-picked and generated arguments, and must give the same
errors (path and message), and the same first error as the model sees it. Schemas outside the
subset go to jsonschema."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from agentcli.toolrun.argcheck import LiteValidator, compile_schema
from agentcli.toolrun.executor import make_validator, validate_arguments

ROOT = Path(__file__).resolve().parent.parent
BUILTIN = sorted((ROOT / "tools").glob("*.yaml"))


def _builtin_schemas() -> list[dict]:
    out = []
    for path in BUILTIN:
        data = yaml.safe_load(path.read_text())
        out.append(data["parameters"])
        if data.get("options"):
            out.append(data["options"])
    return out


PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 8, "pattern": "^[A-Z]"},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "score": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "tags": {"type": "array", "items": {"type": "string", "minLength": 2}, "minItems": 1,
             "maxItems": 3},
    "kind": {"enum": ["a", "b", 1, True, None, [1, 2], {"k": 1}]},
    "fixed": {"const": 1},
    "nick": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
    "meta": {"type": "object", "additionalProperties": {"type": "integer"},
             "minProperties": 1, "maxProperties": 2},
    "both": {"allOf": [{"type": "integer"}, {"minimum": 5}, {"maximum": 9}]},
    "either": {"type": ["string", "integer"], "format": "email"},
    "never": False, "always": True,
}, "required": ["name", "age"], "additionalProperties": False}

CORPUS = [
    *_builtin_schemas(),
    PERSON,
    {**PERSON, "$schema": "http://json-schema.org/draft-07/schema#"},
    {**PERSON, "$schema": "https://json-schema.org/draft/2020-12/schema"},
    {**PERSON, "$schema": "https://json-schema.org/draft/2019-09/schema"},
    {**PERSON, "$schema": "http://json-schema.org/draft-06/schema#"},
    # pydantic / FastMCP shapes: titles, defaults, Optional as anyOf with null
    {"type": "object", "title": "addArguments", "properties": {
        "a": {"title": "A", "type": "integer"}, "b": {"title": "B", "type": "integer",
                                                      "default": 0},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None,
                 "title": "Note"}}, "required": ["a"]},
    # zod-to-json-schema shape (TypeScript servers)
    {"type": "object", "properties": {"path": {"type": "string"}, "depth": {"type": "number"},
                                      "mode": {"type": "string", "enum": ["fast", "slow"]}},
     "required": ["path"], "additionalProperties": False,
     "$schema": "http://json-schema.org/draft-07/schema#"},
    {"type": "object"},
    {"type": "object", "properties": {}, "x-vendor": {"anything": 1}, "nullable": True},
    {"type": "object", "properties": {"list": {"type": "array", "items": {
        "type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"],
        "additionalProperties": False}}}, "maxProperties": 0},
    {"type": "object", "properties": {"s": {"maxLength": 0}, "n": {"minProperties": 0},
                                      "m": {"maxItems": 0}, "p": {"minItems": 2}}},
    True,
    {"required": ["a", "b"], "properties": {"b": {"type": "boolean"}}},
    {"type": "object", "additionalProperties": True, "properties": {"x": {"type": "null"}}},
]

OUTSIDE = [
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {}}},
    {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    {"not": {"type": "string"}},
    {"if": {"type": "string"}, "then": {"minLength": 2}},
    {"type": "number", "multipleOf": 0.1},
    {"type": "array", "uniqueItems": True},
    {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
    {"type": "array", "prefixItems": [{"type": "string"}]},
    {"type": "array", "items": [{"type": "string"}]},
    {"type": "array", "items": False},
    {"type": "object", "dependentRequired": {"a": ["b"]}},
    {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"},
    {"$schema": "https://example.com/my-dialect", "type": "object"},
    {"type": "object", "properties": {"a": {"$schema": "http://json-schema.org/draft-04/schema#"}}},
    {"type": "strng"},
    {"type": "object", "required": "name"},
    {"enum": "abc"},
    {"type": "string", "minLength": "3"},
    {"type": "string", "maxLength": 2.5},
    {"type": "integer", "minimum": True},
    {"type": "string", "pattern": "("},
    {"anyOf": []},
    {"properties": {"a": 5}},
    {"additionalProperties": "no"},
    {"$id": "https://example.com/s", "type": "object"},
    3,
]

VALUES = [None, True, False, 0, 1, -1, 1.0, 0.5, 2.5, 150, 151, 5, 9, 10, "", "A", "Ab",
          "abc", "Abcdefghi", "x@y", [], [1, 2], ["ab"], ["ab", "c"], ["a", "b", "c", "d"],
          {}, {"k": 1}, {"a": 1, "b": 2, "c": 3}, float("inf"), 10**30, "é" * 3]


def _errors(validator, instance) -> list[tuple[tuple[str, ...], str]]:
    return sorted((tuple(str(p) for p in e.path), e.message) for e in validator.iter_errors(
        instance))


def _jsonschema(schema):
    return jsonschema.validators.validator_for(schema)(schema)


def _generate(schema, rng: random.Random, depth: int = 0):
    """Arguments near the schema: its own property names (some left out, some extra), values
    of every type, at and around its bounds."""
    if depth > 2 or not isinstance(schema, dict) or rng.random() < 0.3:
        return rng.choice(VALUES)
    props = schema.get("properties") or {}
    if props or schema.get("type") == "object":
        out = {}
        for name, sub in props.items():
            if rng.random() < 0.75:
                out[name] = _generate(sub, rng, depth + 1)
        if rng.random() < 0.3:
            out[rng.choice(["extra", "zz", "0"])] = rng.choice(VALUES)
        return out
    if "items" in schema or schema.get("type") == "array":
        return [_generate(schema.get("items"), rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return rng.choice(VALUES)


@pytest.mark.parametrize("schema", CORPUS, ids=lambda s: json.dumps(s)[:60])
def test_the_lite_validator_gives_jsonschemas_errors_on_the_corpus(schema):
    lite = compile_schema(schema)
    assert isinstance(lite, LiteValidator), "in the subset, yet not compiled"
    full = _jsonschema(schema)
    rng = random.Random(json.dumps(schema, sort_keys=True))
    instances = [*VALUES, *(_generate(schema, rng) for _ in range(300))]
    for instance in instances:
        assert _errors(lite, instance) == _errors(full, instance), instance
        if isinstance(instance, dict):  # what the model is told: the first error, as a line
            ours = validate_arguments(instance, schema, lite)
            assert ours == validate_arguments(instance, schema, full), instance


def test_the_corpus_exercises_every_keyword_of_the_subset():
    """Each keyword the lite validator implements fails at least once in the corpus."""
    seen: set[str] = set()
    for schema in CORPUS:
        if not isinstance(schema, dict):
            continue
        full = _jsonschema(schema)
        rng = random.Random(json.dumps(schema, sort_keys=True))
        for instance in [*VALUES, *(_generate(schema, rng) for _ in range(300))]:
            seen.update(str(e.validator) for e in full.iter_errors(instance))
    wanted = {"type", "required", "additionalProperties", "enum", "const", "minLength",
              "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
              "exclusiveMaximum", "minItems", "maxItems", "minProperties", "maxProperties",
              "anyOf", "None"}  # None: a false subschema
    assert wanted <= seen, wanted - seen


@pytest.mark.parametrize("schema", OUTSIDE, ids=lambda s: json.dumps(s)[:60])
def test_schemas_outside_the_subset_go_to_jsonschema(schema):
    assert compile_schema(schema) is None
    if isinstance(schema, dict):
        assert not isinstance(make_validator(schema), LiteValidator)


def test_a_huge_argument_is_not_repeated_in_every_error():
    """The message (the argument's repr) is made only for the error that is shown."""
    schema = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 3}}}
    made = []
    errors = list(compile_schema(schema).iter_errors({"s": "x" * 1_000_000}))
    assert len(errors) == 1 and errors[0].path == ("s",)
    made.append(errors[0].message)
    assert made[0].endswith("is too long") and len(made[0]) > 1_000_000
    line = validate_arguments({"s": "x" * 1_000_000}, schema, compile_schema(schema))
    assert line.startswith("s: 'xxx") and line.endswith("…") and len(line) < 320


def test_a_call_to_a_builtin_tool_is_checked_without_importing_jsonschema(tmp_path):
    """agentcli's process: loading the built-ins and checking a call's arguments (valid and
    not) leaves jsonschema unimported."""
    code = (
        "import sys, json\n"
        "from agentcli.config import load_settings\n"
        "from agentcli.toolrun.approval import PolicyApprover\n"
        "from agentcli.toolrun.executor import admit_call\n"
        "from agentcli.toolrun.manifest import load_tools\n"
        "from agentcli.messages import ToolCall\n"
        "tools = load_tools(load_settings(None), warn=print)\n"
        "cache = {}\n"
        "out = []\n"
        "for name, args in [('calculator', {'expression': '1+1'}), ('calculator', {'x': 1}),\n"
        "                   ('file_read', {'path': 'a', 'limit': 0}), ('edit', {})]:\n"
        "    got = admit_call(ToolCall('c', name, json.dumps(args)), tools[name], cache,\n"
        "                     PolicyApprover(yes=True))\n"
        "    out.append(got[0] if isinstance(got, tuple) else got.result.content)\n"
        "print(json.dumps(out))\n"
        "print('jsonschema' in sys.modules)\n")
    env = {"AGENTCLI_HOME": str(tmp_path), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    results, imported = r.stdout.splitlines()
    assert json.loads(results) == [
        {"expression": "1+1"},
        "invalid arguments: 'expression' is a required property; the tool was not run.",
        "invalid arguments: limit: 0 is less than the minimum of 1; the tool was not run.",
        "invalid arguments: 'path' is a required property; the tool was not run."]
    assert imported == "False"
