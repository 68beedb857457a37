"""Anthropic thinking, through the real SDK against the loopback fake: blocks kept verbatim
(signature included) and in order, sent back unchanged in the tool loop and on resume; the fake
refuses what the real API refuses (an altered or dropped block, a setting the model does not
take); --reasoning maps to adaptive thinking or a budget by model; a refused setting is one
line with a hint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anthropic
import pytest
from fake_anthropic import redacted_data, sign
from fake_clients import CALC, KEY, collect, provider
from fake_server import error, text, tool_calls
from typer.testing import CliRunner

from agentcli.agent.loop import Agent, drive
from agentcli.cli.app import build_app
from agentcli.errors import ProviderError
from agentcli.messages import (Message, Notice, ReasoningDelta, ReasoningPart, ResponseDone,
                               TextPart, ToolCall, ToolResult)
from agentcli.providers.anthropic_request import claude_version, takes_adaptive

MODEL = "claude-sonnet-4-6"
T1 = "The user wants six times seven. I will use the calculator."
T2 = "The tool said 42, so I answer."


def thinking_block(text: str, model: str = MODEL) -> dict:
    return {"type": "thinking", "thinking": text, "signature": sign(model, text)}


def redacted_block(n: int = 0, model: str = MODEL) -> dict:
    return {"type": "redacted_thinking", "data": redacted_data(model, n)}


def claude(server, **kw):
    return provider(server, "anthropic", **{"model": MODEL, "reasoning": "high", **kw})


def ask(server, *args: str, model: str = MODEL, config: Path | None = None):
    extra = ["--config", str(config)] if config else []
    return CliRunner().invoke(build_app(), ["ask", "-p", "anthropic", "--base-url",
                                            server.anthropic_base_url, "-m", model, *extra,
                                            *args])


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


# --- the adapter: blocks in, blocks out ----------------------------------------------------------

@pytest.mark.parametrize("streaming", [True, False])
def test_thinking_and_redacted_blocks_are_kept_verbatim_in_order(fake_server, streaming):
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"}), text="Let me compute.",
                                  thinking=T1, redacted=1))
    events = collect(claude(fake_server), tools=[CALC], stream=streaming)
    shown = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert shown == T1
    assert len([e for e in events if isinstance(e, ReasoningDelta)]) == (
        len(T1.split()) if streaming else 1)
    done = events[-1]
    assert isinstance(done, ResponseDone) and done.stop_reason == "tool_calls"
    parts = done.message.parts
    assert [type(p).__name__ for p in parts] == ["ReasoningPart", "ReasoningPart", "TextPart",
                                                 "ToolCall"]
    assert json.loads(parts[0].data) == thinking_block(T1)
    assert json.loads(parts[1].data) == redacted_block(0)
    assert (parts[0].provider, parts[0].model, parts[0].text) == ("anthropic", MODEL, T1)
    assert parts[1].text == ""  # redacted: nothing readable
    assert done.usage.reasoning_tokens == len(T1.split()) + 1


@pytest.mark.parametrize("streaming", [True, False])
def test_the_tool_loop_sends_the_blocks_back_unchanged(fake_server, streaming):
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"}), thinking=T1,
                                  redacted=1),
                       text("It is 42.", thinking=T2))
    p = claude(fake_server)
    first = collect(p, tools=[CALC], stream=streaming)[-1].message
    history = [Message.user("what is 6*7?"), first,
               Message("tool", (ToolResult("toolu_0", "calculator", "42"),))]
    done = collect(p, history, tools=[CALC], stream=streaming)[-1]
    assert done.message.text == "It is 42."  # the fake checked every signature: accepted
    sent = fake_server.requests[1]["body"]["messages"][1]["content"]
    assert sent[:2] == [thinking_block(T1), redacted_block(0)]
    assert sent[2]["type"] == "tool_use"


def test_an_altered_thinking_block_is_refused_like_the_real_api(fake_server):
    fake_server.script(text("never sent"))
    altered = json.dumps({**thinking_block(T1), "thinking": T1 + " (edited)"})
    history = [Message.user("q"),
               Message("assistant", (ReasoningPart("anthropic", MODEL, altered, T1),
                                     ToolCall("toolu_0", "calculator", '{"expression": "1"}'))),
               Message("tool", (ToolResult("toolu_0", "calculator", "1"),))]
    with pytest.raises(ProviderError) as info:
        collect(claude(fake_server), history, tools=[CALC])
    assert "HTTP 400" in info.value.message
    assert "messages.1.content.0: Invalid `signature` in `thinking` block" in info.value.message
    assert "--reasoning" not in (info.value.hint or "")  # no setting gets past an altered block
    assert fake_server.pending == 1  # refused before any reply was used


def test_an_altered_redacted_block_and_a_missing_signature_are_refused(fake_server):
    block = {**redacted_block(0), "data": redacted_block(0)["data"][:-4] + "AAA="}
    unsigned = {"type": "thinking", "thinking": T1}
    for data, wording in ((block, "Invalid `data` in `redacted_thinking` block"),
                          (unsigned, "messages.1.content.0.thinking.signature: Field required")):
        history = [Message.user("q"), Message("assistant", (
            ReasoningPart("anthropic", MODEL, json.dumps(data)), TextPart("hi"))),
            Message.user("again")]
        with pytest.raises(ProviderError) as info:
            collect(claude(fake_server, reasoning=None), history)
        assert wording in info.value.message


def test_a_dropped_thinking_block_is_refused_when_thinking_is_on(fake_server):
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"}), thinking=T1),
                       text("It is 42."))
    p = claude(fake_server)
    first = collect(p, tools=[CALC])[-1].message
    without = Message("assistant", tuple(x for x in first.parts
                                         if not isinstance(x, ReasoningPart)))
    history = [Message.user("q"), without,
               Message("tool", (ToolResult("toolu_0", "calculator", "42"),))]
    with pytest.raises(ProviderError) as info:
        collect(p, history, tools=[CALC])
    assert ("messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
            "`tool_use`. When `thinking` is enabled, a final `assistant` message must start "
            "with a thinking block") in info.value.message
    assert "--reasoning none" in info.value.hint  # disabling thinking lifts the requirement
    # with thinking off, the same history is fine (the real API only asks it with thinking on)
    done = collect(claude(fake_server, reasoning=None), history, tools=[CALC])[-1]
    assert done.message.text == "It is 42."


def test_another_models_blocks_are_left_out_with_one_notice_and_the_turn_goes_on(fake_server):
    """A block signed for another model would be refused (its signature is for that model): the
    agent leaves it out of the request, says so once, and the conversation goes on."""
    fake_server.script(text("Fine.", thinking="new model thinks"))
    other = ReasoningPart("anthropic", "claude-opus-4-5", json.dumps(
        thinking_block(T1, "claude-opus-4-5")), T1)
    history = [Message.user("q"), Message("assistant", (other, TextPart("It is 42."))),
               Message.user("thanks")]
    agent = Agent(claude(fake_server), _NoTools(), history=history[:2])
    events: list = []
    done = drive(agent.run(history[2]), events.append)
    assert done.stop_reason == "end_turn" and done.text == "Fine."
    assert len([e for e in events if isinstance(e, Notice)]) == 1
    sent = fake_server.requests[0]["body"]["messages"][1]["content"]
    assert [b["type"] for b in sent] == ["text"]
    assert agent.history[1].parts[0] is other  # the conversation keeps it


class _NoTools:
    def definitions(self):
        return []

    def execute(self, call):  # pragma: no cover - never asked
        raise AssertionError(call)


# --- end to end: ask, --no-stream, -c ----------------------------------------------------------

@pytest.mark.parametrize("stream_flag", [[], ["--no-stream"]])
def test_ask_with_thinking_and_a_tool_round_trip(fake_server, stream_flag):
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"}), thinking=T1,
                                  redacted=1),
                       text("It is 42.", thinking=T2))
    result = ask(fake_server, "--reasoning", "high", "-y", "-t", "calculator", *stream_flag,
                 "what is 6*7?")
    assert result.exit_code == 0, result.output
    assert result.stdout == "It is 42.\n"  # reasoning never reaches stdout
    assert T1 in result.stderr and T2 in result.stderr
    second = fake_server.requests[1]["body"]
    assert second["messages"][1]["content"][:2] == [thinking_block(T1), redacted_block(0)]
    assert second["thinking"] == {"type": "adaptive", "display": "summarized"}


def test_resume_sends_the_stored_blocks_byte_for_byte(fake_server):
    fake_server.script(tool_calls(("calculator", {"expression": "6*7"}), thinking=T1,
                                  redacted=1),
                       text("It is 42.", thinking=T2), text("84.", thinking="Double it."))
    first = ask(fake_server, "--reasoning", "high", "-y", "-t", "calculator", "what is 6*7?")
    assert first.exit_code == 0, first.output
    again = ask(fake_server, "--reasoning", "high", "-y", "-t", "calculator", "-c",
                "and doubled?")
    assert again.exit_code == 0 and again.stdout == "84.\n", again.output
    in_loop = json.loads(fake_server.requests[1]["raw"])["messages"][1]
    resumed = json.loads(fake_server.requests[2]["raw"])["messages"]
    # the tool-loop turn goes back exactly as it went the first time, thinking and all
    assert json.dumps(resumed[1]) == json.dumps(in_loop)
    assert resumed[3]["content"][0] == thinking_block(T2)  # the final answer's thinking too


# --- --reasoning -> thinking ---------------------------------------------------------------------

def test_claude_versions_pick_adaptive_or_budget():
    assert claude_version("claude-sonnet-4-5-20250929") == (4, 5)
    assert claude_version("claude-3-7-sonnet-latest") == (3, 7)
    assert claude_version("claude-opus-4-20250514") == (4, 0)
    assert claude_version("anthropic.claude-opus-4-6-v1") == (4, 6)
    assert claude_version("claude-fable-5-2") == (5, 2)
    assert claude_version("my-proxy-alias") is None
    budget = ("claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-5-20250929",
              "claude-opus-4-1", "claude-sonnet-4-20250514", "claude-3-7-sonnet-latest")
    adaptive = ("claude-sonnet-4-6", "claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8",
                "claude-sonnet-5", "claude-opus-5-5", "claude-haiku-5-5", "claude-fable-5-1",
                "claude-mythos-preview", "my-proxy-alias")
    assert not any(takes_adaptive(m) for m in budget)
    assert all(takes_adaptive(m) for m in adaptive)


@pytest.mark.parametrize("model,level,expect", [
    ("claude-sonnet-4-6", "high", {"thinking": {"type": "adaptive", "display": "summarized"},
                                   "output_config": {"effort": "high"}, "max_tokens": 20480}),
    ("claude-opus-4-7", "minimal", {"thinking": {"type": "adaptive", "display": "summarized"},
                                    "output_config": {"effort": "low"}, "max_tokens": 5120}),
    ("claude-sonnet-5", "xhigh", {"thinking": {"type": "adaptive", "display": "summarized"},
                                  "output_config": {"effort": "xhigh"}, "max_tokens": 36864}),
    ("claude-sonnet-4-5", "medium", {"thinking": {"type": "enabled", "budget_tokens": 8192},
                                     "max_tokens": 12288}),
    ("claude-haiku-4-5", "minimal", {"thinking": {"type": "enabled", "budget_tokens": 1024},
                                     "max_tokens": 5120}),
    ("claude-sonnet-4-6", "none", {"thinking": {"type": "disabled"}, "max_tokens": 4096}),
    ("claude-sonnet-4-6", None, {"max_tokens": 4096}),
])
def test_reasoning_levels_become_what_each_model_takes(fake_server, model, level, expect):
    """Each request passes the fake's model table (it refuses a budget on Opus 4.7, adaptive on
    4.5, an effort of "minimal", a budget not under max_tokens)."""
    fake_server.script(text("ok"))
    done = collect(claude(fake_server, model=model, reasoning=level))[-1]
    assert done.message.text == "ok"
    body = fake_server.requests[0]["body"]
    keys = ("thinking", "output_config", "max_tokens")
    assert {k: body[k] for k in keys if k in body} == expect


def test_the_reply_limit_keeps_its_room_beside_a_budget(fake_server):
    fake_server.script(text("ok"))
    collect(claude(fake_server, model="claude-sonnet-4-5", reasoning="low", max_tokens=1000))
    body = fake_server.requests[0]["body"]
    assert body["thinking"]["budget_tokens"] == 2048 and body["max_tokens"] == 3048


@pytest.mark.parametrize("model,thinking,extra,wording", [
    ("claude-opus-4-7", {"type": "enabled", "budget_tokens": 2048}, {},
     '"thinking.type.enabled" is not supported for this model'),
    ("claude-sonnet-4-5", {"type": "adaptive"}, {},
     "adaptive thinking is not supported on this model"),
    ("claude-mythos-5", {"type": "disabled"}, {},
     '"thinking.type.disabled" is not supported for this model'),
    ("claude-sonnet-4-5", {"type": "enabled", "budget_tokens": 4096}, {},
     "`max_tokens` must be greater than `thinking.budget_tokens`"),
    ("claude-sonnet-4-5", {"type": "enabled", "budget_tokens": 512}, {"max_tokens": 8000},
     "budget_tokens: Input should be greater than or equal to 1024"),
    ("claude-sonnet-4-6", {"type": "adaptive"}, {"output_config": {"effort": "minimal"}},
     "output_config.effort: Input should be"),
    ("claude-sonnet-4-6", {"type": "adaptive"}, {"extra_body": {"temperature": 0.2}},
     "`temperature` may only be set to 1 when thinking is enabled"),
])
def test_the_fake_refuses_settings_the_real_api_refuses(fake_server, model, thinking, extra,
                                                        wording):
    client = anthropic.Anthropic(base_url=fake_server.anthropic_base_url, api_key=KEY,
                                 max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=model, thinking=thinking, **{"max_tokens": 4096, **extra},
                               messages=[{"role": "user", "content": "hi"}])
    assert wording in str(info.value)


def test_a_model_that_cannot_stop_thinking_is_one_line_with_a_hint(fake_server):
    result = ask(fake_server, "--reasoning", "none", "--no-tools", "hi", model="claude-mythos-5")
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert '"thinking.type.disabled" is not supported' in lines[0]
    assert "cannot turn thinking off" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize("why", ["temperature", "server"])
def test_a_refused_reasoning_setting_is_one_line_with_the_hint(fake_server, tmp_path, why):
    cfg = tmp_path / "c.yaml"
    if why == "temperature":  # thinking refuses a temperature other than 1
        cfg.write_text(f"providers:\n  anthropic:\n    type: anthropic\n    model: {MODEL}\n"
                       f"    base_url: {fake_server.anthropic_base_url}\n    temperature: 0.2\n")
    else:  # a compatible server that knows no thinking
        cfg.write_text("{}\n")
        fake_server.script(error(400, "thinking: Extra inputs are not permitted"))
    result = ask(fake_server, "--reasoning", "high", "--no-tools", "hi", config=cfg)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 400" in lines[0] and "--reasoning none" in lines[0], \
        result.stderr
    if why == "server":  # without --reasoning the same refusal has no such hint
        fake_server.script(error(400, "thinking: Extra inputs are not permitted"))
        plain = ask(fake_server, "--no-tools", "hi", config=cfg)
        assert plain.exit_code == 1 and "--reasoning" not in plain.stderr
    else:  # and without thinking the temperature is sent and taken (the 2026 SDK has no
        # temperature argument: it goes in the body all the same)
        fake_server.script(text("ok"))
        plain = ask(fake_server, "--no-tools", "hi", config=cfg)
        assert plain.exit_code == 0 and fake_server.requests[-1]["body"]["temperature"] == 0.2


def test_the_local_model_says_once_that_reasoning_is_ignored(tmp_path, monkeypatch):
    from agentcli.config import ProviderProfile, Settings
    from agentcli.providers.local import provider as local

    monkeypatch.setattr(local, "llama_cpp_installed", lambda: True)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    said: list[str] = []
    p = local.LocalProvider(ProviderProfile("local", "local", model_path=str(gguf),
                                            reasoning="high"), Settings(), warn=said.append)
    assert len(said) == 1 and "reasoning high is ignored" in said[0]
    quiet: list[str] = []
    local.LocalProvider(ProviderProfile("local", "local", model_path=str(gguf)), Settings(),
                        warn=quiet.append)
    assert quiet == [] and p.model == "tiny"


def test_no_reasoning_flag_sends_no_thinking_and_keeps_the_old_request(fake_server):
    fake_server.script(text("ok"))
    result = ask(fake_server, "--no-tools", "hi")
    assert result.exit_code == 0
    body = fake_server.requests[0]["body"]
    assert "thinking" not in body and "output_config" not in body and body["max_tokens"] == 4096
    assert os.environ.get("ANTHROPIC_API_KEY") == KEY
