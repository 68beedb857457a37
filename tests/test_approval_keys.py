"""One approval behaviour for `ask`'s prompt (stdin or /dev/tty) and the REPL's: the answer is
typed, then Enter (y, a, n; Enter alone is no), and keys typed before the question appears are
discarded on a terminal. The REPL used to act on one key press, so a "y" or an "a" typed for
the next message approved the call; `ask` needed Enter. Both prompters get the same table."""

from __future__ import annotations

import io
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from prompt_toolkit.input import create_input, create_pipe_input
from prompt_toolkit.output import DummyOutput, create_output

from agentcli.toolrun.approval import TerminalPrompter
from agentcli.ui.repl.prompt import ReplPrompter

ANSWERS = [
    ("y\n", True, False, None),
    ("YES\n", True, False, None),
    ("a\n", True, True, None),
    ("always\n", True, True, None),
    ("n\nnot that file\n", False, False, "not that file"),
    ("\n\n", False, False, None),                # Enter alone: no (and no reason)
    ("maybe\ny\n", True, False, None),           # anything else asks again
    ("anyway\n\n", False, False, None),          # a word typed for the chat approves nothing
    ("y", False, False, None),                   # no Enter, then the input ends: no
    ("", False, False, None),
]


def ask_prompter(keys: str):
    return TerminalPrompter(io.StringIO(keys), io.StringIO()).confirm("file_read", {"path": "a"})


def repl_prompter(keys: str):
    with create_pipe_input() as pipe:
        pipe.send_text(keys.replace("\n", "\r"))
        pipe.close()  # then the input ends
        return ReplPrompter(pipe, DummyOutput()).confirm("file_read", {"path": "a"})


@pytest.mark.parametrize("confirm", [ask_prompter, repl_prompter], ids=["ask", "repl"])
@pytest.mark.parametrize("keys,approved,remember,reason", ANSWERS)
def test_the_same_answers_mean_the_same_in_ask_and_in_the_repl(confirm, keys, approved,
                                                               remember, reason):
    d = confirm(keys)
    assert (d.approved, d.remember, d.reason) == (approved, remember, reason)


class Pty:
    """A pseudo-terminal: the prompter gets the terminal side; the test types on the other."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.seen = b""

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def answer_after(self, question: bytes, keys: bytes) -> threading.Thread:
        """In a thread: wait until ``question`` is shown on the terminal, then type ``keys``."""
        def run() -> None:
            deadline = time.monotonic() + 20
            while question not in self.seen and time.monotonic() < deadline:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:
                    return
            self.type(keys)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pty():
    p = Pty()
    yield p
    p.close()


def test_ask_discards_keys_typed_before_the_question(pty):
    tty_in = os.fdopen(os.dup(pty.slave), "r", encoding="utf-8")
    tty_out = os.fdopen(os.dup(pty.slave), "w", encoding="utf-8")
    try:
        pty.type(b"y\n")  # typed while the model was still writing: not an answer
        answering = pty.answer_after(b"run it?", b"n\nnever mind\n")
        d = TerminalPrompter(tty_in, tty_out).confirm("file_read", {"path": "a"})
        answering.join(5)
    finally:
        tty_in.close()
        tty_out.close()
    assert (d.approved, d.reason) == (False, "never mind")


def test_the_repl_discards_keys_typed_before_the_question(pty):
    term = os.fdopen(os.dup(pty.slave), "r", encoding="utf-8")
    out = os.fdopen(os.dup(pty.slave), "w", encoding="utf-8")
    try:
        pty.type(b"a")  # the first letter of "anyway", typed for the next message
        answering = pty.answer_after(b"run it?", b"n\rnever mind\r")
        d = ReplPrompter(create_input(term), create_output(stdout=out)).confirm(
            "file_read", {"path": "a"})
        answering.join(5)
    finally:
        term.close()
        out.close()
    assert (d.approved, d.remember, d.reason) == (False, False, "never mind")


@pytest.mark.pty
def test_ask_on_dev_tty_ignores_type_ahead_and_takes_an_answer_with_enter(tmp_path):
    """The installed binary, stdin piped so the prompt is on /dev/tty: "y" and Enter typed
    before the question do not run the tool; the answer typed after it decides."""
    pexpect = pytest.importorskip("pexpect")
    exe = shutil.which("agentcli", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("agentcli is not installed as a command")
    (tmp_path / "a.txt").write_text("secret\n")
    child = pexpect.spawn("/bin/sh", ["-c", f"echo piped | {exe} tools run file_read --args "
                                            "'{\"path\": \"a.txt\"}' > out.txt"],
                          cwd=str(tmp_path), encoding="utf-8", timeout=30,
                          env={"PATH": "/usr/bin:/bin", "TERM": "dumb",
                               "AGENTCLI_HOME": str(tmp_path / "home")})
    child.send("y\r")  # type-ahead, long before the question
    child.expect("run it\\?")
    child.sendline("n")
    child.expect("reason for the model")
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and "denied by the user" in child.before
    assert (tmp_path / "out.txt").read_text() == ""
