"""`ask --schema` end to end against the loopback fake through the real SDKs: stdout is one JSON
document, an invalid answer is sent back once with its errors then exit 1, tools still run,
and `--json`/`--jsonl` carry the answer as `data`."""

from __future__ import annotations

import json

from fake_server import conforming, text, tool_calls
from typer.testing import CliRunner
from test_ask import ask, run_bin

from agentcli.cli.app import build_app

SHORT = "name, age int"


def user_messages(server, i: int) -> list[str]:
    return [m["content"] for m in server.requests[i]["body"]["messages"] if m["role"] == "user"]


def test_stdout_is_exactly_one_json_document_on_one_line(fake_server):
    fake_server.script(text('{"name": "Ada", "age": 36}', chunks=5))
    result = ask(fake_server, "--no-tools", "--schema", SHORT, "who?")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == '{"name": "Ada", "age": 36}\n'
    assert fake_server.requests[0]["body"]["response_format"]["json_schema"]["strict"] is True


def test_an_invalid_answer_is_sent_back_once_with_its_errors(fake_server):
    fake_server.script(text('{"name": "Ada", "age": "thirty-six"}'),
                       text('```json\n{"name": "Ada", "age": 36}\n```'))
    result = ask(fake_server, "--no-tools", "--schema", SHORT, "who?")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "Ada", "age": 36}
    assert len(fake_server.requests) == 2
    second = fake_server.requests[1]["body"]["messages"]
    assert second[1] == {"role": "assistant", "content": '{"name": "Ada", "age": "thirty-six"}'}
    assert second[2]["role"] == "user" and second[2]["content"] == (
        "Your reply does not match the required JSON schema:\n"
        "- $.age: 'thirty-six' is not of type 'integer'\n"
        "Reply again with only the corrected JSON, nothing else.")
    assert "the reply does not match the schema (1 error): sent back once with the errors" in \
        result.stderr


def test_a_second_invalid_answer_is_exit_1_with_the_errors_on_stderr(fake_server):
    fields = ", ".join(f"f{i} int" for i in range(8))
    fake_server.script(text("{}"), text('{"f0": "x"}'))
    result = ask(fake_server, "--no-tools", "--schema", fields, "fill it")
    assert result.exit_code == 1
    assert result.stdout == ""  # no answer: nothing a script could mistake for one
    assert len(fake_server.requests) == 2  # sent back once, not more
    lines = result.stderr.splitlines()
    start = lines.index("error: the answer does not match --schema (8 errors), even after it "
                        "was sent back once with them")
    assert lines[start + 1:] == ["  $: 'f1' is a required property",
                                 "  $: 'f2' is a required property",
                                 "  $: 'f3' is a required property",
                                 "  $: 'f4' is a required property",
                                 "  $: 'f5' is a required property",
                                 "  … 3 more"]


def test_tools_run_as_usual_and_the_schema_binds_the_final_answer(fake_server):
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"}), text="Let me compute."),
                       text('{"name": "six times seven", "age": 42}'))
    result = ask(fake_server, "-t", "calculator", "--schema", SHORT, "what is 6*7?")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == '{"name": "six times seven", "age": 42}\n'  # not "Let me compute."
    first, second = (r["body"] for r in fake_server.requests)
    assert first["response_format"] == second["response_format"]  # on every request
    assert first["tools"][0]["function"]["name"] == "calculator"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_0", "content": "42"}


def test_json_carries_the_answer_as_data(fake_server):
    fake_server.script(text('{"name": "Ada", "age": 36}'))
    result = ask(fake_server, "--no-tools", "--json", "--schema", SHORT, "who?")
    payload = json.loads(result.stdout)
    assert result.exit_code == 0 and payload["data"] == {"name": "Ada", "age": 36}
    assert payload["stop_reason"] == "end_turn" and "schema_errors" not in payload
    assert payload["text"] == '{"name": "Ada", "age": 36}'
    fake_server.script(text('{"name": 1}'), text('{"name": 2}'))
    result = ask(fake_server, "--no-tools", "--json", "--schema", SHORT, "who?")
    payload = json.loads(result.stdout)
    assert result.exit_code == 1 and payload["data"] is None
    assert payload["stop_reason"] == "schema" and payload["steps"] == 2
    assert payload["schema_errors"] == ["$: 'age' is a required property",
                                        "$.name: 2 is not of type 'string'"]
    fake_server.script(text("plain"))
    assert "data" not in json.loads(ask(fake_server, "--no-tools", "--json", "hi").stdout)


def test_jsonl_puts_data_in_the_done_event(fake_server):
    fake_server.script(text('{"name": "Ada", "age": 36}', chunks=2))
    result = run_bin(fake_server, "--jsonl", "--no-tools", "--schema", SHORT, "who?")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [e["type"] for e in events] == ["session", "text", "text", "usage", "done"]
    assert events[-1]["data"] == {"name": "Ada", "age": 36} and events[-1]["exit_code"] == 0
    fake_server.script(text("nope"), text("still no"))
    result = run_bin(fake_server, "--jsonl", "--no-tools", "--schema", SHORT, "who?")
    done = json.loads(result.stdout.decode().splitlines()[-1])
    assert result.returncode == 1 and done["stop_reason"] == "schema" and done["exit_code"] == 1
    assert done["data"] is None and done["schema_errors"][0].startswith("the reply is not JSON")


def test_a_reply_cut_by_max_tokens_is_not_sent_back(fake_server):
    fake_server.script(text('{"name": "Ad', finish="max_tokens"))
    result = ask(fake_server, "--no-tools", "--schema", SHORT, "who?")
    assert result.exit_code == 1 and result.stdout == ""
    assert "reply token limit" in result.stderr and len(fake_server.requests) == 1


def test_the_answer_is_escaped_like_json(fake_server):
    fake_server.script(text(json.dumps({"name": "evil \u202e \x9b2J \x1b]52;c;aGk=\x07",
                                        "age": 1})))
    result = ask(fake_server, "--no-tools", "--schema", SHORT, "who?")
    for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert raw not in result.stdout
    assert json.loads(result.stdout)["name"] == "evil \u202e \x9b2J \x1b]52;c;aGk=\x07"


def test_a_root_that_is_not_an_object_comes_back_unwrapped(fake_server):
    schema = json.dumps({"type": "array", "items": {"type": "string"}, "minItems": 2})
    fake_server.script(conforming())
    result = ask(fake_server, "--no-tools", "--schema", schema, "two words")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == '["text", "text"]\n'
    sent = fake_server.requests[0]["body"]["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["value"]["type"] == "array"


def test_an_optional_field_strict_mode_sent_as_null_is_left_out(fake_server, tmp_path):
    path = tmp_path / "person.json"
    path.write_text(json.dumps({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "nickname": {"type": "string"}}}))
    fake_server.script(conforming())  # {"name": "text", "nickname": null}
    result = ask(fake_server, "--no-tools", "--schema", str(path), "who?")
    assert result.stdout == '{"name": "text"}\n'


def anthropic_ask(server, model: str, *args: str):
    return CliRunner().invoke(build_app(), ["ask", "-p", "anthropic", "--base-url",
                                            server.anthropic_base_url, "-m", model, *args])


def test_anthropic_end_to_end_natively_and_by_forced_tool(fake_server):
    fake_server.script(conforming())
    result = anthropic_ask(fake_server, "claude-sonnet-4-6", "--no-tools", "--schema", SHORT,
                           "who?")
    assert result.exit_code == 0 and result.stdout == '{"name": "text", "age": 1}\n'
    assert "format" in fake_server.requests[-1]["body"]["output_config"]
    fake_server.script(tool_calls(("final_answer", {"name": "Ada", "age": "x"})),
                       tool_calls(("final_answer", {"name": "Ada", "age": 36})))
    result = anthropic_ask(fake_server, "claude-3-7-sonnet-20250219", "--no-tools",
                           "--schema", SHORT, "who?")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == '{"name": "Ada", "age": 36}\n'
    sent = fake_server.requests[-1]["body"]["messages"]
    # the first answer went back as text (no tool_use left without its result), then the errors
    assert sent[1] == {"role": "assistant", "content": [
        {"type": "text", "text": '{"name": "Ada", "age": "x"}'}]}
    assert "$.age: 'x' is not of type 'integer'" in sent[2]["content"][0]["text"]
    assert "goes through a tool (final_answer)" in result.stderr


def test_the_exit_codes_of_the_installed_binary(fake_server):
    fake_server.script(text("{}"), text("{}"))
    assert run_bin(fake_server, "--no-tools", "--schema", SHORT, "hi").returncode == 1
    bad = run_bin(fake_server, "--no-tools", "--schema", "name, age integer", "hi")
    assert bad.returncode == 2 and b"unknown type 'integer'" in bad.stderr
    assert b"Traceback" not in bad.stderr


def test_the_retry_and_both_answers_are_kept_in_the_session(fake_server):
    from test_jsonl import Path_home

    from agentcli.sessions.store import open_store

    fake_server.script(text('{"name": 1, "age": 2}'), text('{"name": "Ada", "age": 2}'))
    result = ask(fake_server, "--no-tools", "--json", "--schema", SHORT, "who?")
    store = open_store(Path_home(), create=False)
    kept = [(s.message.role, s.message.text) for s in store.messages(
        json.loads(result.stdout)["session"])]
    assert [role for role, _ in kept] == ["user", "assistant", "user", "assistant"]
    assert kept[2][1].startswith("Your reply does not match the required JSON schema")
