"""The local model's logic (``providers/local/engine.py``, which runs inside the model host
process), driven in-process by a scripted stand-in for ``llama_cpp.Llama``: events, tool calls
finished under the grammar, stopping, and the one-time warnings. Runs without the ``local``
extra."""

from __future__ import annotations

import importlib.util
import json

import pytest

from agentcli.errors import ProviderError
from agentcli.messages import Message, ResponseDone, TextDelta, ToolDefinition
from agentcli.providers.local import engine as local
from agentcli.providers.local.protocol import ModelConfig

TOOLS = [ToolDefinition("calculator", "Evaluate arithmetic.",
                        {"type": "object", "properties": {"expression": {"type": "string"}},
                         "required": ["expression"]})]
HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None


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


def scripted(replies, grammar="GRAMMAR", max_tokens=512, stop=lambda: False):
    warnings = []
    config = ModelConfig("/models/tiny.gguf", 4096, 1, 0.2, max_tokens, False)
    p = local.Engine(config, warn=warnings.append, should_stop=stop)
    p._llm = FakeLlama(replies)
    p._grammars[local._tools_key(TOOLS)] = grammar  # "GRAMMAR": built; None: none could be
    p.warnings = warnings
    return p


def kinds(events):
    return [e.kind for e in events]


def test_plain_reply_streams_and_ends_with_turn_done():
    p = scripted([(["Hel", "lo", "!"], "stop")])
    events = list(p.stream([Message.user("hi")], []))
    assert kinds(events) == ["text_delta"] * 3 + ["response_done"]
    done = events[-1]
    assert done.stop_reason == "end_turn" and done.usage.input_tokens > 0
    assert done.usage.output_tokens > 0


def test_max_tokens_stop_reason():
    p = scripted([(["a", "b"], "length")], max_tokens=2)
    events = list(p.stream([Message.user("hi")], []))
    assert events[-2] == TextDelta("b") and events[-1].stop_reason == "max_tokens"
    assert p._llm.requests[0]["max_tokens"] == 2


def test_started_call_is_finished_under_the_grammar():
    p = scripted([
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


def test_two_calls_in_one_turn():
    p = scripted([
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


def test_call_cut_by_max_tokens_becomes_text():
    p = scripted([
        (["<tool_call>"], None),
        (['{"name": "calculator", "arguments": {"expression": "1+1+1+'], "length"),
    ])
    events = list(p.stream([Message.user("x")], TOOLS))
    assert kinds(events) == ["text_delta", "response_done"]
    assert events[0].text.startswith("<tool_call>") and events[-1].stop_reason == "max_tokens"


def test_bare_json_reply_is_a_call_only_when_valid():
    p = scripted([
        (['{"name": "calculator", ', '"parameters": {"expression": "2"}}'], "stop"),
        (['{"name": "Bob", ', '"age": 3}'], "stop"),
    ])
    events = list(p.stream([Message.user("x")], TOOLS))
    assert kinds(events) == ["response_done"]
    events = list(p.stream([Message.user("x")], TOOLS))
    assert kinds(events) == ["text_delta", "response_done"]
    assert events[0].text == '{"name": "Bob", "age": 3}'
    assert events[-1].stop_reason == "end_turn"


def test_keyboard_interrupt_propagates_and_closes():
    p = scripted([(["one ", KeyboardInterrupt()], None)])
    gen = p.stream([Message.user("x")], [])
    assert next(gen) == TextDelta("one ")
    with pytest.raises(KeyboardInterrupt):
        next(gen)
    assert p._llm.closed == 1


def test_consumer_closing_the_stream_closes_generation():
    p = scripted([(["a", "b", "c"], "stop")])
    gen = p.stream([Message.user("x")], [])
    next(gen)
    gen.close()
    assert p._llm.closed == 1


def test_llama_runtime_error_becomes_provider_error():
    p = scripted([(["a", RuntimeError("llama_decode returned -3")], None)])
    with pytest.raises(ProviderError, match="llama_decode"):
        list(p.stream([Message.user("x")], []))


def test_old_turns_dropped_when_the_context_is_full():
    p = scripted([(["ok"], "stop")], max_tokens=100)
    p._llm.n_ctx = lambda: 400
    history = []
    for i in range(30):
        history += [Message.user(f"question {i} " + "word " * 20),
                    Message("assistant", (Message.user("answer " * 5).parts[0],))]
    history.append(Message.user("last one"))
    events = list(p.stream(history, []))
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].usage.input_tokens <= 300
    p = scripted([], max_tokens=100)
    p._llm.n_ctx = lambda: 50
    with pytest.raises(ProviderError, match="n_ctx"):
        list(p.stream([Message.user("word " * 200)], []))


# --- never silent: chat template and grammar fallbacks are told once ----------------------------

def test_chat_template_that_cannot_compile_is_told_once_and_chatml_is_used():
    pytest.importorskip("llama_cpp")
    p = scripted([])
    p._use_template("{% if %}broken", eos="</s>", bos="")
    p._use_template("{% if %}broken", eos="</s>", bos="")  # e.g. a second load: still once
    assert len(p.warnings) == 1
    assert "chat template of tiny.gguf cannot be used" in p.warnings[0]
    assert "ChatML" in p.warnings[0] and "\n" not in p.warnings[0]
    assert p._render([{"role": "user", "content": "hi"}]) == \
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_model_without_a_chat_template_is_told():
    p = scripted([])
    p._use_template(None, eos="</s>", bos="")
    assert len(p.warnings) == 1 and "has no chat template" in p.warnings[0]


class RefusingTemplate:
    """A template that raises on every conversation (as jinja's raise_exception does)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, messages):
        self.calls += 1
        raise ValueError("Conversation roles must alternate user/assistant/user/assistant")


def test_template_failing_on_a_conversation_falls_back_loudly_once():
    p = scripted([(["a"], "stop"), (["b"], "stop")])
    p._formatter = template = RefusingTemplate()
    list(p.stream([Message.user("one")], []))
    list(p.stream([Message.user("two")], []))
    assert template.calls >= 2  # the template was really tried (and the folded form)
    assert len(p.warnings) == 1
    assert "failed on this conversation (Conversation roles must alternate" in p.warnings[0]


def test_system_turn_folded_for_templates_that_refuse_it_is_not_a_fallback():
    class NoSystem:
        def __call__(self, messages):
            if messages[0]["role"] == "system":
                raise ValueError("System role not supported")
            return type("R", (), {"prompt": "|".join(m["content"] for m in messages)})()

    p = scripted([])
    p._formatter = NoSystem()
    assert p._render([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]) \
        == "S\n\nU"
    assert p.warnings == []


def test_without_a_grammar_a_call_must_close_itself_and_name_a_real_tool():
    p = scripted([
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
def test_grammar_weakening_is_told_once_before_the_reply():
    p = scripted([(["hi"], "stop"), (["again"], "stop")])
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


# --- stopping: what the host does when agentcli sends C ------------------------------------------

def stop_after(n):
    asked = []

    def should_stop():
        asked.append(1)
        return len(asked) >= n
    return should_stop


def test_should_stop_ends_generation_after_the_token_in_progress():
    p = scripted([(["a ", "b ", "c ", "d "], None)], stop=stop_after(2))
    events = []
    with pytest.raises(local.Stopped) as ei:
        for e in p.stream([Message.user("x")], []):
            events.append(e)
    assert [e.text for e in events] == ["a ", "b "]  # nothing after the stop
    assert ei.value.output_tokens > 0 and p._llm.closed == 1


def test_should_stop_ends_a_call_under_the_grammar_too():
    p = scripted([(["<tool_call>"], None),
                   (['{"name": ', '"calculator", ', '"arguments": ', '{}}'], "stop")],
                  stop=stop_after(3))
    with pytest.raises(local.Stopped):
        list(p.stream([Message.user("x")], TOOLS))
    assert p._llm.requests[1]["grammar"] == "GRAMMAR" and p._llm.closed == 2
