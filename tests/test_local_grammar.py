"""The grammar for started local tool calls: schemas made acceptable to llama.cpp, and the
step-by-step weakening (always told) when llama.cpp still refuses.

``accepts`` stands in for llama.cpp's parser here; tests/test_local_model.py runs the real one.
The converter is llama-cpp-python's (the ``local`` extra).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from agentcli.messages import ToolDefinition
from agentcli.providers.local import grammar as lg

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
needs_converter = pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python (the 'local' "
                                                            "extra) not installed")
BUILTIN = Path(__file__).resolve().parents[1] / "tools"

CALC = ToolDefinition("calculator", "Evaluate arithmetic.",
                      {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]})
HUGE = ToolDefinition("note", "Save a note.", {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 5000, "maxLength": 100_000},
        "tags": {"type": "array", "maxItems": 10_000, "minItems": 1,
                 "items": {"type": "string", "maxLength": 4000, "pattern": "^[a-z]{1,900}$"}},
        "code": {"type": "string", "minLength": 2, "maxLength": 8},
        "pattern": {"type": "string", "maxLength": 3000},  # a property *named* pattern
        "kind": {"enum": ["a", "b"], "default": "a"},
        "nested": {"anyOf": [{"type": "string", "maxLength": 2000},
                             {"type": "object", "properties": {
                                 "deep": {"type": "string", "maxLength": 99_999}}}]},
    },
    "required": ["text"],
})


TEXT_KEY = '"\\"text\\""'  # how a property key appears in GBNF: "\"text\""
EXPRESSION_KEY = '"\\"expression\\""'


def builtin_definitions() -> list[ToolDefinition]:
    out = []
    for path in sorted(BUILTIN.glob("*.yaml")):
        m = yaml.safe_load(path.read_text(encoding="utf-8"))
        out.append(ToolDefinition(m["name"], m["description"], m["parameters"]))
    return out


def test_big_bounds_and_patterns_are_left_to_the_executor():
    out = lg.grammar_parameters(HUGE.parameters)
    props = out["properties"]
    assert props["text"] == {"type": "string"}
    assert props["tags"] == {"type": "array", "minItems": 1, "items": {"type": "string"}}
    assert props["code"] == {"type": "string", "minLength": 2, "maxLength": 8}  # small: kept
    assert props["pattern"] == {"type": "string"}  # the property stays, its bound goes
    assert props["kind"] == {"enum": ["a", "b"], "default": "a"}
    assert props["nested"]["anyOf"][0] == {"type": "string"}
    assert props["nested"]["anyOf"][1]["properties"]["deep"] == {"type": "string"}
    assert out["required"] == ["text"]
    assert HUGE.parameters["properties"]["text"]["maxLength"] == 100_000  # not mutated
    # the calculator's and web_fetch's real bounds (2000 and 4000) are the ones that crashed
    for tool in builtin_definitions():
        text = json.dumps(lg.grammar_parameters(tool.parameters))
        assert '"maxLength"' not in text and '"pattern"' not in text


def test_data_is_never_walked_as_schema():
    schema = {"type": "object", "properties": {"mode": {
        "const": {"maxLength": 5000, "pattern": "x"},
        "examples": [{"maxLength": 9000}]}}}
    assert lg.grammar_parameters(schema) == schema


def test_call_schema_names_each_tool():
    schema = lg.call_schema([CALC])
    assert schema["properties"]["name"] == {"const": "calculator"}
    both = lg.call_schema([CALC, ToolDefinition("x", "y", {})])
    assert len(both["anyOf"]) == 2
    assert both["anyOf"][1]["properties"]["arguments"] == {"type": "object"}


def test_strict_strings():
    gbnf = ('root ::= string\nchar ::= [^"\\\\] | "\\\\" (["\\\\/bfnrt])\n'
            'string ::= "\\"" char* "\\""')
    out = lg.strict_strings(gbnf)
    assert out.splitlines()[1] == lg.STRICT_CHAR and "\\x00-\\x1F" in out
    assert out.splitlines()[0] == "root ::= string"


@needs_converter
def test_accepted_grammar_keeps_every_schema():
    seen: list[str] = []
    built = lg.build([CALC, HUGE], lambda g: seen.append(g))
    assert built.warnings == () and built.gbnf == seen[0] and len(seen) == 1
    assert '"\\"calculator\\""' in built.gbnf and '"\\"note\\""' in built.gbnf
    assert "code" in built.gbnf and lg.STRICT_CHAR in built.gbnf


@needs_converter
def test_a_tool_llama_refuses_is_held_to_an_object_and_named():
    def accepts(gbnf):  # refuse any grammar that still spells out the note tool's fields
        return "exceeds sane defaults" if TEXT_KEY in gbnf else None

    built = lg.build([CALC, HUGE], accepts)
    assert built.gbnf is not None
    assert EXPRESSION_KEY in built.gbnf  # calculator keeps its schema
    assert TEXT_KEY not in built.gbnf and '"\\"note\\""' in built.gbnf
    (line,) = built.warnings
    assert "tool 'note'" in line and "exceeds sane defaults" in line
    assert "checked against its schema" in line and "\n" not in line


@needs_converter
def test_too_complex_together_falls_back_to_names_only():
    def accepts(gbnf):  # each tool alone is fine; both together are not
        return "too complex" if "alternative-" in gbnf else None

    built = lg.build([CALC, HUGE], accepts)
    assert built.gbnf is not None and EXPRESSION_KEY not in built.gbnf
    (line,) = built.warnings
    assert "too complex for a llama.cpp grammar" in line and "real tool name" in line


@needs_converter
def test_nothing_accepted_means_no_grammar_and_says_so():
    built = lg.build([CALC], lambda g: "no")
    assert built.gbnf is None
    (line,) = built.warnings
    assert "no llama.cpp grammar can be built" in line
    assert "runs only if it is a well-formed call to a real tool" in line


def test_a_converter_failure_is_a_reason_not_a_crash():
    def convert(text):
        if "minItems" in text:  # only the note tool's own parameters have it
            raise AssertionError("Unrecognized schema")
        return 'root ::= "x"'

    built = lg.build([CALC, HUGE], lambda g: None, convert=convert)
    assert built.gbnf == 'root ::= "x"'
    (line,) = built.warnings
    assert "tool 'note'" in line and "AssertionError: Unrecognized schema" in line


def test_llama_cpp_reason_is_taken_from_its_stderr():
    log = ("parse: error parsing grammar: number of repetitions exceeds sane defaults\n\n"
           "root ::= ...a grammar of 40 kB...\n")
    assert lg.grammar_error(log) == "number of repetitions exceeds sane defaults"
    assert lg.grammar_error("") == "llama.cpp rejected the grammar"
    assert lg.grammar_error("\nllama_grammar_init_impl: left recursion detected\n") == \
        "llama_grammar_init_impl: left recursion detected"
