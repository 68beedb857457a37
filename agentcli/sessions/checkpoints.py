"""Checkpoints of the files a conversation changed, and /undo.

Every approved ``edit``/``write`` that changed a file is kept in the ``file_changes`` table
(``db._CHANGES``): the file's real path, what it held before (None: it did not exist) and what
was written. ``undo`` restores the newest N changes not undone yet, newest first, and never
clobbers a later change: each file must still hold exactly what the change wrote (or already
hold what it held before). Otherwise nothing at all is restored and the conflict - what the
change wrote against what the file holds now - is handed back to be shown.
"""

from __future__ import annotations

import os
import stat
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import AgentCliError, ToolError, UsageError
from ..messages import FileChange
from ..toolrun.host import files
from ..toolrun.host.atomic import write_atomic


@dataclass(frozen=True)
class Checkpoint:
    id: int
    path: str
    tool: str
    before: str | None
    after: str
    created: float


@dataclass(frozen=True)
class Restore:
    """One file put back: what it holds now -> what it will hold (None: removed)."""

    path: str
    now: str | None
    to: str | None
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Conflict:
    """A file that changed after agentcli changed it: what the change wrote, what is there now
    (None: it was removed; ``problem``: it cannot be read as text any more)."""

    path: str
    wrote: str | None
    now: str | None
    problem: str = ""


@dataclass(frozen=True)
class UndoPlan:
    restores: list[Restore] = field(default_factory=list)
    conflict: Conflict | None = None
    undone: list[Checkpoint] = field(default_factory=list)
    available: int = 0
    """How many changes were left to undo before this one."""


def _pack(text: str | None) -> bytes | None:
    return None if text is None else zlib.compress(text.encode("utf-8"), 6)


def _unpack(blob: bytes | None) -> str | None:
    return None if blob is None else zlib.decompress(blob).decode("utf-8")


def record(store: Any, session_id: str, change: FileChange) -> None:
    with store.write() as db:
        db.execute("INSERT INTO file_changes (session_id, path, tool, call_id, before, after, "
                   "created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (session_id, change.path, change.tool, change.call_id, _pack(change.before),
                    _pack(change.after), time.time()))


def pending(store: Any, session_id: str, limit: int | None = None) -> list[Checkpoint]:
    """Changes not undone yet, newest first (none in a store without the table)."""
    import sqlite3

    sql = ("SELECT id, path, tool, before, after, created FROM file_changes WHERE "
           "session_id = ? AND undone IS NULL ORDER BY id DESC")
    try:
        rows = store.conn.execute(sql + " LIMIT ?", (session_id, limit)) if limit else \
            store.conn.execute(sql, (session_id,))
        return [Checkpoint(r[0], r[1], r[2], _unpack(r[3]), _unpack(r[4]) or "", r[5])
                for r in rows.fetchall()]
    except sqlite3.OperationalError:  # an older store opened read-only: no such table
        return []


def _read(path: str) -> tuple[str | None, str]:
    """(text now, "") or (None, "") when the file is gone, or (None, why) when it is not text
    agentcli could have written (the same rules as the tools: no symbolic link, text only)."""
    folder = os.path.dirname(path)
    target = files.Target(path, folder, os.path.basename(path))
    try:  # its folder must still be where it was (not a symbolic link put there since)
        current = files.read_current(target, [folder], files.HASH_CAP)
    except ToolError as e:
        return None, e.message
    return current.text, ""


def _restore(path: str, text: str | None) -> None:
    """Put ``text`` back into the file at the real path ``path`` (None: remove the file),
    atomically, keeping its mode; never through a symbolic link."""
    folder, name = os.path.split(path)
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        proc = f"/proc/self/fd/{fd}"
        if os.path.exists(proc) and os.readlink(proc) != folder:
            raise ToolError(f"the folder of '{path}' is elsewhere now; left as it is")
        try:
            st = os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise ToolError(f"'{path}' is {files.kind(st.st_mode)} now; left as it is")
        if text is None:
            if st is not None:
                os.unlink(name, dir_fd=fd)
            return
        mode = stat.S_IMODE(st.st_mode) if st is not None else None
        write_atomic(fd, name, files.encoded(text), mode)
    finally:
        os.close(fd)


def plan_undo(store: Any, session_id: str, n: int) -> UndoPlan:
    """What undoing the newest ``n`` changes would do (nothing is written here)."""
    available = len(pending(store, session_id))
    todo = pending(store, session_id, n) if n <= available else []
    state: dict[str, str | None] = {}
    original: dict[str, str | None] = {}
    ids: dict[str, list[int]] = {}
    for cp in todo:
        if cp.path not in state:
            text, problem = _read(cp.path)
            if problem:
                return UndoPlan(conflict=Conflict(cp.path, cp.after, None, problem),
                                available=available)
            state[cp.path] = original[cp.path] = text
        now = state[cp.path]
        if now == cp.after:
            state[cp.path] = cp.before
        elif now != cp.before and not any(now == older.before for older in todo
                                           if older.path == cp.path and older.id < cp.id):
            # changed since, and not back to how it was before this change (or an older one
            # being undone too): a later change, which undo never overwrites
            return UndoPlan(conflict=Conflict(cp.path, cp.after, now), available=available)
        ids.setdefault(cp.path, []).append(cp.id)
    restores = [Restore(path, original[path], state[path], tuple(ids[path])) for path in state]
    return UndoPlan(restores, None, todo, available)


def apply_undo(store: Any, plan: UndoPlan) -> None:
    """Write the files back, then mark their changes undone. A file that changed meanwhile is
    left alone (ToolError); files already restored stay restored and marked."""
    done: list[int] = []
    try:
        for r in plan.restores:
            if r.now != r.to:
                text, problem = _read(r.path)
                if problem or text != r.now:
                    raise ToolError(f"'{r.path}' changed while it was being restored; it was "
                                    "left as it is")
                try:
                    _restore(r.path, r.to)
                except OSError as e:
                    raise ToolError(f"cannot restore '{r.path}': {e.strerror or e}") from None
            done.extend(r.ids)
    finally:
        if done:
            now = time.time()
            with store.write() as db:
                db.executemany("UPDATE file_changes SET undone = ? WHERE id = ?",
                               [(now, i) for i in done])


class UndoRefused(AgentCliError):
    """A file changed after agentcli changed it: nothing was restored. ``conflict`` says how
    (callers show its diff before this error's line)."""

    def __init__(self, conflict: Conflict) -> None:
        from ..ui.diff_view import shown_path

        name = shown_path(conflict.path)
        if conflict.problem:
            what = f"'{name}' cannot be restored: {conflict.problem}"
        elif conflict.now is None:
            what = f"'{name}' was removed after agentcli changed it"
        else:
            what = f"'{name}' changed after agentcli changed it (the diff above is that change)"
        super().__init__(f"not undone: {what}; nothing was restored",
                         hint="undo never overwrites a change made after agentcli's: put the "
                              "file back as agentcli left it, or restore it by hand")
        self.conflict = conflict


class TooFew(UsageError):
    """Fewer changes are left to undo than were asked for (``available``)."""

    def __init__(self, available: int, hint: str) -> None:
        s = "s" if available != 1 else ""
        super().__init__(f"there {'are' if s else 'is'} only {available} file change{s} to "
                         "undo in this conversation", hint=hint)
        self.available = available


def undo(store: Any, session_id: str, n: int, *, dry_run: bool = False) -> UndoPlan:
    """Undo the newest ``n`` file changes of the session (``dry_run``: only work out what would
    be restored). An empty plan (``available == 0``) when there is none; TooFew when there are
    fewer than ``n``; UndoRefused on a conflict; AgentCliError when a file cannot be
    written."""
    if n < 1:
        raise UsageError("the number of changes to undo must be 1 or more")
    plan = plan_undo(store, session_id, n)
    if not plan.available:
        return plan
    if n > plan.available:
        raise TooFew(plan.available, f"undo {plan.available} or fewer")
    if plan.conflict is not None:
        raise UndoRefused(plan.conflict)
    if not dry_run:
        try:
            apply_undo(store, plan)
        except ToolError as e:
            raise AgentCliError(e.message) from None
    return plan
