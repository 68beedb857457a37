"""The REPL's prompt-toolkit parts: the input session, completion, the toolbar, and the
approval prompter used by the executor while a turn runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings

from ...toolrun.approval import (ASK_AGAIN, REASON_QUESTION, Decision, approval_question,
                                 discard_typeahead, parse_answer, stream_fd)
from ..render import sanitize

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

    from .api import Repl as ChatRepl


def open_history(path: Path, warn: Any) -> History:
    """The persistent input history (created 0600: it holds whatever the user typed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        return FileHistory(str(path))
    except OSError as e:
        warn(f"cannot use the history file {path}: {e}; history is kept in memory only")
        return InMemoryHistory()


class ReplCompleter(Completer):
    """Slash commands; after one, its argument: provider names, tool names, models, paths
    (/save, /attach)."""

    def __init__(self, repl: ChatRepl) -> None:
        self.repl = repl
        self._paths = PathCompleter(expanduser=True)
        self._asked: set[tuple[str, str | None]] = set()  # model lists being fetched

    def _choices(self, command: str) -> list[str]:
        repl = self.repl
        if command == "/provider":
            from ...config import PROVIDER_TYPES

            return list(dict.fromkeys([*repl.settings.providers, *PROVIDER_TYPES]))
        if command == "/tools":
            return sorted(repl.tools)
        if command == "/model":
            models = [p.model for p in repl.settings.providers.values() if p.model]
            return list(dict.fromkeys([repl.model, *models, *self._server_models()]))
        if command == "/role":
            return sorted(repl.settings.sessions.roles)
        return []

    def _server_models(self) -> list[str]:
        """The server's model list (``agentcli models``'s cache); when it is missing or a day
        old, it is fetched once in the background and the old one, if any, serves meanwhile."""
        from ...providers.models import cached

        repl = self.repl
        profile = repl.profile
        found = cached(repl.settings.data_dir, profile)
        if found is None and profile.type in ("openai", "anthropic"):
            key = (profile.name, profile.base_url)
            if key not in self._asked:
                self._asked.add(key)
                import threading

                threading.Thread(target=_fetch_quietly, args=(repl.settings, profile),
                                 name="model-list", daemon=True).start()
            found = cached(repl.settings.data_dir, profile, max_age=None)
        return sorted(m.id for m in found.models) if found else []

    def get_completions(self, document: Document, complete_event: Any) -> Iterable[Completion]:
        from .slash import COMMANDS

        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        if " " not in text:
            for cmd in COMMANDS:
                for name in cmd.names:
                    if name.startswith(text):
                        yield Completion(name, -len(text), display_meta=cmd.help)
            return
        command, _, arg = text.partition(" ")
        if command in ("/save", "/attach"):
            yield from self._paths.get_completions(Document(arg, len(arg)), complete_event)
            return
        for choice in self._choices(command):
            if choice.startswith(arg):
                yield Completion(choice, -len(arg))


def _fetch_quietly(settings: Any, profile: Any) -> None:
    """Refresh the model list cache; a failure only means no server models to complete."""
    from ...providers.models import list_models

    try:
        list_models(settings, profile, refresh=True)
    except Exception:  # noqa: BLE001 - a background nicety must never reach the terminal
        pass


class ReplSession:
    """The main input prompt. ``kept_on_ctrl_c`` tells the REPL that Ctrl-C saved typed text
    to the history instead of dropping it."""

    def __init__(self, repl: ChatRepl) -> None:
        self.repl = repl
        self.kept_on_ctrl_c = False
        kb = KeyBindings()

        @kb.add("escape", "enter")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        @kb.add("c-c")
        def _ctrl_c(event: Any) -> None:
            buf = event.current_buffer
            if buf.text.strip():
                buf.append_to_history()
                self.kept_on_ctrl_c = True
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

        self._session: PromptSession[str] = PromptSession(
            message=FormattedText([("class:prompt", "› ")]),
            history=open_history(repl.settings.history_file, repl.warn)
            if repl.recorder is not None else InMemoryHistory(),  # --no-save: nothing written
            key_bindings=kb,
            completer=ReplCompleter(repl),
            complete_while_typing=True,
            bottom_toolbar=self._toolbar,
            prompt_continuation=lambda width, line_number, wrap_count: "… ".rjust(width),
            input=repl.input,
            output=repl.output,
            multiline=False,
            mouse_support=False,
        )

    def _toolbar(self) -> FormattedText:
        repl = self.repl
        usage = repl.conversation.usage
        if usage.requests and not usage.known:
            used = "tokens unknown"
        else:
            used = f"{usage.total_tokens:,}{'+' if usage.unreported else ''} tokens"
        recorder = repl.recorder
        if recorder is None:
            session = "not saved"
        elif recorder.failed:
            session = "not saving"
        else:
            session = f"session {recorder.session_id[:8]}" if recorder.session_id else \
                "new session"
        return FormattedText([("class:bottom-toolbar",
                               f" {sanitize(repl.profile.name)} · {sanitize(repl.model)} · "
                               f"{used} · {session} · Esc+Enter newline · /help ")])

    def prompt(self) -> str:
        self.kept_on_ctrl_c = False
        return self._session.prompt()


def build_session(repl: ChatRepl) -> ReplSession:
    return ReplSession(repl)


class ReplPrompter:
    """Approval inside the REPL, the same way as `ask`'s prompt (``toolrun.approval``): y (once),
    a (always this session) or n (no, then an optional reason for the model), then Enter;
    Enter alone is no. Keys typed on the terminal before the question are discarded. Ctrl-C,
    Ctrl-D or a closed input mean no. A file change's diff is shown before the question."""

    def __init__(self, input: Input, output: Output, console: Any = None) -> None:
        self.input = input
        self.output = output
        self.console = console
        """Where a file change's diff is printed before the question (the REPL's stderr
        console, beside the tool-call panel); None: through prompt-toolkit's output."""
        self._lines: PromptSession[str] | None = None

    def _session(self) -> PromptSession[str]:
        if self._lines is None:
            self._lines = PromptSession(input=self.input, output=self.output, multiline=False)
        return self._lines

    def _discard_typeahead(self) -> None:
        fd = stream_fd(self.input)
        if fd is None or not os.isatty(fd):
            return  # a pipe (scripts, tests): what it holds was sent as the answer
        discard_typeahead(fd)
        from prompt_toolkit.input.typeahead import clear_typeahead

        clear_typeahead(self.input)  # keys the previous prompt read but did not use

    def _show_diff(self, preview: str) -> None:
        from ..diff_view import as_rich, as_toolkit

        if self.console is not None:
            self.console.print(as_rich(preview), soft_wrap=True)
        else:
            from prompt_toolkit import print_formatted_text

            print_formatted_text(FormattedText(as_toolkit(preview)), output=self.output, end="")

    def confirm(self, tool_name: str, arguments: dict[str, Any], note: str = "",
                preview: str = "") -> Decision:
        if preview:
            self._show_diff(preview)
        self._discard_typeahead()
        question = ("bold", approval_question(tool_name))
        message = FormattedText([*([("italic", sanitize(note) + "\n")] if note else []),
                                 question])
        try:
            for _ in range(5):
                choice = parse_answer(self._session().prompt(message))
                if choice == "y":
                    return Decision(True)
                if choice == "a":
                    return Decision(True, remember=True)
                if choice == "n":
                    break
                message = FormattedText([("", ASK_AGAIN + "\n"), question])
            else:
                return Decision(False, None)
        except (KeyboardInterrupt, EOFError):
            return Decision(False, None)  # no, at once: nothing more is asked
        try:
            reason = self._session().prompt(REASON_QUESTION)
        except (KeyboardInterrupt, EOFError):
            reason = ""
        return Decision(False, reason.strip() or None)
