"""Where a model's reasoning is shown, for every provider (scripted ReasoningDeltas stand for
the OpenAI side, the fake's Anthropic thinking for the other): `ask` streams it to stderr,
never stdout (dim on a terminal, plain and sanitised in a pipe), --hide-reasoning and
`hide_reasoning: true` turn it off, --json carries it; the REPL shows a dim block that folds to
"thought for N s" when the answer starts and /reasoning shows it in full; `sessions show` and
the exports mark it as reasoning."""

from __future__ import annotations

import io
import json

import pyte
import pytest
from fake_anthropic import redacted_data
from fake_clients import KEY
from fake_server import text, tool_calls
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console
from scripted import ScriptedProvider, reply
from test_ask import run_bin
from test_repl import chat  # noqa: F401 - the fixture
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.messages import (AgentDone, Message, ReasoningDelta, ReasoningPart, TextDelta,
                               TextPart, ToolCall, ToolCallReady, Usage)
from agentcli.runtime import RunOptions
from agentcli.ui.ask_output import AskOutput
from agentcli.ui.reasoning import ReasoningBlock, last_reasoning
from agentcli.ui.repl.app import ChatRepl

__all__ = ["chat"]

THOUGHT = "Six times seven is forty-two; no tool needed."


def done(text: str = "", reasoning: str = "") -> AgentDone:
    return AgentDone("end_turn", Usage.reported(1, 1), 1, text, reasoning=reasoning)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- ask ----------------------------------------------------------------------------------------

def test_ask_shows_reasoning_on_stderr_only_and_sanitised(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: False, raising=False)
    out = AskOutput(json_mode=False)
    for event in (ReasoningDelta("Let me think "), ReasoningDelta("\x1b]52;c;aGk=\x07 hard."),
                  TextDelta("It is 42."), done("It is 42.")):
        out.handle(event)
    captured = capsys.readouterr()
    assert captured.out == "It is 42.\n"
    assert captured.err == "Let me think ␛]52;c;aGk=␇ hard.\n"  # inert, ended before the reply


def test_ask_dims_reasoning_on_a_terminal_and_hides_it_on_request(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    AskOutput(json_mode=False).handle(ReasoningDelta("hmm"))
    assert err.getvalue() == "\x1b[2mhmm\x1b[22m"
    hidden = Tty()
    monkeypatch.setattr("sys.stderr", hidden)
    quiet = AskOutput(json_mode=False, show_reasoning=False)
    quiet.handle(ReasoningDelta("hmm"))
    quiet.handle(done())
    assert hidden.getvalue() == ""


def test_reasoning_after_text_starts_on_its_own_line(capsys):
    out = AskOutput(json_mode=False)
    for event in (TextDelta("Checking."), ReasoningDelta("then more thought"),
                  ToolCallReady(ToolCall("c1", "calc", "{}")), done()):
        out.handle(event)
    captured = capsys.readouterr()
    assert captured.out == "Checking.\n"
    assert captured.err.startswith("then more thought\n→ tool calc")


def ask(server, *args: str):
    return CliRunner().invoke(build_app(), ["ask", "-p", "anthropic", "--base-url",
                                            server.anthropic_base_url, "-m", "claude-sonnet-4-6",
                                            *args])


@pytest.fixture
def anthropic_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


def test_hide_reasoning_flag_and_config_key(fake_server, tmp_path, anthropic_key):
    fake_server.script(text("42.", thinking=THOUGHT), text("42.", thinking=THOUGHT),
                       text("42.", thinking=THOUGHT))
    shown = ask(fake_server, "--no-tools", "6*7?")
    assert shown.exit_code == 0 and THOUGHT in shown.stderr and THOUGHT not in shown.stdout
    flag = ask(fake_server, "--no-tools", "--hide-reasoning", "6*7?")
    assert flag.exit_code == 0 and flag.stdout == "42.\n" and THOUGHT not in flag.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("hide_reasoning: true\n")
    key = ask(fake_server, "--no-tools", "--config", str(cfg), "6*7?")
    assert key.exit_code == 0 and key.stdout == "42.\n" and THOUGHT not in key.stderr


def test_json_carries_the_reasoning_text_and_tokens(fake_server, anthropic_key):
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"}), thinking="First."),
                       text("42.", thinking="Then."))
    result = ask(fake_server, "--json", "-y", "-t", "calculator", "--reasoning", "low", "6*7?")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reasoning"] == "First.\n\nThen." and data["text"] == "42."
    assert data["usage"]["reasoning_tokens"] == 2


def test_installed_binary_in_a_pipe_plain_reasoning_on_stderr(fake_server):
    fake_server.script(text("The answer.", thinking="secret \x1b[2J plan"))
    proc = run_bin(fake_server, "--no-tools", "q", provider="anthropic",
                   extra_env={"ANTHROPIC_API_KEY": KEY})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"The answer.\n"
    assert "secret ␛[2J plan\n" in proc.stderr.decode() and b"\x1b" not in proc.stderr


# --- the REPL -----------------------------------------------------------------------------------

def scripted(*steps):
    provider = ScriptedProvider(list(steps))
    return provider, (lambda settings, profile: provider)


def test_repl_folds_the_reasoning_and_slash_reasoning_shows_it(chat):
    provider, make = scripted(reply("It is 42.", reasoning=THOUGHT), reply("Sure."))
    h = chat(make_provider=make)
    assert h.run("6*7?\r/reasoning\rthanks\r/reasoning\r") == 0
    assert "It is 42." in h.out and THOUGHT not in h.out
    assert h.err.count("thought for") == 1  # folded to one line (not a terminal: only that)
    assert h.err.count(THOUGHT) == 2  # /reasoning twice: the last turn that had any


def test_repl_reasoning_hidden_and_none_yet(chat):
    provider, make = scripted(reply("Sure.", reasoning=THOUGHT))
    h = chat(make_provider=make, hide_reasoning=True)
    assert h.run("/reasoning\rhi\r") == 0
    assert "no reasoning in this conversation yet" in h.err
    assert "thought for" not in h.err and THOUGHT not in h.err


def test_repl_on_a_terminal_streams_a_dim_block_then_folds_it(fake_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("NO_COLOR", raising=False)
    long = " ".join(f"step{n}" for n in range(300))  # far more than the block shows
    provider, make = scripted(reply("Done.", reasoning=long))
    err = io.StringIO()
    with create_pipe_input() as pipe:
        repl = ChatRepl(RunOptions(provider="openai", base_url=fake_server.openai_base_url,
                                   no_tools=True, save=False),
                        input=pipe, output=DummyOutput(),
                        console=Console(file=io.StringIO(), width=60, force_terminal=False),
                        err=Console(file=err, width=60, height=20, force_terminal=True),
                        tools={}, make_provider=make)
        pipe.send_text("go\r\x04")
        assert repl.run() == 0
    raw = err.getvalue()
    assert "\x1b[2m" in raw and "step0" in raw  # it was shown, dim, as it came
    screen = pyte.Screen(60, 20)
    pyte.Stream(screen).feed(raw.replace("\n", "\r\n"))
    shown = "\n".join(line.rstrip() for line in screen.display)
    assert "thought for" in shown and "/reasoning shows it" in shown
    assert "step" not in shown  # folded: nothing of the block is left on the screen


def test_the_block_shows_only_its_latest_rows_and_times_the_thinking():
    now = [100.0]
    err = io.StringIO()
    console = Console(file=err, width=40, height=30, force_terminal=True)
    block = ReasoningBlock(console, rows=4, clock=lambda: now[0])
    screen = pyte.Screen(40, 30)
    stream = pyte.Stream(screen)
    for n in range(200):
        now[0] += 0.06  # every delta is drawn
        block.feed(f"word{n} ")
        stream.feed(err.getvalue().replace("\n", "\r\n"))
        err.seek(0)
        err.truncate()
        rows = [line for line in screen.display if line.strip()]
        assert len(rows) <= 5  # the header and at most 4 rows of text
    assert "word199" in "".join(screen.display) and "word0 " not in "".join(screen.display)
    assert block.fold() == "thought for 12 s"
    stream.feed(err.getvalue().replace("\n", "\r\n"))
    assert [line.strip() for line in screen.display if line.strip()] == [
        "thought for 12 s (/reasoning shows it)"]


def test_last_reasoning_is_the_latest_turn_that_had_any():
    part = ReasoningPart("anthropic", "m", "{}", "first thought")
    redacted = ReasoningPart("anthropic", "m", "{}", "")
    history = [Message.user("a"), Message("assistant", (part, TextPart("x"))),
               Message.user("b"), Message("assistant", (redacted, TextPart("y"))),
               Message.user("c"), Message("assistant", (TextPart("z"),))]
    assert last_reasoning(history) == ("", 1)
    assert last_reasoning(history[:3]) == ("first thought", 0)
    assert last_reasoning([]) == ("", 0)


def test_tokens_says_how_much_came_from_the_prompt_cache(chat, fake_server):
    fake_server.script(text("one"), text("two"))
    h = chat(provider="anthropic", base_url=fake_server.anthropic_base_url,
             model="claude-sonnet-4-6")
    assert h.run("hello there\ragain\r/tokens\r") == 0
    said = " ".join(h.err.split())  # the console wraps long lines
    assert "tokens this session: 9 in (3 cached, 6 written to cache) + 2 out" in said
    assert "33% of input read from the prompt cache" in said


# --- sessions show / export ----------------------------------------------------------------------

def run(*args: str):
    return CliRunner().invoke(build_app(), list(args))


def test_sessions_show_and_export_mark_the_reasoning(fake_server, anthropic_key, monkeypatch):
    fake_server.script(text("It is 42.", thinking=THOUGHT, redacted=1))
    assert ask(fake_server, "--no-tools", "6*7?").exit_code == 0
    sid = json.loads(run("sessions", "list", "--json").stdout)[0]["id"]
    shown = run("sessions", "show", sid).stdout
    assert f"**reasoning**\n\n> {THOUGHT}\n\nIt is 42." in shown
    assert shown.count("**reasoning**") == 1  # the redacted block has nothing to show
    assert redacted_data("claude-sonnet-4-6", 0) not in shown
    md = run("sessions", "export", sid).stdout
    assert md == shown
    data = json.loads(run("sessions", "export", sid, "--format", "json").stdout)
    answer = [m for m in data["messages"] if m["role"] == "assistant"][0]
    assert answer["reasoning"] == THOUGHT
    kinds = [p["kind"] for p in answer["parts"]]
    assert kinds == ["reasoning", "reasoning", "text"]  # the opaque blocks, in order
    assert json.loads(answer["parts"][0]["data"])["signature"]
    assert answer["usage"]["reasoning_tokens"] == len(THOUGHT.split()) + 1

    from agentcli.cli.sessions import print_transcript
    from agentcli.sessions.export import REASONING

    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    print_transcript([("markdown", "## Assistant"), (REASONING, THOUGHT), ("markdown", "42")])
    lines = out.getvalue().splitlines()
    assert lines[1] == "\x1b[1;2mreasoning\x1b[0m" and lines[2] == f"\x1b[2m{THOUGHT}\x1b[0m"
