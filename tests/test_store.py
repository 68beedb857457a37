"""The session store on its own: lossless round trips, the repair of a history a crash left open,
file modes, schema version, search, delete, two writers at once, and a store that is locked,
read-only, full or damaged (the recorder warns once and the turn goes on)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentcli.toolrun.approval import Verdict
from agentcli.errors import SessionStoreError, UsageError
from agentcli.agent.conversation import Conversation
from agentcli.messages import (AgentDone, Message, TextPart, ToolCall,
                               ToolResult, Usage)
from agentcli.sessions import store as store_mod
from agentcli.sessions.codec import CRASHED, repair
from agentcli.sessions.recorder import SessionRecorder
from agentcli.sessions.store import Header, new_id, open_store


@pytest.fixture
def data(tmp_path) -> Path:
    return tmp_path / "data"


def conversation() -> list[Message]:
    return [
        Message.user("what is in notes.txt? \ud800 and ␛ \x1b[2J"),
        Message("assistant", (TextPart("Let me read it."),
                              ToolCall("call_0", "file_read", '{"path": "notes.txt"}'),
                              ToolCall("call_1", "calculator", "not json"))),
        Message("tool", (ToolResult("call_0", "file_read", "milk, eggs"),
                         ToolResult("call_1", "calculator", "bad arguments", is_error=True))),
        Message("assistant", (TextPart("You need milk and eggs."),)),
        Message.user("thanks"),
        Message("assistant", (TextPart("You're wel"),), interrupted=True),
    ]


def conv(recorder: SessionRecorder) -> Conversation:
    """The conversation ``recorder`` writes (a new one attached on first use)."""
    if recorder.conversation is None:
        recorder.attach(Conversation())
    return recorder.conversation


def record(recorder: SessionRecorder, messages: list[Message], **ctx) -> None:
    """Append ``messages`` to the recorder's conversation, as the agent would."""
    ctx = {"provider": "openai", "model": "gpt-4.1-mini", "system": "be brief", **ctx}
    c = conv(recorder)
    for m in messages:
        if m.role == "user":
            c.system = ctx["system"]
            c.begin_turn(ctx["provider"], ctx["model"])
        usage = Usage.reported(100, 10) if m.role == "assistant" else None
        verdicts = (Verdict("allow", "config", "allowed by config"), None) if m.role == "tool" \
            else ()
        c.append(m, usage=usage, stop_reason="end_turn" if usage else None, verdicts=verdicts)


def test_a_conversation_round_trips_exactly(data):
    warnings: list[str] = []
    recorder = SessionRecorder(data, warnings.append)
    record(recorder, conversation())
    conv(recorder).end_turn(AgentDone("interrupted", Usage.reported(100, 10), 1))
    recorder.close()
    store = open_store(data, create=False, readonly=True)
    info = store.latest()
    assert info.id == recorder.session_id and info.turns == 2 and info.messages == 6
    assert info.usage == Usage(300, 30, 3, 0)
    assert info.system == "be brief" and info.provider == "openai"
    assert info.title.startswith("what is in notes.txt?")
    stored = store.messages(info.id)
    assert [s.message for s in stored] == conversation()  # surrogate, escapes, flags: all kept
    assert [s.turn for s in stored] == [1, 1, 1, 1, 2, 2]
    assert stored[2].verdicts and '"decision":"allow"' in stored[2].verdicts
    assert store.turns(info.id)[0]["stop_reason"] == "interrupted"
    assert warnings == []


def test_the_file_is_private_and_versioned(data):
    recorder = SessionRecorder(data, print)
    record(recorder, conversation()[:1])
    for name in ("sessions.db", "sessions.db-wal", "sessions.db-shm"):
        path = data / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    conn = sqlite3.connect(data / "sessions.db")
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    recorder.close()
    with pytest.raises(SessionStoreError, match="newer agentcli"):
        open_store(data, create=False)


def _make_version_1(path: Path) -> None:
    """Turn a store into what agentcli 0.2 wrote (schema 1: no cache/reasoning columns)."""
    conn = sqlite3.connect(path)
    for table, columns in (("sessions", ("cached_tokens", "cache_write_tokens",
                                         "reasoning_tokens", "state")),
                           ("messages", ("cached_tokens", "cache_write_tokens",
                                         "reasoning_tokens")),
                           ("turns", ("cached_tokens", "cache_write_tokens",
                                      "reasoning_tokens"))):
        for column in columns:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("UPDATE schema_version SET version = 1")
    conn.commit()
    conn.close()


def test_a_version_1_store_is_read_as_it_is_and_upgraded_when_written(data):
    recorder = SessionRecorder(data, print)
    record(recorder, conversation()[:4])
    recorder.close()
    _make_version_1(data / "sessions.db")

    old = open_store(data, create=False, readonly=True)  # a read-only mount: no migration
    info = old.latest()
    assert old.version == 1 and info.usage.input_tokens == 200
    assert info.usage.cached_input_tokens == 0 and info.state == {}
    assert [m.message for m in old.messages(info.id)] == conversation()[:4]
    assert sum(u.input_tokens for u in old.usage_by_model(info.id).values()) == 200
    old.close()

    store = open_store(data, create=False)  # writable: migrated in place, nothing lost
    assert store.version == 2
    assert store.latest().usage.input_tokens == 200
    store.append(info.id, Message.user("more"), turn=None,
                 usage=Usage.reported(10, 2, cached=8, cache_write=1, reasoning=1))
    store.set_state(info.id, {"api": "responses"})
    again = store.latest()
    assert again.usage.cached_input_tokens == 8 and again.usage.reasoning_tokens == 1
    assert again.state == {"api": "responses"}
    store.close()


def test_repair_closes_a_dangling_call_and_drops_an_orphan_result():
    call = ToolCall("c1", "file_read", "{}")
    history = [Message.user("go"), Message("assistant", (call,))]  # killed while the tool ran
    fixed, origin = repair(history)
    assert fixed[-1] == Message("tool", (ToolResult("c1", "file_read", CRASHED, True),))
    assert origin == [0, 1, None]
    orphan = [Message.user("a"), Message("tool", (ToolResult("zz", "x", "r"),)),
              Message("assistant", (TextPart("b"),))]
    assert repair(orphan)[0] == [orphan[0], orphan[2]]
    assert repair(conversation())[0] == conversation()  # a sound history is left alone
    partial = [Message.user("a"), Message("assistant", (call, ToolCall("c2", "calc", "{}"))),
               Message("tool", (ToolResult("c1", "file_read", "ok"),)), Message.user("b")]
    fixed, _ = repair(partial)
    assert [r.call_id for r in fixed[2].tool_results] == ["c1", "c2"]


def test_search_finds_words_in_messages_tool_calls_and_results(data):
    recorder = SessionRecorder(data, print)
    record(recorder, conversation())
    store = recorder.store()
    hits = store.search("eggs", 10)
    assert {h[2] for h in hits} == {"tool", "assistant"}
    assert "\x01eggs\x02" in hits[0][4]
    assert [h[2] for h in store.search("notes.txt file_read", 10)] == ["assistant"]
    for hostile in ('"', "AND OR NOT", "a*", "(x", "NEAR(", "-x", "col:x"):
        store.search(hostile, 10)  # never a syntax error
    with pytest.raises(UsageError):
        store.search("   ", 10)


def test_delete_removes_messages_and_their_search_entries(data):
    recorder = SessionRecorder(data, print)
    record(recorder, conversation())
    sid = recorder.session_id
    conv(recorder).clear()
    record(recorder, [Message.user("another eggs question")])
    store = recorder.store()
    assert store.delete([sid]) == 1
    assert store.count() == 1
    assert store.conn.execute("SELECT COUNT(*) FROM messages WHERE session_id = ?",
                              (sid,)).fetchone() == (0,)
    assert [h[0] for h in store.search("eggs", 10)] == [recorder.session_id]
    with pytest.raises(UsageError, match="no session"):
        store.find(sid)


def test_ids_resolve_by_unique_prefix(data):
    store = open_store(data, create=True)
    for sid in ("abc111" + "0" * 26, "abc222" + "0" * 26):
        store.append(sid, Message.user("hi"), turn=None, header=Header(None, None, None, None))
    assert store.find("abc1").id.startswith("abc111")
    with pytest.raises(UsageError, match="more than one"):
        store.find("abc")
    with pytest.raises(UsageError, match="not a session id"):
        store.find("zz'; DROP TABLE sessions;--")


def test_forget_marks_messages_dropped_but_keeps_them(data):
    recorder = SessionRecorder(data, print)
    record(recorder, conversation())
    conv(recorder).truncate(4)  # /forget of the second exchange
    store = recorder.store()
    assert [s.message for s in store.messages(recorder.session_id)] == conversation()[:4]
    everything = store.messages(recorder.session_id, include_dropped=True)
    assert [s.dropped for s in everything] == [False] * 4 + [True] * 2


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from agentcli.agent.conversation import Conversation
    from agentcli.messages import Message, TextPart, Usage
    from agentcli.sessions.recorder import SessionRecorder, load
    from agentcli.sessions.store import open_store
    data, tag, shared = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    own = SessionRecorder(data, lambda line: sys.exit("warning: " + line))
    own.attach(Conversation())
    other = SessionRecorder(data, lambda line: sys.exit("warning: " + line))
    resumed = load(open_store(data, create=False), shared)  # both continue one session
    other.attach(Conversation.resumed(resumed), resumed)
    for i in range(100):
        for rec in (own, other):
            rec.conversation.begin_turn("p", "m")
            rec.conversation.append(Message.user(f"{tag} {i}"))
            rec.conversation.append(Message("assistant", (TextPart(f"{tag} reply {i}"),)),
                                    usage=Usage.reported(1, 1), stop_reason="end_turn")
    print(own.session_id)
""")


def test_two_processes_writing_at_once_lose_nothing(data):
    store = open_store(data, create=True)
    shared = new_id()
    store.append(shared, Message.user("shared start"), turn=None,
                 header=Header("p", "m", None, None))
    store.close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(data), tag, shared],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in ("A", "B")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    store = open_store(data, create=False)
    own_ids = [o[0].strip() for o in outs]
    for sid, tag in zip(own_ids, "AB"):
        texts = [s.message.text for s in store.messages(sid)]
        assert texts == [t for i in range(100) for t in (f"{tag} {i}", f"{tag} reply {i}")]
    both = store.messages(shared)
    assert len(both) == 1 + 2 * 2 * 100  # every message of both writers, none lost
    assert [s.seq for s in both] == list(range(len(both)))
    assert store.find(shared).usage.requests == 200
    assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# --- a store that cannot be written: one warning, the turn goes on ----------------------------

def run_turn(recorder: SessionRecorder) -> None:
    record(recorder, conversation()[:4])
    conv(recorder).end_turn(AgentDone("end_turn", Usage.reported(200, 20), 2))


def test_a_locked_store_warns_once_and_the_turn_goes_on(data, monkeypatch):
    open_store(data, create=True).close()
    holder = sqlite3.connect(data / "sessions.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    warnings: list[str] = []
    recorder = SessionRecorder(data, warnings.append, timeout=0.2)
    run_turn(recorder)
    holder.execute("ROLLBACK")
    assert len(warnings) == 1 and "locked by another process" in warnings[0]
    assert "not saved" in warnings[0]
    assert recorder.seqs == [None] * 4


def test_a_read_only_store_warns_once(data):
    writer = SessionRecorder(data, print)
    record(writer, conversation()[:1])
    writer.close()
    warnings: list[str] = []
    recorder = SessionRecorder(data, warnings.append)
    recorder._store = open_store(data, create=False, readonly=True)  # as on a read-only mount
    run_turn(recorder)
    assert len(warnings) == 1 and "read-only" in warnings[0]


def test_a_full_disk_warns_once(data):
    recorder = SessionRecorder(data, print)
    record(recorder, conversation()[:1])
    recorder.store().conn.execute("PRAGMA max_page_count = 1")  # no page left to grow into
    warnings: list[str] = []
    recorder.warn = warnings.append
    record(recorder, [Message("assistant", (TextPart("x" * 100_000),))])
    assert len(warnings) == 1 and "full" in warnings[0]


def test_a_damaged_store_warns_once_and_reading_it_is_one_clear_error(data):
    data.mkdir()
    (data / "sessions.db").write_bytes(b"this is not sqlite at all" * 100)
    warnings: list[str] = []
    recorder = SessionRecorder(data, warnings.append)
    run_turn(recorder)
    assert len(warnings) == 1 and "damaged" in warnings[0] and "move it away" in warnings[0]
    with pytest.raises(SessionStoreError, match="damaged"):
        recorder.load(None)


def test_ctrl_c_during_a_write_is_held_until_it_is_committed(data, monkeypatch):
    recorder = SessionRecorder(data, print)
    real = store_mod.Store.append

    def append_then_ctrl_c(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        os.kill(os.getpid(), 2)  # SIGINT arrives right after the commit, before the return
        return out

    monkeypatch.setattr(store_mod.Store, "append", append_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        record(recorder, conversation()[:1])
    assert recorder.seqs == [0]  # recorded once, and known to be
    assert len(recorder.store().messages(recorder.session_id)) == 1
