"""The context window: how big it is for a model, and fitting each request inside it.

``ContextFitter`` is the agent's ``prepare`` hook: before every request it makes what is sent fit
the window minus the reply budget. Oldest turns go first; the system prompt, the newest user
message and every tool call with its result stay intact (a call is never sent without its result,
nor a result without its call). Tool definitions and tool results are counted too. The history
itself is never touched: the store keeps everything, only what is sent is trimmed.

Counting is lazy: a token is at least one byte for every tokenizer used here (and the estimate is
a third of the bytes), so while the UTF-8 size of the request fits the budget nothing is counted
and no tokenizer is loaded. Counts are cached per message, so each request counts only what is
new. Exact counts can also be given (``seed``, ``seed_fixed``): the session store keeps them
beside the messages (``count_key`` names the tokenizer they were made with), so resuming a long
conversation needs no tokenizer. Then only the new messages are unknown. Before the tokenizer is
loaded for them, the fit is decided twice, once with each unknown message at its smallest
possible size and once at its largest (its UTF-8 size). When both give the same messages, that
is the exact answer, and nothing is counted.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import AgentCliError, UsageError
from ..messages import MediaPart, Message, TextPart, ToolCall, ToolDefinition, ToolResult
from .tokens import TokenCounter, utf8_len

if TYPE_CHECKING:
    from ..config import ProviderProfile, Settings

# Context windows of well-known models (tokens), by model-name prefix; the longest prefix wins.
# A profile's context_window or the config's context_windows override these.
DEFAULT_WINDOWS: dict[str, int] = {
    "gpt-5": 400_000, "gpt-4.1": 1_047_576, "gpt-4o": 128_000, "chatgpt-4o": 128_000,
    "gpt-4-turbo": 128_000, "gpt-4-1106": 128_000, "gpt-4-0125": 128_000, "gpt-4.5": 128_000,
    "gpt-4-32k": 32_768, "gpt-4": 8_192, "gpt-3.5-turbo": 16_385,
    "o1": 200_000, "o1-mini": 128_000, "o1-preview": 128_000, "o3": 200_000, "o4-mini": 200_000,
    "claude-": 200_000,
}
DEFAULT_REPLY_RESERVE = {"openai": 4096, "anthropic": 4096, "local": 512}
MESSAGE_OVERHEAD = 4  # role and framing tokens per message (OpenAI documents 3, plus one)
PART_OVERHEAD = 8  # a tool call's or a tool result's framing (type, id, name keys)
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>
COUNT_VERSION = 1  # bump when the sizes above change: stored counts made with others are unused


IMAGE_TOKENS = 1600  # Anthropic: about (width x height) / 750, scaled to at most ~1.15 MP
PDF_PAGE_TOKENS = 3000  # a page's text and its image (Anthropic: 1,500-3,000 per page)
PDF_BYTES_PER_PAGE = 100_000
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![s\w])")


def media_tokens(p: MediaPart) -> int:
    """What an image or PDF costs in the context window, roughly: an image ``IMAGE_TOKENS``; a
    PDF ``PDF_PAGE_TOKENS`` per page (pages counted in the file, else one per
    ``PDF_BYTES_PER_PAGE`` bytes)."""
    if p.is_image:
        return IMAGE_TOKENS
    pages = len(_PDF_PAGE.findall(p.data)) if p.data else 0
    return (pages or max(1, p.size // PDF_BYTES_PER_PAGE)) * PDF_PAGE_TOKENS


def default_window(model: str | None) -> int | None:
    if not model:
        return None
    name = model.rsplit("/", 1)[-1]  # openai/gpt-4o, anthropic/claude-... (OpenRouter)
    best = max((p for p in DEFAULT_WINDOWS if name.startswith(p)), key=len, default=None)
    return DEFAULT_WINDOWS[best] if best else None


def context_window(settings: Settings, profile: ProviderProfile, model: str | None) -> int | None:
    """The profile's ``context_window``, else the config's ``context_windows``, else ``n_ctx``
    for a local model, else the well-known default; None when unknown (nothing is trimmed)."""
    if profile.context_window:
        return profile.context_window
    configured = settings.sessions.window(model)
    if configured:
        return configured
    if profile.type == "local":
        return profile.n_ctx
    return default_window(model)


def reply_reserve(profile: ProviderProfile, window: int) -> int:
    """Tokens kept free for the reply: the profile's max_tokens, else the provider's default
    reply budget, never more than a quarter of the window; plus, for Anthropic with
    ``reasoning`` on, the thinking room the adapter adds to max_tokens."""
    if profile.max_tokens:
        reserve = min(profile.max_tokens, window - 1)
    else:
        reserve = min(DEFAULT_REPLY_RESERVE.get(profile.type, 4096), window // 4)
    if profile.type == "anthropic" and profile.reasoning not in (None, "none"):
        from ..providers.anthropic_request import THINKING_ROOM

        reserve = min(reserve + THINKING_ROOM.get(profile.reasoning, 0), window - 1)
    return reserve


class ContextFitter:
    """``Agent(prepare=fitter)``: trims what each request sends to the window. ``left_out``
    and ``left_out_tokens`` describe the last request (``/tokens`` shows them)."""

    def __init__(self, counter: TokenCounter, window: int, reserve: int, *,
                 model: str = "the model") -> None:
        self.counter = counter
        self.window = window
        self.reserve = reserve
        self.budget = window - reserve
        self.model = model
        self.told = False
        self._left_out: list[Message] = []
        # id(message) -> (message, size): by identity (hashing a message hashes all its text);
        # the message is kept so its id cannot be reused while the entry exists
        self._costs: dict[int, tuple[Message, int]] = {}
        self._bounds: dict[int, tuple[Message, int]] = {}
        self._fixed: dict[str, int] = {}  # fixed_key(tools, system) -> its exact size

    @property
    def notice_key(self) -> str:
        """What the "no longer fits" notice was about: given again only for another model or
        window (kept with the conversation, so ``ask -c`` says it once)."""
        return f"{self.model}/{self.window}/{self.reserve}"

    @property
    def left_out(self) -> int:
        """Messages the last request left out."""
        return len(self._left_out)

    @property
    def left_out_tokens(self) -> int:
        """Their tokens (counted when asked: /tokens, not every request)."""
        return sum(map(self.cost, self._left_out))

    # -- sizes

    def _size(self, message: Message, count: Callable[[str], int]) -> int:
        total = MESSAGE_OVERHEAD
        for p in message.parts:
            if isinstance(p, TextPart):
                total += count(p.text)
            elif isinstance(p, ToolCall):
                total += PART_OVERHEAD + count(p.name) + count(p.arguments)
            elif isinstance(p, ToolResult):
                total += PART_OVERHEAD + MESSAGE_OVERHEAD + count(p.content)
                total += sum(map(media_tokens, p.media))
            elif isinstance(p, MediaPart):  # an estimate for every tokenizer
                total += PART_OVERHEAD + media_tokens(p)
        return total

    def cost(self, message: Message) -> int:
        """Tokens of one message (exact or estimated, as the counter is); cached."""
        found = self._costs.get(id(message))
        if found is None or found[0] is not message:
            found = self._costs[id(message)] = (message, self._size(message, self.counter.count))
        return found[1]

    def bound(self, message: Message) -> int:
        """An upper bound of ``cost`` from its UTF-8 size, without a tokenizer; cached."""
        found = self._bounds.get(id(message))
        if found is None or found[0] is not message:
            found = self._bounds[id(message)] = (message, self._size(message, utf8_len))
        return found[1]

    @property
    def count_key(self) -> str | None:
        """What exact counts are made with (tokenizer and sizing version), for the store;
        None when counts are estimates (cheap to redo, never stored)."""
        if not self.counter.exact:
            return None
        return f"{self.counter.encoding}/{COUNT_VERSION}"

    @property
    def counted(self) -> bool:
        """Whether any size is known (counted or seeded): else there is nothing to keep."""
        return bool(self._costs or self._fixed)

    def seed(self, message: Message, cost: int) -> None:
        """A size counted earlier with ``count_key`` (from the store)."""
        self._costs[id(message)] = (message, cost)

    def known(self, message: Message) -> int | None:
        """The message's size when it has been counted (or seeded), else None."""
        found = self._costs.get(id(message))
        return found[1] if found is not None and found[0] is message else None

    @staticmethod
    def fixed_key(tools: Sequence[ToolDefinition], system: str | None) -> str:
        """Names the fixed part (system prompt and tool definitions) by its content."""
        h = hashlib.sha256((system or "").encode("utf-8", "surrogatepass"))
        for t in tools:
            h.update(b"\0" + _spec(t).encode("utf-8", "surrogatepass"))
        return h.hexdigest()[:32]

    def seed_fixed(self, key: str, cost: int) -> None:
        self._fixed[key] = cost

    def known_fixed(self) -> dict[str, int]:
        return dict(self._fixed)

    def forget(self, keep: Sequence[Message]) -> None:
        """Drop cached sizes of messages no longer in ``keep`` (the history after /forget)."""
        alive = {id(m) for m in keep}
        for cache in (self._costs, self._bounds):
            for key in [k for k in cache if k not in alive]:
                del cache[key]

    def fixed(self, tools: Sequence[ToolDefinition], system: str | None,
              count: Callable[[str], int]) -> int:
        """The system prompt, the tool definitions and the reply priming."""
        total = REPLY_PRIMING + (MESSAGE_OVERHEAD + count(system) if system else 0)
        for t in tools:
            total += PART_OVERHEAD + count(_spec(t))
        return total

    def _fixed_exact(self, tools: Sequence[ToolDefinition], system: str | None) -> int:
        key = self.fixed_key(tools, system)
        if key not in self._fixed:
            self._fixed[key] = self.fixed(tools, system, self.counter.count)
        return self._fixed[key]

    def measure(self, history: Sequence[Message], tools: Sequence[ToolDefinition],
                system: str | None) -> int:
        """Tokens a request with all of ``history`` would take (for /tokens)."""
        return self._fixed_exact(tools, system) + sum(map(self.cost, history))

    # -- the hook

    def __call__(self, history: Sequence[Message], tools: Sequence[ToolDefinition],
                 system: str | None) -> tuple[Sequence[Message], list[str]]:
        if len(self._bounds) > 2 * len(history) + 64:  # /clear, /forget: forget what went
            self.forget(history)
        if self._fits_by_bytes(history, tools, system):
            self._left_out = []
            return history, []
        kept, left_out = self._decide_without_counting(history, tools, system) or \
            self._decide(history, self._fixed_exact(tools, system), self.cost)
        self._left_out = left_out
        notes: list[str] = []
        if left_out and not self.told:
            self.told = True
            how = "" if self.counter.exact else " (token counts for this model are estimates)"
            notes.append(f"the conversation no longer fits {self.model}'s context window "
                         f"({self.window:,} tokens, {self.reserve:,} kept for the reply): the "
                         f"oldest messages are left out of what is sent from now on{how}; "
                         "everything stays saved, and /tokens shows how much is left out")
        return kept, notes

    def _decide_without_counting(self, history: Sequence[Message],
                                 tools: Sequence[ToolDefinition], system: str | None
                                 ) -> tuple[list[Message], list[Message]] | None:
        """The fit, when the sizes already known (seeded from the store) decide it whatever
        the unknown messages' exact sizes are; None when something must be counted."""
        if self.counter.loaded or not self._costs:
            return None  # counting is cheap now (or nothing is known): just count
        fixed = self._fixed.get(self.fixed_key(tools, system))
        if fixed is None:
            return None

        def low(m: Message) -> int:
            known = self.known(m)
            return known if known is not None else _smallest(m)

        def high(m: Message) -> int:
            known = self.known(m)
            return known if known is not None else self.bound(m)

        try:
            lo = self._decide(history, fixed, low)
            hi = self._decide(history, fixed, high)
        except (_Undecided, AgentCliError):
            return None  # an error names exact sizes: count them
        if [id(m) for m in lo[0]] != [id(m) for m in hi[0]]:
            return None
        return hi

    def _decide(self, history: Sequence[Message], fixed: int, cost: Callable[[Message], int]
                ) -> tuple[list[Message], list[Message]]:
        """What is sent and what is left out, with message sizes from ``cost``."""
        last_user = max((i for i, m in enumerate(history) if m.role == "user"), default=0)
        current = list(history[last_user:])
        newest = fixed + (cost(current[0]) if current else 0)
        if newest > self.budget:
            if cost != self.cost:
                raise _Undecided  # the error names the exact size
            raise self._too_big(current[0] if current else None, fixed)
        whole = len(current)
        current = self._fit_current(current, fixed, cost)
        used = fixed + sum(map(cost, current))
        start = last_user
        older = _turn_starts(history[:last_user]) if len(current) == whole else []
        for turn_start in reversed(older):  # none when the newest turn itself lost rounds
            turn_cost = sum(map(cost, history[turn_start:start]))
            if used + turn_cost > self.budget:
                break
            used += turn_cost
            start = turn_start
        kept = [*history[start:last_user], *current]
        sent = {id(m) for m in current}
        left_out = [*history[:start], *(m for m in history[last_user:] if id(m) not in sent)]
        return kept, left_out

    def _fits_by_bytes(self, history: Sequence[Message], tools: Sequence[ToolDefinition],
                       system: str | None) -> bool:
        """It fits even if every byte were a token (newest first: a long history stops early)."""
        total = self.fixed(tools, system, utf8_len)
        for m in reversed(history):
            total += self.bound(m)
            if total > self.budget:
                return False
        return total <= self.budget

    def _fit_current(self, current: list[Message], fixed: int,
                     cost: Callable[[Message], int]) -> list[Message]:
        """The newest turn alone is too long (big tool results): leave out its oldest tool
        rounds, each call together with its result, keeping the user message and the newest."""
        units = _units(current[1:])
        used = fixed + cost(current[0]) + sum(cost(m) for u in units for m in u)
        while used > self.budget and len(units) > 1:
            used -= sum(map(cost, units.pop(0)))
        if used > self.budget:
            raise AgentCliError(
                f"the newest tool results ({used - fixed:,} tokens with your message) do not fit "
                f"{self.model}'s context window ({self.budget:,} tokens after keeping "
                f"{self.reserve:,} for the reply)",
                hint="ask for a smaller piece (e.g. a line range), or use a model with a larger "
                     "window (context_window in the provider profile)")
        return [current[0], *(m for u in units for m in u)]

    def _too_big(self, message: Message | None, fixed: int) -> UsageError:
        size = self.cost(message) if message is not None else 0
        approx = "" if self.counter.exact else "about "
        extra = f" plus {fixed:,} for the system prompt and tool definitions" if \
            fixed > 100 else ""
        return UsageError(
            f"the input is {approx}{size:,} tokens{extra}: more than {self.model}'s context "
            f"window allows ({self.window:,} tokens, {self.reserve:,} of them kept for the "
            "reply); nothing was sent",
            hint="send less (e.g. `head -c 100000`), or use a model with a larger window")


class _Undecided(Exception):
    """The bounds cannot decide without an exact count."""


def _spec(t: ToolDefinition) -> str:
    return json.dumps({"name": t.name, "description": t.description,
                       "parameters": t.parameters}, ensure_ascii=False)


def _smallest(message: Message) -> int:
    """The least ``ContextFitter._size`` can be for this message: every non-empty text is at
    least one token."""
    total = MESSAGE_OVERHEAD
    for p in message.parts:
        if isinstance(p, TextPart):
            total += 1 if p.text else 0
        elif isinstance(p, ToolCall):
            total += PART_OVERHEAD + (1 if p.name else 0) + (1 if p.arguments else 0)
        elif isinstance(p, ToolResult):
            total += PART_OVERHEAD + MESSAGE_OVERHEAD + (1 if p.content else 0)
    return total


def _turn_starts(history: Sequence[Message]) -> list[int]:
    """Where each turn of ``history`` begins (a user message; 0 for a leading fragment)."""
    starts = [i for i, m in enumerate(history) if m.role == "user"]
    if history and (not starts or starts[0] != 0):
        starts.insert(0, 0)
    return starts


def _units(messages: Sequence[Message]) -> list[list[Message]]:
    """Steps of one turn: an assistant message with its tool results, inseparable."""
    units: list[list[Message]] = []
    for m in messages:
        if m.role == "tool" and units:
            units[-1].append(m)
        else:
            units.append([m])
    return units


def make_fitter(settings: Settings, profile: ProviderProfile, model: str | None,
                counter: TokenCounter | None = None) -> ContextFitter | None:
    """The fitter for this model, or None when its window is unknown."""
    window = context_window(settings, profile, model)
    if not window:
        return None
    if counter is None:  # OpenAI's tokenizer only for OpenAI-type profiles; others estimate
        counter = TokenCounter(model if profile.type == "openai" else None)
    return ContextFitter(counter, window, reply_reserve(profile, window),
                         model=model or profile.name)


def describe_context(fitter: Any) -> str:
    """For /tokens: the window and what the last request left out."""
    if fitter is None:
        return ("context window: unknown for this model, so nothing is trimmed (set "
                "context_window in the provider profile)")
    text = (f"context window: {fitter.window:,} tokens ({fitter.reserve:,} kept for the reply; "
            f"counts {fitter.counter.label})")
    if fitter.left_out:
        text += (f"; the last request left out the {fitter.left_out:,} oldest messages "
                 f"(about {fitter.left_out_tokens:,} tokens)")
    return text
