"""``--schema SCHEMA``: reading it (inline JSON, a file, llm's short form) and refusing a bad one
with one line and exit 2 before any request."""

from __future__ import annotations

import json
import os

import pytest
from test_ask import ask

from agentcli.errors import UsageError
from agentcli.inputs.schema import MAX_SCHEMA_BYTES, load_schema, parse_short


# --- llm's short form -----------------------------------------------------------------------

def test_short_form_fields_default_to_str_and_are_all_required():
    assert parse_short("name, age int, bio") == {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                       "bio": {"type": "string"}},
        "required": ["name", "age", "bio"]}


def test_short_form_types_and_descriptions():
    schema = parse_short("price float: in euros, sold bool, title str: the full title")
    assert schema["properties"] == {
        "price": {"type": "number", "description": "in euros"},
        "sold": {"type": "boolean"},
        "title": {"type": "string", "description": "the full title"}}


def test_short_form_on_lines_lets_a_description_hold_commas():
    schema = parse_short("name: the name, as written\nage int: years, rounded down\n\n")
    assert schema["properties"] == {
        "name": {"type": "string", "description": "the name, as written"},
        "age": {"type": "integer", "description": "years, rounded down"}}
    assert schema["required"] == ["name", "age"]


def test_the_readme_example():
    assert parse_short("name, born int: the year")["properties"] == {
        "name": {"type": "string"}, "born": {"type": "integer", "description": "the year"}}


def test_the_meta_schema_is_the_one_schema_names():
    tuple_items = {"type": "array", "items": [{"type": "string"}]}  # draft 7: fine; 2020-12: not
    with pytest.raises(UsageError) as e:
        load_schema(json.dumps(tuple_items))
    assert "not a valid JSON Schema" in e.value.message and "(at $.items)" in e.value.message
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", **tuple_items}
    assert load_schema(json.dumps(draft7)) == draft7


def test_the_help_names_schema_in_the_exit_codes_and_says_one_line():
    from typer.testing import CliRunner

    from agentcli.cli.app import build_app

    shown = " ".join(CliRunner().invoke(build_app(), ["ask", "--help"]).stdout.split())
    assert "stdout is then that JSON alone, on one line (--json/--jsonl: as `data`)" in shown
    assert "the answer did not match --schema (after one retry)" in shown
    assert "a bad --schema" in shown


def test_short_form_a_description_may_hold_more_colons():
    assert parse_short("at: time as HH:MM")["properties"]["at"]["description"] == \
        "time as HH:MM"


@pytest.mark.parametrize("text, says", [
    ("name, age integer", "unknown type 'integer' for field 'age'"),
    ("name, when date", "unknown type 'date' for field 'when'"),
    ("name, : no name", "field 2 (': no name') has no name"),
    ("name, name int", "field 'name' is named twice"),
    ("name str a description without a colon", "more than a name and a type"),
])
def test_short_form_mistakes_are_usage_errors_naming_the_field(text, says):
    with pytest.raises(UsageError) as e:
        parse_short(text)
    assert says in e.value.message and e.value.exit_code == 2


# --- where SCHEMA comes from ----------------------------------------------------------------

PERSON = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def test_inline_json_a_file_and_a_short_form(tmp_path, monkeypatch):
    assert load_schema(json.dumps(PERSON)) == PERSON
    path = tmp_path / "person.json"
    path.write_text(json.dumps(PERSON))
    assert load_schema(str(path)) == PERSON
    assert load_schema("name, age int")["properties"]["age"] == {"type": "integer"}
    # a file wins over a short form when the path exists (a name with a comma or a space)
    odd = tmp_path / "my schema, v2.json"
    odd.write_text(json.dumps(PERSON))
    assert load_schema(str(odd)) == PERSON


def test_a_single_word_that_is_no_file_is_refused_not_taken_as_one_field(tmp_path):
    with pytest.raises(UsageError) as e:
        load_schema(str(tmp_path / "person.json"))
    assert "no such file" in e.value.message and "person.json" in e.value.message
    with pytest.raises(UsageError) as e:
        load_schema("name")
    assert "no such file" in e.value.message and "short form" in e.value.hint


@pytest.mark.parametrize("schema, says", [
    ('{"type": "objekt"}', "not a valid JSON Schema: 'objekt' is not valid under any of the "
                           "given schemas (at $.type)"),
    ('{"type": "object", "required": "name"}', "'name' is not of type 'array' (at $.required)"),
    ('{"properties": {"a": {"minimum": "one"}}}', "(at $.properties.a.minimum)"),
    ('{"type": "object",', "not valid JSON: Expecting property name enclosed in double quotes "
                           "(line 1 column 19)"),
    ('{"$ref": "https://example.com/person.json"}', "points outside the schema"),
    ('{"$ref": "#/$defs/missing"}', "$ref '#/$defs/missing' points at nothing"),
])
def test_an_invalid_schema_is_one_line_naming_what_is_wrong(schema, says):
    with pytest.raises(UsageError) as e:
        load_schema(schema)
    assert says in e.value.message, e.value.message
    assert e.value.message.startswith("--schema: ") and "\n" not in e.value.message


def test_a_json_file_that_is_not_an_object_names_the_file(tmp_path):
    path = tmp_path / "list.json"
    path.write_text('["name"]')
    with pytest.raises(UsageError) as e:
        load_schema(str(path))
    assert e.value.message == f"--schema {path}: a JSON Schema here is a JSON object, not an array"


def test_files_that_are_not_schemas_are_refused_without_reading_them(tmp_path):
    with pytest.raises(UsageError) as e:
        load_schema(str(tmp_path))
    assert "is a directory" in e.value.message
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it would block forever
    with pytest.raises(UsageError) as e:
        load_schema(str(fifo))
    assert "is a FIFO, not a regular file" in e.value.message
    with pytest.raises(UsageError) as e:
        load_schema("/dev/zero")  # reading it would never end
    assert "is a device or socket" in e.value.message
    big = tmp_path / "big.json"
    big.write_text(" " * (MAX_SCHEMA_BYTES + 1) + "{}")
    with pytest.raises(UsageError) as e:
        load_schema(str(big))
    assert "at most 1,048,576 (1 MiB)" in e.value.message
    binary = tmp_path / "bin.json"
    binary.write_bytes(b'{"type": "\xff"}')
    with pytest.raises(UsageError) as e:
        load_schema(str(binary))
    assert "is not UTF-8 text" in e.value.message


# --- through the command: exit 2 before any request ---------------------------------------

@pytest.mark.parametrize("schema, says", [
    ("name, age integer", "error: --schema: unknown type 'integer' for field 'age'"),
    ('{"type": 5}', "error: --schema: not a valid JSON Schema"),
    ("missing.json", "error: --schema missing.json: no such file"),
])
def test_bad_schemas_fail_before_any_request(fake_server, schema, says):
    result = ask(fake_server, "--no-tools", "--schema", schema, "hi")
    assert result.exit_code == 2
    assert result.stderr.startswith(says), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake_server.requests == [] and result.stdout == ""


def test_the_local_model_refuses_schema_before_loading_anything(fake_server):
    from typer.testing import CliRunner

    from agentcli.cli.app import build_app

    result = CliRunner().invoke(build_app(), ["ask", "-p", "local", "--schema", "name, age int",
                                              "hi"])
    assert result.exit_code == 2
    assert "--schema is not available with the local model" in result.stderr
