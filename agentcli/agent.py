"""The agent loop: history + provider stream + executor. Yields events; does no terminal I/O.

One ``run(user_message)``:
    append the user message -> provider.stream(history, tool definitions) -> forward TextDelta
    -> when the stream ends, append the assistant message -> for each tool call: yield
    ToolCallReady, executor.execute (approval happens in there), yield ToolResultReady -> append
    one tool message holding exactly one result per call id -> stream again, until the model
    stops calling tools or ``max_steps`` requests were made -> AgentDone.

History stays valid for both wire formats whatever happens: a reply cut short (Ctrl-C, dropped
stream, generator closed) is kept as an ``interrupted`` assistant message holding the text that
arrived, without its unanswered tool calls; calls cancelled during execution still get a result.
"""

from __future__ import annotations

from typing import Iterator, Protocol, Sequence

from .errors import ProviderError
from .messages import (AgentDone, AgentEvent, Message, Part, TextDelta, TextPart, ToolCall,
                       ToolCallReady, ToolDefinition, ToolResult, ToolResultReady, TurnDone, Usage)
from .providers.base import Provider


class Executor(Protocol):
    def definitions(self) -> Sequence[ToolDefinition]: ...

    def execute(self, call: ToolCall) -> ToolResult:
        """Validate, approve, run, cap: never raises (KeyboardInterrupt aside)."""
        ...


class Agent:
    def __init__(self, provider: Provider, executor: Executor, *, system: str | None = None,
                 max_steps: int = 10, history: list[Message] | None = None,
                 stream: bool = True) -> None:
        self.provider = provider
        self.executor = executor
        self.system = system
        self.max_steps = max_steps
        self.history: list[Message] = history if history is not None else []
        self.stream = stream
        self.usage = Usage()

    def run(self, user_message: Message) -> Iterator[AgentEvent]:
        self.history.append(user_message)
        usage = Usage()
        definitions = list(self.executor.definitions())
        steps = 0
        while True:
            if steps >= self.max_steps:
                yield AgentDone("max_steps", usage, steps)
                return
            steps += 1
            text: list[str] = []
            calls: list[ToolCall] = []
            finished = False
            try:
                for event in self.provider.stream(self.history, definitions, system=self.system,
                                                  stream=self.stream):
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                        yield event
                    elif isinstance(event, ToolCallReady):
                        calls.append(event.call)
                    elif isinstance(event, TurnDone):
                        usage += event.usage
                        self.usage += event.usage
                        yield event
                    else:  # pragma: no cover - a provider broke its contract
                        raise TypeError(f"unexpected provider event {event!r}")
                finished = True
            except KeyboardInterrupt:
                self._keep_partial(text)
                yield AgentDone("interrupted", usage, steps)
                return
            except ProviderError:
                self._keep_partial(text)
                raise
            finally:
                if not finished:  # GeneratorExit (consumer closed us) or any other escape
                    self._keep_partial(text)

            parts: list[Part] = [TextPart("".join(text))] if text else []
            parts.extend(calls)
            if parts:
                self.history.append(Message("assistant", tuple(parts)))
            if not calls:
                yield AgentDone("done", usage, steps)
                return

            results: list[ToolResult] = []
            try:
                for call in calls:
                    yield ToolCallReady(call)
                    result = self.executor.execute(call)
                    results.append(result)
                    yield ToolResultReady(result)
            except (KeyboardInterrupt, GeneratorExit) as e:
                self._cancel_rest(calls, results)
                if isinstance(e, GeneratorExit):
                    raise
                yield AgentDone("interrupted", usage, steps)
                return
            self.history.append(Message("tool", tuple(results)))

    def _keep_partial(self, text: list[str]) -> None:
        """Keep what arrived of a cut-short reply (never twice, never its tool calls)."""
        joined = "".join(text)
        if joined and not (self.history and self.history[-1].role == "assistant"):
            self.history.append(Message("assistant", (TextPart(joined),), interrupted=True))
        text.clear()

    def _cancel_rest(self, calls: list[ToolCall], results: list[ToolResult]) -> None:
        done = {r.call_id for r in results}
        for call in calls:
            if call.id not in done:
                results.append(ToolResult(call.id, call.name, "cancelled by the user (Ctrl-C)",
                                          is_error=True))
        self.history.append(Message("tool", tuple(results)))
