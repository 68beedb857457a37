"""The installed `agentcli chat` in a pseudo-terminal against the loopback fake server: a chat
turn, a tool call approved with y and Enter, a streamed reply interrupted with Ctrl-C, then
/exit. The terminal is emulated with pyte (which also answers prompt-toolkit's cursor-position
requests), and the assertions read the screen text as a user would see it."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from fake_server import stall, text, tool_calls

pexpect = pytest.importorskip("pexpect")
try:
    import pyte
except ImportError:  # pragma: no cover - then the raw output, escape sequences removed
    pyte = None

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
COLS, ROWS = 100, 40

pytestmark = [pytest.mark.pty,
              pytest.mark.skipif(BIN is None, reason="agentcli is not installed"),
              pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")]


class Terminal:
    """A child process on a pty, its output fed into an emulated screen with scrollback."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.child = pexpect.spawn(args[0], args[1:], env=env, cwd=str(cwd),
                                   dimensions=(ROWS, COLS), encoding="utf-8",
                                   codec_errors="replace")
        self.raw = ""
        if pyte is not None:
            self.screen = pyte.HistoryScreen(COLS, ROWS, history=5000)
            self.screen.write_process_input = self.child.send  # answer cursor-position requests
            self.stream = pyte.Stream(self.screen)

    def pump(self, seconds: float = 0.05) -> None:
        try:
            data = self.child.read_nonblocking(65536, timeout=seconds)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            return
        if pyte is not None:
            self.stream.feed(data)
        else:
            if "\x1b[6n" in data:
                self.child.send("\x1b[1;1R")
            self.raw += data

    def text(self) -> str:
        if pyte is None:
            return ANSI.sub("", self.raw).replace("\r", "")
        hist = ["".join(line[x].data for x in range(COLS)).rstrip()
                for line in self.screen.history.top]
        return "\n".join(hist + [line.rstrip() for line in self.screen.display])

    def wait_for(self, needle: str, timeout: float = 15, after: int = 0) -> int:
        """Wait until ``needle`` is on screen (at or after character ``after`` of the text)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            pos = self.text().find(needle, after)
            if pos >= 0:
                return pos
            if not self.child.isalive():
                self.pump()
                pos = self.text().find(needle, after)
                if pos >= 0:
                    return pos
                break
        raise AssertionError(f"{needle!r} did not appear on screen:\n{self.text()}")

    def send(self, keys: str) -> None:
        self.child.send(keys)


def test_chat_in_a_pty_turn_tool_approval_ctrl_c_exit(fake_server, tmp_path):
    (tmp_path / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    fake_server.script(
        text("Hello from the **fake** model."),
        tool_calls(("file_read", {"path": "notes.txt"})),
        text("The notes say alpha, beta, gamma."),
        stall("This reply will be cut short ", seconds=30),
        text("Still alive after Ctrl-C."),
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "AGENTCLI_CONFIG")}
    env.update(AGENTCLI_HOME=str(home), OPENAI_API_KEY="sk-test", TERM="xterm-256color",
               COLUMNS=str(COLS), LINES=str(ROWS))
    term = Terminal([BIN, "chat", "-p", "openai", "--base-url", fake_server.openai_base_url,
                     "-m", "test-model"], env, tmp_path)
    try:
        term.wait_for("›")
        term.send("hello there\r")
        at = term.wait_for("Hello from the fake model.")

        term.send("read my notes\r")
        at = term.wait_for("tool call: file_read", after=at)
        term.wait_for('"path": "notes.txt"', after=at)
        term.wait_for("[y] yes once", after=at)
        term.send("y\r")
        at = term.wait_for("alpha", after=at)
        at = term.wait_for("The notes say alpha, beta, gamma.", after=at)

        term.send("tell me a long story\r")
        at = term.wait_for("This reply will be cut short", after=at)
        time.sleep(0.3)
        term.send("\x03")  # Ctrl-C while the reply streams
        at = term.wait_for("interrupted", after=at)
        term.wait_for("›", after=at)

        term.send("are you there?\r")
        at = term.wait_for("Still alive after Ctrl-C.", after=at)

        term.send("/exit\r")
        term.child.expect(pexpect.EOF, timeout=10)
        term.child.close()
        assert term.child.exitstatus == 0, term.text()
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)

    screen = term.text()
    assert "\x1b" not in screen
    # what the model saw: the partial reply kept (interrupted), the tool result, the history
    last = fake_server.requests[-1]["body"]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user", "assistant", "tool",
                                          "assistant", "user", "assistant", "user"]
    assert last[7]["content"].startswith("This reply will be cut short")
    assert "alpha" in last[4]["content"]
    assert (home / "history").exists()


def test_piped_text_then_keys_from_the_terminal(fake_server, tmp_path):
    (tmp_path / "notes.md").write_text("PIPED NOTES LINE\n")
    fake_server.script(text("Summary done."), text("Second answer."))
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL",)}
    env.update(AGENTCLI_HOME=str(home), OPENAI_API_KEY="sk-test", TERM="xterm-256color")
    cmd = (f"cat notes.md | {BIN} chat -p openai --base-url {fake_server.openai_base_url} "
           "-m test-model --no-tools")
    term = Terminal(["/bin/sh", "-c", cmd], env, tmp_path)
    try:
        at = term.wait_for("piped input (1 line,")
        term.wait_for("›", after=at)
        term.send("summarise\r")
        at = term.wait_for("Summary done.", after=at)
        term.send("and now?\r")
        term.wait_for("Second answer.", after=at)
        term.send("\x04")  # Ctrl-D
        term.child.expect(pexpect.EOF, timeout=10)
        term.child.close()
        assert term.child.exitstatus == 0, term.text()
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)
    first = fake_server.requests[0]["body"]["messages"][-1]["content"]
    assert first.startswith("summarise") and "PIPED NOTES LINE" in first
    assert fake_server.requests[1]["body"]["messages"][-1]["content"] == "and now?"


def _bare_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
                        "ANTHROPIC_BASE_URL", "AGENTCLI_CONFIG", "AGENTCLI_PROVIDER")}
    env.update(AGENTCLI_HOME=str(home), TERM="xterm-256color", **extra)
    return env


def _exit_cleanly(term: Terminal) -> None:
    term.send("/exit\r")
    term.child.expect(pexpect.EOF, timeout=20)
    term.child.close()
    assert term.child.exitstatus == 0, term.text()


def test_bare_agentcli_opens_the_chat_with_a_provider(fake_server, tmp_path):
    """`agentcli` with no command, the README's "or just `agentcli`": the chat REPL, with the
    provider taken from the environment exactly as `agentcli chat` would."""
    fake_server.script(text("Bare command works."))
    home = tmp_path / "home"
    home.mkdir()
    term = Terminal([BIN], _bare_env(home, OPENAI_API_KEY="sk-test",
                                     OPENAI_BASE_URL=fake_server.openai_base_url), tmp_path)
    try:
        at = term.wait_for("agentcli chat · openai")
        term.wait_for("›", after=at)
        term.send("hello\r")
        term.wait_for("Bare command works.", after=at)
        _exit_cleanly(term)
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)
    assert "Traceback" not in term.text() and "internal error" not in term.text()
    assert fake_server.requests[0]["body"]["messages"][-1]["content"] == "hello"


def _local_model_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return False
    from agentcli.providers.local.provider import default_model_path

    return default_model_path() is not None


@pytest.mark.local_model
@pytest.mark.skipif(not _local_model_available(), reason="the local extra is not installed")
def test_bare_agentcli_with_nothing_configured_uses_the_local_model(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    term = Terminal([BIN], _bare_env(home), tmp_path)
    try:
        at = term.wait_for("using the local model", timeout=30)
        at = term.wait_for("agentcli chat · local", after=at)
        term.wait_for("›", after=at)
        term.send("Say hello.\r")
        _wait_for_a_local_reply(term)
        _exit_cleanly(term)
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)
    assert "Traceback" not in term.text() and "internal error" not in term.text()


def _wait_for_a_local_reply(term: Terminal) -> None:
    """A real reply from the bundled model: the toolbar's token count leaves 0 when it is done."""
    deadline = time.monotonic() + 120
    while not re.search(r"· [1-9][\d,]*\+? tokens", term.text()):  # + : a failed request
        assert time.monotonic() < deadline, term.text()
        assert term.child.isalive(), term.text()
        term.pump(0.2)


def _model_processes(parent: int) -> list[int]:
    """The local model's host processes started by ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == parent and b"host_main" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


@pytest.mark.local_model
@pytest.mark.skipif(not _local_model_available(), reason="the local extra is not installed")
def test_the_chat_survives_a_crash_of_the_local_model(tmp_path):
    """The model runs in its own process: killed with SIGSEGV (as llama.cpp's repacking does on
    AMX CPUs), the REPL says so in one line and the next message is answered."""
    import signal

    home = tmp_path / "home"
    home.mkdir()
    term = Terminal([BIN], _bare_env(home), tmp_path)
    try:
        at = term.wait_for("agentcli chat · local", timeout=30)
        term.wait_for("›", after=at)
        term.send("Say hello.\r")
        deadline = time.monotonic() + 60
        while not _model_processes(term.child.pid):
            assert time.monotonic() < deadline, term.text()
            term.pump(0.01)
        os.kill(_model_processes(term.child.pid)[0], signal.SIGSEGV)
        at = term.wait_for("error: the local model crashed (signal 11: segmentation fault)",
                           after=at, timeout=60)
        term.wait_for("›", after=at)
        term.send("Say hello.\r")
        _wait_for_a_local_reply(term)
        _exit_cleanly(term)
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)
    screen = term.text()
    assert screen.count("the local model crashed") == 1
    assert "Traceback" not in screen and "internal error" not in screen
