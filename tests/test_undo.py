"""/undo and its checkpoints: every approved, successful edit/write keeps what the file held in
the session store (deleted with its session); undo restores the newest N, never clobbers a later
change (it refuses and shows the conflict), removes a file a change created, and works from
`agentcli sessions undo ID [N]` as from the REPL's /undo [N]."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from agentcli.agent.conversation import Conversation
from agentcli.agent.loop import Agent
from agentcli.config import load_settings
from agentcli.errors import UsageError
from agentcli.messages import Message
from agentcli.sessions import checkpoints
from agentcli.sessions.checkpoints import TooFew, UndoRefused, pending, undo
from agentcli.sessions.recorder import SessionRecorder, load
from agentcli.sessions.store import open_store
from agentcli.toolrun.approval import Decision, PolicyApprover
from agentcli.toolrun.executor import Executor
from agentcli.toolrun.manifest import load_tools
from scripted import ScriptedProvider, reply


def home() -> Path:
    return Path(os.environ["AGENTCLI_HOME"])


@pytest.fixture(scope="module")
def tools():
    return load_tools(load_settings(), warn=lambda line: None)


@pytest.fixture
def work(tmp_path, monkeypatch):
    w = tmp_path / "work"
    w.mkdir()
    (w / "a.txt").write_text("one\ntwo\nthree\n")
    monkeypatch.chdir(w)
    return w


def session(tools, *replies, approver=None):
    """An agent whose conversation the recorder saves; returns (agent, recorder)."""
    recorder = SessionRecorder(home(), warn=pytest.fail)
    conversation = Conversation()
    recorder.attach(conversation)
    agent = Agent(ScriptedProvider(list(replies)),
                  Executor(tools, approver or PolicyApprover(yes=True)),
                  conversation=conversation)
    return agent, recorder


def turn(agent, text="go"):
    return list(agent.run(Message.user(text)))


EDITS = (reply(calls=[("edit", {"path": "a.txt", "old": "two", "new": "TWO"}),
                      ("edit", {"path": "a.txt", "old": "three", "new": "3"}),
                      ("write", {"path": "made/new.txt", "content": "hello\n"})]),
         reply("done"))


def test_each_change_is_kept_and_undone_newest_first(tools, work):
    agent, recorder = session(tools, *EDITS)
    turn(agent)
    store = recorder.store()
    kept = pending(store, recorder.session_id)
    assert [(c.tool, Path(c.path).name, c.before) for c in kept] == [
        ("write", "new.txt", None), ("edit", "a.txt", "one\nTWO\nthree\n"),
        ("edit", "a.txt", "one\ntwo\nthree\n")]
    assert kept[1].after == "one\nTWO\n3\n"
    plan = undo(store, recorder.session_id, 2)
    assert not (work / "made" / "new.txt").exists()  # the file the change created is removed
    assert (work / "a.txt").read_text() == "one\nTWO\nthree\n"
    assert [r.to for r in plan.restores] == [None, "one\nTWO\nthree\n"]
    undo(store, recorder.session_id, 1)
    assert (work / "a.txt").read_text() == "one\ntwo\nthree\n"
    assert pending(store, recorder.session_id) == []
    assert undo(store, recorder.session_id, 1).available == 0


def test_only_approved_and_successful_changes_are_kept(tools, work):
    class No:
        def confirm(self, *a, **k):
            return Decision(False)

    agent, recorder = session(
        tools, reply(calls=[("edit", {"path": "a.txt", "old": "two", "new": "2"}),
                            ("edit", {"path": "a.txt", "old": "nine", "new": "9"})]),
        reply("ok"), approver=PolicyApprover(prompter=No()))
    turn(agent)
    assert pending(recorder.store(), recorder.session_id) == []
    assert (work / "a.txt").read_text() == "one\ntwo\nthree\n"


def test_undo_never_clobbers_a_later_change(tools, work):
    agent, recorder = session(tools, *EDITS)
    turn(agent)
    (work / "a.txt").write_text("one\nTWO\n3\nthe user's line\n")
    store = recorder.store()
    with pytest.raises(UndoRefused) as e:
        undo(store, recorder.session_id, 3)  # the newest (new.txt) is fine, a.txt is not
    conflict = e.value.conflict
    assert conflict.wrote == "one\nTWO\n3\n" and conflict.now == "one\nTWO\n3\nthe user's line\n"
    assert "changed after agentcli changed it" in e.value.message
    assert "nothing was restored" in e.value.message and e.value.exit_code == 1
    assert (work / "made" / "new.txt").read_text() == "hello\n"  # nothing at all restored
    assert (work / "a.txt").read_text() == "one\nTWO\n3\nthe user's line\n"
    assert len(pending(store, recorder.session_id)) == 3
    (work / "a.txt").unlink()  # removed by the user: neither what the change wrote nor before
    with pytest.raises(UndoRefused) as e:
        undo(store, recorder.session_id, 2)
    assert "'a.txt' was removed after agentcli changed it" in e.value.message
    assert (work / "made" / "new.txt").read_text() == "hello\n"


def test_a_file_the_user_already_put_back_is_just_marked_undone(tools, work):
    agent, recorder = session(tools, *EDITS)
    turn(agent)
    (work / "made" / "new.txt").unlink()
    (work / "a.txt").write_text("one\ntwo\nthree\n")
    plan = undo(recorder.store(), recorder.session_id, 3)
    assert len(plan.undone) == 3 and all(r.now == r.to for r in plan.restores)
    assert (work / "a.txt").read_text() == "one\ntwo\nthree\n"


def test_counts_are_checked(tools, work):
    agent, recorder = session(tools, *EDITS)
    turn(agent)
    with pytest.raises(TooFew) as e:
        undo(recorder.store(), recorder.session_id, 4)
    assert e.value.message == "there are only 3 file changes to undo in this conversation"
    with pytest.raises(UsageError):
        undo(recorder.store(), recorder.session_id, 0)
    assert (work / "a.txt").read_text() == "one\nTWO\n3\n"


def test_dry_run_writes_nothing(tools, work):
    agent, recorder = session(tools, *EDITS)
    turn(agent)
    plan = undo(recorder.store(), recorder.session_id, 3, dry_run=True)
    assert len(plan.restores) == 2 and (work / "a.txt").read_text() == "one\nTWO\n3\n"
    assert len(pending(recorder.store(), recorder.session_id)) == 3


def test_checkpoints_are_deleted_with_their_session(tools, work):
    agent, recorder = session(tools, *EDITS)
    turn(agent)
    store = recorder.store()
    store.delete([recorder.session_id])
    assert store.conn.execute("SELECT COUNT(*) FROM file_changes").fetchone()[0] == 0


def test_an_older_store_without_the_table_has_nothing_to_undo(tools, work):
    store = open_store(home(), create=True)
    store.conn.execute("DROP TABLE file_changes")
    store.close()
    readonly = open_store(home(), create=False, readonly=True)
    assert pending(readonly, "0" * 32) == []
    assert undo(readonly, "0" * 32, 1, dry_run=True).available == 0
    reopened = open_store(home(), create=False)  # written again: the table is added in place
    assert reopened.conn.execute("SELECT COUNT(*) FROM file_changes").fetchone()[0] == 0


def test_a_resumed_conversation_still_knows_which_version_the_model_saw(tools, work):
    agent, recorder = session(tools, reply(calls=[("file_read", {"path": "a.txt"})]),
                              reply("read"))
    turn(agent)
    resumed = load(recorder.store(), None)
    conversation = Conversation.resumed(resumed)
    assert conversation.files_seen() == agent.conversation.files_seen() != {}
    (work / "a.txt").write_text("changed by the user\n")
    again = Agent(ScriptedProvider([reply(calls=[("write", {"path": "a.txt",
                                                            "content": "x\n"})]),
                                    reply("?")]),
                  Executor(tools, PolicyApprover(yes=True)), conversation=conversation)
    result = [e for e in turn(again) if e.kind == "tool_result_ready"][0].result
    assert result.is_error and "changed on disk since you last read" in result.content
    assert (work / "a.txt").read_text() == "changed by the user\n"


def test_a_store_that_fails_costs_the_checkpoint_one_warning(tools, work, monkeypatch):
    warned = []
    recorder = SessionRecorder(home(), warn=warned.append)
    conversation = Conversation()
    recorder.attach(conversation)
    agent = Agent(ScriptedProvider(list(EDITS)), Executor(tools, PolicyApprover(yes=True)),
                  conversation=conversation)

    def broken(*a, **k):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(checkpoints, "record", broken)
    done = turn(agent)[-1]
    assert done.stop_reason == "end_turn" and (work / "a.txt").read_text() == "one\nTWO\n3\n"
    assert len(warned) == 1 and "not saved" in warned[0] and "locked" in warned[0]


def test_a_folder_swapped_for_a_symbolic_link_is_not_written_through(tools, work, tmp_path):
    agent, recorder = session(tools, *EDITS)
    turn(agent)
    elsewhere = tmp_path / "elsewhere"
    work.rename(elsewhere)
    work.symlink_to(elsewhere)  # same path, now a link to another folder
    with pytest.raises(UndoRefused) as e:
        undo(recorder.store(), recorder.session_id, 2)
    assert "cannot be restored" in e.value.message
    assert (elsewhere / "a.txt").read_text() == "one\nTWO\n3\n"
