"""An OpenAI reasoning model with tools, end to end on the fake: `ask` with a tool chain,
`--json`, `-c` resume with reasoning items, and the REPL; both by `--api responses` and by
the move from a Chat Completions 400. The installed binary (or the REPL harness) runs the real
SDK; the fake refuses what OpenAI refuses, so every accepted request is a valid one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fake_server import FakeProviderServer, text, tool_calls
from test_repl import _tool, chat  # noqa: F401 - the REPL harness fixture

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
MODEL = "gpt-5.6-terra"


def run(server, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([BIN, "ask", "-y", "-p", "openai", "--base-url", server.openai_base_url,
                           "-m", MODEL, *args], input=b"", capture_output=True, timeout=timeout,
                          env=env, start_new_session=True, text=False)


def inputs(server) -> list[list[dict]]:
    return [r["body"]["input"] for r in server.requests if r["path"] == "/v1/responses"]


def kinds(items: list[dict]) -> list[str]:
    return [i.get("type", "message") for i in items]


def chain(server) -> None:
    server.script(tool_calls(("calculator", {"expression": "6*7"})),
                  tool_calls(("calculator", {"expression": "42+1"})), text("It is 43."))


@pytest.mark.parametrize("api", ["responses", "auto"])
def test_ask_runs_a_tool_chain_with_the_reasoning_sent_back(fake_server, api):
    chain(fake_server)
    proc = run(fake_server, "--api", api, "--tool", "calculator", "what is 6*7+1?")
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert proc.stdout.decode() == "It is 43.\n"
    moved = "uses it (/v1/responses) from now on"
    assert err.count(moved) == (1 if api == "auto" else 0)
    paths = [r["path"] for r in fake_server.requests]
    assert paths == ["/v1/chat/completions"] * (api == "auto") + ["/v1/responses"] * 3
    last = inputs(fake_server)[-1]
    assert kinds(last) == ["message", "reasoning", "function_call", "function_call_output",
                           "reasoning", "function_call", "function_call_output"]
    assert last[2]["id"].startswith("fc_") and last[5]["id"].startswith("fc_")


@pytest.mark.parametrize("api", ["responses", "auto"])
def test_ask_json_reports_reasoning_and_cached_tokens(fake_server, api):
    fake_server.prompt_cache.min_tokens = 0
    chain(fake_server)
    proc = run(fake_server, "--api", api, "--json", "--tool", "calculator", "6*7+1?")
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout)
    assert out["text"] == "It is 43." and out["stop_reason"] == "end_turn"
    assert [c["result"] for c in out["tool_calls"]] == ["42", "43"]
    usage = out["usage"]
    assert usage["reasoning_tokens"] == 3 * 16 and usage["complete"] is True
    assert usage["cached_input_tokens"] > 0  # steps 2 and 3 repeat the prefix before them
    keys = {r["body"].get("prompt_cache_key") for r in fake_server.requests
            if r["path"] == "/v1/responses"}
    assert keys and None not in keys and len(keys) == 1


def test_resume_sends_the_stored_reasoning_back_byte_for_byte(fake_server):
    fake_server.echo = True
    first = run(fake_server, "--api", "responses", "--tool", "calculator", "use calculator 6*7")
    assert first.returncode == 0 and first.stdout.decode() == "tool said: 42\n"
    turn_one = inputs(fake_server)[-1]
    again = run(fake_server, "--api", "responses", "-c", "--tool", "calculator",
                "use calculator 1+1")
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout.decode() == "tool said: 2\n"
    assert "left out" not in again.stderr.decode()
    resumed = inputs(fake_server)[-2]  # the first request of the resumed turn
    assert resumed[:len(turn_one)] == turn_one  # reasoning items included, unchanged
    assert "reasoning" in kinds(resumed[:len(turn_one)])


def test_a_server_without_the_responses_api_is_one_line_naming_the_url():
    with FakeProviderServer(responses_api=False) as srv:
        proc = run(srv, "--api", "responses", "hello")
    err = proc.stderr.decode().strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1
    assert f"{srv.openai_base_url}/responses does not exist" in err and "--api chat" in err


def test_a_reasoning_level_the_model_refuses_is_one_line_and_nothing_is_lost(fake_server):
    fake_server.script(text("first answer"))
    assert run(fake_server, "--api", "responses", "first").returncode == 0
    proc = run(fake_server, "--api", "responses", "-c", "--reasoning", "minimal", "second")
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1
    assert "does not support 'minimal'" in err[-1] and "--reasoning none" in err[-1]
    fake_server.script(text("third answer"))
    ok = run(fake_server, "--api", "responses", "-c", "third")
    assert ok.returncode == 0  # the conversation is still whole: the fake takes it
    users = [i["content"] for i in inputs(fake_server)[-1] if i.get("role") == "user"]
    assert users == ["first", "third"]  # the refused turn got nothing, so it left no trace


@pytest.mark.parametrize("api", ["responses", "auto"])
def test_the_repl_runs_reasoning_turns_with_tools(chat, fake_server, api):  # noqa: F811
    answers = {"2+2": "4", "3*3": "9"}
    calc = _tool("calculator", lambda expression: answers[expression], confirm="never",
                 expression="string")
    fake_server.script(tool_calls(("calculator", {"expression": "2+2"})), text("Four."),
                       tool_calls(("calculator", {"expression": "3*3"})), text("Nine."))
    h = chat(tools={"calculator": calc}, model=MODEL, api=api)
    assert h.run("2+2?\r3*3?\r/exit\r") == 0
    assert "Four." in h.out and "Nine." in h.out
    said = " ".join(h.err.split())  # the console wraps long lines
    assert said.count("uses it (/v1/responses) from now on") == (1 if api == "auto" else 0)
    assert h.repl.agent.provider.wire == "openai_responses"
    second_turn = inputs(fake_server)[-2]
    assert kinds(second_turn).count("reasoning") == 2  # the first turn's, sent back
    assert [r["path"] for r in fake_server.requests].count("/v1/chat/completions") == \
        (1 if api == "auto" else 0)


def test_resume_after_the_move_goes_on(fake_server):
    # The first run moved to the Responses API; the resumed run starts on Chat Completions again
    # until the session store remembers the move (then its reasoning is sent back too): either
    # way the turn goes on, and the stored reasoning is never sent where it cannot be read.
    fake_server.echo = True
    first = run(fake_server, "--tool", "calculator", "use calculator 6*7")
    assert first.returncode == 0 and first.stdout.decode() == "tool said: 42\n"
    again = run(fake_server, "-c", "--tool", "calculator", "use calculator 1+1")
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout.decode() == "tool said: 2\n"
    chat_bodies = [r["body"] for r in fake_server.requests if r["path"] == "/v1/chat/completions"]
    assert all("reasoning" not in json.dumps(b["messages"]) for b in chat_bodies)
