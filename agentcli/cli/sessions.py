"""`agentcli sessions list | show ID | search TEXT | export ID | delete ID | prune | undo ID`.

Exit codes: 0 ok; 1 the store cannot be read (locked, damaged, newer schema), or `undo` found a
file changed since (nothing restored); 2 an unknown or ambiguous id, a bad argument, or a
delete/prune that needs confirmation without a terminal (``--yes``); 130 Ctrl-C. Reading
commands open the store read-only and never create it.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any, Callable, Optional

import typer

from .common import ConfigOpt, run_command

sessions_app = typer.Typer(
    name="sessions", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Saved conversations: list, show, search, export, delete, prune, undo. Continue one "
         "with `agentcli chat -c` / `agentcli ask -c` (latest) or --session ID.")

IdArg = typer.Argument(..., metavar="ID", help="A session id, or a unique start of one.")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of text.")
YesOpt = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
def json_text(payload: Any, indent: int | None = None) -> str:
    from ..ui.json_output import json_text as safe  # C1 controls and bidi overrides escaped

    return safe(payload, indent)


_DURATION = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNIT_SECONDS = {"h": 3600, "d": 86400, "w": 7 * 86400}


def _with_store(config: str | None, fn: Callable[[Any, Any], int], *, write: bool = False) -> None:
    """Run ``fn(settings, store)`` with the store open (None when nothing was saved yet)."""

    def body() -> int:
        import sqlite3

        from ..config import load_settings
        from ..errors import SessionStoreError
        from ..sessions.store import describe_failure, open_store

        settings = load_settings(config)
        store = open_store(settings.data_dir, create=False, readonly=not write)
        try:
            return fn(settings, store)
        except sqlite3.Error as e:
            raise SessionStoreError(describe_failure(e, store.path)) from e
        finally:
            if store is not None:
                store.close()

    run_command(body)


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _nothing_saved(settings: Any) -> int:
    from ..ui.render import eprint

    from ..sessions.store import store_path

    eprint(f"no saved conversations yet (the store is {store_path(settings.data_dir)})")
    return 0


def _tokens(info: Any) -> str:
    u = info.usage
    if u.requests and not u.known:
        return "?"
    return f"{u.total_tokens:,}{'+' if u.unreported else ''}"


def _cost(settings: Any, store: Any, session_id: str) -> Any:
    from ..agent.pricing import cost

    return cost(settings.sessions, store.usage_by_model(session_id))


@sessions_app.command("list")
def list_sessions(limit: int = typer.Option(20, "--limit", "-n", metavar="N",
                                            help="How many (newest first)."),
                  all_: bool = typer.Option(False, "--all", help="Every session."),
                  json_out: bool = JsonOpt, config: Optional[str] = ConfigOpt) -> None:
    """Saved conversations, newest first: id, started, provider/model, turns, tokens, first
    words."""

    def fn(settings: Any, store: Any) -> int:
        from ..errors import UsageError
        from ..ui.render import eprint, sanitize
        from ..sessions.export import local_time, summary_json

        if limit < 1:
            raise UsageError("--limit must be 1 or more")
        if store is None:
            if json_out:
                _out("[]")
            return 0 if json_out else _nothing_saved(settings)
        rows = store.sessions(None if all_ else limit)
        if json_out:
            _out(json_text([summary_json(i) for i in rows]))
            return 0
        if not rows:
            return _nothing_saved(settings)
        table = [("ID", "STARTED", "PROVIDER/MODEL", "TURNS", "TOKENS", "FIRST WORDS")]
        for i in rows:
            table.append((i.short_id, local_time(i.created), f"{i.provider or '?'}/{i.model or '?'}",
                          str(i.turns), _tokens(i), i.title))
        w = [max(len(r[c]) for r in table) for c in range(5)]
        _out("\n".join(sanitize(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  "
                                f"{r[3]:>{w[3]}}  {r[4]:>{w[4]}}  {r[5]}") for r in table))
        total = store.count() if not all_ else len(rows)
        if total > len(rows):
            eprint(f"({len(rows)} of {total:,} shown: -n N or --all for more)")
        return 0

    _with_store(config, fn)


@sessions_app.command("show")
def show_session(session: str = IdArg, config: Optional[str] = ConfigOpt) -> None:
    """The conversation as a transcript (markdown; rendered on a terminal)."""

    def fn(settings: Any, store: Any) -> int:
        from ..sessions.export import session_markdown, session_segments

        info = _find(store, session)
        cost = _cost(settings, store, info.id)
        stored = store.messages(info.id, include_dropped=True)
        turns = store.turns(info.id)
        described = cost.describe() if cost else None
        if sys.stdout.isatty():
            print_transcript(session_segments(info, stored, described, turns))
        else:
            _out(session_markdown(info, stored, described, turns))
        return 0

    _with_store(config, fn)


def print_transcript(pieces: list[tuple[str, str]]) -> None:
    """A transcript on a terminal: markdown rendered, the model's reasoning as a dim block."""
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.text import Text

    from ..sessions.export import REASONING

    console = Console(highlight=False)
    for kind, text in pieces:
        if kind == REASONING:
            console.print(Text(REASONING, style="dim bold"))
            console.print(Text(text.strip(), style="dim"))
            console.print()
        else:
            console.print(Markdown(text))


def _find(store: Any, ref: str) -> Any:
    from ..errors import UsageError

    if store is None:
        raise UsageError(f"no session {ref}", hint="nothing has been saved yet")
    return store.find(ref)


@sessions_app.command("search")
def search_sessions(text: str = typer.Argument(..., metavar="TEXT",
                                               help="Words to find (all of them)."),
                    limit: int = typer.Option(20, "--limit", "-n", metavar="N"),
                    json_out: bool = JsonOpt, config: Optional[str] = ConfigOpt) -> None:
    """Full-text search over every message (SQLite FTS5): tool calls and results too."""

    def fn(settings: Any, store: Any) -> int:
        from ..ui.render import eprint, sanitize
        from ..sessions.export import iso_time, local_time

        hits = store.search(text, limit) if store is not None else []
        if json_out:
            _out(json_text([{"session": h[0], "seq": h[1], "role": h[2],
                             "created": iso_time(h[3]),
                             "snippet": h[4].replace("\x01", "").replace("\x02", "")}
                            for h in hits]))
            return 0
        if not hits:
            eprint(f"no message matches {text!r}")
            return 0
        marks = sys.stdout.isatty() and not os.environ.get("NO_COLOR")  # bold, else [ ]
        for sid, seq, role, created, snippet in hits:
            one = " ".join(sanitize(snippet).split())
            one = one.replace("␁", "\x1b[1m" if marks else "[").replace(
                "␂", "\x1b[0m" if marks else "]")
            _out(f"{sid[:8]}  {local_time(created)}  {role:<9}  {one}")
        return 0

    _with_store(config, fn)


@sessions_app.command("export")
def export_session(session: str = IdArg,
                   format: str = typer.Option("markdown", "--format", "-f",
                                              metavar="markdown|json"),
                   output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE",
                                                        help="Write to FILE instead of stdout."),
                   config: Optional[str] = ConfigOpt) -> None:
    """The whole conversation as markdown, or as JSON with everything the store holds."""

    def fn(settings: Any, store: Any) -> int:
        from ..errors import UsageError
        from ..sessions.export import session_json, session_markdown

        if format not in ("markdown", "md", "json"):
            raise UsageError(f"unknown format '{format}'", hint="use --format markdown or json")
        info = _find(store, session)
        cost = _cost(settings, store, info.id)
        if format == "json":
            text = json_text(session_json(info, store.messages(info.id, include_dropped=True),
                                          store.turns(info.id), cost), indent=2)
        else:
            text = session_markdown(info, store.messages(info.id, include_dropped=True),
                                    cost.describe() if cost else None, store.turns(info.id))
        if output is None:
            _out(text)
            return 0
        from pathlib import Path

        try:
            Path(output).expanduser().write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write {output}: {e.strerror or e}") from e
        return 0

    _with_store(config, fn)


def _confirm(question: str, yes: bool) -> bool:
    from ..errors import UsageError

    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{question.rstrip('?')}: this needs a confirmation and there is no "
                         "terminal to ask on", hint="pass --yes")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


@sessions_app.command("delete")
def delete_session(session: str = IdArg, yes: bool = YesOpt,
                   config: Optional[str] = ConfigOpt) -> None:
    """Delete one conversation for good (asks first, unless --yes)."""

    def fn(settings: Any, store: Any) -> int:
        from ..ui.render import eprint, sanitize

        info = _find(store, session)
        what = sanitize(f"session {info.short_id} ({info.turns} turns, "
                        f"{info.title or 'untitled'})")
        if not _confirm(f"delete {what}?", yes):
            eprint("nothing deleted")
            return 0
        store.delete([info.id])
        eprint(f"deleted {what}")
        return 0

    _with_store(config, fn, write=True)


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``2w`` -> seconds."""
    from ..errors import UsageError

    m = _DURATION.match(text)
    if not m or int(m.group(1)) < 1:
        raise UsageError(f"--older-than: '{text}' is not an age",
                         hint="use a number and h, d or w, e.g. 30d, 12h, 2w")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


@sessions_app.command("prune")
def prune_sessions(older_than: str = typer.Option(..., "--older-than", metavar="AGE",
                                                  help="e.g. 30d, 12h, 2w: last used before."),
                   yes: bool = YesOpt,
                   dry_run: bool = typer.Option(False, "--dry-run",
                                                help="Only say what would be deleted."),
                   config: Optional[str] = ConfigOpt) -> None:
    """Delete the conversations not used for AGE (asks first, unless --yes)."""

    def fn(settings: Any, store: Any) -> int:
        from ..ui.render import eprint
        from ..sessions.export import local_time

        cutoff = time.time() - parse_age(older_than)
        old = store.older_than(cutoff) if store is not None else []
        if not old:
            eprint(f"no session was last used before {local_time(cutoff)}")
            return 0
        what = (f"{len(old):,} session{'s' if len(old) != 1 else ''} last used before "
                f"{local_time(cutoff)}")
        if dry_run:
            eprint(f"would delete {what}")
            return 0
        if not _confirm(f"delete {what}?", yes):
            eprint("nothing deleted")
            return 0
        n = store.delete([i.id for i in old])
        eprint(f"deleted {n:,} session{'s' if n != 1 else ''}")
        return 0

    _with_store(config, fn, write=True)


@sessions_app.command("undo")
def undo_changes(session: str = IdArg,
                 count: int = typer.Argument(1, metavar="[N]",
                                             help="How many of the newest file changes (1)."),
                 dry_run: bool = typer.Option(False, "--dry-run",
                                              help="Only show what would be restored."),
                 config: Optional[str] = ConfigOpt) -> None:
    """Restore the files the conversation's last N edit/write calls changed, showing the diff
    (refused, with nothing restored, if a file changed since)."""

    def fn(settings: Any, store: Any) -> int:
        from ..sessions.checkpoints import UndoRefused, undo
        from ..ui.diff_view import as_ansi, diff, shown_path
        from ..ui.render import eprint, sanitize

        info = _find(store, session)
        try:
            plan = undo(store, info.id, count, dry_run=dry_run)
        except UndoRefused as e:
            c = e.conflict
            if not c.problem:
                eprint(as_ansi(diff(c.wrote, c.now, shown_path(c.path)).text))
            raise
        if not plan.available:
            eprint(f"session {info.short_id} has no file change to undo")
            return 0
        for r in plan.restores:
            d = diff(r.now, r.to, shown_path(r.path))
            if d.text:
                _out(as_ansi(d.text, stream=sys.stdout))
            verb = "would restore" if dry_run else "restored"
            if r.to is None:
                verb = "would remove" if dry_run else "removed"
            eprint(sanitize(f"{verb} {shown_path(r.path)}"))
        n, left = len(plan.undone), plan.available - len(plan.undone)
        done = "would undo" if dry_run else "undid"
        eprint(f"{done} {n} file change{'s' if n != 1 else ''} of session {info.short_id}"
               + (f"; {left} more can be undone" if left else ""))
        return 0

    _with_store(config, fn, write=not dry_run)
