"""The REPL's side of conversations: chat -c, /sessions, /resume, /new, /forget in the store,
/role, /tokens, the session id in the toolbar, and --no-save (no input history written either).
Driven through prompt-toolkit pipe input against the loopback fake server."""

from __future__ import annotations

import os
from pathlib import Path

from agentcli.sessions.store import open_store
from fake_server import text, tool_calls
from test_repl import chat, user_texts  # noqa: F401 - the fixture

__all__ = ["chat"]


def home() -> Path:
    return Path(os.environ["AGENTCLI_HOME"])


def toolbar(h) -> str:
    return "".join(t for _, t in h.repl.session._toolbar())


def test_chat_saves_as_it_goes_and_chat_c_continues(chat, fake_server):
    fake_server.script(text("Hello."), text("Again."))
    h = chat()
    assert "new session" in toolbar(h)
    h.run("hi\r")
    sid = h.repl.recorder.session_id
    assert sid and f"session {sid[:8]}" in toolbar(h)
    h2 = chat(continue_latest=True)
    h2.run("more\r")
    assert "continuing session" in h2.err and sid[:8] in h2.err
    assert user_texts(fake_server) == ["hi", "more"]
    store = open_store(home(), create=False)
    assert [s.message.text for s in store.messages(sid)] == ["hi", "Hello.", "more", "Again."]
    assert store.count() == 1


def test_new_starts_another_session_and_resume_goes_back(chat, fake_server):
    fake_server.script(text("one"), text("two"), text("three"))
    h = chat()
    h.run("first talk\r/new\rsecond talk\r")
    store = open_store(home(), create=False)
    assert store.count() == 2
    first = [i for i in store.sessions() if i.title == "first talk"][0]
    assert "stays saved" in h.err
    h2 = chat()
    h2.run(f"/sessions\r/resume {first.id[:6]}\rback again\r")
    assert "first talk" in h2.err and "second talk" in h2.err  # the /sessions table
    assert user_texts(fake_server) == ["first talk", "back again"]
    assert h2.repl.recorder.session_id == first.id
    h3 = chat()
    h3.run("/resume zzz\r/resume 0000000\r")
    assert "not a session id" in h3.err and "no session 0000000" in h3.err


def test_forget_leaves_the_store_and_a_resume_does_not_bring_it_back(chat, fake_server):
    fake_server.script(text("kept"), text("regretted"), text("fine"))
    h = chat()
    h.run("keep this\rregret this\r/forget\r")
    h2 = chat(continue_latest=True)
    h2.run("next\r")
    assert user_texts(fake_server) == ["keep this", "next"]


def test_role_and_tokens(chat, fake_server, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text('roles:\n  pirate: "Talk like a pirate."\n'
                   "prices:\n  test-model: {input: 1.0, output: 2.0}\n"
                   "context_windows:\n  test-model: 50000\n")
    fake_server.script(text("Arr."))
    h = chat(config=str(cfg))
    h.run("/role\r/role pirate\rhello\r/role nobody\r/tokens\r")
    assert "pirate" in h.err and "Talk like a pirate." in h.err
    assert fake_server.requests[-1]["body"]["messages"][0] == {"role": "system",
                                                               "content": "Talk like a pirate."}
    assert "unknown role 'nobody'" in h.err
    said = " ".join(h.err.split())  # the console wraps long lines
    assert "cost $0.000022" in said  # 20 in + 1 out at $1/$2 per million
    assert "last turn: 20 in + 1 out" in said
    assert "context window: 50,000 tokens" in h.err
    store = open_store(home(), create=False)
    assert store.latest().role == "pirate" and store.latest().system == "Talk like a pirate."
    from prompt_toolkit.document import Document

    from agentcli.ui.repl.prompt import ReplCompleter

    completions = ReplCompleter(h.repl).get_completions(Document("/role pi", 8), None)
    assert [c.text for c in completions] == ["pirate"]
    names = [c.text for c in ReplCompleter(h.repl).get_completions(Document("/re", 3), None)]
    assert "/resume" in names and "/retry" in names


def test_tokens_counts_the_whole_session_across_runs(chat, fake_server):
    fake_server.script(tool_calls(("calc", {})), text("done"), text("again"))
    h = chat(yes=True)
    h.run("go\r")
    h2 = chat(continue_latest=True)
    h2.run("/tokens\r")
    # both requests of the earlier run (10 in + 1 out, then 30 in + 1 out), from the store
    assert "tokens this session: 40 in + 2 out = 42" in h2.err


def test_no_save_writes_neither_the_session_nor_the_input_history(chat, fake_server):
    fake_server.script(text("private"))
    h = chat(save=False)
    h.run("secret\r")
    assert "private" in h.out and "not saving" in h.err and "not saved" in toolbar(h)
    assert list(home().iterdir()) == []


def test_tokens_says_how_much_the_last_request_left_out(chat, fake_server, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("context_windows:\n  test-model: 1000\n")
    fake_server.script(*[text("reply " + "r" * 600) for _ in range(3)])
    h = chat(config=str(cfg))
    h.run("first " + "a" * 600 + "\rsecond " + "b" * 600 + "\rthird\r/tokens\r")
    said = " ".join(h.err.split())
    assert said.count("no longer fits") == 1  # told once
    assert "the last request left out the 2 oldest messages" in said
    assert user_texts(fake_server)[-1] == "third" and len(user_texts(fake_server)) < 3


def test_a_wrong_session_id_is_said_before_any_mcp_server_starts(chat, tmp_path):
    import pytest

    from agentcli.errors import UsageError

    marker = tmp_path / "started"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mcp_servers:\n  m: {command: sh, args: [-c, 'touch %s; sleep 5']}\n" % marker)
    with pytest.raises(UsageError):
        chat(config=str(cfg), no_tools=False, session="abcd")
    assert not marker.exists()


def test_tokens_after_resume_speak_of_the_resumed_conversation(chat, fake_server):
    """/tokens used to report the last turn of the conversation just left."""
    fake_server.script(text("one two three four five six"), text("short"))
    h = chat()
    h.run("a long first talk\r/new\r")
    first = [i for i in open_store(home(), create=False).sessions()
             if i.title == "a long first talk"][0]
    h.run("second talk\r/tokens\r")
    before = " ".join(h.err.split())
    assert "last turn: 10 in + 1 out" in before  # the "short" reply
    h.run(f"/resume {first.id[:8]}\r/tokens\r")
    after = " ".join(h.err.split()).split("continuing session")[-1]
    assert "last turn" not in after and "last request" not in after  # nothing ran since
    assert "tokens this session: 10 in + 6 out" in after  # the resumed conversation's own


def test_a_failed_turn_keeps_its_prompt_on_record_and_retry_sends_it_again(chat, fake_server):
    from fake_server import error

    fake_server.script(error(400, "bad things"), text("ok now"))
    h = chat()
    h.run("please answer\r")
    assert "/retry" in h.err
    sid = h.repl.recorder.session_id
    store = open_store(home(), create=False)
    stored = store.messages(sid, include_dropped=True)
    assert [(s.message.text, s.dropped) for s in stored] == [("please answer", True)]
    assert store.turns(sid)[0]["stop_reason"] == "error" and "bad things" in \
        store.turns(sid)[0]["error"]
    h.run("/retry\r")
    assert user_texts(fake_server)[-1] == "please answer"
    assert [s.message.text for s in store.messages(sid)] == ["please answer", "ok now"]
