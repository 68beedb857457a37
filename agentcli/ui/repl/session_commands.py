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

