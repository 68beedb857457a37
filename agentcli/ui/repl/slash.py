"""Slash commands of the chat REPL. A line starting with ``/`` never goes to the model: a known
command runs, anything else gets a hint."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...errors import AgentCliError
from ..render import sanitize

if TYPE_CHECKING:
    from .api import Repl as ChatRepl

EXIT = object()
"""Returned by a command that ends the session."""


@dataclass(frozen=True)
class Command:
    names: tuple[str, ...]
    args: str
    help: str
    run: Callable[[ChatRepl, str], Any]


KEYS: tuple[tuple[str, str], ...] = (
    ("Enter", "send"),
    ("Esc+Enter, Alt+Enter", "new line (pasted text is kept whole)"),
    ("Up/Down, Ctrl-R", "history, history search (kept in {history})"),
    ("Tab", "complete commands, provider and tool names"),
    ("Ctrl-C", "stop a streaming reply (the partial reply is kept); deny an approval; cancel "
               "a running tool; at the prompt: clear the line (it stays in the history); "
               "twice on an empty line: quit"),
    ("Ctrl-D, /exit", "quit"),
)
APPROVAL_HELP = ("Tool calls are shown with their full arguments, then: y = yes once, a = always "
                 "for this tool this session, n = no (then an optional reason for the model).")


def _preview(text: str, width: int = 60) -> str:
    one = " ".join(text.split())
    return sanitize(one if len(one) <= width else one[: width - 1] + "…")


# --- the commands ------------------------------------------------------------------------------

def _help(repl: ChatRepl, arg: str) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column()
    table.add_row(Text("Commands", style="bold"), "")
    for cmd in COMMANDS:
        table.add_row(Text(" ".join(cmd.names) + (f" {cmd.args}" if cmd.args else ""),
                           style="bold"), Text(cmd.help))
    table.add_row(Text("Keys", style="bold"), "")
    for key, what in KEYS:
        table.add_row(Text(key, style="bold"),
                      Text(what.format(history=repl.settings.history_file)))
    repl.err.print(table)
    repl.err.print(Text(APPROVAL_HELP))


def _exit(repl: ChatRepl, arg: str) -> object:
    return EXIT


def _start_over(repl: ChatRepl) -> tuple[int, str]:
    """Empty the conversation; the next message starts a new saved session. Returns how many
    messages left and a note on where the old conversation stays."""
    old = repl.recorder.session_id if repl.recorder is not None else None
    n = repl.conversation.clear()
    repl.failed_text = None
    return n, f"session {old[:8]} stays saved (/resume {old[:8]})" if old else ""


def _clear(repl: ChatRepl, arg: str) -> None:
    n, saved = _start_over(repl)
    repl.notice(f"conversation cleared ({n} message{'s' if n != 1 else ''} dropped"
                f"{'; ' + saved if saved else ''}); the system prompt, provider and tool "
                "grants stay")


def _providers_shown(repl: ChatRepl) -> str:
    from ...config import PROVIDER_TYPES

    names = list(dict.fromkeys([*repl.settings.providers, *PROVIDER_TYPES]))
    shown = ", ".join(f"{n} (current)" if n == repl.profile.name else n for n in names)
    return f"providers: {shown} (change with /provider NAME)"


def _switcher(what: str, current: Callable[[ChatRepl], str],
              after: Callable[[ChatRepl], str]) -> Callable[[ChatRepl, str], None]:
    """/model and /provider: no argument shows, an argument switches (the conversation stays)."""

    def command(repl: ChatRepl, arg: str) -> None:
        if not arg:
            repl.notice(current(repl))
            return
        try:
            repl.switch(**{what: arg})
        except AgentCliError as e:
            repl.error(e)
            return
        repl.notice(after(repl))

    return command


_model = _switcher("model", lambda r: f"model: {r.model} (change it with /model NAME)",
                   lambda r: f"model: {r.model} (provider {r.profile.name}; conversation kept)")
_provider = _switcher("provider", _providers_shown,
                      lambda r: f"provider: {r.profile.name} · model {r.model} (conversation kept)")


def _system(repl: ChatRepl, arg: str) -> None:
    if not arg:
        current = repl.conversation.system
        repl.notice(f"system prompt: {_preview(current, 200)}" if current else
                    "no system prompt (set one with /system TEXT)")
        return
    repl.conversation.system = None if arg == "-" else arg
    repl.notice("system prompt removed" if arg == "-" else
                "system prompt set for the next messages")


def _approval_state(repl: ChatRepl, name: str, tool: Any) -> str:
    from ...toolrun.approval import policy_summary

    approver = repl.executor.approver
    return policy_summary(name, getattr(tool, "confirm", "ask"),
                          yes=getattr(approver, "yes", False),
                          allow=getattr(approver, "allow", ()), deny=getattr(approver, "deny", ()),
                          grants=getattr(approver, "grants", set()))


def _tools(repl: ChatRepl, arg: str) -> None:
    from rich.table import Table
    from rich.text import Text

    if not repl.tools:
        repl.notice("no tools are offered to the model (started with --no-tools, or none "
                    "loaded; see `agentcli tools list`)")
        return
    from ...mcp.tools import shown_description  # an MCP tool's hints lead its description

    names = [arg] if arg else sorted(repl.tools)
    rows = []
    for name in names:
        tool = repl.tools.get(name)
        if tool is None:
            repl.error(f"unknown tool '{name}'", hint=f"tools: {', '.join(sorted(repl.tools))}")
            return
        rows.append([Text(sanitize(name)), Text(sanitize(getattr(tool, "source", ""))),
                     Text(sanitize(_approval_state(repl, name, tool))),
                     Text(sanitize(shown_description(tool)))])
    widths = [max(len(r[i]) for r in [[Text(h) for h in ("tool", "source", "approval")],
                                      *rows]) for i in range(3)]
    widths[2] = min(widths[2], 30)  # a long policy (argument-scoped rules) wraps in its column
    table = Table(box=None, padding=(0, 2), show_header=True, header_style="bold")
    for title, width in zip(("tool", "source", "approval"), widths):
        table.add_column(title, no_wrap=title != "approval", width=width, overflow="fold")
    table.add_column("description", overflow="fold")
    if not arg:  # one line per tool: cut the description to what is left of the width (rich
        # would otherwise squeeze the other columns away)
        used = sum(widths) + 4 * 4  # each column is padded 2 on both sides
        for r in rows:
            r[3].truncate(max(10, repl.err.width - used), overflow="ellipsis")
    for r in rows:
        table.add_row(*r)
    repl.err.print(table)
    if arg:
        repl.err.print(Text(sanitize(json.dumps(repl.tools[arg].definition.parameters,
                                                indent=2)), style="dim"))


def _retry(repl: ChatRepl, arg: str) -> None:
    conversation = repl.conversation
    i = conversation.last_user_index()
    if repl.failed_text is not None:  # the provider never answered it: not in the history
        text, media = repl.failed_text, repl.failed_media
    elif i is not None:
        text, media = conversation.messages[i].text, conversation.messages[i].media
        conversation.truncate(i)
    else:
        repl.notice("nothing to retry yet")
        return
    shown = _preview(text) or ", ".join(sanitize(p.name) for p in media)
    repl.notice(f"retrying: {shown}")
    repl.run_turn(text, media=media)  # its attachments go again, the same bytes


def _forget(repl: ChatRepl, arg: str) -> None:
    conversation = repl.conversation
    i = conversation.last_user_index()
    if i is None:
        repl.notice("nothing to forget")
        return
    text = conversation.messages[i].text
    n = len(conversation.truncate(i))
    repl.failed_text = None
    repl.notice(f"dropped the last exchange ({n} message{'s' if n != 1 else ''}): "
                f"{_preview(text)}")


def _undo(repl: ChatRepl, arg: str) -> None:
    from .session_commands import undo_files

    undo_files(repl, arg)


def _tokens(repl: ChatRepl, arg: str) -> None:
    from ...agent.context import describe_context
    from ...agent.pricing import cost

    conversation = repl.conversation
    u = conversation.usage
    if not u.requests:
        repl.notice("tokens this session: none yet (no reply has arrived)")
    else:
        total = f" = {u.total_tokens:,}" if u.known else ""
        request = conversation.last_request
        last = (f"; last request's input (≈ context size): {request.input_tokens:,}"
                if request is not None else "")
        spent = cost(repl.settings.sessions, conversation.by_model)
        price = f"; cost {spent.describe()}" if spent is not None else ""
        turn = conversation.last_turn
        turn_text = f"; last turn: {turn.describe()}" if turn is not None and turn.requests \
            else ""
        cached = (f"; {100 * u.cached_input_tokens / u.input_tokens:.0f}% of input read from the "
                  "prompt cache") if u.cached_input_tokens and u.input_tokens else ""
        repl.notice(f"tokens this session: {u.describe()}{total}{cached}{price}{turn_text}"
                    f"{last}")
    repl.notice(describe_context(repl.agent.prepare))


def _reasoning(repl: ChatRepl, arg: str) -> None:
    from rich.text import Text

    from ..reasoning import last_reasoning

    text, unreadable = last_reasoning(repl.agent.history)
    hidden = (f"({unreadable} reasoning item{'s' if unreadable != 1 else ''} the provider "
              "keeps unreadable)") if unreadable else ""
    if not text:
        repl.notice(hidden or "no reasoning in this conversation yet (--reasoning LEVEL asks "
                              "for it where the model supports it)")
        return
    repl.err.print(Text("reasoning", style="dim bold"))
    repl.err.print(Text(sanitize(text), style="dim"))
    if hidden:
        repl.notice(hidden)


def transcript(repl: ChatRepl) -> str:
    """The conversation as markdown (tool calls and results as fenced blocks), sanitised."""
    from ...sessions.export import Entry, markdown

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return markdown(f"agentcli chat — {now}",
                    [f"provider: {repl.profile.name}", f"model: {repl.model}"],
                    repl.conversation.system, (Entry(m) for m in repl.conversation.messages))


def _save(repl: ChatRepl, arg: str) -> None:
    if not arg:
        repl.error("/save needs a file name", hint="/save chat.md")
        return
    path = Path(arg).expanduser()
    try:
        path.write_text(transcript(repl), encoding="utf-8")
    except OSError as e:
        repl.error(f"cannot write {path}: {e.strerror or e}")
        return
    n = len(repl.conversation)
    repl.notice(f"saved {n} message{'s' if n != 1 else ''} to {path}")


def _new(repl: ChatRepl, arg: str) -> None:
    _, saved = _start_over(repl)
    repl.notice("new conversation" + (f"; {saved}" if saved else ""))


def _sessions(repl: ChatRepl, arg: str) -> None:
    from .session_commands import list_recent

    list_recent(repl)


def _resume(repl: ChatRepl, arg: str) -> None:
    from .session_commands import resume

    resume(repl, arg)


def _attach(repl: ChatRepl, arg: str) -> None:
    from .attach_commands import attach

    attach(repl, arg)


def _detach(repl: ChatRepl, arg: str) -> None:
    from .attach_commands import detach

    detach(repl, arg)


def _role(repl: ChatRepl, arg: str) -> None:
    from .session_commands import set_role

    set_role(repl, arg)


COMMANDS: tuple[Command, ...] = (
    Command(("/help",), "", "keys and commands", _help),
    Command(("/exit", "/quit"), "", "leave (Ctrl-D too)", _exit),
    Command(("/clear",), "", "forget the conversation so far", _clear),
    Command(("/model",), "NAME", "switch model, keeping the conversation", _model),
    Command(("/provider",), "NAME", "switch provider profile, keeping the conversation",
            _provider),
    Command(("/system",), "TEXT", "set the system prompt (/system - removes it)", _system),
    Command(("/tools",), "[NAME]", "tools offered to the model, with their approval state",
            _tools),
    Command(("/retry",), "", "send your last message again (its old reply is dropped)", _retry),
    Command(("/forget",), "", "drop your last message and its reply", _forget),
    Command(("/undo",), "[N]", "restore the files the last N changes changed (default 1)",
            _undo),
    Command(("/tokens",), "", "token usage, cost and the context window", _tokens),
    Command(("/reasoning",), "", "the model's reasoning in the last turn that had any, in full",
            _reasoning),
    Command(("/save",), "FILE", "write the conversation to FILE as markdown", _save),
    Command(("/new",), "", "start a new conversation (this one stays saved)", _new),
    Command(("/sessions",), "", "recent saved conversations", _sessions),
    Command(("/resume",), "ID", "continue a saved conversation here", _resume),
    Command(("/role",), "NAME", "use a role's system prompt (/role - drops it)", _role),
    Command(("/attach",), "PATH|URL", "attach an image, PDF or text file to your next message "
            "(alone: what is attached)", _attach),
    Command(("/detach",), "", "drop the attachments waiting for your next message", _detach),
)

_BY_NAME = {name: cmd for cmd in COMMANDS for name in cmd.names}


def dispatch(repl: ChatRepl, line: str) -> object | None:
    """Run one slash command line; returns EXIT to end the session."""
    parts = line.split(None, 1)
    name = parts[0].lower()
    arg = parts[1].strip() if len(parts) > 1 else ""
    cmd = _BY_NAME.get(name)
    if cmd is None:
        close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        repl.error(f"unknown command {sanitize(name)}",
                   hint=f"{hint}/help lists the commands; nothing was sent to the model "
                        "(to send text starting with /, add a space before it)")
        return None
    return cmd.run(repl, arg)
