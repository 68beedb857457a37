"""Exit codes for scripts, one table (README "Exit codes", `agentcli --help`, `agentcli ask
--help`): 0 done; 1 runtime (the provider, the network, max_tokens, max_steps, a content filter,
a store that cannot be read); 2 usage or config; 130 interrupted. The installed binary is driven
through each class and the code checked, Ctrl-C included (SIGINT to a process, and ^C in a pty).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fake_server import error, stall, text, tool_calls
from typer.testing import CliRunner

from agentcli.cli.app import build_app

from test_cli import BIN, agentcli

CONFIG = "max_retries: 0\n"


def ask(server, tmp_path: Path, *args: str, config: str = CONFIG):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config)
    return agentcli("ask", "--config", str(cfg), "--base-url", server.openai_base_url,
                    "-m", "test-model", *args)


@pytest.mark.parametrize("name, replies, args, code, says", [
    ("done", [text("fine")], ["--no-tools", "hi"], 0, None),
    ("provider error", [error(500, "boom")], ["--no-tools", "hi"], 1, "HTTP 500"),
    ("max_tokens", [text("cut sh", finish="max_tokens")], ["--no-tools", "hi"], 1,
     "reply token limit"),
    ("max_steps", [tool_calls(("calculator", {"expression": "1+1"}))],
     ["-y", "-t", "calculator", "--max-steps", "1", "hi"], 1, "stopped after 1 model request"),
    ("content filter", [text("no", finish="content_filter")], ["--no-tools", "hi"], 1,
     "withheld"),
    ("usage: bad flag", [], ["--frobnicate", "hi"], 2, "no such option"),
    ("usage: nothing to ask", [], ["--no-tools"], 2, "nothing to ask"),
    ("usage: --max-steps 0", [], ["--max-steps", "0", "hi"], 2, "--max-steps must be"),
    ("usage: unknown tool", [], ["-t", "nosuch", "hi"], 2, "unknown tool"),
    ("usage: no session", [], ["--session", "abc123", "hi"], 2, "no saved conversation"),
])
def test_each_class_exits_with_its_code(fake_server, tmp_path, name, replies, args, code, says):
    fake_server.script(*replies)
    proc = ask(fake_server, tmp_path, *args)
    err = proc.stderr.decode()
    assert proc.returncode == code, (name, err)
    assert "Traceback" not in err and "internal error" not in err
    if says:
        assert says in err, (name, err)


def test_network_failure_is_1():
    proc = agentcli("ask", "--no-tools", "--base-url", "http://127.0.0.1:9/v1", "hi")
    assert proc.returncode == 1 and b"cannot connect" in proc.stderr


@pytest.mark.parametrize("config, args, says", [
    ("providers: [not, a, mapping\n", [], "invalid YAML"),
    ("max_steps: -3\n", [], "max_steps"),
    (CONFIG, ["-p", "nosuch"], "unknown provider"),
    (None, [], "cannot read config"),  # a config path that cannot even be looked at
])
def test_config_errors_are_2(fake_server, tmp_path, config, args, says):
    if config is None:
        cfg = tmp_path / ("a" * 300)  # a name too long for the filesystem
    else:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(config)
    proc = agentcli("ask", "--config", str(cfg), "--base-url", fake_server.openai_base_url,
                    "--no-tools", *args, "hi")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and says in err and "Traceback" not in err, err


def test_a_store_that_cannot_be_read_is_1(tmp_path):
    home = Path(os.environ["AGENTCLI_HOME"])
    (home / "sessions.db").write_bytes(b"not sqlite at all " * 200)
    proc = agentcli("sessions", "list")
    assert proc.returncode == 1 and b"damaged" in proc.stderr


def wait_for_request(server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not server.requests:
        assert time.monotonic() < deadline, "agentcli never sent its request"
        time.sleep(0.05)


def test_sigint_during_a_reply_is_130(fake_server, tmp_path):
    fake_server.script(stall("the start of a long ", 60))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG)
    proc = subprocess.Popen([BIN, "ask", "--config", str(cfg), "--no-tools", "--base-url",
                             fake_server.openai_base_url, "tell me a story"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    try:
        wait_for_request(fake_server)
        time.sleep(0.3)  # the first words are on their way
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert out.startswith(b"the start") and b"interrupted" in err and b"Traceback" not in err


def test_ctrl_c_in_a_terminal_is_130(fake_server, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    fake_server.script(stall("the start of a long ", 60))
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "TERM": "xterm-256color"}
    child = pexpect.spawn(BIN, ["--no-tools", "--base-url", fake_server.openai_base_url,
                                "tell me a story"], env=env, encoding="utf-8", timeout=30)
    try:
        child.expect("the start")
        child.send("\x03")
        child.expect(pexpect.EOF)
        child.close()
    finally:
        if child.isalive():
            child.terminate(force=True)
    assert child.exitstatus == 130 and "interrupted" in child.before


def test_ctrl_c_while_starting_is_130_without_a_traceback(monkeypatch, capsys):
    import agentcli.__main__ as entry
    import agentcli.cli.app as app

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(app, "main", interrupted)  # as if Ctrl-C hit while importing
    monkeypatch.setattr("sys.argv", ["agentcli", "tools", "list"])
    with pytest.raises(SystemExit) as info:
        entry.main()
    assert info.value.code == 130 and capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("args", [["--help"], ["ask", "--help"]])
def test_the_help_shows_the_one_table(args):
    shown = CliRunner().invoke(build_app(), args).stdout
    table = shown[shown.index("Exit codes (for scripts):"):]
    for row in ("0    done", "1    runtime: the provider or the network failed",
                "max_tokens", "max_steps", "2    usage or config", "130  interrupted (Ctrl-C)"):
        assert row in table, (row, table)
