"""The chat REPL driven through prompt-toolkit pipe input against the loopback fake server
(the real OpenAI/Anthropic adapters run): slash commands, history, multi-line input, the
approval flow, Ctrl-C semantics and error survival. Output is captured from rich consoles."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from agentcli.errors import EXIT_INTERRUPTED
from agentcli.toolrun.executor import Tool
from agentcli.messages import ToolDefinition
from agentcli.ui.repl.app import ChatRepl
from agentcli.runtime import RunOptions
from fake_server import drop, error, text, tool_calls
from scripted import ScriptedProvider, interrupt, reply

ESC_ENTER = "\x1b\r"
CTRL_C = "\x03"
CTRL_D = "\x04"
UP = "\x1b[A"


class Harness:
    def __init__(self, repl: ChatRepl, pipe: Any, out: io.StringIO, err: io.StringIO) -> None:
        self.repl, self.pipe, self._out, self._err = repl, pipe, out, err

    @property
    def out(self) -> str:
        return self._out.getvalue()

    @property
    def err(self) -> str:
        return self._err.getvalue()

    def run(self, keys: str) -> int:
        """Type ``keys`` (all at once: prompt-toolkit keeps the type-ahead) and run the REPL
        until it ends; a trailing Ctrl-D ends it if nothing else does."""
        self.pipe.send_text(keys + CTRL_D)
        return self.repl.run()


@pytest.fixture
def chat(fake_server, monkeypatch) -> Iterator[Any]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_server.anthropic_base_url)
    pipes = []

    def make(*, piped_text: str | None = None, tools: dict[str, Tool] | None = None,
             make_provider: Any = None, **opts: Any) -> Harness:
        options = {"provider": "openai", "base_url": fake_server.openai_base_url,
                   "model": "test-model", **opts}
        if tools is None:
            options.setdefault("no_tools", True)
        cm = create_pipe_input()
        pipe = cm.__enter__()
        pipes.append(cm)
        out, err = io.StringIO(), io.StringIO()
        repl = ChatRepl(RunOptions(**options), input=pipe, output=DummyOutput(),
                        console=Console(file=out, width=100, force_terminal=False),
                        err=Console(file=err, width=100, force_terminal=False),
                        piped_text=piped_text, tools=tools, make_provider=make_provider)
        return Harness(repl, pipe, out, err)

    yield make
    for cm in pipes:
        cm.__exit__(None, None, None)


def _tool(name: str, fn: Any, confirm: str = "ask", **params: Any) -> Tool:
    schema = {"type": "object", "properties": {k: {"type": v} for k, v in params.items()}}
    return Tool(ToolDefinition(name, f"the {name} tool", schema), lambda: fn, confirm=confirm,
                timeout=10)


def user_texts(server) -> list[str]:
    msgs = server.requests[-1]["body"]["messages"]
    return [m["content"] for m in msgs if m["role"] == "user"]


# --- a plain turn, history, multi-line ----------------------------------------------------------

def test_turn_streams_reply_and_keeps_history(chat, fake_server):
    fake_server.script(text("Hello there."), text("Second."))
    h = chat()
    assert h.run("hi\rand you?\r/exit\r") == 0
    assert "Hello there." in h.out and "Second." in h.out
    assert user_texts(fake_server) == ["hi", "and you?"]
    roles = [m.role for m in h.repl.agent.history]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_ctrl_d_quits_with_0(chat):
    assert chat().run("") == 0


def test_multiline_with_escape_enter_and_bracketed_paste(chat, fake_server):
    fake_server.script(text("a"), text("b"))
    h = chat()
    h.run(f"line one{ESC_ENTER}line two\r" "\x1b[200~pasted\nblock\x1b[201~\r")
    assert [m.text for m in h.repl.agent.history if m.role == "user"] == [
        "line one\nline two", "pasted\nblock"]


def test_history_file_persists_and_up_recalls(chat, fake_server):
    fake_server.script(text("one"), text("two"))
    h = chat()
    h.run("remember me\r")
    hist = h.repl.settings.history_file
    assert hist.exists() and "remember me" in hist.read_text()
    assert (hist.stat().st_mode & 0o777) == 0o600
    h2 = chat()
    h2.run(UP + "\r")
    assert user_texts(fake_server)[-1] == "remember me"


def test_piped_text_goes_with_the_first_message_only(chat, fake_server):
    fake_server.script(text("ok"), text("ok2"))
    h = chat(piped_text="NOTES FROM STDIN\n")
    h.run("summarise\rthanks\r")
    first = fake_server.requests[0]["body"]["messages"][-1]["content"]
    assert first.startswith("summarise") and "NOTES FROM STDIN" in first
    assert first.index("summarise") < first.index("NOTES FROM STDIN")
    assert user_texts(fake_server)[-1] == "thanks"
    assert "piped input" in h.err


# --- slash commands -----------------------------------------------------------------------------

def test_unknown_command_is_a_hint_not_a_message(chat, fake_server):
    h = chat()
    h.run("/modle gpt\r/exit\r")
    assert fake_server.requests == []
    assert "unknown command /modle" in h.err and "/model" in h.err


def test_help_lists_commands_and_keys(chat):
    h = chat()
    h.run("/help\r")
    for word in ("/model", "/provider", "/system", "/tools", "/retry", "/forget", "/undo",
                 "/tokens", "/save", "Esc+Enter", "Ctrl-R", "Ctrl-C"):
        assert word in h.err


def test_model_switch_keeps_history(chat, fake_server):
    fake_server.script(text("one"), text("two"))
    h = chat()
    h.run("first\r/model other-model\rsecond\r")
    body = fake_server.requests[-1]["body"]
    assert body["model"] == "other-model"
    assert [m["content"] for m in body["messages"] if m["role"] == "user"] == ["first", "second"]
    assert "other-model" in h.err


def test_provider_switch_keeps_history(chat, fake_server):
    fake_server.script(text("from openai"), text("from anthropic"))
    h = chat()
    h.run("first\r/provider anthropic\rsecond\r")
    assert fake_server.requests[-1]["path"].startswith("/v1/messages")
    msgs = fake_server.requests[-1]["body"]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert h.repl.profile.name == "anthropic"


def test_unknown_provider_keeps_the_old_one(chat, fake_server):
    fake_server.script(text("still here"))
    h = chat()
    h.run("/provider nosuch\rhello\r")
    assert "unknown provider 'nosuch'" in h.err
    assert "still here" in h.out and h.repl.profile.name == "openai"


def test_system_prompt_command(chat, fake_server):
    fake_server.script(text("ok"), text("ok"))
    h = chat()
    h.run("/system Be terse.\rhi\r/system -\rhi again\r")
    first = fake_server.requests[0]["body"]["messages"][0]
    assert first == {"role": "system", "content": "Be terse."}
    assert all(m["role"] != "system" for m in fake_server.requests[1]["body"]["messages"])


def test_retry_resends_last_message_and_drops_old_reply(chat, fake_server):
    fake_server.script(text("bad answer"), text("better answer"))
    h = chat()
    h.run("question\r/retry\r")
    assert [m.text for m in h.repl.agent.history] == ["question", "better answer"]
    assert user_texts(fake_server) == ["question"]


def test_forget_drops_last_exchange(chat, fake_server):
    fake_server.script(text("a1"), text("a2"), text("a3"))
    h = chat()
    h.run("q1\rq2\r/forget\rq3\r")
    assert user_texts(fake_server) == ["q1", "q3"]
    assert "dropped the last exchange" in h.err


def test_clear_tokens_and_save(chat, fake_server, tmp_path):
    fake_server.script(text("Some *markdown* reply."), text("fresh"))
    h = chat()
    target = tmp_path / "t.md"
    h.run(f"hello\r/tokens\r/save {target}\r/clear\ragain\r")
    saved = target.read_text()
    assert "## You" in saved and "hello" in saved and "Some *markdown* reply." in saved
    assert "tokens this session:" in h.err
    assert user_texts(fake_server)[-1] == "again"
    assert len(fake_server.requests[-1]["body"]["messages"]) == 1
    assert h.repl.agent.usage.total_tokens > 0


def test_tools_lists_approval_state(chat):
    tools = {"shout": _tool("shout", lambda text: text.upper(), text="string"),
             "quiet": _tool("quiet", lambda: "", confirm="never")}
    h = chat(tools=tools)
    h.run("/tools\r")
    assert "shout" in h.err and "asks" in h.err
    assert "quiet" in h.err and "without asking" in h.err


def test_tools_keeps_source_and_approval_visible_beside_a_long_description(chat):
    long = _tool("long", lambda: "", confirm="never")
    long.definition = ToolDefinition("long", "word " * 60, long.definition.parameters)
    h = chat(tools={"long": long})
    h.run("/tools\r")
    row = [ln for ln in h.err.splitlines() if ln.strip().startswith("long ")][0]
    assert "builtin" in row and "runs without asking" in row and row.rstrip().endswith("…")
    assert len(row.rstrip()) <= 100


def test_completion_of_commands_providers_and_tools(chat):
    from prompt_toolkit.document import Document

    from agentcli.ui.repl.prompt import ReplCompleter

    h = chat(tools={"shout": _tool("shout", lambda text: text, text="string")})
    comp = ReplCompleter(h.repl)

    def complete(s: str) -> list[str]:
        return [c.text for c in comp.get_completions(Document(s, len(s)), None)]

    assert "/model" in complete("/mo")
    assert complete("/provider an") == ["anthropic"]
    assert complete("/tools sh") == ["shout"]
    assert complete("hello") == []
    toolbar = "".join(t for _, t in h.repl.session._toolbar())
    assert "openai" in toolbar and "test-model" in toolbar and "tokens" in toolbar


# --- tool calls and approval --------------------------------------------------------------------

def _recording_tool(tmp_path: Path, name: str = "shout") -> tuple[Tool, Path]:
    """Tools run in a forked child: record calls in a file, not in a list."""
    log = tmp_path / f"{name}.log"

    def run(text: str) -> str:
        with open(log, "a", encoding="utf-8") as f:
            f.write(text + "\n")
        return text.upper()

    return _tool(name, run, text="string"), log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_tool_call_approved_once_with_y_and_enter(chat, fake_server, tmp_path):
    tool, log = _recording_tool(tmp_path)
    fake_server.script(tool_calls(("shout", {"text": "hey"})), text("done"))
    h = chat(tools={"shout": tool})
    h.run("go\ry\r")
    assert calls(log) == ["hey"]
    assert "tool call: shout" in h.err and '"text": "hey"' in h.err and "HEY" in h.err
    assert "done" in h.out


def test_always_is_remembered_for_the_session(chat, fake_server, tmp_path):
    tool, log = _recording_tool(tmp_path)
    fake_server.script(tool_calls(("shout", {"text": "1"})), text("ok"),
                       tool_calls(("shout", {"text": "2"})), text("ok"))
    h = chat(tools={"shout": tool})
    h.run("go\ra\r" "again\r")  # the second call must not ask: no answer for it
    assert calls(log) == ["1", "2"]
    h.run("/tools\r")
    assert "always (this session)" in h.err


def test_deny_with_reason_reaches_the_model(chat, fake_server):
    fake_server.script(tool_calls(("shout", {"text": "x"})), text("understood"))
    h = chat(tools={"shout": _tool("shout", lambda text: pytest.fail("must not run"),
                                   text="string")})
    h.run("go\rn\rnot now\r")
    tool_msg = fake_server.requests[-1]["body"]["messages"][-1]
    assert tool_msg["role"] == "tool" and "not now" in tool_msg["content"]
    assert "understood" in h.out


def test_ctrl_c_at_approval_prompt_denies(chat, fake_server):
    fake_server.script(tool_calls(("shout", {"text": "x"})), text("ok, not running it"))
    h = chat(tools={"shout": _tool("shout", lambda text: pytest.fail("must not run"),
                                   text="string")})
    assert h.run("go\r" + CTRL_C + "/tokens\r") == 0  # Ctrl-C = no, without asking why
    assert "denied by the user" in fake_server.requests[-1]["body"]["messages"][-1]["content"]
    assert "ok, not running it" in h.out
    assert "tokens this session" in h.err  # the next keys went to the prompt again


def test_ctrl_c_during_a_tool_cancels_it(chat, fake_server, tmp_path):
    marker = tmp_path / "started"

    def slow() -> str:
        marker.write_text("x")
        time.sleep(5)
        return "finished"

    fake_server.script(tool_calls(("slow", {})), text("after cancel"))
    h = chat(tools={"slow": _tool("slow", slow, confirm="never")})

    def interrupt() -> None:
        deadline = time.monotonic() + 5
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    h.run("go\r")
    results = [m for m in h.repl.agent.history if m.role == "tool"]
    assert results and "cancelled" in results[-1].tool_results[0].content
    assert "interrupted" in h.err


# --- Ctrl-C and errors ----------------------------------------------------------------------------

def test_ctrl_c_while_streaming_keeps_partial_and_continues(chat):
    provider = ScriptedProvider([interrupt(after="partial answer "), reply("whole answer")])
    h = chat(make_provider=lambda settings, profile: provider)
    assert h.run("tell me\ragain\r") == 0
    hist = h.repl.agent.history
    assert hist[1].role == "assistant" and hist[1].interrupted
    assert hist[1].text == "partial answer "
    assert "partial answer" in h.out and "interrupted" in h.err
    assert hist[-1].text == "whole answer"
    # one truth, shown once: the agent kept the partial reply, and the REPL says so once
    assert h.err.count("interrupted") == 1 and h.err.count("partial reply is kept") == 1
    assert [m.role for m in hist] == ["user", "assistant", "user", "assistant"]


def test_ctrl_c_landing_in_the_renderer_closes_the_turn(chat, fake_server, monkeypatch):
    from agentcli.ui.repl import app as repl_mod

    fake_server.script(text("one two three four"), text("next"))
    h = chat()
    real = repl_mod._TurnOutput._text
    count = {"n": 0}

    def flaky(self: Any, delta: str) -> None:
        count["n"] += 1
        if count["n"] == 3:
            raise KeyboardInterrupt
        real(self, delta)

    monkeypatch.setattr(repl_mod._TurnOutput, "_text", flaky)
    h.run("go\rnext\r")
    first = h.repl.agent.history[1]
    assert first.interrupted and first.text.startswith("one two")
    assert "one two" in h.out and "next" in h.out


def test_ctrl_c_at_prompt_hint_then_twice_exits_130(chat):
    h = chat()
    assert h.run(CTRL_C + CTRL_C) == EXIT_INTERRUPTED
    assert "Ctrl-D" in h.err


def test_ctrl_c_keeps_typed_text_in_history(chat, fake_server):
    h = chat()
    assert h.run("half typed" + CTRL_C) == 0
    assert "kept in history" in h.err
    assert "half typed" in h.repl.session._session.history.get_strings()
    assert "half typed" in h.repl.settings.history_file.read_text()
    assert fake_server.requests == []


@pytest.mark.parametrize("reply, words", [
    (error(401, "bad key"), ("error:", "OPENAI_API_KEY")),
    (error(404, "model test-model does not exist"), ("error:", "does not exist")),
])
def test_provider_errors_print_one_line_and_session_survives(chat, fake_server, reply, words):
    fake_server.script(reply, text("recovered"))
    h = chat()
    assert h.run("first\r/retry\r") == 0
    errors = [line for line in h.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(w in h.err for w in words)
    assert "recovered" in h.out
    assert [m.role for m in h.repl.agent.history] == ["user", "assistant"]


def test_connection_refused_survives(chat, fake_server):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    h = chat(base_url=f"http://127.0.0.1:{port}/v1")
    assert h.run("hello\r/tokens\r") == 0
    assert "error:" in h.err and "tokens this session" in h.err


def test_dropped_stream_keeps_partial_and_survives(chat, fake_server):
    fake_server.script(drop("half of it "), text("whole"))
    h = chat()
    h.run("q\rq2\r")
    hist = h.repl.agent.history
    assert hist[1].interrupted and "half of it" in hist[1].text
    assert "error:" in h.err and "whole" in h.out


def test_retry_after_an_error_resends_the_failed_message(chat, fake_server):
    fake_server.script(text("one"), error(401, "bad key"), text("two"))
    h = chat()
    h.run("first\rsecond\r/retry\r")
    assert user_texts(fake_server) == ["first", "second"]
    assert [m.text for m in h.repl.agent.history] == ["first", "one", "second", "two"]
    errors = [line for line in h.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1


# --- the SIGINT guard and the no-terminal case --------------------------------------------

def test_sigint_is_deferred_inside_critical_sections_and_dropped_in_clean_up():
    from agentcli.ui.repl.terminal import SigintGuard

    g = SigintGuard()
    with g.installed():
        with pytest.raises(KeyboardInterrupt):
            with g.critical():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                reached = True  # the write finished before the interrupt was raised
        assert reached
        with g.ignored():
            with g.critical():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_chat_without_any_terminal_is_a_usage_error(fake_server, tmp_path):
    import shutil
    import subprocess
    import sys

    exe = shutil.which("agentcli", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("agentcli is not installed")
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "AGENTCLI_HOME": str(tmp_path)}
    proc = subprocess.run([exe, "chat", "-p", "openai", "--base-url", fake_server.openai_base_url],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                          timeout=30, start_new_session=True)
    assert proc.returncode == 2
    assert "chat needs a terminal" in proc.stderr and "agentcli ask" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ctrl_c_before_any_reply_drops_the_message_and_retry_resends_it(chat):
    provider = ScriptedProvider([interrupt(),
                                 lambda messages, tools, system: reply(
                                     f"answer to {messages[-1].text}")])
    h = chat(make_provider=lambda settings, profile: provider)
    h.run("lost?\r/retry\r")
    assert [m.text for m in h.repl.agent.history] == ["lost?", "answer to lost?"]
    assert "interrupted before any reply: /retry sends the message again" in h.err


def test_ctrl_r_searches_the_history(chat, fake_server):
    fake_server.script(text("one"), text("two"), text("three"))
    chat().run("remember the milk\rsomething else\r")
    h = chat()
    h.run("\x12milk\r\r")
    assert user_texts(fake_server)[-1] == "remember the milk"


def test_saved_transcript_has_tool_calls_and_is_inert(chat, fake_server, tmp_path):
    tool, _ = _recording_tool(tmp_path)
    fake_server.script(tool_calls(("shout", {"text": "hi"})), text("done \x1b]52;c;QQ==\x07"))
    h = chat(tools={"shout": tool})
    target = tmp_path / "chat.md"
    h.run(f"go\ry\r/save {target}\r")
    saved = target.read_text()
    assert "**tool call** `shout`" in saved and '"text": "hi"' in saved
    assert "**tool result** `shout`" in saved and "HI" in saved
    assert "\x1b" not in saved and "␛]52" in saved


def test_an_unexpected_error_in_a_turn_keeps_the_session(chat, fake_server, monkeypatch):
    from agentcli.ui.repl import app as repl_mod

    monkeypatch.delenv("AGENTCLI_DEBUG", raising=False)
    fake_server.script(text("fine"))
    h = chat()
    real = repl_mod.ChatRepl.run_turn
    calls = {"n": 0}

    def boom(self: Any, text: str, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("kaput")
        real(self, text, **kw)

    monkeypatch.setattr(repl_mod.ChatRepl, "run_turn", boom)
    assert h.run("one\rtwo\r") == 0
    assert "internal error: ValueError: kaput" in h.err and "fine" in h.out
