"""Conversations that last, end to end against the loopback fake server (the official SDKs run):
resume sends the history byte for byte, on either provider and across them; a kill -9 loses at
most the turn in flight; a store that cannot be written never costs the reply; --no-save writes
nothing; roles; --json; nothing heavy on the --version/--help path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli import runtime
from agentcli.agent.loop import drive
from agentcli.cli.app import build_app
from agentcli.config import load_settings
from agentcli.messages import Message
from agentcli.sessions.codec import CRASHED
from agentcli.sessions.store import open_store
from fake_server import stall, text, tool_calls
from test_ask import BIN
from test_tokens import release_encodings

Q1, Q2 = "what is 6*7?", "and doubled?"


def base(server, provider: str) -> str:
    return server.openai_base_url if provider == "openai" else server.anthropic_base_url


def ask(server, *args: str, provider: str = "openai", input: str | None = None):
    return CliRunner().invoke(build_app(), ["ask", "-p", provider, "--base-url",
                                            base(server, provider), "-m", "test-model", *args],
                              input=input)


def home() -> Path:
    return Path(os.environ["AGENTCLI_HOME"])


def script_two_turns(server) -> None:
    server.script(tool_calls(("calculator", {"expression": "6*7"})), text("It is 42."),
                  text("84."))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_resume_sends_the_history_byte_for_byte(fake_server, provider):
    # control: one process, one conversation of two turns
    script_two_turns(fake_server)
    opts = runtime.RunOptions(provider=provider, base_url=base(fake_server, provider),
                              model="test-model", system="Be exact.", save=False)
    settings = runtime.load(opts)
    profile = runtime.resolve(settings, opts)
    executor = runtime.make_executor(settings, opts, runtime.select_tools(settings, opts, print),
                                     None)
    agent = runtime.make_agent(settings, opts, runtime.make_provider(settings, profile), executor,
                               profile=profile)
    for q in (Q1, Q2):
        assert drive(agent.run(Message.user(q)), lambda e: None).stop_reason == "end_turn"
    control = [r["raw"] for r in fake_server.requests]
    fake_server.requests.clear()

    # the same conversation in two processes' worth of runs: ask, then ask -c
    script_two_turns(fake_server)
    first = ask(fake_server, "-s", "Be exact.", Q1, provider=provider)
    assert first.exit_code == 0 and first.stdout == "It is 42.\n", first.output
    second = ask(fake_server, "-c", Q2, provider=provider)
    assert second.exit_code == 0 and second.stdout == "84.\n", second.output
    assert "continuing session" in second.stderr
    resumed = [r["raw"] for r in fake_server.requests]
    assert len(resumed) == len(control) == 3
    assert resumed[2] == control[2]  # the resumed request: the same bytes, tool calls and all
    body = json.loads(resumed[2])
    assert "call_0" in resumed[2].decode() or "toolu_0" in resumed[2].decode()
    assert len(body["messages"]) == (6 if provider == "openai" else 5)


def test_openai_history_continues_on_anthropic(fake_server):
    script_two_turns(fake_server)
    assert ask(fake_server, Q1).exit_code == 0
    result = ask(fake_server, "-c", Q2, provider="anthropic")
    assert result.exit_code == 0, result.output
    assert "now anthropic" in result.stderr and "converted" in result.stderr
    body = fake_server.requests[-1]["body"]
    assert fake_server.requests[-1]["path"] == "/v1/messages"
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": Q1}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_0",
                                           "name": "calculator",
                                           "input": {"expression": "6*7"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_0",
                                      "content": "42", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "It is 42."}]},
        {"role": "user", "content": [{"type": "text", "text": Q2,
                                      "cache_control": {"type": "ephemeral"}}]},
    ]


def test_anthropic_history_continues_on_openai(fake_server):
    script_two_turns(fake_server)
    assert ask(fake_server, Q1, provider="anthropic").exit_code == 0
    result = ask(fake_server, "-c", Q2)
    assert result.exit_code == 0, result.output
    messages = fake_server.requests[-1]["body"]["messages"]
    assert messages == [
        {"role": "user", "content": Q1},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "toolu_0", "type": "function",
             "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_0", "content": "42"},
        {"role": "assistant", "content": "It is 42."},
        {"role": "user", "content": Q2},
    ]


def test_no_key_or_url_reaches_the_store(fake_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRETKEY123")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.openai_base_url)
    fake_server.script(text("fine"))
    result = CliRunner().invoke(build_app(), ["ask", "-p", "openai", "--no-tools", "hi"])
    assert result.exit_code == 0, result.output
    assert fake_server.requests[0]["headers"]["authorization"] == "Bearer sk-test-SECRETKEY123"
    raw = b"".join(p.read_bytes() for p in home().iterdir())
    assert b"fine" in raw  # the reply is there ...
    assert b"SECRETKEY123" not in raw and b"127.0.0.1" not in raw  # ... the key and URL not


def test_session_by_id_prefix_and_unknown_ids(fake_server):
    fake_server.script(text("one"), text("two"), text("three"))
    assert ask(fake_server, "--no-tools", "first topic").exit_code == 0
    assert ask(fake_server, "--no-tools", "second topic").exit_code == 0
    store = open_store(home(), create=False)
    first = [i for i in store.sessions() if i.title == "first topic"][0]
    result = ask(fake_server, "--no-tools", "--session", first.id[:6], "more")
    assert result.exit_code == 0, result.output
    users = [m["content"] for m in fake_server.requests[-1]["body"]["messages"]
             if m["role"] == "user"]
    assert users == ["first topic", "more"]
    missing = ask(fake_server, "--session", "deadbeef", "x")
    assert missing.exit_code == 2 and "no session deadbeef" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_continue_with_nothing_saved_is_a_usage_error(fake_server):
    result = ask(fake_server, "-c", "hello")
    assert result.exit_code == 2 and "no saved conversation" in result.stderr
    assert fake_server.requests == []


def test_no_save_writes_nothing_at_all(fake_server, tmp_path):
    fake_server.script(text("private"))
    result = ask(fake_server, "--no-tools", "--no-save", "secret question")
    assert result.exit_code == 0 and result.stdout == "private\n"
    assert list(home().iterdir()) == []
    (tmp_path / "c.yaml").write_text("save: false\n")
    fake_server.script(text("private too"))
    assert ask(fake_server, "--no-tools", "--config", str(tmp_path / "c.yaml"), "x").exit_code == 0
    assert list(home().iterdir()) == []


def test_json_names_the_session_and_the_cost_when_prices_are_known(fake_server, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("prices:\n  test-*: {input: 2.0, output: 10.0}\n")
    fake_server.script(text("four words right here"))
    result = ask(fake_server, "--no-tools", "--json", "--config", str(cfg), "hi")
    data = json.loads(result.stdout)
    store = open_store(home(), create=False)
    assert data["session"] == store.latest().id
    # the fake server reports 10 input tokens per message and one output token per word
    assert data["usage"]["input_tokens"] == 10 and data["usage"]["output_tokens"] == 4
    assert data["cost"] == {"usd": round((10 * 2.0 + 4 * 10.0) / 1e6, 6), "complete": True}
    fake_server.script(text("x"))
    plain = ask(fake_server, "--no-tools", "--json", "--no-save", "hi")
    assert json.loads(plain.stdout)["session"] is None and "cost" not in json.loads(plain.stdout)


def test_piped_input_is_stored_marked(fake_server):
    fake_server.script(text("summary"))
    assert ask(fake_server, "--no-tools", "summarise", input="line one\nline two\n").exit_code == 0
    store = open_store(home(), create=False)
    info = store.latest()
    user = store.messages(info.id)[0]
    assert user.message.text.startswith("summarise\n\n<stdin>\nline one")
    assert user.piped == len(user.message.text) - len("summarise")
    assert info.title == "summarise"
    export = CliRunner().invoke(build_app(), ["sessions", "export", info.id[:8]])
    assert "## You (with" in export.stdout and "characters of piped input)" in export.stdout


# --- a store that cannot be written: the reply is still shown ---------------------------------

def test_a_damaged_store_still_shows_the_reply_with_one_warning(fake_server):
    (home() / "sessions.db").write_bytes(b"garbage" * 500)
    fake_server.script(text("the answer"))
    result = ask(fake_server, "--no-tools", "q")
    assert result.exit_code == 0 and result.stdout == "the answer\n"
    warnings = [ln for ln in result.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "not saved" in warnings[0] and "damaged" in warnings[0]
    listed = CliRunner().invoke(build_app(), ["sessions", "list"])
    assert listed.exit_code == 1 and "damaged" in listed.stderr


def test_a_locked_store_still_shows_the_reply_with_one_warning(fake_server, monkeypatch):
    import sqlite3

    from agentcli.sessions import store as store_mod

    open_store(home(), create=True).close()
    holder = sqlite3.connect(home() / "sessions.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT", 0.2)
    fake_server.script(tool_calls(("calculator", {"expression": "1+1"})), text("two"))
    result = ask(fake_server, "q")
    holder.execute("ROLLBACK")
    assert result.exit_code == 0 and result.stdout == "two\n"
    warnings = [ln for ln in result.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "locked" in warnings[0]


# --- kill -9 ------------------------------------------------------------------------------------

SLEEPER = """name: sleeper
description: Sleeps.
entrypoint: sleeper:run
confirm: never
timeout: 60
parameters: {type: object, properties: {}}
"""


def spawn(server, *args: str) -> subprocess.Popen:
    return subprocess.Popen([BIN, "ask", "-p", "openai", "--base-url", server.openai_base_url,
                             "-m", "test-model", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "NO_COLOR": "1"}, start_new_session=True)


def wait_for(stream, needle: bytes, limit: float = 30) -> None:
    seen = b""
    deadline = time.monotonic() + limit  # a safety net only
    while needle not in seen:
        assert time.monotonic() < deadline, seen
        chunk = os.read(stream.fileno(), 4096)
        assert chunk, seen
        seen += chunk


def test_kill_9_mid_reply_keeps_the_prompt_and_loses_only_the_reply_in_flight(fake_server):
    fake_server.script(text("first answer"), stall("partial ", seconds=30))
    done = subprocess.run([BIN, "ask", "-p", "openai", "--base-url", fake_server.openai_base_url,
                           "-m", "test-model", "--no-tools", "first question"],
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0
    proc = spawn(fake_server, "--no-tools", "-c", "second question killed-turn")
    wait_for(proc.stdout, b"partial")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    store = open_store(home(), create=False)
    assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    info = store.latest()
    assert [s.message.text for s in store.messages(info.id)] == [
        "first question", "first answer", "second question killed-turn"]  # the prompt is kept
    store.close()
    found = CliRunner().invoke(build_app(), ["sessions", "search", "killed-turn"])
    assert found.exit_code == 0 and info.id[:8] in found.stdout
    shown = CliRunner().invoke(build_app(), ["sessions", "show", info.id[:8]])
    assert "second question killed-turn" in shown.stdout and "not answered" in shown.stdout
    fake_server.script(text("third answer"))
    again = ask(fake_server, "--no-tools", "-c", "third question")
    assert again.exit_code == 0 and again.stdout == "third answer\n"
    assert "never answered" in again.stderr and "killed-turn" in again.stderr
    users = [m["content"] for m in fake_server.requests[-1]["body"]["messages"]]
    assert users == ["first question", "first answer", "third question"]


def test_kill_9_while_a_tool_runs_resumes_with_a_cancelled_result(fake_server, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "sleeper.yaml").write_text(SLEEPER)
    (tools / "sleeper.py").write_text("import time\n\ndef run():\n    time.sleep(60)\n")
    fake_server.script(tool_calls(("sleeper", {})))
    proc = spawn(fake_server, "--tools-dir", str(tools), "-t", "sleeper", "nap please")
    wait_for(proc.stderr, b"tool sleeper")  # the call is recorded before it runs
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    fake_server.script(text("ok, no nap"))
    result = ask(fake_server, "--no-tools", "-c", "forget it")
    assert result.exit_code == 0, result.output
    messages = fake_server.requests[-1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assert messages[2] == {"role": "tool", "tool_call_id": "call_0",
                           "content": f"Error: {CRASHED}"}


# --- roles --------------------------------------------------------------------------------------

def test_roles_set_the_system_prompt_and_s_overrides(fake_server, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text('roles:\n  reviewer: "You review diffs."\n  poet: "Rhyme."\n')
    fake_server.script(text("a"), text("b"))
    assert ask(fake_server, "--no-tools", "--config", str(cfg), "--role", "reviewer",
               "x").exit_code == 0
    assert fake_server.requests[-1]["body"]["messages"][0] == {"role": "system",
                                                               "content": "You review diffs."}
    assert ask(fake_server, "--no-tools", "--config", str(cfg), "--role", "poet", "-s", "Mine.",
               "x").exit_code == 0
    assert fake_server.requests[-1]["body"]["messages"][0]["content"] == "Mine."
    bad = ask(fake_server, "--config", str(cfg), "--role", "nope", "x")
    assert bad.exit_code == 2 and "unknown role 'nope'" in bad.stderr and "poet" in bad.stderr
    listed = CliRunner().invoke(build_app(), ["roles", "list", "--config", str(cfg)])
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == ["poet      Rhyme.", "reviewer  You review diffs."]
    assert load_settings(str(cfg)).sessions.roles["poet"] == "Rhyme."


def test_startup_imports_no_sdk_tokenizer_or_sqlite():
    for args in (["--version"], ["--help"], ["ask", "--help"], ["sessions", "--help"]):
        code = ("import sys; sys.argv = ['agentcli', *%r]\n"
                "from agentcli.__main__ import main\n"
                "try:\n    main()\nexcept SystemExit:\n    pass\n"
                "import json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), "
                "file=sys.stderr)" % (args,))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60).stderr
        loaded = set(json.loads(out.strip().splitlines()[-1]))
        assert not loaded & {"openai", "anthropic", "tiktoken", "sqlite3", "_sqlite3"}, args


# --- the context window, end to end -------------------------------------------------------------

def test_piped_input_bigger_than_the_window_is_refused_before_any_request(fake_server, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("context_windows:\n  gpt-4o: 2000\n")
    words = " ".join(f"word{i}" for i in range(3000))
    result = CliRunner().invoke(build_app(), [
        "ask", "-p", "openai", "--base-url", fake_server.openai_base_url, "-m", "gpt-4o",
        "--no-tools", "--config", str(cfg), "summarise"], input=words)
    assert result.exit_code == 2
    assert fake_server.requests == []  # nothing was sent
    # an exact count (o200k_base, offline, + 4 framing tokens): no "about"; the limit is named
    from agentcli.inputs.stdin import compose_prompt
    from agentcli.agent.tokens import load_encoding

    n = len(load_encoding("o200k_base").encode(compose_prompt("summarise", words))) + 4
    release_encodings()
    assert f"the input is {n:,} tokens:" in result.stderr and "about" not in result.stderr
    assert "gpt-4o's context window allows (2,000 tokens" in result.stderr
    assert list(home().iterdir()) == []  # nothing to save either


def test_a_long_conversation_is_trimmed_on_resume_and_the_store_keeps_it_all(fake_server,
                                                                            tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("context_windows:\n  test-model: 1200\n")
    long = "x" * 900
    fake_server.script(*[text(f"answer {i} {long}") for i in range(6)])
    notices = []
    for i in range(6):
        result = ask(fake_server, "--no-tools", "--config", str(cfg), *(["-c"] if i else []),
                     f"question {i}")
        assert result.exit_code == 0, result.output
        notices += [line for line in result.stderr.splitlines() if "no longer fits" in line]
    # said once for the conversation, not once per `ask -c` (it was 4 times in 4 turns)
    assert len(notices) == 1 and "estimates" in notices[0]
    sent = [m["content"] for m in fake_server.requests[-1]["body"]["messages"]]
    assert sent[-1] == "question 5" and "question 0" not in sent
    assert json.loads(json.dumps(sent))[0].startswith("question")  # starts at a turn
    store = open_store(home(), create=False)
    assert len(store.messages(store.latest().id)) == 12  # everything stays saved


def test_resuming_a_long_conversation_reuses_its_stored_token_counts(tmp_path):
    """The exact counts made while a conversation was fitted are kept with it; resuming it
    gives them back, so the fit of the next request is decided without building the
    tokenizer (0.35 s for o200k), and it is the same fit counting everything gives."""
    from agentcli.agent.context import ContextFitter
    from agentcli.agent.conversation import Conversation
    from agentcli.agent.loop import Agent
    from agentcli.sessions.recorder import SessionRecorder
    from agentcli.agent.tokens import TokenCounter
    from scripted import ScriptedProvider, reply
    from test_context import CountingLoader

    class NoTools:
        def definitions(self):
            return []

    def fitter_and_loader():
        loader = CountingLoader()
        # 9 turns of 132 tokens fit the 1,250 left, whatever the size of a short new message
        return ContextFitter(TokenCounter("gpt-4o", loader=loader), 1550, 300), loader

    data = tmp_path / "data"
    writer = SessionRecorder(data, lambda line: pytest.fail(line))
    fitter, loader = fitter_and_loader()
    conversation = Conversation()
    writer.attach(conversation)
    writer.link(fitter)
    agent = Agent(ScriptedProvider([reply(f"answer {i} " + "word " * 60) for i in range(12)],
                                   model="gpt-4o"),
                  NoTools(), conversation=conversation, prepare=fitter)
    for i in range(12):
        drive(agent.run(Message.user(f"question {i} " + "more " * 60)), lambda event: None)
    writer.close()
    assert loader.loads == 1 and fitter.left_out > 0  # it was trimmed: counts were made
    store = open_store(data, create=False)
    stored = store.token_counts(store.latest().id, fitter.count_key)
    assert sum(item.startswith("m") for item in stored) >= 4 and any(
        item.startswith("f") for item in stored)
    store.close()

    reader = SessionRecorder(data, lambda line: pytest.fail(line))
    resumed = reader.load(None)
    again = Conversation.resumed(resumed)
    reader.attach(again, resumed)
    fitter2, loader2 = fitter_and_loader()
    reader.link(fitter2)
    provider = ScriptedProvider([reply("ok")])
    drive(Agent(provider, NoTools(), conversation=again, prepare=fitter2)
          .run(Message.user("one more?")), lambda event: None)
    assert loader2.loads == 0  # no tokenizer needed
    fitter3, _ = fitter_and_loader()
    expected, _ = fitter3([*resumed.history, Message.user("one more?")], [], None)
    assert provider.requests[0][0] == expected
    reader.close()


def test_deleting_a_session_deletes_its_token_counts(tmp_path):
    from agentcli.messages import Message
    from agentcli.sessions.store import Header, new_id

    store = open_store(tmp_path, create=True)
    sid = new_id()
    store.append(sid, Message.user("hi"), turn=None, header=Header("openai", "m", None, None))
    store.save_token_counts(sid, "o200k_base/1", {"m0": 5, "fabc": 9})
    assert store.token_counts(sid, "o200k_base/1") == {"m0": 5, "fabc": 9}
    assert store.token_counts(sid, "cl100k_base/1") == {}
    assert store.delete([sid]) == 1
    assert store.conn.execute("SELECT COUNT(*) FROM token_counts").fetchone()[0] == 0
    store.close()


def test_the_resume_notice_says_converted_only_when_the_provider_changes(fake_server):
    script_two_turns(fake_server)
    assert ask(fake_server, Q1).exit_code == 0
    other_model = CliRunner().invoke(build_app(), [
        "ask", "-p", "openai", "--base-url", fake_server.openai_base_url, "-m", "other-model",
        "-c", Q2])
    assert other_model.exit_code == 0, other_model.output
    assert "now openai · other-model" in other_model.stderr
    assert "converted" not in other_model.stderr  # same wire format: nothing was converted


def test_deleting_a_big_session_gives_its_space_back(tmp_path):
    from agentcli.sessions.store import Header, new_id

    store = open_store(tmp_path, create=True)
    sid = new_id()
    for i in range(200):
        store.append(sid, Message.user(f"{i} " + "x" * 20_000), turn=None,
                     header=Header("openai", "m", None, None) if i == 0 else None)
    path = tmp_path / "sessions.db"
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    full = path.stat().st_size
    assert store.delete([sid]) == 1
    store.close()
    assert path.stat().st_size < full / 4  # the freed pages left the file, not only zeroed


def test_an_empty_session_id_is_a_usage_error_not_the_latest(fake_server):
    script_two_turns(fake_server)
    assert ask(fake_server, Q1).exit_code == 0
    r = ask(fake_server, "--session", "", Q2)
    assert r.exit_code == 2 and "--session needs a session id" in r.output
