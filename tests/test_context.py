"""Fitting each request into the context window: the oldest turns go first, the newest user
message and every tool call/result pair stay whole, the history itself is never cut, and an input
that can never fit is refused before any request."""

from __future__ import annotations

import json
import random

import pytest

from agentcli.agent.loop import Agent
from agentcli.config import ProviderProfile, Settings
from agentcli.agent.context import ContextFitter, context_window, default_window, make_fitter
from agentcli.errors import AgentCliError, UsageError
from agentcli.messages import Message, TextPart, ToolCall, ToolDefinition, ToolResult
from agentcli.sessions.config import parse
from agentcli.agent.tokens import TokenCounter
from scripted import ScriptedProvider, reply


def estimate_counter() -> TokenCounter:
    return TokenCounter(None)  # the estimate: one token per 3 bytes


def turn(i: int, *, size: int = 300, tools: int = 0) -> list[Message]:
    """A user message, ``tools`` rounds of one call + its result, and a final reply."""
    out = [Message.user(f"question {i} " + "q" * size)]
    for t in range(tools):
        cid = f"c{i}_{t}"
        out.append(Message("assistant", (TextPart("let me look"),
                                         ToolCall(cid, "file_read", json.dumps({"path": "x"})))))
        out.append(Message("tool", (ToolResult(cid, "file_read", "r" * size),)))
    out.append(Message("assistant", (TextPart(f"answer {i} " + "a" * size),)))
    return out


def assert_valid(sent) -> None:
    """What both wire formats require: it starts with a user message; no result without its
    call right before it, and no call without its results right after it."""
    assert sent and sent[0].role == "user"
    for i, m in enumerate(sent):
        if m.role == "tool":
            prev = sent[i - 1]
            assert prev.role == "assistant"
            assert {r.call_id for r in m.tool_results} == {c.id for c in prev.tool_calls}
        if m.role == "assistant" and m.tool_calls:
            assert i + 1 < len(sent) and sent[i + 1].role == "tool"


class NoTokenizer(TokenCounter):
    def __init__(self) -> None:
        super().__init__("gpt-4o", loader=self._refuse)

    @staticmethod
    def _refuse(name):
        raise AssertionError("the tokenizer was loaded although the request fits")


def test_a_request_that_fits_is_sent_whole_without_loading_a_tokenizer():
    history = [m for i in range(5) for m in turn(i, tools=1)] + [Message.user("next")]
    fitter = ContextFitter(NoTokenizer(), window=100_000, reserve=4096)
    sent, notes = fitter(history, [], "be brief")
    assert sent is history and notes == [] and fitter.left_out == 0


def test_the_oldest_turns_go_first_and_the_user_is_told_once():
    history = [m for i in range(20) for m in turn(i, tools=1)] + [Message.user("newest")]
    fitter = ContextFitter(estimate_counter(), window=2000, reserve=500)
    sent, notes = fitter(history, [], "system prompt")
    assert sent[-1] == Message.user("newest")
    assert sent == history[-len(sent):]  # a suffix: only the oldest were left out
    assert 1 < len(sent) < len(history)
    assert fitter.left_out == len(history) - len(sent) and fitter.left_out_tokens > 0
    assert len(notes) == 1 and "context window" in notes[0] and "estimates" in notes[0]
    assert fitter.measure(sent, [], "system prompt") <= fitter.budget
    assert_valid(sent)
    sent2, notes2 = fitter([*history, *turn(99)[1:], Message.user("again")], [], "x")
    assert notes2 == []  # told once
    assert len(history) == 20 * 4 + 1  # the history itself was not touched


def test_trimming_never_splits_a_call_from_its_result():
    rng = random.Random(7)
    for trial in range(300):
        history = []
        for i in range(rng.randint(1, 12)):
            history += turn(i, size=rng.randint(10, 400), tools=rng.randint(0, 3))
        history.append(Message.user("now " + "n" * rng.randint(0, 200)))
        # mid-turn too: the newest turn may already hold tool rounds
        for t in range(rng.randint(0, 3)):
            cid = f"now{t}"
            history.append(Message("assistant", (ToolCall(cid, "calc", "{}"),)))
            history.append(Message("tool", (ToolResult(cid, "calc", "z" * rng.randint(1, 4000)),)))
        window = rng.randint(900, 6000)
        tools = [ToolDefinition("calc", "adds", {"type": "object", "properties": {}})]
        fitter = ContextFitter(estimate_counter(), window=window, reserve=window // 5)
        try:
            sent, _ = fitter(history, tools, "sys")
        except AgentCliError:
            continue  # the newest message or tool round alone does not fit: refused, not split
        assert_valid(sent)
        assert fitter.measure(sent, tools, "sys") <= fitter.budget, trial
        last_user = max(i for i, m in enumerate(history) if m.role == "user")
        assert history[last_user] in sent


def test_big_tool_results_in_the_newest_turn_drop_its_oldest_rounds_whole():
    history = turn(0) + [Message.user("read them all")]
    for t in range(4):
        history.append(Message("assistant", (ToolCall(f"r{t}", "file_read", "{}"),)))
        history.append(Message("tool", (ToolResult(f"r{t}", "file_read", "x" * 3000),)))
    fitter = ContextFitter(estimate_counter(), window=3000, reserve=500)
    sent, _ = fitter(history, [], None)
    assert sent[0] == Message.user("read them all")  # and no older turn: oldest first
    assert [m.tool_calls[0].id for m in sent if m.role == "assistant"] == ["r2", "r3"]
    assert_valid(sent)


def test_a_tool_result_that_alone_exceeds_the_window_is_an_error_not_a_split():
    history = [Message.user("read it"), Message("assistant", (ToolCall("c", "file_read", "{}"),)),
               Message("tool", (ToolResult("c", "file_read", "x" * 30_000),))]
    fitter = ContextFitter(estimate_counter(), window=4000, reserve=500)
    with pytest.raises(AgentCliError, match="newest tool results"):
        fitter(history, [], None)


def test_an_input_that_alone_exceeds_the_window_is_refused_before_any_request():
    provider = ScriptedProvider([reply("never")])
    fitter = ContextFitter(estimate_counter(), window=1000, reserve=200, model="tiny-model")

    class NoTools:
        def definitions(self):
            return []

        def execute(self, call):  # pragma: no cover - never reached
            raise AssertionError

    agent = Agent(provider, NoTools(), prepare=fitter)
    events = list(agent.run(Message.user("x" * 9000)))
    done = events[-1]
    assert done.stop_reason == "error" and isinstance(done.error, UsageError)
    assert "about 3,004 tokens" in done.error.message  # 9,000 bytes / 3, + framing
    assert "tiny-model" in done.error.message and "1,000 tokens" in done.error.message
    assert provider.requests == []  # refused before any request
    assert list(agent.history) == []


def test_the_agent_sends_the_trimmed_request_and_keeps_the_whole_history():
    provider = ScriptedProvider([reply("ok")])
    fitter = ContextFitter(estimate_counter(), window=1500, reserve=300)

    class NoTools:
        def definitions(self):
            return []

    old = [m for i in range(10) for m in turn(i)]
    agent = Agent(provider, NoTools(), history=list(old), prepare=fitter)
    events = list(agent.run(Message.user("newest")))
    sent = provider.requests[0][0]
    assert sent[-1] == Message.user("newest") and len(sent) < len(old)
    assert any("context window" in getattr(e, "text", "") for e in events)
    assert list(agent.history[: len(old)]) == old and len(agent.history) == len(old) + 2


def profile(**kw) -> ProviderProfile:
    return ProviderProfile(name=kw.pop("name", "p"), type=kw.pop("type", "openai"), **kw)


def test_context_window_comes_from_the_profile_then_config_then_defaults():
    settings = Settings(sessions=parse({"context_windows": {"llama3.2": 8192, "qwen*": 32768}},
                                       None))
    assert context_window(settings, profile(context_window=5000), "gpt-4o") == 5000
    assert context_window(settings, profile(), "llama3.2") == 8192
    assert context_window(settings, profile(), "qwen2.5-7b") == 32768
    assert context_window(settings, profile(type="local", n_ctx=2048), "smol") == 2048
    assert context_window(settings, profile(), "gpt-4.1-mini") == 1_047_576
    assert context_window(settings, profile(), "gpt-4o-mini") == 128_000
    assert context_window(settings, profile(), "gpt-4") == 8_192
    for big in ("gpt-4-1106-preview", "gpt-4-0125-preview", "gpt-4.5-preview"):
        assert default_window(big) == 128_000, big  # not the 8k of the gpt-4 prefix
    assert context_window(settings, profile(type="anthropic"), "claude-sonnet-4-6") == 200_000
    assert default_window("some-server-model") is None
    assert make_fitter(settings, profile(), "some-server-model") is None  # unknown: no trimming
    fitter = make_fitter(settings, profile(type="anthropic"), "claude-sonnet-4-6")
    assert fitter.reserve == 4096 and fitter.budget == 200_000 - 4096
    assert make_fitter(settings, profile(max_tokens=1000), "gpt-4o").reserve == 1000


class WordTokenizer:
    """A stand-in tokenizer (one token per word and per punctuation run), counting its use."""

    def __init__(self) -> None:
        self.encoded = 0

    def encode_ordinary(self, text: str) -> list[str]:
        self.encoded += 1
        return text.replace(".", " .").split() or [text]


class CountingLoader:
    def __init__(self) -> None:
        self.loads = 0
        self.tokenizer = WordTokenizer()

    def __call__(self, name: str) -> WordTokenizer:
        self.loads += 1
        return self.tokenizer


def words_turn(i: int, size: int) -> list[Message]:
    cid = f"w{i}"
    return [Message.user(f"question {i} " + "word " * size),
            Message("assistant", (TextPart("reading"),
                                  ToolCall(cid, "file_read", json.dumps({"path": f"f{i}"})))),
            Message("tool", (ToolResult(cid, "file_read", "line " * size),)),
            Message("assistant", (TextPart(f"answer {i} " + "done " * size),))]


def exact_fitter(window: int, reserve: int) -> tuple[ContextFitter, CountingLoader]:
    loader = CountingLoader()
    return ContextFitter(TokenCounter("gpt-4o", loader=loader), window, reserve), loader


def seeded_from(first: ContextFitter, history: list[Message]
                ) -> tuple[ContextFitter, CountingLoader]:
    """A new fitter given the counts ``first`` made, as the session store gives them back."""
    fitter, loader = exact_fitter(window=first.window, reserve=first.reserve)
    for m in history:
        if first.known(m) is not None:
            fitter.seed(m, first.known(m))
    for key, n in first.known_fixed().items():
        fitter.seed_fixed(key, n)
    return fitter, loader


def test_counts_from_an_earlier_run_decide_the_fit_without_loading_the_tokenizer():
    """A resumed conversation: every stored message's exact size is given back (as the
    session store does); only the new message is unknown. The fit is the exact one, and the
    tokenizer is never loaded, because the new message's smallest and largest possible sizes
    lead to the same messages being sent."""
    tools = [ToolDefinition("file_read", "Read a file.", {"type": "object"})]
    history = [m for i in range(40) for m in words_turn(i, 50)]
    new = Message.user("and the next one?")

    first, first_loader = exact_fitter(window=3000, reserve=500)
    first(history + [Message.user("the previous question")], tools, "Be brief.")
    assert first_loader.loads == 1 and first.count_key == "o200k_base/1"

    resumed, loader = seeded_from(first, history)
    sent, notes = resumed(history + [new], tools, "Be brief.")
    assert loader.loads == 0  # decided by the bounds: no tokenizer built

    counted, _ = exact_fitter(window=3000, reserve=500)
    expected, _ = counted(history + [new], tools, "Be brief.")
    assert [id(m) for m in sent] == [id(m) for m in expected]
    assert sent[-1] is new and 1 < len(sent) < len(history) and notes


def test_when_the_new_message_could_change_the_fit_it_is_counted_exactly():
    """A new message big enough that its exact size matters: the tokenizer is loaded, and
    the answer is the one counting everything gives."""
    tools: list[ToolDefinition] = []
    history = [m for i in range(40) for m in words_turn(i, 50)]
    new = Message.user("x " * 900)  # between its smallest and largest size lie whole turns

    first, _ = exact_fitter(window=3000, reserve=500)
    first(history + [Message.user("earlier")], tools, None)
    resumed, loader = seeded_from(first, history)
    sent, _ = resumed(history + [new], tools, None)
    assert loader.loads == 1
    counted, _ = exact_fitter(window=3000, reserve=500)
    expected, _ = counted(history + [new], tools, None)
    assert [id(m) for m in sent] == [id(m) for m in expected]


def test_anthropic_thinking_room_is_kept_free_beside_the_reply():
    from agentcli.agent.context import reply_reserve

    plain = ProviderProfile(name="a", type="anthropic", max_tokens=4096)
    thinking = ProviderProfile(name="a", type="anthropic", max_tokens=4096, reasoning="high")
    assert reply_reserve(plain, 200_000) == 4096
    assert reply_reserve(thinking, 200_000) == 4096 + 16384  # the adapter adds that room
    assert reply_reserve(ProviderProfile(name="a", type="anthropic", reasoning="none"),
                         200_000) == 4096
