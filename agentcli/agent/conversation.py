"""The conversation: the one owner of its messages, system prompt, role, usage totals and the
little it remembers beyond them (``state``).

Nothing else edits this state. The agent appends what a turn produced; the REPL's commands call
``truncate`` (/retry, /forget), ``clear`` (/new, /clear) and ``replace`` (/resume); ``/tokens``
reads ``usage``, ``by_model``, ``last_request`` and ``last_turn``. Listeners (the session
recorder) get an event for every change, in order, and only render them:

- ``TurnStarted``: who answers the next turn (provider, model) and the piped share of its
  prompt;
- ``HistoryAppended`` (``messages.py``): a message joined the conversation;
- ``HistoryTruncated``: messages from ``length`` on left it (kept on record by the store);
- ``ConversationReset``: a new conversation (``resumed`` None) or a stored one took its place;
- ``StateChanged``: something to remember with the conversation (e.g. the OpenAI API it
  settled on, that the context-window notice was given);
- ``FileChanged`` (``messages.py``): a tool call changed a file (the store keeps what it held,
  for /undo);
- ``AgentDone`` (``messages.py``): how a turn ended.

``id`` is the conversation's id: the session id in the store, and the key of the providers'
prompt caches. A new conversation gets a fresh one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..messages import AgentDone, FileChange, FileChanged, HistoryAppended, Message, Usage


@dataclass(frozen=True)
class TurnStarted:
    provider: str | None
    model: str | None
    system: str | None
    role: str | None
    piped: int | None = None
    """How many characters at the end of the turn's user message came from stdin."""
    kind: str = "turn_started"


@dataclass(frozen=True)
class HistoryTruncated:
    length: int
    kind: str = "history_truncated"


@dataclass(frozen=True)
class ConversationReset:
    resumed: Any = None
    """A ``sessions.recorder.Resumed`` for /resume; None for a new, empty conversation."""
    kind: str = "conversation_reset"


@dataclass(frozen=True)
class StateChanged:
    changes: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "state_changed"


Listener = Callable[[Any], None]


def new_id() -> str:
    return uuid.uuid4().hex


class Conversation:
    def __init__(self, messages: Sequence[Message] = (), *, system: str | None = None,
                 role: str | None = None, id: str | None = None,  # noqa: A002 - the session id
                 usage: Usage | None = None, by_model: Mapping[str, Usage] | None = None,
                 state: Mapping[str, Any] | None = None) -> None:
        self.id = id or new_id()
        self.system = system
        self.role = role
        self.instructions: str | None = None
        """The project instructions (AGENTS.md, AGENTCLI.md) of the working folder: sent after
        the system prompt (``prompt``), never stored with the conversation (each run reads
        them again), kept across /new, /clear and /resume."""
        self._messages: list[Message] = list(messages)
        self._view: tuple[Message, ...] | None = None
        self.usage = usage or Usage()
        """Every request of this conversation, earlier runs included."""
        self.by_model: dict[str, Usage] = dict(by_model or {})
        self.state: dict[str, Any] = dict(state or {})
        self.last_request: Usage | None = None
        """The latest request's usage (its input is about the size of the context)."""
        self.last_turn: Usage | None = None
        self._model: str | None = None
        self._listeners: list[Listener] = []

    # -- reading

    @property
    def messages(self) -> tuple[Message, ...]:
        if self._view is None:
            self._view = tuple(self._messages)
        return self._view

    @property
    def prompt(self) -> str | None:
        """What each request sends as the system prompt: the system prompt, then the project
        instructions."""
        parts = [p for p in (self.system, self.instructions) if p]
        return "\n\n".join(parts) if parts else None

    def __len__(self) -> int:
        return len(self._messages)

    def last_user_index(self) -> int | None:
        for i in range(len(self._messages) - 1, -1, -1):
            if self._messages[i].role == "user":
                return i
        return None

    # -- listeners

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, event: Any) -> None:
        for listener in self._listeners:
            listener(event)

    # -- a turn (the agent)

    def begin_turn(self, provider: str | None, model: str | None,
                   piped: int | None = None) -> None:
        self._model = model
        self._emit(TurnStarted(provider, model, self.system, self.role, piped))

    def append(self, message: Message, *, usage: Usage | None = None,
               stop_reason: str | None = None, verdicts: tuple[Any, ...] = ()
               ) -> HistoryAppended:
        self._messages.append(message)
        self._view = None
        event = HistoryAppended(message, usage, stop_reason, verdicts)
        self._emit(event)
        return event

    def file_changed(self, change: FileChange) -> FileChanged:
        """A tool call of this turn changed a file."""
        event = FileChanged(change)
        self._emit(event)
        return event

    def files_seen(self) -> dict[str, str]:
        """Real path -> SHA-256 of the version of each file the model last read or wrote, from
        the tool results in the conversation (what left it with /forget or /retry no longer
        counts; a resumed conversation has its own)."""
        seen: dict[str, str] = {}
        for message in self._messages:
            if message.role == "tool":
                for result in message.tool_results:
                    seen.update((f.path, f.sha256) for f in result.files)
        return seen

    def count(self, usage: Usage) -> None:
        """One request's usage (``Usage.unknown()`` for one that failed or reported none)."""
        if not usage.requests:
            return
        self.usage += usage
        model = self._model or ""
        self.by_model[model] = self.by_model.get(model, Usage()) + usage
        if usage.known and usage.input_tokens:
            self.last_request = usage

    def end_turn(self, done: AgentDone) -> None:
        self.last_turn = done.usage
        self._emit(done)

    # -- the user's commands

    def truncate(self, length: int) -> list[Message]:
        """Messages from ``length`` on leave the conversation; returns them."""
        dropped = self._messages[length:]
        if dropped:
            del self._messages[length:]
            self._view = None
            self._emit(HistoryTruncated(length))
        return dropped

    def clear(self) -> int:
        """A new, empty conversation (new id, totals from zero; system prompt and role kept).
        Returns how many messages left."""
        n = len(self._messages)
        self.id = new_id()
        self._messages = []
        self._view = None
        self.usage, self.by_model, self.state = Usage(), {}, {}
        self.last_request = self.last_turn = None
        self._emit(ConversationReset(None))
        return n

    def replace(self, resumed: Any) -> None:
        """A stored conversation (``sessions.recorder.Resumed``) takes this one's place."""
        info = resumed.info
        self.id = info.id
        self._messages = list(resumed.history)
        self._view = None
        self.system, self.role = info.system, info.role
        self.usage, self.by_model = info.usage, dict(resumed.by_model)
        self.state = dict(info.state)
        self.last_request = self.last_turn = None
        self._emit(ConversationReset(resumed))

    def remember(self, **changes: Any) -> None:
        """Keep something with the conversation (a value of None forgets the key)."""
        changed = {k: v for k, v in changes.items() if self.state.get(k) != v}
        if not changed:
            return
        for key, value in changed.items():
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value
        self._emit(StateChanged(changed))

    @classmethod
    def resumed(cls, resumed: Any) -> Conversation:
        conversation = cls()
        conversation.replace(resumed)
        return conversation
