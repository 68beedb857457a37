"""The agent loop, and the one owner of a turn's state. Yields events; does no terminal I/O.

One ``run(user_message)``:
    provider.stream(history + the user message, tool definitions) -> forward TextDelta -> the
    provider's ResponseDone carries the assembled assistant message and its stop reason -> the
    agent commits it to history -> for each tool call: ToolCallReady, executor.execute
    (approval happens in there), ToolResultReady -> one tool message holding exactly one result
    per call id -> stream again, until the model stops calling tools or ``max_steps`` requests
    were made -> AgentDone, which says what the turn became.

Renderers (``ask``, ``--json``, the REPL, the session store) only render these events: none of
them counts history entries or re-assembles text. ``HistoryAppended`` is emitted for every message
that becomes part of the conversation, in order.

History stays valid for both wire formats whatever happens:
- a reply cut short (Ctrl-C, a dropped stream, the generator closed) is kept as an
  ``interrupted`` assistant message holding the text that arrived, without tool calls;
- calls cut off by Ctrl-C while tools run still get a "cancelled" result;
- a user message that got nothing back (no text, no completed step) leaves the history
  (``AgentDone.user_dropped``), so two user messages never follow each other;
- tool call ids are unique in the conversation: a server that numbers calls from 0 in every
  response, or repeats an id inside one response, gets its ids renamed (identical duplicates in
  one response run once, and the user is told).

Ctrl-C: a KeyboardInterrupt raised inside the provider or a tool, or thrown into the generator
at a ``yield`` by the consumer (``drive`` does that), ends the turn as ``interrupted``.
"""

from __future__ import annotations

import uuid
from contextlib import closing
from dataclasses import replace
from typing import Any, Callable, Generator, Iterator, Mapping, Protocol, Sequence

from ..errors import AgentCliError, ProviderError
from ..messages import (AgentDone, AgentEvent, CallRecord, HistoryAppended, Message, Notice,
                        Part, ReasoningDelta, ReasoningPart, ResponseDone, TextDelta,
                        TextPart, ToolCall,
                        ToolCallReady, ToolDefinition, ToolResult, ToolResultReady,
                        TurnStopReason, Usage)
from ..providers.base import Provider
from .conversation import Conversation

CANCELLED = "cancelled by the user (Ctrl-C); the tool did not finish"
NOT_RUN_MAX_COST = "not run: the run reached its spending limit (--max-cost)"


class Outcome(Protocol):
    result: ToolResult
    verdict: Any
    change: Any  # a FileChange when the call changed a file, else None


class Executor(Protocol):
    def definitions(self) -> Sequence[ToolDefinition]: ...

    def execute(self, call: ToolCall, seen: Mapping[str, str] | None = None) -> Outcome:
        """Validate, approve, run, cap: never raises (KeyboardInterrupt aside). ``seen``: the
        version of each file the model last read or wrote (real path -> SHA-256)."""
        ...


Prepare = Callable[[Sequence[Message], Sequence[ToolDefinition], "str | None"],
                   "tuple[Sequence[Message], Sequence[str]]"]
"""Shapes what one request sends (e.g. trims history to the context window): gets the history,
the tool definitions and the system prompt; returns the messages to send and notices for the
user. May raise AgentCliError (e.g. an input that can never fit) before any request."""


class Agent:
    """Runs turns of one conversation (``conversation.Conversation``, which owns the history,
    the system prompt and the usage totals) with one provider and one executor."""

    def __init__(self, provider: Provider, executor: Executor, *,
                 conversation: Conversation | None = None, system: str | None = None,
                 history: Sequence[Message] | None = None, max_steps: int = 10,
                 stream: bool = True, prepare: Prepare | None = None,
                 limit: Any = None, structured: Any = None) -> None:
        self.provider = provider
        self.executor = executor
        self.conversation = conversation if conversation is not None else \
            Conversation(history or (), system=system)
        self.max_steps = max_steps
        self.stream = stream
        self.prepare = prepare
        self.limit = limit
        """A spending limit (``pricing.CostLimit``): ``before(input_tokens)`` and
        ``after(usage)`` return a line when the run must stop, None otherwise."""
        self.structured = structured
        """``--schema`` (``structured.StructuredOutput``): its ``format`` goes with every
        request, and the answer that ends the turn must pass its ``check`` (sent back once)."""
        self.reasoning_noted: set[tuple[str | None, str | None]] = set()

    @property
    def history(self) -> tuple[Message, ...]:
        """The conversation's messages (read-only: the conversation's methods change them)."""
        return self.conversation.messages

    @property
    def system(self) -> str | None:
        return self.conversation.system

    @property
    def usage(self) -> Usage:
        return self.conversation.usage

    def run(self, user_message: Message, *,
            piped: int | None = None) -> Generator[AgentEvent, None, None]:
        """One turn. ``piped``: how many characters at the end of the message came from
        stdin (kept with the message by the session store)."""
        turn = _Turn(self, user_message, piped)
        try:
            yield from turn.steps()
        except KeyboardInterrupt:
            turn.stop = "interrupted"
        except AgentCliError as e:
            turn.stop, turn.error = "error", e
        except BaseException:  # GeneratorExit (consumer closed us) or a bug: history stays valid
            turn.finish()
            raise
        for event in turn.finish():
            try:
                yield event
            except KeyboardInterrupt:  # a second Ctrl-C while the turn is being closed
                pass
        done = turn.done()
        self.conversation.end_turn(done)
        yield done


class _Turn:
    """The state of one ``Agent.run``; only the agent reads or writes it."""

    def __init__(self, agent: Agent, user_message: Message, piped: int | None) -> None:
        self.agent = agent
        conversation = self.conv = agent.conversation
        provider = agent.provider
        conversation.begin_turn(getattr(provider, "name", None),
                                getattr(provider, "model", None), piped)
        self.start = len(conversation)
        self.user = user_message
        self.committed = False  # the user message is in the conversation (and the store)
        self.replied = False  # some assistant message of this turn is in the conversation
        self.usage = Usage()
        self.steps_made = 0
        self.texts: list[str] = []
        self.reasoning: list[str] = []
        self.partial: list[str] = []  # deltas of the response in flight
        self.records: list[CallRecord] = []
        self.pending: list[ToolCall] = []  # calls in history still waiting for their results
        self.results: list[ToolResult] = []
        self.verdicts: list[Any] = []
        self.stop: TurnStopReason | None = None
        self.error: AgentCliError | None = None
        self.partial_kept = False
        self.user_dropped = False
        self.output: Any = None  # --schema: the check of the final answer
        self.schema_retries = 1
        self._finished = False
        self._used_ids = {c.id for m in conversation.messages for c in m.tool_calls}

    # -- the loop

    def steps(self) -> Iterator[AgentEvent]:
        agent, conv = self.agent, self.conv
        definitions = list(agent.executor.definitions())
        while True:
            if self.steps_made >= agent.max_steps:
                self.stop = "max_steps"
                return
            send: Sequence[Message] = conv.messages if self.committed else \
                (*conv.messages, self.user)
            if agent.prepare is not None:  # may refuse an input that can never fit: then the
                send, notes = agent.prepare(send, definitions, conv.prompt)  # message never
                for note in notes:  # joins the conversation
                    yield Notice(note)
                if notes:  # said once per conversation, not once per run (ask -c)
                    conv.remember(context_notice=getattr(agent.prepare, "notice_key", True))
            if not self.committed:  # saved before the request: a failed or killed turn still
                self.committed = True  # has its prompt on record
                yield conv.append(self.user)
            send = yield from self._own_reasoning(send)
            if agent.limit is not None:  # --max-cost: not a request whose input alone crosses it
                over = agent.limit.before(_input_tokens(agent.prepare, send, definitions,
                                                        conv.system))
                if over:
                    yield Notice(over)
                    self.stop = "max_cost"
                    return
            self.steps_made += 1
            done = yield from self._request(send, definitions)
            over = agent.limit.after(done.usage) if agent.limit is not None else None
            calls = done.message.tool_calls
            if done.stop_reason == "max_tokens" and calls:
                yield Notice(f"the reply hit the token limit while asking for {len(calls)} tool "
                             "call(s); they were not run")
                calls = ()
            kept = yield from self._unique(calls)
            calls = tuple(c for c in kept if c is not None)
            message = Message("assistant", _with_calls(done.message.parts, kept))
            self.partial.clear()  # from here on the response is in history, not in flight
            if message.text:
                self.texts.append(message.text)
            self.reasoning.extend(p.text for p in message.reasoning if p.text)
            if message.parts:
                self.replied = True
                yield conv.append(message, usage=done.usage, stop_reason=done.stop_reason)
            if over:  # the spend crossed --max-cost: no tool runs, no further request
                yield Notice(over)
                self.stop = "max_cost"
                if calls:
                    yield from self._run_tools(calls, NOT_RUN_MAX_COST)
                return
            if not calls:
                self.stop = "end_turn" if done.stop_reason == "tool_calls" else done.stop_reason
                if self.stop == "end_turn" and agent.structured is not None and \
                        (yield from self._send_back(message)):
                    continue  # the invalid answer went back with its errors: ask again
                return
            yield from self._run_tools(calls)

    def _send_back(self, answer: Message) -> Generator[AgentEvent, None, bool]:
        """--schema: check the answer that ends the turn. Invalid: send it back once with the
        errors (True: ask again), then end the turn as ``schema``."""
        self.output = outcome = self.agent.structured.check(answer.text)
        if outcome.valid:
            return False
        if self.schema_retries <= 0:
            self.stop = "schema"
            return False
        self.schema_retries -= 1
        n = outcome.total
        yield Notice(f"the reply does not match the schema ({n} error{'s' if n != 1 else ''}): "
                     "sent back once with the errors", level="info")
        yield self.conv.append(Message.user(outcome.feedback()))
        return True

    def _count(self, usage: Usage) -> None:
        self.usage += usage
        self.conv.count(usage)

    def _own_reasoning(self, send: Sequence[Message]
                       ) -> Generator[AgentEvent, None, Sequence[Message]]:
        """What goes to the provider keeps only the reasoning it can read back: its own wire
        format and model (``providers.base``); the rest is left out of the request (history
        keeps it), said once per provider and model."""
        provider = self.agent.provider
        wire, model = getattr(provider, "wire", None), getattr(provider, "model", None)
        out: list[Message] = []
        dropped = 0
        for m in send:
            if m.role == "assistant" and m.reasoning:
                kept = tuple(p for p in m.parts if not isinstance(p, ReasoningPart)
                             or (p.provider == wire and p.model == model))
                if len(kept) != len(m.parts):
                    dropped += len(m.parts) - len(kept)
                    m = replace(m, parts=kept)
            out.append(m)
        if not dropped:
            return send
        if (wire, model) not in self.agent.reasoning_noted:
            self.agent.reasoning_noted.add((wire, model))
            yield Notice(f"{dropped} reasoning item{'s' if dropped != 1 else ''} from another "
                         f"provider or model left out of the request ({model} cannot read "
                         "them); the conversation keeps them", level="info")
        return out

    def _request(self, send: Sequence[Message],
                 definitions: list[ToolDefinition]) -> Generator[AgentEvent, None, ResponseDone]:
        agent, provider = self.agent, self.agent.provider
        done: ResponseDone | None = None
        provider.cache_key = self.conv.id  # the providers' prompt caches key on it
        try:
            extra = {"output": agent.structured.format} if agent.structured is not None \
                else {}  # (a provider without structured output never gets the keyword)
            stream = provider.stream(send, definitions, system=self.conv.prompt,
                                     stream=agent.stream, **extra)
            with closing(stream):  # an early exit (Ctrl-C, close) closes the HTTP response
                for event in stream:
                    if isinstance(event, TextDelta):
                        if event.text:
                            self.partial.append(event.text)
                            yield event
                    elif isinstance(event, ReasoningDelta):
                        if event.text:
                            yield event
                    elif isinstance(event, Notice):  # e.g. "retried on the Responses API"
                        yield event
                    elif isinstance(event, ResponseDone):
                        done = event
                    else:  # a provider broke its contract
                        raise TypeError(f"unexpected provider event {event!r}")
            if done is None:
                raise ProviderError(f"the provider '{provider.name}' ended its reply without "
                                    "a result (this is a bug in the provider adapter)")
        except (AgentCliError, KeyboardInterrupt):
            self._count(Usage.unknown())  # a request was made: what it cost is not known
            raise
        self._count(done.usage)
        self.conv.remember(wire=getattr(provider, "wire", None))  # e.g. moved to Responses
        yield done  # renderers may show per-request usage; the agent alone acts on it
        return done

    def _unique(self, calls: Sequence[ToolCall]
                ) -> Generator[AgentEvent, None, list[ToolCall | None]]:
        """Ids unique in the conversation; identical duplicates in one response run once.
        Returns one entry per call: the call as it will run (maybe renamed), or None when it
        does not run (a duplicate)."""
        out: list[ToolCall | None] = []
        in_reply: dict[str, ToolCall] = {}
        for call in calls:
            first = in_reply.get(call.id) if call.id else None
            if first is not None:
                if first.name == call.name and _same_arguments(first, call):
                    yield Notice(f"the model sent tool call {call.id} ({call.name}) twice in one "
                                 "reply; it runs once")
                    out.append(None)
                    continue
                renamed = replace(call, id=self._fresh(call.id))
                yield Notice(f"the model gave two different tool calls the id {call.id}; the "
                             f"second ({call.name}) is now {renamed.id}")
            elif not call.id or call.id in self._used_ids:
                renamed = replace(call, id=self._fresh(call.id))  # reused across steps: common
            else:
                renamed = call
            if call.id:
                in_reply.setdefault(call.id, call)
            self._used_ids.add(renamed.id)
            out.append(renamed)
        return out

    def _fresh(self, base: str) -> str:
        if not base:
            base = f"call_{uuid.uuid4().hex[:12]}"
            if base not in self._used_ids:
                return base
        n = 2
        while f"{base}_{n}" in self._used_ids:
            n += 1
        return f"{base}_{n}"

    def _run_tools(self, calls: Sequence[ToolCall],
                   refused: str | None = None) -> Iterator[AgentEvent]:
        """Run each call (``refused``: answer each with that error instead, running none)."""
        agent = self.agent
        self.pending = list(calls)
        self.results, self.verdicts = [], []
        for call in calls:
            if refused is not None:
                result = ToolResult(call.id, call.name, refused, is_error=True)
                self._answered(call, result, None)
                yield ToolResultReady(result)
                continue
            yield ToolCallReady(call)
            outcome = agent.executor.execute(call, seen=self.files_seen())
            self._answered(call, outcome.result, outcome.verdict)
            yield ToolResultReady(outcome.result, outcome.verdict)
            change = getattr(outcome, "change", None)
            if change is not None:  # the session store keeps what the file held, for /undo
                yield self.conv.file_changed(change)
        yield self._close_tools()

    def files_seen(self) -> dict[str, str]:
        """The version of each file the model knows: the conversation's, then this step's
        results (not in the conversation until every call of the step has answered)."""
        seen = self.conv.files_seen()
        for result in self.results:
            seen.update((f.path, f.sha256) for f in result.files)
        return seen

    def _answered(self, call: ToolCall, result: ToolResult, verdict: Any) -> None:
        if result.call_id != call.id:  # the id may have been renamed after the call was made
            result = replace(result, call_id=call.id)
        self.results.append(result)
        self.verdicts.append(verdict)
        self.records.append(CallRecord(call, result, verdict))

    def _close_tools(self) -> HistoryAppended:
        event = self.conv.append(Message("tool", tuple(self.results)),
                                 verdicts=tuple(self.verdicts))
        self.pending = []
        return event

    # -- the end of the turn

    def finish(self) -> list[AgentEvent]:
        """Leave history valid and say how; idempotent. Returns the events to emit."""
        if self._finished:
            return []
        self._finished = True
        events: list[AgentEvent] = []
        if self.pending:  # Ctrl-C while tools ran: every call still gets exactly one result
            answered = {r.call_id for r in self.results}
            for call in self.pending:
                if call.id not in answered:
                    result = ToolResult(call.id, call.name, CANCELLED, is_error=True)
                    self._answered(call, result, None)
                    events.append(ToolResultReady(result))
            events.append(self._close_tools())
        partial = "".join(self.partial)
        self.partial.clear()
        if partial:
            message = Message("assistant", (TextPart(partial),), interrupted=True)
            events.append(self.conv.append(message, stop_reason="interrupted"))
            self.texts.append(partial)
            self.partial_kept = self.replied = True
        if not self.replied:  # nothing came back: the message leaves the conversation (the
            self.conv.truncate(self.start)  # store keeps it, marked, beside the turn's end)
            self.user_dropped = True
        return events

    def done(self) -> AgentDone:
        text = ""
        for piece in self.texts:
            if text and not text.endswith("\n"):
                text += "\n"
            text += piece
        return AgentDone(self.stop or "error", self.usage, self.steps_made, text,
                         tuple(self.records), self.partial_kept, self.user_dropped, self.error,
                         "\n\n".join(self.reasoning), self.output)


def _input_tokens(prepare: Any, send: Sequence[Message], tools: Sequence[ToolDefinition],
                  system: str | None) -> int:
    """The request's input in tokens: the context fitter's count when there is one (exact for
    OpenAI models), else the labelled estimate (one token per three bytes: it errs high)."""
    if hasattr(prepare, "measure"):
        return prepare.measure(send, tools, system)
    from .context import ContextFitter
    from .tokens import TokenCounter

    return ContextFitter(TokenCounter(None), 1, 0).measure(send, tools, system)


def _with_calls(parts: Sequence[Part], calls: Sequence[ToolCall | None]) -> tuple[Part, ...]:
    """The reply's parts in the order the provider sent them (reasoning stays where it was),
    each tool call replaced by the call that runs (renamed, or left out: ``calls`` holds one
    entry per ToolCall of ``parts``, None for one that does not run)."""
    out: list[Part] = []
    it = iter(calls)
    for part in parts:
        if isinstance(part, ToolCall):
            call = next(it, None)
            if call is not None:
                out.append(call)
        else:
            out.append(part)
    out.extend(c for c in it if c is not None)  # calls beyond the parts (none in practice)
    return tuple(out)


def _same_arguments(a: ToolCall, b: ToolCall) -> bool:
    if a.arguments == b.arguments:
        return True
    try:
        return a.parsed_arguments() == b.parsed_arguments()
    except ValueError:
        return False


def drive(events: Generator[AgentEvent, None, None],
          handle: Callable[[AgentEvent], None]) -> AgentDone:
    """Feed every event of ``Agent.run`` to ``handle`` and return the AgentDone.

    A Ctrl-C that lands in ``handle`` (while a renderer draws) is thrown into the agent, which
    ends the turn as interrupted exactly as if it had landed in the provider or a tool; the
    events that close the turn are still rendered."""
    try:
        return _drive(events, handle)
    except BaseException:
        events.close()  # whatever escaped, the agent still leaves history valid
        raise


def _drive(events: Generator[AgentEvent, None, None],
           handle: Callable[[AgentEvent], None]) -> AgentDone:
    pending: KeyboardInterrupt | None = None
    while True:
        try:
            event = events.throw(pending) if pending is not None else next(events)
        except StopIteration:  # pragma: no cover - Agent.run always ends with AgentDone
            raise RuntimeError("the agent ended without AgentDone") from None
        pending = None
        try:
            handle(event)
        except KeyboardInterrupt as e:
            if isinstance(event, AgentDone):
                raise
            pending = e
        if isinstance(event, AgentDone):
            events.close()
            return event
