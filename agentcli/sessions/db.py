"""The store file's schema: tables, full-text index, pragmas, version and migrations, and one
line for people on why the file cannot be used, and opening the file (``connect``: read-write,
or read-only where it cannot be written). ``store`` opens the file through ``connect``."""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from ..errors import SessionStoreError

FILE_NAME = "sessions.db"
SCHEMA_VERSION = 2

_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version SELECT 2 WHERE NOT EXISTS (SELECT 1 FROM schema_version);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL,
    provider TEXT, model TEXT, system TEXT, role TEXT, title TEXT NOT NULL DEFAULT '',
    turns INTEGER NOT NULL DEFAULT 0, messages INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0, unreported INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0, cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0, state TEXT);
CREATE INDEX IF NOT EXISTS sessions_by_updated ON sessions (updated);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, turn INTEGER NOT NULL, role TEXT NOT NULL,
    parts TEXT NOT NULL, text TEXT NOT NULL,
    interrupted INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0,
    piped INTEGER, provider TEXT, model TEXT, stop_reason TEXT,
    input_tokens INTEGER, output_tokens INTEGER, requests INTEGER, unreported INTEGER,
    cached_tokens INTEGER, cache_write_tokens INTEGER, reasoning_tokens INTEGER,
    verdicts TEXT, created REAL NOT NULL,
    UNIQUE (session_id, seq));
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    turn INTEGER NOT NULL, stop_reason TEXT NOT NULL, steps INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    requests INTEGER NOT NULL, unreported INTEGER NOT NULL,
    error TEXT, ended REAL NOT NULL,
    cached_tokens INTEGER NOT NULL DEFAULT 0, cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, turn));
COMMIT;
"""
_FTS = """
BEGIN IMMEDIATE;
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts
    USING fts5 (text, content = 'messages', content_rowid = 'id');
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END;
COMMIT;
"""
_COUNTS = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS token_counts (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    item TEXT NOT NULL, key TEXT NOT NULL, tokens INTEGER NOT NULL,
    PRIMARY KEY (session_id, item, key)) WITHOUT ROWID;
COMMIT;
"""
"""Exact token counts made while fitting requests to the context window, kept so that resuming
a long conversation needs no tokenizer (``context.ContextFitter.seed``). ``item``: ``m<seq>``
for a message, ``f<digest>`` for a system prompt with tool definitions; ``key``: the tokenizer
and sizing version. A table added in place, without a schema version: an older agentcli
ignores it, and a store without it (opened read-only) simply has no counts."""
_CHANGES = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS file_changes (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    path TEXT NOT NULL, tool TEXT NOT NULL, call_id TEXT NOT NULL,
    before BLOB, after BLOB NOT NULL, created REAL NOT NULL, undone REAL);
CREATE INDEX IF NOT EXISTS file_changes_by_session ON file_changes (session_id, id);
COMMIT;
"""
"""The checkpoints of /undo: every file an approved ``edit``/``write`` changed, with what it
held before (``before``, zlib-compressed UTF-8; NULL: the file did not exist) and what was
written (``after``); ``undone``: when /undo restored it. Added in place like ``token_counts``
(no schema version); deleted with its session."""
_BLOBS = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY, media_type TEXT NOT NULL, size INTEGER NOT NULL,
    data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS session_blobs (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL, PRIMARY KEY (session_id, sha256)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS session_blobs_by_blob ON session_blobs (sha256);
COMMIT;
"""
"""Attachments (images, PDFs), once per content hash however many messages and sessions hold
them; ``session_blobs`` says which sessions use which, and a blob no session uses any more is
deleted with the last of them (``Store.delete``). Added in place like ``token_counts``: an
older agentcli ignores it, and a store without it (opened read-only) has no attachment bytes
(a resumed conversation then says they are gone)."""
MIGRATIONS: dict[int, str] = {
    2: """
ALTER TABLE sessions ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN state TEXT;
ALTER TABLE messages ADD COLUMN cached_tokens INTEGER;
ALTER TABLE messages ADD COLUMN cache_write_tokens INTEGER;
ALTER TABLE messages ADD COLUMN reasoning_tokens INTEGER;
ALTER TABLE turns ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE turns ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
""",
}
"""version -> the SQL that brings a store from version - 1 to it. 2: prompt-cache and
reasoning token counts, and a session's ``state`` (JSON: what a conversation remembers beyond
its messages, e.g. the OpenAI API it settled on)."""


def describe_failure(e: BaseException, path: Path) -> str:
    """One line on why the store failed, for people (with what to do where it is not obvious).
    SQLite reports a full disk as "disk I/O error" when the -shm file cannot grow
    (SQLITE_IOERR_SHMSIZE): an I/O error on a disk with no space left is called what it is."""
    name = getattr(e, "sqlite_errorname", "") or ""
    text = str(e).lower()
    err = getattr(e, "errno", None)
    readonly = "READONLY" in name or "readonly" in text or "read-only" in text or \
        err == errno.EROFS
    if "BUSY" in name or "LOCKED" in name or "locked" in text:
        return f"the session store is locked by another process ({path})"
    if "FULL" in name or "full" in text or err in (errno.ENOSPC, errno.EDQUOT) or \
            (("IOERR" in name or "disk i/o error" in text or readonly) and _no_space(path)):
        return f"the disk holding the session store is full ({path}): free some space"
    if readonly:
        return f"the session store is read-only ({path})"
    if "CORRUPT" in name or "NOTADB" in name or "not a database" in text or "malformed" in text:
        return (f"the session store is damaged ({path}); move it away and agentcli starts a "
                "new one")
    if err in (errno.EACCES, errno.EPERM) or (
            "CANTOPEN" in name and path.exists() and not os.access(path, os.R_OK)):
        return f"no permission to use the session store ({path}): check its owner and mode"
    if isinstance(e, OSError):
        return f"cannot use the session store {path}: {e.strerror or e}"
    return f"the session store failed ({path}): {e}"


LOW_SPACE = 1 << 20
"""Bytes free under which an I/O error is taken for a full disk (SQLite grows the -shm file
32 KiB at a time and writes pages of 4 KiB)."""


def _no_space(path: Path) -> bool:
    """Is the filesystem holding ``path`` (writable, not a read-only mount) out of space?"""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return not st.f_flag & os.ST_RDONLY and st.f_bavail * st.f_frsize < LOW_SPACE


@dataclass(frozen=True)
class Opened:
    conn: sqlite3.Connection
    fts: bool
    version: int
    read_only: str | None = None
    """Why a file opened for writing can only be read (read-only mount, no permission, full)."""


def connect(path: Path, *, write: bool, timeout: float) -> Opened:
    """Open the existing store file, prepared (``prepare``). ``write``: read and write where
    possible; where the file or its folder cannot be written (a read-only mount, whoever asks,
    root included), or the disk is full, read-only, with ``read_only`` saying why. Raises
    SessionStoreError (``describe_failure``) when it cannot even be read."""
    why = None
    if write:
        why = describe_failure(sqlite3.OperationalError("readonly"), path)
        if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
            try:
                return _connect(path, "mode=rw", timeout, readonly=False)
            except SessionStoreError as e:
                name = getattr(e.__cause__, "sqlite_errorname", "")
                if "READONLY" not in name and not _out_of_space(name, path):
                    raise
                why = e.message
    return replace(_open_readonly(path, timeout), read_only=why)


def _out_of_space(sqlite_errorname: str, path: Path) -> bool:
    return ("IOERR" in sqlite_errorname or "FULL" in sqlite_errorname) and _no_space(path)


def _open_readonly(path: Path, timeout: float) -> Opened:
    """Where the -shm file cannot be created (a read-only folder or mount, a full disk), SQLite
    opens a WAL file only as ``immutable``: exact for a store that was closed cleanly (its WAL
    checkpointed away); what a crash left in a -wal file without its -shm is not seen."""
    try:
        return _connect(path, "mode=ro", timeout, readonly=True)
    except SessionStoreError as e:
        name = getattr(e.__cause__, "sqlite_errorname", "")
        no_shm = ("CANTOPEN" in name or "READONLY" in name) and os.access(path, os.R_OK) and \
            not os.access(path.parent, os.W_OK)  # READONLY_DIRECTORY: not for a plain user
        if not no_shm and not _out_of_space(name, path):
            raise
    return _connect(path, "mode=ro&immutable=1", timeout, readonly=True)


def _connect(path: Path, params: str, timeout: float, *, readonly: bool) -> Opened:
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?{params}", uri=True, timeout=timeout,
                               isolation_level=None)
    except sqlite3.Error as e:
        raise SessionStoreError(describe_failure(e, path)) from e
    try:
        fts, version = prepare(conn, readonly)
    except BaseException as e:
        conn.close()
        if isinstance(e, (sqlite3.Error, OSError)):
            raise SessionStoreError(describe_failure(e, path)) from e
        raise
    return Opened(conn, fts, version)


def prepare(conn: sqlite3.Connection, readonly: bool) -> tuple[bool, int]:
    """Pragmas, schema and migrations; returns whether full-text search is available and the
    schema version the file is at (older than ``SCHEMA_VERSION`` only when read-only)."""
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not readonly:
        if "schema_version" not in tables:  # a new file: only possible before WAL is set
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        if "schema_version" not in tables:
            _script(conn, _SCHEMA)
        if "token_counts" not in tables:
            _script(conn, _COUNTS)
        if "file_changes" not in tables:
            _script(conn, _CHANGES)
        if "blobs" not in tables:
            _script(conn, _BLOBS)
        if "messages_fts" not in tables:
            try:
                _script(conn, _FTS)
            except sqlite3.OperationalError as e:
                if "fts5" not in str(e):
                    raise
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master "
                                             "WHERE type = 'table'")}
    if "schema_version" not in tables:  # read-only and never written: an empty store
        raise sqlite3.DatabaseError("file is not a database (no schema)")
    # an empty table (a creation cut short) is the first version: its schema is all there
    version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 1
    if version > SCHEMA_VERSION:
        raise SessionStoreError(f"the session store was written by a newer agentcli (schema "
                                f"{version}, this one knows {SCHEMA_VERSION})",
                                hint="upgrade agentcli")
    if version < SCHEMA_VERSION and not readonly:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            _migrate(conn, target)
        version = SCHEMA_VERSION
    return "messages_fts" in tables, version


def _migrate(conn: sqlite3.Connection, target: int) -> None:
    """One migration in one transaction. A column that is already there (a store whose creation
    was cut short before its version was written) is not an error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in MIGRATIONS[target].split(";"):
            if statement.strip():
                try:
                    conn.execute(statement)
                except sqlite3.OperationalError as e:
                    if "duplicate column" not in str(e):
                        raise
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version VALUES (?)", (target,))
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _script(conn: sqlite3.Connection, sql: str) -> None:
    try:
        conn.executescript(sql)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
