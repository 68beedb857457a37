"""Attachments in the session store: their bytes once per content hash (the ``blobs`` table,
``db._BLOBS``), which sessions use them (``session_blobs``), and putting them back into a
conversation that is resumed, so its requests carry the same bytes as before."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any, Sequence

from ..messages import MediaPart, Message, TextPart, ToolResult
from . import codec


def keep(db: sqlite3.Connection, session_id: str, message: Message) -> None:
    """The message's attachments into the blob table (a hash already there is not written
    again) and linked to the session."""
    for digest, (media_type, data) in codec.blobs(message).items():
        if db.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (digest,)).fetchone() is None:
            db.execute("INSERT INTO blobs (sha256, media_type, size, data) VALUES (?, ?, ?, ?)",
                       (digest, media_type, len(data), data))
        db.execute("INSERT OR IGNORE INTO session_blobs (session_id, sha256) VALUES (?, ?)",
                   (session_id, digest))


def prune(db: sqlite3.Connection) -> int:
    """Delete the blobs no session uses any more (after sessions were deleted)."""
    return db.execute("DELETE FROM blobs WHERE sha256 NOT IN "
                      "(SELECT sha256 FROM session_blobs)").rowcount


def restore(conn: sqlite3.Connection, messages: Sequence[Message]) -> list[Message]:
    """The messages with their attachments' bytes put back; an attachment whose blob is gone
    becomes a note saying so (a resumed request never sends a hole)."""
    wanted = {p.sha256 for m in messages for p in m.media if p.sha256}
    if not wanted:
        return list(messages)
    found: dict[str, bytes] = {}
    try:
        for digest in wanted:
            row = conn.execute("SELECT data FROM blobs WHERE sha256 = ?", (digest,)).fetchone()
            if row is not None:
                found[digest] = bytes(row[0])
    except sqlite3.OperationalError:  # an older store opened read-only: no blob table
        pass
    return [_restored(m, found) if m.media else m for m in messages]


def _gone(p: MediaPart) -> str:
    return f"[attachment {p.describe()} is no longer in the session store]"


def _restored(message: Message, found: dict[str, bytes]) -> Message:
    parts: list[Any] = []
    for p in message.parts:
        if isinstance(p, MediaPart):
            data = found.get(p.sha256)
            parts.append(replace(p, data=data) if data is not None else
                         TextPart(_gone(p) + "\n"))
        elif isinstance(p, ToolResult) and p.media:
            kept = tuple(replace(m, data=found[m.sha256]) for m in p.media if m.sha256 in found)
            notes = [_gone(m) for m in p.media if m.sha256 not in found]
            content = "\n".join([p.content, *notes]) if notes else p.content
            parts.append(replace(p, media=kept, content=content))
        else:
            parts.append(p)
    return replace(message, parts=tuple(parts))
