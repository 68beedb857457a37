"""A bare prompt: `agentcli "what is 2+2"` is `agentcli ask "what is 2+2"`, as with llm and
shell-gpt. Commands keep priority, `agentcli ask tools` asks about "tools", ask's options may
come first, a mistyped command is refused rather than sent to a model, and in a terminal bare
`agentcli` (or options alone) still opens the chat."""

from __future__ import annotations

import json
import os

import pytest
from fake_server import text
from typer.testing import CliRunner

from agentcli.cli.app import build_app

from test_cli import agentcli, one_error_line


@pytest.fixture
def env(fake_server) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake_server.openai_base_url}


def run(args: list[str], env: dict[str, str], input: str | None = None):
    return CliRunner().invoke(build_app(), args, env=env, input=input)


def sent(server) -> str:
    return server.requests[-1]["body"]["messages"][-1]["content"]


def test_a_bare_prompt_is_asked(fake_server, env):
    fake_server.script(text("4"))
    result = run(["what is 2+2"], env)
    assert result.exit_code == 0, result.output
    assert result.stdout == "4\n" and sent(fake_server) == "what is 2+2"


def test_ask_options_may_come_before_and_after_the_prompt(fake_server, env):
    fake_server.script(text("a"), text("b"))
    first = run(["-m", "model-x", "--no-tools", "hi"], env)
    assert first.exit_code == 0 and first.stdout == "a\n", first.output
    assert fake_server.requests[-1]["body"]["model"] == "model-x"
    assert "tools" not in fake_server.requests[-1]["body"]
    second = run(["--json", "hello", "-m", "model-y"], env)
    assert second.exit_code == 0, second.output
    out = json.loads(second.stdout)
    assert (out["text"], out["model"]) == ("b", "model-y")


def test_commands_keep_priority_and_ask_takes_a_command_name_as_a_prompt(fake_server, env):
    listed = run(["tools", "list"], env)
    assert listed.exit_code == 0 and "calculator" in listed.stdout
    assert fake_server.requests == []  # a command, not a prompt
    fake_server.script(text("Tools are plugins."))
    asked = run(["ask", "tools"], env)
    assert asked.exit_code == 0 and asked.stdout == "Tools are plugins.\n", asked.output
    assert sent(fake_server) == "tools"


def test_a_piped_bare_prompt_gets_stdin_too(fake_server, env):
    fake_server.script(text("summary"))
    result = run(["summarise this"], env, input="line one\nline two\n")
    assert result.exit_code == 0, result.output
    assert sent(fake_server).startswith("summarise this") and "line two" in sent(fake_server)


@pytest.mark.parametrize("typo, command", [("sesions", "sessions"), ("tool", "tools"),
                                           ("chats", "chat"), ("confg", "config")])
def test_a_mistyped_command_is_refused_not_sent(fake_server, env, typo, command):
    result = run([typo], env)
    assert result.exit_code == 2 and fake_server.requests == []
    line = one_error_line(result.stderr)
    assert f"no such command '{typo}' (did you mean '{command}'?)" in line
    assert f"agentcli ask {typo}" in line  # how to send it anyway


def test_unquoted_words_say_to_quote_the_prompt(fake_server, env):
    result = run(["what", "is", "2+2"], env)
    assert result.exit_code == 2 and fake_server.requests == []
    line = one_error_line(result.stderr)
    assert "unexpected extra argument" in line and 'put the prompt in quotes' in line


def test_help_in_one_word_and_the_help_texts_say_so():
    result = run(["help"], {})
    assert result.exit_code == 0 and "Commands:" in result.stdout
    main = run(["--help"], {}).stdout
    assert 'agentcli "What is 37 * 91?"' in main and "agentcli ask tools" in main
    assert "COMMAND [ARGS]... | PROMPT" in main


def test_the_installed_binary_takes_a_bare_prompt(fake_server, env):
    fake_server.script(text("4"))
    proc = agentcli("-m", "m", "what is 2+2", env=env)
    assert proc.returncode == 0 and proc.stdout == b"4\n", proc.stderr
    assert sent(fake_server) == "what is 2+2"


# --- in a terminal --------------------------------------------------------------------------

pexpect = pytest.importorskip("pexpect")


def terminal(args: list[str], env: dict[str, str], tmp_path):
    from test_pty_chat import BIN, Terminal

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    full = {k: v for k, v in os.environ.items() if k not in ("AGENTCLI_CONFIG",)}
    full.update(env, AGENTCLI_HOME=str(home), TERM="xterm-256color")
    return Terminal([BIN, *args], full, tmp_path)


def finish(term, status: int) -> None:
    term.child.expect(pexpect.EOF, timeout=20)
    term.child.close()
    assert term.child.exitstatus == status, term.text()


@pytest.mark.pty
def test_in_a_terminal_a_bare_prompt_answers_and_exits(fake_server, env, tmp_path):
    fake_server.script(text("Four."))
    term = terminal(["--no-tools", "what is 2+2"], env, tmp_path)
    try:
        term.wait_for("Four.")
        finish(term, 0)
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)
    assert "›" not in term.text()  # no REPL prompt: it was `ask`
    assert sent(fake_server) == "what is 2+2"


@pytest.mark.pty
def test_in_a_terminal_options_alone_open_the_chat(fake_server, env, tmp_path):
    """`agentcli -c` continues the latest conversation in the REPL; bare `agentcli` opens it."""
    fake_server.script(text("First."), text("Second."))
    first = terminal(["what came first?"], env, tmp_path)
    first.wait_for("First.")
    finish(first, 0)
    term = terminal(["-c", "--no-tools"], env, tmp_path)
    try:
        at = term.wait_for("continuing session")
        term.wait_for("›", after=at)
        term.send("and then?\r")
        term.wait_for("Second.", after=at)
        term.send("/exit\r")
        finish(term, 0)
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)
    roles = [m["role"] for m in fake_server.requests[-1]["body"]["messages"]]
    assert roles == ["user", "assistant", "user"]  # the REPL continued the saved conversation
    bare = terminal([], env, tmp_path)
    try:
        bare.wait_for("›")
        bare.send("/exit\r")
        finish(bare, 0)
    finally:
        if bare.child.isalive():
            bare.child.terminate(force=True)
