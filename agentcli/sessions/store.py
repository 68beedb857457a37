"""The session store: every conversation, as it happens, in one SQLite file.

Crash safety: the file is in WAL mode with ``synchronous=NORMAL`` and every message is its own
transaction, so a process killed at any moment (kill -9 included) loses at most the message it
was writing and never damages earlier ones; only a power cut can roll back the last commits.
Writers take the write lock up front (``BEGIN IMMEDIATE``) and wait up to ``BUSY_TIMEOUT``
seconds for each other, so two agentcli processes writing at once lose nothing. The file (and
its -wal/-shm companions, which SQLite creates with the same mode) is 0600. ``schema_version``
lets later versions migrate. Full-text search is SQLite FTS5 (a plain scan where it is missing).
API keys never reach the store: it records the profile name and the model, not URLs or keys.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import SessionStoreError, UsageError
from ..messages import Message, Usage
from . import blobs, codec
from .db import FILE_NAME, SCHEMA_VERSION, connect, describe_failure

BUSY_TIMEOUT = 5.0
ID_CHARS = frozenset("0123456789abcdef")
TITLE_CHARS = 80

_USAGE = ", ".join(codec.USAGE_COLUMNS)
_USAGE_V1 = "input_tokens, output_tokens, requests, unreported, 0, 0, 0"  # a read-only old file


@dataclass(frozen=True)
class SessionInfo:
    id: str
    created: float
    updated: float
    provider: str | None
    model: str | None
    system: str | None
    role: str | None
    title: str
    turns: int
    messages: int
    usage: Usage
    state: dict[str, Any] = field(default_factory=dict)
    """What the conversation remembers beyond its messages (``Store.set_state``)."""

    @property
    def short_id(self) -> str:
        return self.id[:8]


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    turn: int
    message: Message
    created: float
    provider: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    usage: Usage | None = None
    verdicts: str | None = None
    piped: int | None = None
    dropped: bool = False


@dataclass(frozen=True)
class Header:
    """What a new session row starts with (written with its first message)."""

    provider: str | None
    model: str | None
    system: str | None
    role: str | None


def _info(row: tuple[Any, ...]) -> SessionInfo:
    return SessionInfo(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7] or "",
                       row[8], row[9], codec.usage_from(row[10:17]), _state(row[17]))


def _state(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}  # damaged: the conversation just forgets it
    return value if isinstance(value, dict) else {}


def new_id() -> str:
    return uuid.uuid4().hex


def store_path(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


class Store:
    """One connection to the store file. Methods raise ``sqlite3.Error`` (and ``OSError``);
    ``open_store`` turns failures to open into ``SessionStoreError``."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, fts: bool,
                 version: int = SCHEMA_VERSION, read_only: str | None = None) -> None:
        self.path = path
        self.conn = conn
        self.fts = fts
        self.read_only = read_only
        """Why a store opened for writing can only be read (``open_store``), else None."""
        self.version = version
        """Older than ``SCHEMA_VERSION`` only for a file opened read-only: reads then fill in
        what the old file has no column for."""
        usage = _USAGE if version >= 2 else _USAGE_V1
        self._session_columns = ("id, created, updated, provider, model, system, role, title, "
                                 f"turns, messages, {usage}, "
                                 f"{'state' if version >= 2 else 'NULL'}")
        self._usage = usage

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, with the lock taken up front (no upgrade deadlock)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- writes

    def append(self, session_id: str, message: Message, *, turn: int | None,
               header: Header | None = None, usage: Usage | None = None,
               stop_reason: str | None = None, verdicts: str | None = None,
               piped: int | None = None, provider: str | None = None,
               model: str | None = None, system: str | None = None,
               now: float | None = None) -> tuple[int, int]:
        """Store one message (creating its session with ``header`` when it is the first);
        returns (seq, turn). ``turn=None``: a user message starts the next turn, any other
        message belongs to the latest one."""
        now = time.time() if now is None else now
        text = codec.searchable(message)
        with self.write() as db:
            if header is not None:
                db.execute("INSERT OR IGNORE INTO sessions (id, created, updated, provider, "
                           "model, system, role) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (session_id, now, now, header.provider, header.model,
                            _opt(header.system), header.role))
            seq, last_turn = db.execute(
                "SELECT COALESCE(MAX(seq) + 1, 0), COALESCE(MAX(turn), 0) FROM messages "
                "WHERE session_id = ?", (session_id,)).fetchone()
            if turn is None:
                turn = last_turn + 1 if message.role == "user" else max(last_turn, 1)
            db.execute(
                "INSERT INTO messages (session_id, seq, turn, role, parts, text, interrupted, "
                f"piped, provider, model, stop_reason, {_USAGE}, verdicts, created) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (session_id, seq, turn, message.role, codec.encode_parts(message.parts), text,
                 int(message.interrupted), piped, provider, model, stop_reason,
                 *codec.usage_columns(usage), verdicts, now))
            blobs.keep(db, session_id, message)
            user = message.role == "user"
            db.execute(
                "UPDATE sessions SET updated = ?, messages = messages + 1, turns = turns + ?, "
                f"{_ADD_USAGE}, "
                "provider = COALESCE(?, provider), model = COALESCE(?, model), "
                "system = CASE WHEN ? THEN ? ELSE system END, "
                "title = CASE WHEN title = '' AND ? THEN ? ELSE title END WHERE id = ?",
                (now, int(user), *codec.usage_columns(usage or Usage()),
                 provider, model, int(user), _opt(system), int(user),
                 _title(message.text or " ".join(p.name for p in message.media), piped),
                 session_id))
        return seq, turn

    def end_turn(self, session_id: str, turn: int, stop_reason: str, steps: int,
                 usage: Usage, unrecorded: Usage, error: str | None = None) -> None:
        """The turn's outcome; ``unrecorded``: usage of requests that left no message."""
        with self.write() as db:
            db.execute("INSERT OR REPLACE INTO turns (session_id, turn, stop_reason, steps, "
                       f"{_USAGE}, error, ended) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (session_id, turn, stop_reason, steps, *codec.usage_columns(usage),
                        _opt(error), time.time()))
            if unrecorded.requests:
                db.execute(f"UPDATE sessions SET {_ADD_USAGE} WHERE id = ?",
                           (*codec.usage_columns(unrecorded), session_id))

    def set_state(self, session_id: str, changes: dict[str, Any]) -> None:
        """Merge ``changes`` into the session's ``state`` (a key set to None is removed)."""
        with self.write() as db:
            row = db.execute("SELECT state FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                return
            state = _state(row[0])
            state.update(changes)
            state = {k: v for k, v in state.items() if v is not None}
            db.execute("UPDATE sessions SET state = ? WHERE id = ?",
                       (json.dumps(state, separators=(",", ":")) if state else None,
                        session_id))

    def drop_from(self, session_id: str, seq: int) -> None:
        """/forget, /retry: messages from ``seq`` on leave the conversation (kept on record)."""
        with self.write() as db:
            db.execute("UPDATE messages SET dropped = 1 WHERE session_id = ? AND seq >= ?",
                       (session_id, seq))

    def save_token_counts(self, session_id: str, key: str, counts: dict[str, int]) -> None:
        """Keep exact token counts (``db._COUNTS`` says what the items are)."""
        with self.write() as db:
            db.executemany("INSERT OR REPLACE INTO token_counts (session_id, item, key, tokens) "
                           "VALUES (?, ?, ?, ?)",
                           [(session_id, item, key, n) for item, n in counts.items()])

    def delete(self, session_ids: list[str]) -> int:
        """Delete sessions and leave nothing of them in the file: freed pages are zeroed
        (secure_delete), the search index is rebuilt without them (FTS5 keeps deleted terms in
        old segments until a merge), and the WAL is checkpointed and truncated."""
        self.conn.execute("PRAGMA secure_delete = ON")
        with self.write() as db:
            n = 0
            for sid in session_ids:
                n += db.execute("DELETE FROM sessions WHERE id = ?", (sid,)).rowcount
            if n:
                blobs.prune(db)  # attachments no other session holds go with them
            if n and self.fts:
                db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
        if self.conn.execute("PRAGMA auto_vacuum").fetchone()[0]:
            self.conn.executescript("PRAGMA incremental_vacuum;")  # to the end, not one page
        else:  # a store made before auto_vacuum took effect: rebuild it once
            self.conn.execute("VACUUM")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n

    # -- reads

    def latest(self) -> SessionInfo | None:
        row = self.conn.execute(f"SELECT {self._session_columns} FROM sessions "
                                "ORDER BY updated DESC LIMIT 1").fetchone()
        return _info(row) if row else None

    def find(self, prefix: str) -> SessionInfo:
        """A session by id or unique id prefix; UsageError when there is none or several."""
        key = prefix.strip().lower()
        if not key or not set(key) <= ID_CHARS:
            raise UsageError(f"'{prefix}' is not a session id",
                             hint="ids are hex, e.g. 3f2a9c1d; see `agentcli sessions list`")
        rows = self.conn.execute(f"SELECT {self._session_columns} FROM sessions WHERE id >= ? AND "
                                 "id < ? ORDER BY updated DESC LIMIT 6",
                                 (key, key + "g")).fetchall()
        if not rows:
            raise UsageError(f"no session {prefix}",
                             hint="`agentcli sessions list` shows the saved ones")
        if len(rows) > 1 and rows[0][0] != key:
            ids = ", ".join(r[0][: max(len(key) + 2, 8)] for r in rows[:5])
            raise UsageError(f"'{prefix}' matches more than one session ({ids})",
                             hint="give more characters of the id")
        return _info(rows[0])

    def sessions(self, limit: int | None = None) -> list[SessionInfo]:
        sql = f"SELECT {self._session_columns} FROM sessions ORDER BY updated DESC"
        rows = self.conn.execute(sql + " LIMIT ?", (limit,)) if limit is not None else \
            self.conn.execute(sql)
        return [_info(r) for r in rows]

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]

    def older_than(self, cutoff: float) -> list[SessionInfo]:
        rows = self.conn.execute(f"SELECT {self._session_columns} FROM sessions WHERE updated < ? "
                                 "ORDER BY updated", (cutoff,))
        return [_info(r) for r in rows]

    def messages(self, session_id: str, *, include_dropped: bool = False) -> list[StoredMessage]:
        rows = self.conn.execute(
            "SELECT seq, turn, role, interrupted, created, provider, model, stop_reason, "
            "verdicts, piped, dropped, parts, " + self._usage + " "
            "FROM messages WHERE session_id = ? AND (? OR dropped = 0) ORDER BY seq",
            (session_id, int(include_dropped))).fetchall()
        # every row's parts in one JSON document: one C-speed parse instead of one per row
        all_parts = codec.decode_many("[" + ",".join(r[11] for r in rows) + "]")
        out = []
        for r, parts in zip(rows, all_parts):
            usage = codec.usage_from(r[12:19]) if r[14] is not None else None
            out.append(StoredMessage(r[0], r[1], Message(r[2], parts, interrupted=bool(r[3])),
                                     r[4], r[5], r[6], r[7], usage, r[8], r[9], bool(r[10])))
        return out

    def history(self, session_id: str) -> tuple[list[int], list[Message]]:
        """The conversation to continue (dropped messages left out): seqs and messages only."""
        rows = self.conn.execute("SELECT seq, role, interrupted, parts FROM messages WHERE "
                                 "session_id = ? AND dropped = 0 ORDER BY seq",
                                 (session_id,)).fetchall()
        all_parts = codec.decode_many("[" + ",".join(r[3] for r in rows) + "]")
        messages = [Message(r[1], parts, interrupted=bool(r[2]))
                    for r, parts in zip(rows, all_parts)]
        return [r[0] for r in rows], blobs.restore(self.conn, messages)

    def token_counts(self, session_id: str, key: str) -> dict[str, int]:
        """The counts kept for this session made with ``key`` (none in a store without them)."""
        try:
            rows = self.conn.execute("SELECT item, tokens FROM token_counts WHERE "
                                     "session_id = ? AND key = ?", (session_id, key)).fetchall()
        except sqlite3.OperationalError:  # an older store opened read-only: no such table
            return {}
        return dict(rows)

    def turns(self, session_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(f"SELECT turn, stop_reason, steps, error, ended, {self._usage} "
                                 "FROM turns WHERE session_id = ? ORDER BY turn", (session_id,))
        keys = ("turn", "stop_reason", "steps", "error", "ended", *codec.USAGE_COLUMNS)
        return [dict(zip(keys, r)) for r in rows]

    def search(self, text: str, limit: int) -> list[tuple[str, int, str, float, str]]:
        """(session id, seq, role, created, snippet with \\x01 \\x02 around each match)."""
        terms = text.split()
        if not terms:
            raise UsageError("nothing to search for", hint='agentcli sessions search "words"')
        if self.fts:
            query = " ".join('"' + t.replace('"', '""') + '"' for t in terms)
            return self.conn.execute(
                "SELECT m.session_id, m.seq, m.role, m.created, "
                "snippet(messages_fts, 0, char(1), char(2), '…', 16) "
                "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                "WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?", (query, limit)).fetchall()
        where = " AND ".join("instr(lower(text), ?) > 0" for _ in terms)
        rows = self.conn.execute(f"SELECT session_id, seq, role, created, text FROM messages "
                                 f"WHERE {where} ORDER BY created DESC LIMIT ?",
                                 (*[t.lower() for t in terms], limit)).fetchall()
        return [(r[0], r[1], r[2], r[3], _plain_snippet(r[4], terms[0])) for r in rows]

    def usage_by_model(self, session_id: str) -> dict[str, Usage]:
        sums = ", ".join(f"SUM({c})" for c in self._usage.split(", "))
        rows = self.conn.execute(
            f"SELECT COALESCE(model, ''), {sums} FROM messages WHERE session_id = ? AND "
            "requests IS NOT NULL GROUP BY 1", (session_id,))
        return {r[0]: codec.usage_from(r[1:]) for r in rows}


_ADD_USAGE = ", ".join(f"{c} = {c} + ?" for c in codec.USAGE_COLUMNS)


def _opt(text: str | None) -> str | None:
    return None if text is None else codec.clean(text)


def _title(text: str, piped: int | None) -> str:
    typed = text[: len(text) - piped] if piped and piped < len(text) else text
    if piped and piped >= len(text):
        typed = "(stdin) " + text
    one = " ".join(codec.clean(typed).split())
    return one if len(one) <= TITLE_CHARS else one[: TITLE_CHARS - 1] + "…"


def _plain_snippet(text: str, term: str) -> str:
    at = text.lower().find(term.lower())
    start = max(0, at - 60)
    return (("…" if start else "") + text[start:at] + "\x01" + text[at:at + len(term)] + "\x02"
            + text[at + len(term):at + len(term) + 60] + "…")


def open_store(data_dir: Path, *, create: bool, readonly: bool = False,
               timeout: float | None = None) -> Store | None:
    """The store in ``data_dir``; None when it does not exist and ``create`` is False.
    Raises SessionStoreError (one line: what and how to fix it) when it cannot be used.

    A store that cannot be written (a read-only mount, a file or folder without write
    permission) is opened read-only even when writing was asked for (``db.connect``): reading
    commands and resuming still work, ``Store.read_only`` says why (the caller warns once that
    nothing is being saved), and any write raises SQLite's "readonly" error."""
    path = store_path(data_dir)
    try:
        if not path.exists():
            if not create:
                return None
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    except OSError as e:
        raise SessionStoreError(describe_failure(e, path)) from e
    opened = connect(path, write=not readonly, timeout=BUSY_TIMEOUT if timeout is None else timeout)
    return Store(path, opened.conn, fts=opened.fts, version=opened.version,
                 read_only=opened.read_only)
