"""`ask --jsonl` (one JSON event per line, as it happens) and `--max-cost` (a spending limit),
end to end against the loopback fake provider."""

from __future__ import annotations

import json
import os
import subprocess

from fake_server import text, tool_calls
from test_ask import BIN, ask, run_bin

from agentcli.sessions.store import open_store


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def config(tmp_path, body: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(body)
    return str(path)


def test_a_three_step_tool_chain_with_one_denial_in_order(fake_server, tmp_path):
    cfg = config(tmp_path, "tools:\n  allow: [calculator]\n")
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"})),
                       tool_calls(("file_read", {"path": "secret.txt"})),
                       text("The answer is 42.", chunks=2))
    # no terminal, no --yes: file_read asks, so it is denied; calculator is allowed by config
    result = run_bin(fake_server, "--jsonl", "--config", cfg, "-t", "calculator,file_read",
                     "what is 6*7?")
    assert result.returncode == 0, result.stderr
    got = events(result.stdout.decode())
    assert [e["type"] for e in got] == [
        "session", "usage",
        "tool_call", "approval", "tool_result", "usage",
        "tool_call", "approval", "tool_result",
        "text", "text", "usage", "done"]
    session = got[0]
    assert session["v"] == 1 and session["provider"] == "openai" and session["id"]
    assert got[2]["name"] == "calculator" and got[2]["arguments"] == {"expression": "6*7"}
    assert got[3]["decision"] == "allow" and got[3]["source"] == "allow_rule"
    assert got[4] == {"type": "tool_result", "id": got[2]["id"], "name": "calculator",
                      "is_error": False, "result": "42"}
    assert got[6]["name"] == "file_read"
    assert got[7]["decision"] == "deny" and got[8]["is_error"]
    done = got[-1]
    assert done["stop_reason"] == "end_turn" and done["steps"] == 3 and done["exit_code"] == 0
    assert done["text"] == "The answer is 42." and done["usage"]["complete"] is True
    # the stream is the whole of stdout: no reply text outside the events
    assert "".join(e["text"] for e in got if e["type"] == "text") == "The answer is 42."


def test_jsonl_is_sanitised_like_json(fake_server):
    fake_server.script(text("evil \x1b]52;c;aGk=\x07 \u202e \x9b2J"))
    result = ask(fake_server, "--jsonl", "--no-tools", "hi")
    assert result.exit_code == 0
    for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert raw not in result.stdout
    assert "\\u202e" in result.stdout and "\\u009b" in result.stdout


def test_an_error_is_an_event_then_done_with_the_exit_code(fake_server):
    from fake_server import error

    fake_server.script(error(400, "no such thing"))
    result = ask(fake_server, "--jsonl", "--no-tools", "hi")
    assert result.exit_code == 1
    got = events(result.stdout)
    assert [e["type"] for e in got] == ["session", "error", "done"]
    assert "no such thing" in got[1]["message"] and got[1]["exit_code"] == 1
    assert got[2]["stop_reason"] == "error" and got[2]["usage"]["complete"] is False


def test_json_and_jsonl_together_is_a_usage_error(fake_server):
    result = ask(fake_server, "--json", "--jsonl", "--no-tools", "hi")
    assert result.exit_code == 2 and "cannot be used together" in result.stderr
    assert fake_server.requests == []


def test_a_reader_that_stops_early_ends_agentcli_quietly_and_the_session_is_saved(
        fake_server):
    fake_server.script(text(" ".join(f"word{i}" for i in range(400)), chunks=400))
    base = fake_server.openai_base_url
    proc = subprocess.Popen([BIN, "ask", "-p", "openai", "--base-url", base, "-m", "test-model",
                             "--jsonl", "--no-tools", "count words"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "NO_COLOR": "1"}, start_new_session=True)
    first = [proc.stdout.readline() for _ in range(3)]  # like `| head -3`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err and "Error" not in err, err
    assert json.loads(first[0])["type"] == "session"
    sid = json.loads(first[0])["id"]
    store = open_store(Path_home(), create=False)
    assert [s.message.text for s in store.messages(sid)][0] == "count words"


def Path_home():
    from pathlib import Path

    return Path(os.environ["AGENTCLI_HOME"])


# --- --max-cost -------------------------------------------------------------------------------

PRICED = "prices:\n  test-model: {input: 1000, output: 1000}\n"  # $0.001 per token


def test_max_cost_without_a_price_is_a_usage_error_before_any_request(fake_server):
    result = ask(fake_server, "--max-cost", "0.50", "--no-tools", "hi")
    assert result.exit_code == 2 and "needs the price of test-model" in result.stderr
    assert "prices:" in result.stderr and fake_server.requests == []


def test_max_cost_stops_before_a_request_whose_input_alone_crosses_it(fake_server, tmp_path):
    cfg = config(tmp_path, PRICED)
    result = ask(fake_server, "--config", cfg, "--max-cost", "0.01", "--no-tools",
                 "a long question " * 100)  # ~530 tokens by the estimate: about $0.53
    assert result.exit_code == 1
    assert fake_server.requests == []  # nothing was sent
    assert "would cross the limit" in result.stderr and "--max-cost limit $0.0100" in \
        result.stderr


def test_max_cost_stops_once_the_spend_crosses_it_and_runs_no_more_tools(fake_server, tmp_path):
    # input nearly free, each output token $0.01: every tool-call reply (1 output token at the
    # fake) costs about a cent, so the third reply crosses $0.025
    cfg = config(tmp_path, "prices:\n  test-model: {input: 1, output: 10000}\n")
    fake_server.script(tool_calls(("calculator", {"expression": "1+1"})),
                       tool_calls(("calculator", {"expression": "2+2"})),
                       tool_calls(("calculator", {"expression": "3+3"})), text("done"))
    result = run_bin(fake_server, "--jsonl", "--config", cfg, "--max-cost", "0.025", "-y",
                     "-t", "calculator", "add things")
    assert result.returncode == 1
    got = events(result.stdout.decode())
    done = got[-1]
    assert done["stop_reason"] == "max_cost" and done["exit_code"] == 1
    assert done["cost"]["usd"] > 0.025 and len(fake_server.requests) == 3
    results = [e for e in got if e["type"] == "tool_result"]
    assert [r["is_error"] for r in results] == [False, False, True]  # the third did not run
    assert "spending limit" in results[2]["result"]
    notice = [e["text"] for e in got if e["type"] == "notice"][-1]
    assert "crossed its spending limit" in notice and "$0.03" in notice


def test_reasoning_streams_as_events_unless_hidden(monkeypatch):
    import io

    from scripted import ScriptedProvider, reply

    from agentcli.agent.loop import Agent, drive
    from agentcli.messages import Message
    from agentcli.ui.events_jsonl import JsonlOutput

    class NoTools:
        def definitions(self):
            return []

    for show in (True, False):
        buf = io.StringIO()
        out = JsonlOutput(buf, show_reasoning=show)
        agent = Agent(ScriptedProvider([reply("yes", reasoning="let me think")]), NoTools())
        done = drive(agent.run(Message.user("q")), out.handle)
        out.done(done, None, 0)
        kinds = [json.loads(line)["type"] for line in buf.getvalue().splitlines()]
        assert ("reasoning" in kinds) is show
        assert json.loads(buf.getvalue().splitlines()[-1])["reasoning"] == "let me think"


def test_streamed_text_events_are_the_same_json_as_every_other_event():
    # --jsonl writes text and reasoning deltas without the generic encoder (one per chunk of a
    # long reply): the lines must be byte for byte what json_text makes, hostile text included
    from agentcli.ui.json_output import json_text, text_event

    for sample in ("", "plain words ", 'quote " and \\ backslash', "new\nline\ttab\r",
                 "\x1b]52;c;ZXZpbA==\x07 osc", "\x9b31m c1 \x85 nel", "bidi \u202e\u2066 x",
                 "line sep \u2028\u2029", "nul \x00 and \x7f del", "emoji 😀 and 中文",
                 "\ud800 lone surrogate"):
        for kind in ("text", "reasoning"):
            line = text_event(kind, sample)
            assert line == json_text({"type": kind, "text": sample}), repr(sample)
            assert json.loads(line) == {"type": kind, "text": sample}
            assert not any(c in line for c in "\x1b\x9b\x85\u202e\u2028\x07\x00")
