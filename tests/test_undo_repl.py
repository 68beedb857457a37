"""The REPL with the built-in edit and write tools, through prompt-toolkit pipe input against
the loopback fake server: the approval shows the diff, a change is shown once made, /undo [N]
restores it with its diff (or refuses and shows the conflict), /forget is the old /undo."""

from __future__ import annotations

from agentcli.config import load_settings
from agentcli.toolrun.manifest import load_tools
from fake_server import text, tool_calls
from test_edit_approval import work  # noqa: F401 - the fixture
from test_repl import chat, user_texts  # noqa: F401 - the fixture

__all__ = ["chat", "work"]


def builtins():
    tools = load_tools(load_settings(), warn=lambda line: None)
    return {name: tools[name] for name in ("edit", "write", "file_read")}


def edit(old: str, new: str, path: str = "notes.txt"):
    return tool_calls(("edit", {"path": path, "old": old, "new": new}))


def test_approve_an_edit_seeing_its_diff_then_undo_it(chat, fake_server, work):
    fake_server.script(edit("beta", "BETA"), text("edited"))
    h = chat(tools=builtins())
    h.run("change it\ry\r/undo\r/undo\r")
    err = h.err
    # the diff is shown between the call and its result: at the approval question
    call, result = err.index("tool call: edit"), err.index("✓ edit")
    assert call < err.index("-beta") < err.index("+BETA") < result
    assert "✎ changed notes.txt (+1 -1)" in err and "/undo restores it" in err
    assert (work / "notes.txt").read_text() == "alpha\nbeta\ngamma\n"
    after = err.index("/undo restores it")
    assert err.index("-BETA", after) < err.index("+beta", after)  # the undo's own diff
    assert "↶ restored notes.txt" in err and "undid 1 file change" in err
    assert "no file change to undo in this conversation; /forget drops" in err


def test_a_change_approved_without_asking_shows_its_diff_in_the_panel(chat, fake_server, work):
    fake_server.script(tool_calls(("write", {"path": "new.md", "content": "# hi\n"})),
                       text("written"))
    h = chat(tools=builtins(), yes=True)
    h.run("write it\r")
    panel = h.err[h.err.index("✎ changed new.md (+1 -0)"):]
    assert "+++ b/new.md" in panel and "+# hi" in panel
    assert (work / "new.md").read_text() == "# hi\n"


def test_undo_n_and_too_many(chat, fake_server, work):
    fake_server.script(tool_calls(("edit", {"path": "notes.txt", "old": "alpha", "new": "A"}),
                                  ("edit", {"path": "notes.txt", "old": "gamma", "new": "G"})),
                       text("two edits"))
    h = chat(tools=builtins(), yes=True)
    h.run("edit\r/undo 3\r/undo x\r/undo 2\r")
    assert "there are only 2 file changes to undo" in h.err and "/undo 2" in h.err
    assert "/undo takes a number of changes" in h.err
    assert (work / "notes.txt").read_text() == "alpha\nbeta\ngamma\n"
    assert "undid 2 file changes" in h.err


def test_undo_refuses_to_clobber_a_later_change_and_shows_it(chat, fake_server, work):
    fake_server.script(edit("beta", "BETA"), text("edited"))
    h = chat(tools=builtins(), yes=True)
    h.run("edit\r")
    (work / "notes.txt").write_text("alpha\nBETA\ngamma\nmy own line\n")
    h.run("/undo\r")
    err = h.err[h.err.index("/undo restores it"):]
    assert "+my own line" in err  # the conflict: what agentcli wrote -> what is there now
    assert "not undone: 'notes.txt' changed after agentcli changed it" in err
    assert (work / "notes.txt").read_text() == "alpha\nBETA\ngamma\nmy own line\n"


def test_undo_without_a_saved_conversation_says_why_and_names_forget(chat, fake_server, work):
    fake_server.script(edit("beta", "BETA"), text("edited"))
    h = chat(tools=builtins(), yes=True, save=False)
    h.run("edit\r/undo\r")
    assert "nothing to undo: this conversation is not saved (--no-save)" in h.err
    assert "/forget" in h.err and (work / "notes.txt").read_text() == "alpha\nBETA\ngamma\n"


def test_undo_of_a_resumed_conversation(chat, fake_server, work):
    fake_server.script(edit("beta", "BETA"), text("edited"), text("hi again"))
    chat(tools=builtins(), yes=True).run("edit\r")
    h = chat(tools=builtins(), continue_latest=True)
    h.run("/undo\r")
    assert (work / "notes.txt").read_text() == "alpha\nbeta\ngamma\n"
    assert "undid 1 file change" in h.err
