"""Structured output on the wire: the schema rewritten for OpenAI's strict mode, the exact
request parts each adapter sends through its real SDK to the fake (which refuses what the APIs
refuse), and the check of a reply (``agent.structured``)."""

from __future__ import annotations

import json

import openai
import pytest
from fake_clients import CALC, KEY, collect, done, provider
from fake_server import Reply, conforming, text, tool_calls

from agentcli.agent.structured import StructuredOutput, drop_nulls, unfence, wrap
from agentcli.messages import Message, Notice, TextDelta, ToolDefinition
from agentcli.providers.schema_wire import NotStrict, strict_schema

PERSON = {"type": "object",
          "properties": {"name": {"type": "string", "minLength": 1},
                         "age": {"type": "integer", "minimum": 0},
                         "email": {"type": "string", "format": "email"},
                         "tags": {"type": "array", "items": {"type": "string"}}},
          "required": ["name"]}
STRICT_PERSON = {"type": "object",
                 "properties": {"name": {"type": "string", "description": "{minLength: 1}"},
                                "age": {"anyOf": [{"type": "integer", "minimum": 0},
                                                  {"type": "null"}]},
                                "email": {"anyOf": [{"type": "string", "format": "email"},
                                                    {"type": "null"}]},
                                "tags": {"anyOf": [{"type": "array",
                                                    "items": {"type": "string"}},
                                                   {"type": "null"}]}},
                 "required": ["name", "age", "email", "tags"], "additionalProperties": False}


# --- strict mode ------------------------------------------------------------------------------

def test_strict_mode_closes_objects_requires_every_property_and_makes_optional_ones_nullable():
    assert strict_schema(PERSON) == STRICT_PERSON


def test_strict_mode_reaches_nested_objects_defs_and_turns_one_of_into_any_of():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"home": {"$ref": "#/$defs/place"},
                             "pets": {"type": "array", "items": {"oneOf": [
                                 {"type": "string"}, {"type": "integer"}]}, "uniqueItems": True}},
              "required": ["home", "pets"],
              "$defs": {"place": {"type": "object", "properties": {"city": {"type": "string"}},
                                  "default": {"city": "Oslo"}}}}
    got = strict_schema(schema)
    assert "$schema" not in got
    assert got["$defs"]["place"] == {"type": "object", "properties": {
        "city": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "required": ["city"],
        "additionalProperties": False, "description": '{default: {"city": "Oslo"}}'}
    assert got["properties"]["pets"] == {"type": "array", "items": {"anyOf": [
        {"type": "string"}, {"type": "integer"}]}, "description": "{uniqueItems: true}"}


@pytest.mark.parametrize("schema, why", [
    ({"type": "object", "properties": {"meta": {"type": "object"}}},
     "an object without properties at $.meta"),
    ({"type": "object", "properties": {"a": {"type": "string"}},
      "additionalProperties": {"type": "integer"}}, "additionalProperties that is not false at $"),
    ({"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}},
     "'allOf' at $.a"),
    ({"type": "object", "properties": {"a": {"description": "anything"}}},
     "a schema without a type at $.a"),
])
def test_what_strict_mode_cannot_express_is_named(schema, why):
    with pytest.raises(NotStrict) as e:
        strict_schema(schema)
    assert str(e.value) == why


def test_the_fake_refuses_a_schema_strict_mode_cannot_take_as_openai_does(fake_server):
    client = openai.OpenAI(base_url=fake_server.openai_base_url, api_key=KEY, max_retries=0)
    fake_server.script(text('{"name": "Ada"}'))
    with pytest.raises(openai.BadRequestError) as e:  # the user's schema as it is: refused
        client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "?"}],
                                       response_format={"type": "json_schema", "json_schema": {
                                           "name": "answer", "schema": PERSON, "strict": True}})
    assert "Invalid schema for response_format 'answer': In context=(), 'additionalProperties' " \
           "is required to be supplied and to be false." in str(e.value)
    reply = client.chat.completions.create(  # rewritten for strict mode: taken
        model="gpt-4.1", messages=[{"role": "user", "content": "?"}],
        response_format={"type": "json_schema", "json_schema": {
            "name": "answer", "schema": STRICT_PERSON, "strict": True}})
    assert reply.choices[0].message.content == '{"name": "Ada"}'


# --- the exact request parts, through the real SDKs -------------------------------------------

def ask_once(server, wire, output, *, streaming=True, tools=(), **profile):
    p = provider(server, wire, **profile)
    events = collect(p, [Message.user("who?")], tools=list(tools), stream=streaming,
                     output=output)
    return events, server.requests[-1]["body"]


@pytest.mark.parametrize("streaming", [True, False])
def test_chat_completions_sends_response_format_json_schema_strict(fake_server, streaming):
    out = StructuredOutput(PERSON)
    fake_server.script(conforming())
    events, body = ask_once(fake_server, "openai", out.format, streaming=streaming)
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": STRICT_PERSON, "strict": True}}
    answer = done(events).message.text  # strict mode sends the optional ones as null
    assert json.loads(answer) == {"name": "text", "age": None, "email": None, "tags": None}
    assert out.check(answer).data == {"name": "text"}  # ... and the check leaves them out


@pytest.mark.parametrize("streaming", [True, False])
def test_responses_api_sends_text_format_json_schema_strict(fake_server, streaming):
    out = StructuredOutput(PERSON)
    fake_server.script(conforming())
    events, body = ask_once(fake_server, "responses", out.format, streaming=streaming,
                            model="gpt-5.6-terra")
    assert body["text"] == {"format": {"type": "json_schema", "name": "answer",
                                       "schema": STRICT_PERSON, "strict": True}}
    assert out.check(done(events).message.text).valid


def test_a_schema_strict_mode_cannot_express_goes_non_strict_and_says_so_once(fake_server):
    schema = {"type": "object", "properties": {"meta": {"type": "object"}}}
    out = StructuredOutput(schema)
    p = provider(fake_server, "openai")
    fake_server.script(text('{"meta": {"any": 1}}'), text('{"meta": {}}'))
    first = collect(p, [Message.user("?")], output=out.format)
    second = collect(p, [Message.user("?")], output=out.format)
    assert fake_server.requests[0]["body"]["response_format"]["json_schema"] == {
        "name": "answer", "schema": schema, "strict": False}
    notices = [e.text for e in first + second if isinstance(e, Notice)]
    assert notices == ["the schema is sent without OpenAI's strict mode, which cannot express "
                       "it (an object without properties at $.meta); the reply is "
                       "still checked against it"]


@pytest.mark.parametrize("streaming", [True, False])
def test_anthropic_sends_output_config_format_with_every_object_closed(fake_server, streaming):
    out = StructuredOutput(PERSON)
    fake_server.script(conforming())
    events, body = ask_once(fake_server, "anthropic", out.format, streaming=streaming,
                            model="claude-sonnet-4-6", reasoning="high")
    assert body["output_config"] == {"effort": "high", "format": {"type": "json_schema", "schema": {
        "type": "object",
        "properties": {"name": {"type": "string", "description": "{minLength: 1}"},
                       "age": {"type": "integer", "description": "{minimum: 0}"},
                       "email": {"type": "string", "format": "email"},
                       "tags": {"type": "array", "items": {"type": "string"}}},
        "additionalProperties": False, "required": ["name"]}}}
    assert "tool_choice" not in body
    assert out.check(done(events).message.text).valid


@pytest.mark.parametrize("streaming", [True, False])
def test_anthropic_model_without_structured_output_gets_a_forced_answer_tool(fake_server,
                                                                             streaming):
    out = StructuredOutput(PERSON)
    fake_server.script(conforming())
    events, body = ask_once(fake_server, "anthropic", out.format, streaming=streaming,
                            model="claude-3-7-sonnet-20250219")
    assert body["tools"] == [{"name": "final_answer", "input_schema": PERSON, "description": (
        "Give your final answer with this tool: its input is the answer, in the required JSON "
        "format. Call it once, when you have everything you need (after any other tool "
        "calls).")}]
    assert body["tool_choice"] == {"type": "tool", "name": "final_answer"}
    assert "output_config" not in body
    reply = done(events)
    # the tool's input is handed back as the reply's text: the turn ends there
    assert reply.stop_reason == "end_turn" and not reply.message.tool_calls
    assert json.loads(reply.message.text) == {"name": "text", "age": 0,
                                              "email": "someone@example.com", "tags": ["text"]}
    assert [e.text for e in events if isinstance(e, TextDelta)] == [reply.message.text]
    assert [e.text for e in events if isinstance(e, Notice)] == [
        "structured output goes through a tool (final_answer) whose input is the answer: "
        "claude-3-7-sonnet-20250219 has no structured output"]


def test_the_forced_answer_tool_beside_other_tools_and_with_thinking(fake_server):
    out = StructuredOutput(PERSON)
    mine = ToolDefinition("final_answer", "a user tool of the same name", {"type": "object"})
    fake_server.script(tool_calls(("calculator", {"expression": "1+1"})),
                       tool_calls(("final_answer_", {"name": "Ada"}), text="Here it is."))
    events, body = ask_once(fake_server, "anthropic", out.format, tools=[CALC, mine],
                            model="claude-opus-4-1")
    assert [t["name"] for t in body["tools"]] == ["final_answer_", "calculator", "final_answer"]
    assert body["tool_choice"] == {"type": "any"}  # a tool each time: its own ones first
    assert done(events).message.tool_calls[0].name == "calculator"
    events, body = ask_once(fake_server, "anthropic", out.format, tools=[CALC, mine],
                            model="claude-opus-4-1", reasoning="low")
    assert body["tool_choice"] == {"type": "auto"}  # the API refuses forcing with thinking
    reply = done(events)
    assert reply.message.text == '{"name": "Ada"}'  # the text beside it is not the answer
    assert reply.stop_reason == "end_turn"


@pytest.mark.parametrize("prop, why", [
    ({"type": "object"}, "an object without properties at $.meta"),
    ({"description": "anything"}, "Schema must have a 'type'"),  # the SDK's transform_schema
])
def test_anthropic_schema_its_structured_output_cannot_express_goes_by_tool(fake_server, prop,
                                                                            why):
    out = StructuredOutput({"type": "object", "properties": {"meta": prop}})
    fake_server.script(conforming())
    events, body = ask_once(fake_server, "anthropic", out.format, model="claude-sonnet-4-6")
    assert "output_config" not in body and body["tool_choice"]["name"] == "final_answer"
    assert why in [e.text for e in events if isinstance(e, Notice)][0]


def test_the_fake_refuses_output_config_format_on_an_older_model(fake_server):
    import anthropic

    client = anthropic.Anthropic(base_url=fake_server.anthropic_base_url, api_key=KEY,
                                 max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="claude-opus-4-1", max_tokens=100,
                               messages=[{"role": "user", "content": "?"}],
                               output_config={"format": {"type": "json_schema",
                                                         "schema": STRICT_PERSON}})
    assert "does not support output_config.format" in str(e.value)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=100,
                               messages=[{"role": "user", "content": "?"}],
                               output_config={"format": {"type": "json_schema", "schema": {
                                   **STRICT_PERSON, "properties": {
                                       "name": {"type": "string", "minLength": 1}}}}})
    assert "'minLength' is not supported (at properties/name)" in str(e.value)
    assert fake_server.requests and not fake_server.pending


def test_a_strict_mode_refusal_is_the_content_filter(fake_server):
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
             "choices": [{"index": 0, "delta": {"refusal": "I can't help with that."},
                          "finish_reason": None}]}
    last = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    sse = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(last)}\n\ndata: [DONE]\n\n"
    whole = {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": None, "refusal": "I can't help with that."}}]}
    fake_server.script(Reply("raw", body=sse.encode(), content_type="text/event-stream"),
                       Reply("raw", body=json.dumps(whole).encode()))
    for streaming in (True, False):
        reply = done(collect(provider(fake_server, "openai"), stream=streaming,
                             output=StructuredOutput(PERSON).format))
        assert reply.stop_reason == "content_filter"
        assert reply.message.text == "I can't help with that."


# --- the check of a reply ---------------------------------------------------------------------

def test_the_check_reads_fenced_json_and_names_what_is_wrong():
    out = StructuredOutput(PERSON)
    assert out.check('```json\n{"name": "Ada"}\n```').data == {"name": "Ada"}
    assert out.check("  {\"name\": \"Ada\"}\n").data == {"name": "Ada"}
    bad = out.check('{"age": -1, "tags": [1]}')
    assert not bad.valid and bad.total == 3
    assert bad.errors == ("$: 'name' is a required property",
                          "$.age: -1 is less than the minimum of 0",
                          "$.tags[0]: 1 is not of type 'string'")
    assert out.check("Ada, 36").errors == (
        "the reply is not JSON (Expecting value at line 1 column 1): it must be JSON that "
        "matches the schema",)
    assert out.check("").errors[0].startswith("the reply is empty")
    assert out.check('{"name": "Ada", "email": "not an address"}').errors == (
        "$.email: 'not an address' is not a 'email'",)


def test_the_feedback_lists_the_errors_and_counts_the_rest():
    out = StructuredOutput({"type": "array", "items": {"type": "integer"}})
    bad = out.check(json.dumps({"value": ["x"] * 25}))
    message = bad.feedback()
    assert message.startswith("Your reply does not match the required JSON schema:\n- $[0]:")
    assert message.count("\n- $[") == 20 and "- … 5 more" in message
    assert message.endswith("Reply again with only the corrected JSON, nothing else.")


def test_a_root_that_is_not_an_object_travels_wrapped():
    schema = {"type": "array", "items": {"$ref": "#/$defs/n"},
              "$defs": {"n": {"type": "integer"}}, "minItems": 1}
    out = StructuredOutput(schema)
    assert out.format.schema == {"type": "object", "properties": {"value": {
        "type": "array", "items": {"$ref": "#/$defs/n"}, "minItems": 1}},
        "required": ["value"], "additionalProperties": False,
        "$defs": {"n": {"type": "integer"}}}
    assert out.check('{"value": [1, 2]}').data == [1, 2]
    assert out.check("[3]").data == [3]  # a server that ignored the format
    assert wrap({"anyOf": [{"$ref": "#"}, {"type": "null"}]})["properties"]["value"] == {
        "anyOf": [{"$ref": "#/properties/value"}, {"type": "null"}]}


def test_only_the_nulls_strict_mode_asked_for_are_dropped():
    schema = {"type": "object", "properties": {
        "a": {"type": "integer"}, "b": {"type": ["integer", "null"]},
        "inner": {"type": "array", "items": {"type": "object", "properties": {
            "c": {"type": "string"}}}}}, "required": ["a"]}
    value = {"a": None, "b": None, "inner": [{"c": None}]}
    assert drop_nulls(value, schema, schema) == {"a": None, "b": None, "inner": [{}]}
    same = {"a": 1}
    assert drop_nulls(same, schema, schema) is same
    out = StructuredOutput(schema)
    assert out.check('{"a": 1, "b": null, "inner": [{"c": null}]}').data == {
        "a": 1, "b": None, "inner": [{}]}
    assert not out.check('{"a": null}').valid  # a required one stays, and fails


def test_unfence_keeps_what_is_not_one_fence():
    assert unfence("```\n[1]\n```") == "[1]"
    assert unfence("```[1]```") == "[1]"
    assert unfence("text ```json\n{}\n```") == "text ```json\n{}\n```"


def test_api_auto_keeps_the_schema_when_it_moves_to_the_responses_api(fake_server):
    from agentcli.config import ProviderProfile, Settings
    from agentcli.providers.base import create_provider

    p = create_provider(ProviderProfile(name="openai", type="openai", model="gpt-5.6-terra",
                                        api_key=KEY, base_url=fake_server.openai_base_url),
                        Settings(max_retries=0))
    out = StructuredOutput(PERSON)
    fake_server.script(conforming())
    reply = done(collect(p, tools=[CALC], output=out.format))
    first, moved = (r["body"] for r in fake_server.requests)  # refused on Chat Completions
    assert first["response_format"]["json_schema"]["schema"] == STRICT_PERSON
    assert moved["text"]["format"]["schema"] == STRICT_PERSON and p.wire == "openai_responses"
    assert out.check(reply.message.text).data == {"name": "text"}
