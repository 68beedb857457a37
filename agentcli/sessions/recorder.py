"""The session store as a renderer of the conversation's events.

``SessionRecorder`` listens to the conversation (``agent.conversation.Conversation``): every
``HistoryAppended`` is written as it arrives (its own transaction; a turn's prompt before its
first request, so a failed or killed turn still has its prompt on record), ``AgentDone`` closes
the turn with its stop reason, steps, usage and error, a truncation marks messages dropped, a
reset starts or adopts a session, the conversation's ``state`` is kept with the session, and a
file a tool call changed is kept as a checkpoint for /undo (``checkpoints.py``).
The recorder never raises into the turn: a store that is locked, read-only, full or damaged costs one warning line ("not saved: why"), never the reply, and
nothing more is written for that conversation (a hole in the middle would be worse).

``link(fitter)``: the exact token counts the context fitter makes are kept beside the messages
at the end of each turn, and given back to it when the conversation is resumed, so resuming a
long conversation needs no tokenizer (``context.py``).
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Sequence

from ..agent.conversation import (ConversationReset, HistoryTruncated, StateChanged,
                                  TurnStarted)
from ..errors import SessionStoreError, UsageError
from ..messages import AgentDone, FileChanged, HistoryAppended, Message, Usage
from . import codec
from .store import Header, SessionInfo, Store, describe_failure, open_store, store_path

_FAILURES = (sqlite3.Error, OSError, SessionStoreError, UnicodeError, ValueError)


@dataclass(frozen=True)
class Resumed:
    """A stored conversation, ready to continue: the history as it will be sent (repaired),
    each message's stored seq (None for a repair), and the usage per model so far."""

    info: SessionInfo
    history: list[Message]
    seqs: list[int | None]
    by_model: dict[str, Usage] = field(default_factory=dict)
    unanswered: tuple[str, ...] = ()
    """Prompts that never got a reply (agentcli was killed while the request ran): on record,
    not sent again."""


def load(store: Store, ref: str | None) -> Resumed:
    """The session ``ref`` (an id or unique prefix; None: the latest)."""
    if ref is not None and not ref.strip():
        raise UsageError("--session needs a session id",
                         hint="see `agentcli sessions list`; -c continues the latest")
    info = store.find(ref) if ref is not None else store.latest()
    if info is None:
        raise UsageError("there is no saved conversation to continue",
                         hint="conversations are saved as you have them (unless --no-save or "
                              "save: false); start one with `agentcli ask` or `agentcli chat`")
    stored_seqs, stored = store.history(info.id)
    history, origin = codec.repair(stored)
    seqs = [stored_seqs[i] if i is not None else None for i in origin]
    lost = tuple(stored[i].text for i in sorted(codec.unanswered(stored)))
    return Resumed(info, history, seqs, store.usage_by_model(info.id), lost)


def load_from(data_dir: Path, ref: str | None) -> Resumed:
    """``load`` from a store opened read-only just for it (``--no-save`` resumes)."""
    store = open_store(data_dir, create=False, readonly=True)
    if store is None:
        raise UsageError("there is no saved conversation to continue",
                         hint=f"nothing has been saved in {data_dir} yet")
    try:
        return load(store, ref)
    except sqlite3.Error as e:
        raise SessionStoreError(describe_failure(e, store.path)) from e
    finally:
        store.close()


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """A Ctrl-C during a write is held until it is committed (or not at all), so a message is
    never half recorded nor recorded twice. Only where Python's default handler is in place."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pending: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if pending:
        raise KeyboardInterrupt


class SessionRecorder:
    """Renders a ``Conversation``'s events into the store (``attach``). ``seqs`` follows the
    conversation's messages one for one: the stored sequence number of each (None for one that
    was not stored), so a truncation can mark exactly what left."""

    def __init__(self, data_dir: Path, warn: Callable[[str], None], *,
                 critical: Callable[[], ContextManager[Any]] = _sigint_deferred,
                 timeout: float | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.warn = warn
        self.critical = critical
        self.timeout = timeout
        self.session_id: str | None = None
        """The stored session the conversation is written to (None until its first message
        is stored)."""
        self.seqs: list[int | None] = []
        self.failed: str | None = None
        self._conversation: Any = None
        self._store: Store | None = None
        self._turn: int | None = None
        self._turn_stored = Usage()
        self._context = Header(None, None, None, None)
        self._piped: int | None = None
        self._state: dict[str, Any] = {}  # state changes not written yet (no session row)
        self._fitter: Any = None
        self._counted: set[str] = set()  # token_counts items stored (or loaded) for the session

    # -- the conversation this recorder writes

    def store(self, *, create: bool = True) -> Store | None:
        if self._store is None:
            self._store = open_store(self.data_dir, create=create, timeout=self.timeout)
        return self._store

    def load(self, ref: str | None) -> Resumed:
        """A stored conversation (``ref``: an id or unique prefix; None: the latest), from this
        recorder's store; continuing it is ``Conversation.replace`` (which tells us)."""
        try:
            store = self.store(create=False)
            if store is None:
                raise UsageError("there is no saved conversation to continue",
                                 hint=f"nothing has been saved in {self.data_dir} yet")
            return load(store, ref)
        except sqlite3.Error as e:
            raise SessionStoreError(describe_failure(e, store_path(self.data_dir))) from e

    @property
    def conversation(self) -> Any:
        """The conversation this recorder writes (``attach``), None before."""
        return self._conversation

    def attach(self, conversation: Any, resumed: Resumed | None = None) -> None:
        """Write ``conversation`` from now on (``resumed``: what it was loaded from)."""
        self._conversation = conversation
        conversation.subscribe(self.handle)
        if resumed is not None:
            self._adopt(resumed)

    def _adopt(self, resumed: Resumed) -> None:
        self.failed = None  # the store just opened and read fine: writing is tried again
        self.session_id = resumed.info.id
        self.seqs = list(resumed.seqs)
        self._state = {}
        self._turn = None
        self._seed()

    def _start_new(self) -> None:
        """The next message starts a new session (/new, /clear); a failed store is tried again."""
        self.session_id = None
        self.seqs = []
        self._state = {}
        self._counted = set()
        self._turn = None
        if self.failed:
            self.failed = None
            self.close()

    def link(self, fitter: Any) -> None:
        """Keep the exact token counts ``fitter`` (a ``ContextFitter``, or None) makes, and
        give it those already kept for this conversation."""
        self._fitter = fitter
        self._seed()

    def _messages(self) -> Sequence[Message]:
        return self._conversation.messages if self._conversation is not None else ()

    def _seed(self) -> None:
        self._counted = set()
        fitter = self._fitter
        if fitter is None or self.session_id is None or self._store is None:
            return  # (checked first: count_key resolves the model's tokenizer name)
        key = fitter.count_key
        if key is None:
            return
        try:
            counts = self._store.token_counts(self.session_id, key)
        except _FAILURES:
            return  # only a speed-up: counted again when needed
        for message, seq in zip(self._messages(), self.seqs):
            if seq is not None and f"m{seq}" in counts:
                fitter.seed(message, counts[f"m{seq}"])
        for item, n in counts.items():
            if item.startswith("f"):
                fitter.seed_fixed(item[1:], n)
        self._counted = set(counts)

    def _save_counts(self) -> None:
        fitter = self._fitter
        if fitter is None or not fitter.counted or self.failed is not None or \
                self.session_id is None:
            return
        key = fitter.count_key
        if key is None:
            return
        new = {f"f{k}": n for k, n in fitter.known_fixed().items()}
        # once the tokenizer is built, counting what is still unknown (the turn's last reply,
        # never part of a request yet) costs microseconds and spares the next run the build
        count_rest = fitter.counter.loaded
        for message, seq in zip(self._messages(), self.seqs):
            if seq is None or f"m{seq}" in self._counted:
                continue
            n = fitter.known(message)
            if n is None and count_rest:
                n = fitter.cost(message)
            if n is not None:
                new[f"m{seq}"] = n
        new = {item: n for item, n in new.items() if item not in self._counted}
        if not new:
            return
        try:
            store = self.store()
            assert store is not None
            with self.critical():
                store.save_token_counts(self.session_id, key, new)
            self._counted.update(new)
        except _FAILURES:
            pass  # only a speed-up: never a warning, never a reason to stop saving

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- rendering the conversation's events

    def handle(self, event: Any) -> None:
        if isinstance(event, HistoryAppended):
            self._appended(event)
        elif isinstance(event, TurnStarted):
            self._context = Header(event.provider, event.model, event.system, event.role)
            self._piped = event.piped
            self._turn = None
            self._turn_stored = Usage()
        elif isinstance(event, AgentDone):
            self._done(event)
        elif isinstance(event, HistoryTruncated):
            self._truncate(event.length)
        elif isinstance(event, ConversationReset):
            if event.resumed is None:
                self._start_new()
            else:
                self._adopt(event.resumed)
        elif isinstance(event, StateChanged):
            self._state.update(event.changes)
            self._write_state()
        elif isinstance(event, FileChanged):
            self._file_changed(event)

    def _file_changed(self, event: FileChanged) -> None:
        """A checkpoint for /undo: what the file held before the change."""
        if self.failed is not None or self.session_id is None:
            return
        from .checkpoints import record

        try:
            with self.critical():
                record(self.store(), self.session_id, event.change)
        except _FAILURES as e:
            self._fail(e)

    def _appended(self, event: HistoryAppended) -> None:
        message = event.message
        if event.usage is not None:
            self._turn_stored += event.usage
        if self.failed is not None:
            self.seqs.append(None)
            return
        ctx = self._context
        user = message.role == "user"
        header = None
        session_id = self.session_id
        if session_id is None:
            session_id, header = self._conversation.id, ctx
        try:
            with self.critical():  # a Ctrl-C waits for the bookkeeping too
                store = self.store()
                assert store is not None
                seq, turn = store.append(
                    session_id, message, turn=None if user else self._turn,
                    header=header, usage=event.usage, stop_reason=event.stop_reason,
                    verdicts=codec.verdicts_json(event.verdicts),
                    piped=self._piped if user else None, provider=ctx.provider,
                    model=ctx.model if event.usage is not None or user else None,
                    system=ctx.system)
                self.session_id = session_id
                self._turn = turn
                self.seqs.append(seq)
        except _FAILURES as e:
            self._fail(e)
            self.seqs.append(None)
            return
        if header is not None and self._state:
            self._write_state()

    def _write_state(self) -> None:
        if not self._state or self.failed is not None or self.session_id is None:
            return
        try:
            with self.critical():
                self.store().set_state(self.session_id, self._state)  # type: ignore[union-attr]
            self._state = {}
        except _FAILURES as e:
            self._fail(e)

    def _done(self, done: AgentDone) -> None:
        unrecorded = _minus(done.usage, self._turn_stored)
        if self.failed is None and self._turn is not None and self.session_id is not None:
            try:
                with self.critical():
                    self.store().end_turn(  # type: ignore[union-attr]
                        self.session_id, self._turn, done.stop_reason, done.steps, done.usage,
                        unrecorded, getattr(done.error, "message", None))
            except _FAILURES as e:
                self._fail(e)
        self._save_counts()
        self._turn_stored = Usage()

    def _truncate(self, length: int) -> None:
        """The conversation was cut to ``length`` messages: the rest is marked dropped in the
        store (kept on record, no longer part of the conversation)."""
        cut = [s for s in self.seqs[length:] if s is not None]
        self.seqs = self.seqs[:length]
        if not cut or self.failed is not None or self.session_id is None:
            return
        try:
            with self.critical():
                self.store().drop_from(self.session_id, min(cut))  # type: ignore[union-attr]
        except _FAILURES as e:
            self._fail(e)

    def _fail(self, e: BaseException) -> None:
        reason = e.message if isinstance(e, SessionStoreError) else \
            describe_failure(e, store_path(self.data_dir))
        self.failed = reason
        self.close()
        self.warn(f"not saved: {reason}; the rest of this conversation is not being saved")


def _minus(a: Usage, b: Usage) -> Usage:
    from dataclasses import astuple

    return Usage(*(max(0, x - y) for x, y in zip(astuple(a), astuple(b))))
