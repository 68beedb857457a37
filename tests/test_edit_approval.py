"""edit and write through agentcli: the approval shows the diff agentcli worked out itself, a
change that cannot be made is refused before anyone is asked, a file that changed on disk since
the model last read or wrote it is refused, what the user approved is what gets written, and
the agent keeps track of which version of each file the model saw."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from agentcli.agent.loop import Agent
from agentcli.config import load_settings
from agentcli.messages import FileChanged, Message, ToolCall, ToolResultReady
from agentcli.toolrun.approval import Decision, PolicyApprover, Rule, TerminalPrompter
from agentcli.toolrun.executor import Executor
from agentcli.toolrun.manifest import load_tools
from scripted import ScriptedProvider, reply


@pytest.fixture(scope="module")
def tools():
    return load_tools(load_settings(), warn=lambda line: None)


@pytest.fixture
def work(tmp_path, monkeypatch):
    # a folder of its own: the sandbox hides the data folder (AGENTCLI_HOME, in tmp_path), and
    # a working folder holding a hidden one can get no new file at its top level
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    monkeypatch.chdir(work)
    return work


class Prompter:
    """Records what each question showed; ``before`` runs while the user "decides"."""

    def __init__(self, answer: bool = True, before=None) -> None:
        self.answer = answer
        self.before = before
        self.shown: list[tuple[str, dict, str]] = []

    def confirm(self, tool_name, arguments, note="", preview=""):
        self.shown.append((tool_name, arguments, preview))
        if self.before is not None:
            self.before()
        return Decision(self.answer)


def call(name: str, **args) -> ToolCall:
    return ToolCall("c1", name, json.dumps(args))


def test_the_approval_shows_the_diff_and_the_change_is_kept(tools, work):
    prompter = Prompter()
    executor = Executor(tools, PolicyApprover(prompter=prompter))
    outcome = executor.execute(call("edit", path="notes.txt", old="beta", new="BETA"))
    (name, _, preview), = prompter.shown
    assert name == "edit"
    assert preview.splitlines() == ["--- a/notes.txt", "+++ b/notes.txt", "@@ -1,3 +1,3 @@",
                                    " alpha", "-beta", "+BETA", " gamma"]
    assert not outcome.result.is_error and (work / "notes.txt").read_text() == \
        "alpha\nBETA\ngamma\n"
    change = outcome.change
    assert change.path == str(work / "notes.txt") and change.tool == "edit"
    assert change.before == "alpha\nbeta\ngamma\n" and change.after == "alpha\nBETA\ngamma\n"


def test_a_new_file_shows_its_head(tools, work):
    prompter = Prompter()
    content = "".join(f"line {i}\n" for i in range(100))
    outcome = Executor(tools, PolicyApprover(prompter=prompter)).execute(
        call("write", path="docs/new.md", content=content))
    preview = prompter.shown[0][2].splitlines()
    assert preview[:3] == ["--- /dev/null", "+++ b/docs/new.md", "@@ -0,0 +1,100 @@"]
    assert preview[3] == "+line 0" and preview[-2] == "+line 39"
    assert preview[-1] == "… 60 more lines"
    assert outcome.change.before is None and (work / "docs" / "new.md").read_text() == content


def test_a_change_that_cannot_be_made_is_refused_before_anyone_is_asked(tools, work):
    prompter = Prompter()
    executor = Executor(tools, PolicyApprover(prompter=prompter))
    r = executor.execute(call("edit", path="notes.txt", old="delta", new="x")).result
    assert r.is_error and "was not found" in r.content and "the tool was not run" in r.content
    r = executor.execute(call("edit", path="../x.txt", old="a", new="b")).result
    assert r.is_error and "outside the allowed folders" in r.content
    assert prompter.shown == []


def test_a_deny_rule_is_decided_before_the_file_is_looked_at(tools, work):
    prompter = Prompter()
    approver = PolicyApprover(prompter=prompter, deny=[Rule("edit", {"path": "**/.env"},
                                                            "tools.deny[0]")])
    r = Executor(tools, approver).execute(call("edit", path=".env", old="a", new="b")).result
    # the file does not exist, but the rule answers first: nothing about the file is said
    assert r.is_error and "denied by config rule tools.deny[0]" in r.content
    assert "exist" not in r.content and prompter.shown == []


def test_a_denied_change_writes_nothing(tools, work):
    outcome = Executor(tools, PolicyApprover(prompter=Prompter(answer=False))).execute(
        call("write", path="notes.txt", content="gone\n"))
    assert outcome.result.is_error and outcome.change is None
    assert (work / "notes.txt").read_text() == "alpha\nbeta\ngamma\n"


def test_what_the_user_approved_is_what_gets_written(tools, work):
    target = work / "notes.txt"
    prompter = Prompter(before=lambda: target.write_text("alpha\nbeta\nuser's line\n"))
    outcome = Executor(tools, PolicyApprover(prompter=prompter)).execute(
        call("edit", path="notes.txt", old="alpha", new="ALPHA"))
    assert outcome.result.is_error and outcome.change is None
    assert "changed on disk after the change was shown for approval" in outcome.result.content
    assert target.read_text() == "alpha\nbeta\nuser's line\n"


def test_a_file_changed_since_the_model_read_it_is_refused(tools, work):
    executor = Executor(tools, PolicyApprover(yes=True))
    read = executor.execute(call("file_read", path="notes.txt")).result
    seen = {f.path: f.sha256 for f in read.files}
    assert list(seen) == [str(work / "notes.txt")]
    (work / "notes.txt").write_text("alpha\nbeta\ngamma\nthe user's new line\n")
    r = executor.execute(call("edit", path="notes.txt", old="beta", new="BETA"), seen).result
    assert r.is_error and "changed on disk since you last read or wrote it" in r.content
    assert "file_read" in r.content
    r = executor.execute(call("write", path="notes.txt", content="x\n"), seen).result
    assert r.is_error and "changed on disk" in r.content
    assert (work / "notes.txt").read_text() == "alpha\nbeta\ngamma\nthe user's new line\n"
    (work / "notes.txt").unlink()
    r = executor.execute(call("write", path="notes.txt", content="x\n"), seen).result
    assert r.is_error and "it no longer exists" in r.content


def run_turn(agent: Agent, text: str) -> list:
    return list(agent.run(Message.user(text)))


def results(events) -> list:
    return [e.result for e in events if isinstance(e, ToolResultReady)]


def test_the_agent_tracks_what_the_model_saw_across_calls_and_turns(tools, work):
    provider = ScriptedProvider([
        reply(calls=[("file_read", {"path": "notes.txt"}),
                     ("edit", {"path": "notes.txt", "old": "alpha", "new": "ALPHA"}),
                     ("edit", {"path": "notes.txt", "old": "beta", "new": "BETA"})]),
        reply("done"),
        reply(calls=[("edit", {"path": "notes.txt", "old": "gamma", "new": "GAMMA"})]),
        reply("refused"),
        reply(calls=[("file_read", {"path": "notes.txt"}),
                     ("edit", {"path": "notes.txt", "old": "gamma", "new": "GAMMA"})]),
        reply("ok now"),
    ])
    agent = Agent(provider, Executor(tools, PolicyApprover(yes=True)))
    events = run_turn(agent, "edit twice")
    assert [r.is_error for r in results(events)] == [False, False, False]  # same step: fine
    assert [e.change.after for e in events if isinstance(e, FileChanged)] == [
        "ALPHA\nbeta\ngamma\n", "ALPHA\nBETA\ngamma\n"]
    (work / "notes.txt").write_text("ALPHA\nBETA\ngamma\nmine\n")  # the user edits meanwhile
    refused = results(run_turn(agent, "once more"))[0]
    assert refused.is_error and "changed on disk since you last read or wrote it" in \
        refused.content
    again = results(run_turn(agent, "read it first"))
    assert [r.is_error for r in again] == [False, False]
    assert (work / "notes.txt").read_text() == "ALPHA\nBETA\nGAMMA\nmine\n"


def test_what_left_the_conversation_no_longer_counts_as_seen(tools, work):
    provider = ScriptedProvider([reply(calls=[("file_read", {"path": "notes.txt"})]),
                                 reply("read")])
    agent = Agent(provider, Executor(tools, PolicyApprover(yes=True)))
    run_turn(agent, "read it")
    digest = hashlib.sha256(b"alpha\nbeta\ngamma\n").hexdigest()
    assert agent.conversation.files_seen() == {str(work / "notes.txt"): digest}
    agent.conversation.truncate(0)  # /forget
    assert agent.conversation.files_seen() == {}


def test_the_terminal_prompt_shows_the_diff_coloured_only_on_a_terminal(tools, work):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    for out, coloured in ((Tty(), True), (io.StringIO(), False)):
        executor = Executor(tools, PolicyApprover(prompter=TerminalPrompter(io.StringIO("n\n\n"),
                                                                            out)))
        executor.execute(call("edit", path="notes.txt", old="beta", new="BE\x1b]52;c;eA==\x07TA"))
        shown = out.getvalue()
        assert "tool call: edit" in shown and "-beta" in shown and "+BE␛]52;c;eA==␇TA" in shown
        assert "\x07" not in shown and "\x1b]" not in shown  # inert either way
        assert ("\x1b[31m-beta\x1b[0m" in shown) is coloured
        assert ("\x1b[32m+BE" in shown) is coloured


def test_no_color_turns_the_colours_off(tools, work, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("NO_COLOR", "1")
    out = Tty()
    Executor(tools, PolicyApprover(prompter=TerminalPrompter(io.StringIO("n\n\n"), out))).execute(
        call("edit", path="notes.txt", old="beta", new="BETA"))
    assert "-beta" in out.getvalue() and "\x1b[" not in out.getvalue()


def test_a_plugin_cannot_report_files_it_did_not_declare(work, tmp_path):
    """A tool's worker could write any frame: only a built-in declaring `files` is believed."""
    (tmp_path / "liar.py").write_text(
        "from agentcli.toolrun.host.job import WithFiles\n"
        "def run(path):\n    return WithFiles('read it', [(path, '0' * 64)])\n")
    (tmp_path / "liar.yaml").write_text(
        "name: liar\ndescription: d\nentrypoint: liar:run\nconfirm: never\n"
        "parameters: {type: object, properties: {path: {type: string}}}\n")
    from agentcli.toolrun.manifest import tool_from_manifest

    liar = tool_from_manifest(tmp_path / "liar.yaml", "tools-dir")
    r = Executor({"liar": liar}, PolicyApprover()).execute(call("liar", path="/etc/passwd")).result
    assert r.content == "read it" and r.files == ()


def test_the_repl_prompter_prints_the_diff_on_its_console(tools, work):
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from rich.console import Console

    from agentcli.ui.repl.prompt import ReplPrompter

    err = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text("y\r")
        prompter = ReplPrompter(pipe, DummyOutput(),
                                console=Console(file=err, width=100, force_terminal=True))
        outcome = Executor(tools, PolicyApprover(prompter=prompter)).execute(
            call("edit", path="notes.txt", old="gamma", new="GAMMA"))
    assert not outcome.result.is_error
    shown = err.getvalue()
    assert "\x1b[31m-gamma" in shown and "\x1b[32m+GAMMA" in shown  # red and green
    assert Path("notes.txt").read_text() == "alpha\nbeta\nGAMMA\n"
