"""The REPL's conversation commands: /sessions, /resume ID, /role NAME (/new and /clear are in
``slash``: they only start a new session)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from ...errors import SessionStoreError
from ..render import sanitize
from ...sessions.export import local_time
from ...sessions.recorder import load_from
from ...sessions.store import describe_failure, open_store

if TYPE_CHECKING:
    from .api import Repl as ChatRepl

RECENT = 10


def list_recent(repl: ChatRepl) -> None:
    from rich.table import Table
    from rich.text import Text

    recorder = repl.recorder
    own = recorder is not None
    store = recorder.store(create=False) if own else \
        open_store(repl.settings.data_dir, create=False, readonly=True)
    if store is None:
        repl.notice("no saved conversations yet")
        return
    try:
        rows = store.sessions(RECENT)
    except sqlite3.Error as e:
        raise SessionStoreError(describe_failure(e, store.path)) from e
    finally:
        if not own:
            store.close()
    current = recorder.session_id if recorder is not None else None
    table = Table(box=None, padding=(0, 2), show_header=True, header_style="bold")
    for column in ("id", "last used", "turns", "first words"):
        table.add_column(column, no_wrap=column != "first words", overflow="ellipsis")
    for info in rows:
        mark = " *" if info.id == current else ""
        table.add_row(info.short_id + mark, local_time(info.updated), str(info.turns),
                      Text(sanitize(info.title)))
    repl.err.print(table)
    repl.notice("/resume ID continues one (* = this conversation); `agentcli sessions` has more")


def resume(repl: ChatRepl, ref: str) -> None:
    if not ref:
        list_recent(repl)
        return
    recorder = repl.recorder
    if recorder is not None:
        resumed = recorder.load(ref)
    else:
        resumed = load_from(repl.settings.data_dir, ref)
    repl.conversation.replace(resumed)  # the recorder writes the resumed session from now on
    repl.failed_text = None
    from ...runtime import resume_notice, unanswered_notices

    repl.notice(resume_notice(resumed, repl.profile.name, repl.model, repl.settings))
    for line in unanswered_notices(resumed):
        repl.notice(line)


def set_role(repl: ChatRepl, name: str) -> None:
    from ...agent.roles import first_line, role_prompt

    roles = repl.settings.sessions.roles
    conversation = repl.conversation
    if not name:
        known = ", ".join(sorted(roles)) or "none defined (add roles: to the config)"
        repl.notice(f"role: {conversation.role or 'none'} · roles: {known} (/role NAME, "
                    "/role - drops it)")
        return
    if name == "-":
        conversation.role = None
        conversation.system = None
        repl.notice("role dropped: no system prompt for the next messages")
        return
    conversation.system = role_prompt(repl.settings, name)
    conversation.role = name
    repl.notice(f"role {name}: {first_line(conversation.system)}")



FORGET_HINT = "/forget drops your last message and its reply from the conversation"


def undo_files(repl: ChatRepl, arg: str) -> None:
    """/undo [N]: restore the files the newest N changes of this conversation changed."""
    from ...errors import AgentCliError
    from ...sessions.checkpoints import TooFew, UndoRefused, undo
    from ..diff_view import as_rich, diff, shown_path

    try:
        n = int(arg) if arg else 1
    except ValueError:
        n = 0
    if n < 1:
        repl.error(f"/undo takes a number of changes (1 or more), not {arg!r}",
                   hint="/undo restores the last file change, /undo 3 the last three")
        return
    recorder = repl.recorder
    if recorder is None or recorder.session_id is None or recorder.failed:
        why = ("this conversation is not saved (--no-save), and file changes are kept in the "
               "session store" if recorder is None else "no file change was saved in this "
               "conversation")
        repl.notice(f"nothing to undo: {why}; {FORGET_HINT}")
        return
    store = recorder.store(create=False)
    try:
        plan = undo(store, recorder.session_id, n)
    except UndoRefused as e:
        c = e.conflict
        if not c.problem:
            repl.err.print(as_rich(diff(c.wrote, c.now, shown_path(c.path)).text), soft_wrap=True)
        repl.error(e)
        return
    except TooFew as e:
        repl.error(e.message, hint=f"/undo {e.available}")
        return
    except sqlite3.Error as e:
        raise SessionStoreError(describe_failure(e, store.path)) from e
    except AgentCliError as e:
        repl.error(e)
        return
    if not plan.available:
        repl.notice(f"no file change to undo in this conversation; {FORGET_HINT}")
        return
    for r in plan.restores:
        d = diff(r.now, r.to, shown_path(r.path))
        if d.text:
            repl.err.print(as_rich(d.text), soft_wrap=True)
        verb = "removed" if r.to is None else "restored"
        repl.notice(f"↶ {verb} {shown_path(r.path)}" + ("" if d.text else " (it already held "
                                                             "what it held before)"))
    n = len(plan.undone)
    left = plan.available - n
    repl.notice(f"undid {n} file change{'s' if n != 1 else ''}"
                + (f"; {left} more can be undone" if left else ""))
