"""What OpenAI-compatible servers get that the official API does not (``providers/compat.py``):
tool schemas without the big length/count bounds that crash llama-cpp-python's grammar builder,
and a request made again without streaming when a server cannot stream tool calls. Played by
the fake server (``no_streamed_tools`` answers as llama-cpp-python's server does); the real
server is in ``tests/test_llama_server.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_clients import CALC, collect, done, provider, text_of
from fake_server import drop, empty_stream, error, text, tool_calls

from agentcli.config import ProviderProfile, Settings
from agentcli.errors import ProviderError, StreamInterruptedError
from agentcli.messages import Message, Notice
from agentcli.providers import compat

BUILTINS = Path(__file__).resolve().parents[1] / "tools"


def builtin_tools():
    from agentcli.toolrun.manifest import load_tools

    return [t.definition for t in load_tools(Settings()).values()]


def bounds(schema, found=None):
    """Every (keyword, value) of a length/count bound anywhere in ``schema``."""
    found = [] if found is None else found
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k in ("minLength", "maxLength", "minItems", "maxItems") and isinstance(v, int):
                found.append((k, v))
            bounds(v, found)
    elif isinstance(schema, list):
        for v in schema:
            bounds(v, found)
    return found


# --- tool schemas --------------------------------------------------------------------------------

def test_the_builtin_tools_big_bounds_are_not_sent_to_a_compatible_server(fake_server):
    tools = builtin_tools()
    assert ("maxLength", 2000) in bounds([t.parameters for t in tools])  # the calculator's
    fake_server.script(text("ok"))
    collect(provider(fake_server), tools=tools)
    sent = {t["function"]["name"]: t["function"] for t in fake_server.requests[0]["body"]["tools"]}
    assert set(sent) == {t.name for t in tools}
    assert all(v <= compat.BOUND_CAP for _, v in bounds([f["parameters"] for f in sent.values()]))
    web = sent["web_fetch"]["parameters"]["properties"]["url"]
    assert web == {"type": "string", "description": "The http:// or https:// URL to fetch.",
                   "minLength": 1}  # the small bound and the description stay
    calc = sent["calculator"]["parameters"]
    assert calc["required"] == ["expression"] and calc["additionalProperties"] is False
    assert sent["file_read"]["parameters"]["properties"]["offset"]["minimum"] == 1


def test_the_official_api_gets_every_schema_unchanged():
    from agentcli.providers.openai_chat import OpenAIProvider

    tools = builtin_tools()
    p = OpenAIProvider(ProviderProfile(name="openai", type="openai", api_key="sk-x"), Settings())
    sent = p._params([Message.user("hi")], tools, None)["tools"]
    assert [t["function"]["parameters"] for t in sent] == [t.parameters for t in tools]


def test_bounds_walk_schemas_not_data():
    schema = {"type": "object", "properties": {
        "maxLength": {"type": "string", "maxLength": 5000, "pattern": "^a+$"},
        "tags": {"type": "array", "maxItems": 10_000, "minItems": 2,
                 "items": {"anyOf": [{"type": "string", "minLength": 3000}, {"type": "null"}]}},
        "mode": {"const": {"maxLength": 9000}, "default": {"minItems": 9000}}}}
    out = compat.without_big_bounds(schema)
    props = out["properties"]
    assert props["maxLength"] == {"type": "string", "pattern": "^a+$"}  # pattern is fine there
    assert props["tags"] == {"type": "array", "minItems": 2,
                             "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}}
    assert props["mode"] == schema["properties"]["mode"]  # data, never walked
    assert schema["properties"]["tags"]["maxItems"] == 10_000  # the tool's own schema unchanged
    assert "pattern" not in compat.without_big_bounds(schema, patterns=False)[
        "properties"]["maxLength"]


def test_the_executor_still_enforces_the_full_schema(fake_server, tmp_path, monkeypatch):
    """What the server was not sent is still checked here: a 3000-character expression never
    reaches the calculator, and the model is told why."""
    monkeypatch.chdir(tmp_path)
    long = "1+" * 1500 + "1"
    fake_server.script(tool_calls(("calculator", {"expression": long})), text("done"))
    r = ask(fake_server, tmp_path, "-t", "calculator", "--json", "add them up")
    out = json.loads(r.stdout)
    (call,) = out["tool_calls"]
    assert call["is_error"] and call["result"].startswith("invalid arguments: expression:")
    assert call["result"].endswith("the tool was not run.")
    sent = fake_server.requests[0]["body"]["tools"][0]["function"]["parameters"]
    assert "maxLength" not in sent["properties"]["expression"]


# --- streaming with tools ------------------------------------------------------------------------

def test_a_server_that_cannot_stream_tool_calls_is_asked_again_whole_and_remembered(fake_server):
    fake_server.no_streamed_tools = True
    fake_server.script(text("first"), text("second"), text("no tools"))
    p = provider(fake_server)
    events = collect(p, tools=[CALC])
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "cannot stream replies that may call tools" in notices[0].text
    assert fake_server.openai_base_url.rstrip("/") in notices[0].text
    assert text_of(events) == "first" and done(events).message.text == "first"
    events = collect(p, tools=[CALC])  # remembered: asked whole at once, nothing said again
    assert text_of(events) == "second" and not any(isinstance(e, Notice) for e in events)
    events = collect(p)  # without tools it still streams
    assert text_of(events) == "no tools"
    streamed = [r["body"].get("stream", False) for r in fake_server.requests]
    assert streamed == [True, False, False, True]


def test_a_server_that_says_it_cannot_is_asked_again_whole(fake_server):
    fake_server.script(error(400, "Automatic streaming tool choice is not supported"),
                       tool_calls(("calculator", {"expression": "6*7"})))
    events = collect(provider(fake_server), tools=[CALC])
    assert sum(isinstance(e, Notice) for e in events) == 1
    (call,) = done(events).message.tool_calls
    assert call.name == "calculator" and json.loads(call.arguments) == {"expression": "6*7"}


@pytest.mark.parametrize("reply, error_type", [
    (error(400, "model 'x' not found"), ProviderError),  # not about streaming
    (drop("partial "), StreamInterruptedError),  # text had come: never asked twice
])
def test_other_failures_are_not_retried(fake_server, reply, error_type):
    fake_server.script(reply, text("must not be asked for"))
    events: list = []
    with pytest.raises(error_type):
        collect(provider(fake_server), tools=[CALC], into=events)
    assert not any(isinstance(e, Notice) for e in events) and fake_server.pending == 1


def test_an_empty_stream_without_tools_is_still_an_error_with_a_hint(fake_server):
    fake_server.script(empty_stream(), text("must not be asked for"))
    with pytest.raises(ProviderError) as ei:
        collect(provider(fake_server))
    assert "--no-stream" in ei.value.hint and fake_server.pending == 1


def ask(fake_server, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "AGENTCLI_CONFIG")}
    env.update(AGENTCLI_HOME=str(home), OPENAI_API_KEY="sk-test", NO_COLOR="1")
    exe = str(Path(sys.executable).with_name("agentcli"))
    return subprocess.run([exe, "ask", "-p", "openai", "--base-url", fake_server.openai_base_url,
                           "-m", "test-model", "-y", *args], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=120)


def test_ask_with_tools_on_such_a_server_works_and_says_so_once(fake_server, tmp_path):
    fake_server.no_streamed_tools = True
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"})), text("It is 42."))
    r = ask(fake_server, tmp_path, "-t", "calculator", "what is 6*7?")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "It is 42."
    assert r.stderr.count("cannot stream replies that may call tools") == 1
    assert [q["body"].get("stream", False) for q in fake_server.requests] == [True, False, False]
