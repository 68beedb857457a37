"""Anthropic prompt caching by default, through the real SDK against the fake's deterministic
cache: breakpoints on the tools, the system prompt and the newest messages (never more than 4,
which the fake refuses like the real API), cache reads and writes in usage (streamed or not),
shown in --json, the session store and `sessions show`; `cache: false` turns it off."""

from __future__ import annotations

import json

import anthropic
import pytest
from fake_anthropic import AnthropicState, input_tokens
from fake_clients import CALC, KEY, collect, provider
from fake_server import text, tool_calls
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.messages import Message, ToolCall, ToolResult, Usage

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a careful assistant. " * 80  # a long system prompt: what caching is for
STEPS = 20


def run(*args: str):
    return CliRunner().invoke(build_app(), list(args))


def ask(server, *args: str):
    return run("ask", "-p", "anthropic", "--base-url", server.anthropic_base_url, "-m", MODEL,
               *args)


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


def marks(body: dict) -> list[str]:
    """Where the request's cache_control breakpoints are."""
    out = [f"tool {t['name']}" for t in body.get("tools") or [] if "cache_control" in t]
    system = body.get("system")
    if isinstance(system, list):
        out += ["system" for b in system if "cache_control" in b]
    for i, m in enumerate(body["messages"]):
        for j, b in enumerate(m["content"] if isinstance(m["content"], list) else []):
            if "cache_control" in b:
                out.append(f"message {i - len(body['messages'])} block {j}")
    return out


def chain(server, steps: int = STEPS) -> None:
    server.script(*[tool_calls(("calculator", {"expression": f"{n}+{n}"}))
                    for n in range(steps - 1)], text("All done."))


def test_a_long_tool_chain_keeps_four_breakpoints_and_reads_the_cache(fake_server):
    chain(fake_server)
    result = ask(fake_server, "-s", SYSTEM, "-y", "-t", "calculator", "--max-steps", "30",
                 "--json", "add them up")
    assert result.exit_code == 0, result.output
    bodies = [r["body"] for r in fake_server.requests]
    assert len(bodies) == STEPS
    for n, body in enumerate(bodies):
        found = marks(body)
        assert len(found) <= 4
        expected = ["tool calculator", "system", "message -1 block 0"]
        if n:  # the user turn before the latest reply: the previous request's newest message
            expected.insert(2, "message -3 block 0")
        assert found == expected, (n, found)
    data = json.loads(result.stdout)
    usage = data["usage"]
    assert usage["cached_input_tokens"] > 0 and usage["cache_write_tokens"] > 0
    # per request, from the session store: after the first step most input is a cache read
    export = json.loads(run("sessions", "export", data["session"], "--format", "json").stdout)
    steps = [m["usage"] for m in export["messages"] if m["role"] == "assistant"]
    assert len(steps) == STEPS and steps[0]["cached_input_tokens"] == 0
    later_in = sum(u["input_tokens"] for u in steps[1:])
    later_read = sum(u["cached_input_tokens"] for u in steps[1:])
    assert later_read / later_in >= 0.8, (later_read, later_in)
    assert sum(u["input_tokens"] for u in steps) == usage["input_tokens"]


def test_cache_false_in_a_profile_sends_no_breakpoint(fake_server, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"providers:\n  claude:\n    type: anthropic\n    model: {MODEL}\n"
                   f"    base_url: {fake_server.anthropic_base_url}\n    cache: false\n")
    chain(fake_server, 3)
    result = run("ask", "--config", str(cfg), "-p", "claude", "-s", SYSTEM, "-y", "-t",
                 "calculator", "--json", "go")
    assert result.exit_code == 0, result.output
    assert all(marks(r["body"]) == [] for r in fake_server.requests)
    assert isinstance(fake_server.requests[0]["body"]["system"], str)
    assert json.loads(result.stdout)["usage"]["cached_input_tokens"] == 0


def test_more_than_four_breakpoints_are_refused_like_the_real_api(fake_server):
    client = anthropic.Anthropic(base_url=fake_server.anthropic_base_url, api_key=KEY,
                                 max_retries=0)
    block = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=10, system=[block, block],
                               messages=[{"role": "user", "content": [block, block, block]}])
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in str(info.value)


def test_the_second_message_breakpoint_reads_past_a_step_of_many_blocks(fake_server):
    """The API looks back only 20 blocks from a breakpoint for an earlier cache entry: a step
    with 12 parallel calls adds 24 blocks. The breakpoint on the previous request's newest
    message still finds what that request wrote."""
    question = "Please look up twelve cities. " * 20
    calls = tuple(ToolCall(f"toolu_{i}", "calculator", json.dumps({"expression": str(i)}))
                  for i in range(12))
    history = [Message.user(question), Message("assistant", calls),
               Message("tool", tuple(ToolResult(c.id, c.name, "ok") for c in calls))]
    fake_server.script(tool_calls(*[("calculator", {"expression": str(i)}) for i in range(12)]),
                       text("done"))
    p = provider(fake_server, "anthropic", model=MODEL)
    collect(p, history[:1], tools=[CALC])
    usage = collect(p, history, tools=[CALC])[-1].usage
    asked = input_tokens({"messages": [{"role": "user", "content": question}]})
    assert usage.cached_input_tokens >= asked
    # only a breakpoint on the newest message (what a client without the second one sends):
    # the window misses the question's cache entry
    fake_server.anthropic = AnthropicState()  # a cold cache: the same two requests again
    client = anthropic.Anthropic(base_url=fake_server.anthropic_base_url, api_key=KEY)
    first, second = (dict(r["body"], stream=False) for r in fake_server.requests)
    second["messages"][0]["content"][-1].pop("cache_control")
    fake_server.script(text("one"), text("again"))
    client.messages.create(**first)
    reply = client.messages.create(**second)
    assert reply.usage.cache_read_input_tokens < asked


@pytest.mark.parametrize("streaming", [True, False])
def test_cache_reads_and_writes_become_usage(fake_server, streaming):
    fake_server.script(text("one"), text("two"))
    p = provider(fake_server, "anthropic", model=MODEL)
    first = collect(p, [Message.user("hello " * 50)], system=SYSTEM, stream=streaming)[-1]
    total = input_tokens(fake_server.requests[0]["body"])
    assert first.usage == Usage.reported(total, 1, cache_write=total)
    history = [Message.user("hello " * 50), first.message, Message.user("and again")]
    second = collect(p, history, system=SYSTEM, stream=streaming)[-1].usage
    total2 = input_tokens(fake_server.requests[1]["body"])
    assert second.input_tokens == total2 and second.cached_input_tokens == total
    assert second.cache_write_tokens == total2 - total
    assert "cached" in second.describe() and "written to cache" in second.describe()


def test_sessions_show_and_tokens_count_the_cache(fake_server):
    chain(fake_server, 3)
    result = ask(fake_server, "-s", SYSTEM, "-y", "-t", "calculator", "go")
    assert result.exit_code == 0, result.output
    shown = run("sessions", "show", _latest()).stdout
    assert "cached" in shown and "written to cache" in shown


def _latest() -> str:
    listed = json.loads(run("sessions", "list", "--json").stdout)
    return listed[0]["id"]


def test_the_cost_prices_cache_reads_and_writes_at_their_own_rates(fake_server, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text('prices:\n  "claude-*": {input: 3.0, output: 15.0, cache_read: 0.3, '
                   'cache_write: 3.75}\n')
    chain(fake_server, 3)
    result = ask(fake_server, "--config", str(cfg), "-s", SYSTEM, "-y", "-t", "calculator",
                 "--json", "go")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    u = data["usage"]
    plain = u["input_tokens"] - u["cached_input_tokens"] - u["cache_write_tokens"]
    expected = (plain * 3.0 + u["cached_input_tokens"] * 0.3 + u["cache_write_tokens"] * 3.75
                + u["output_tokens"] * 15.0) / 1e6
    assert u["cached_input_tokens"] > 0 and data["cost"]["usd"] == round(expected, 6)


def test_the_bench_meets_the_target_the_readme_quotes():
    """bench/bench_cache.py (the README's figure): a 20-step chain, cache on and off."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "bench" / "bench_cache.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    share = re.search(r"target: .*: ([\d.]+)% PASS", proc.stdout)
    assert share and float(share.group(1)) >= 93.0, proc.stdout
