"""`agentcli chat`: the prompt-toolkit REPL around one Agent.

Keys: Enter sends; Esc+Enter / Alt+Enter inserts a newline (pasted text is kept whole through
bracketed paste); Up/Down and Ctrl-R search the persistent history; Tab completes slash
commands, tool and provider names; Ctrl-D quits.

Ctrl-C, by where it lands:
- at the prompt: text typed so far goes to the history (Up brings it back) and the line clears;
  on an empty line a hint; twice within ``DOUBLE_CTRL_C`` seconds on an empty line exits 130;
- while a reply streams: the stream stops, the partial reply stays in history marked interrupted
  (the agent does that), back to the prompt;
- at an approval prompt: the call is denied; while a tool runs: it is cancelled (agent).

While a reply streams, SIGINT is deferred during each terminal write so a redraw is never cut in
half, and terminal echo is off so type-ahead does not garble the output (it is still read by the
next prompt).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from ... import runtime
from ...errors import EXIT_INTERRUPTED, AgentCliError, debug_enabled
from ...messages import (AgentDone, AgentEvent, FileChanged, HistoryAppended, Message,
                         Notice, ReasoningDelta, ResponseDone, TextDelta, ToolCallReady,
                         ToolResultReady)
from ..render import sanitize, stop_warning
from .terminal import SigintGuard, echo_off, open_terminal

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output
    from rich.console import Console

DOUBLE_CTRL_C = 2.0
_EXIT = object()


# --- the REPL ----------------------------------------------------------------------------------

class ChatRepl:
    """One chat session. Everything terminal-facing is injected so tests can drive it with a
    prompt-toolkit pipe input and captured rich consoles."""

    def __init__(self, opts: runtime.RunOptions, *, input: Input, output: Output,
                 console: Console, err: Console, piped_text: str | None = None,
                 tty_fd: int | None = None,
                 make_provider: Callable[[Any, Any], Any] | None = None,
                 tools: dict[str, Any] | None = None) -> None:
        from .prompt import ReplPrompter, build_session

        self.opts = opts
        self.input = input
        self.output = output
        self.console = console
        self.err = err
        self.piped_text = piped_text
        self.tty_fd = tty_fd
        self._make_provider = make_provider or (
            lambda settings, profile: runtime.make_provider(settings, profile, self.warn))
        self.guard = SigintGuard()
        self.failed_text: str | None = None  # a message the provider never answered (/retry)
        self.failed_media: tuple[Any, ...] = ()  # ... and its attachments
        self._last_ctrl_c = 0.0

        self.settings = runtime.load(opts)
        from ...inputs.attachments import read_all

        self.attached, stdin_text = read_all(opts.attach, self.settings)  # for the first message
        self.piped_text = stdin_text or piped_text
        self.profile = runtime.resolve(self.settings, opts, self.notice)
        self.tools = tools if tools is not None else runtime.select_tools(self.settings, opts,
                                                                          self.warn)
        self.prompter = ReplPrompter(input, output, console=err)
        self.mcp = None
        self.recorder = None
        try:
            self.recorder = runtime.make_recorder(self.settings, opts, self.warn,
                                                  critical=self.guard.critical)
            # a wrong -c / --session is said before any server starts or SDK loads
            self.resumed = runtime.resume(self.settings, opts, self.recorder)
            self.profile = runtime.settled_profile(self.profile, self.resumed)
            self.mcp = runtime.start_mcp(self.settings, opts, self.warn) if tools is None else None
            self.executor = runtime.make_executor(self.settings, opts, self.tools, self.prompter,
                                                  self.mcp)
            provider = self._make_provider(self.settings, self.profile)
            if self.mcp is not None:  # MCP tools join the plugins in the banner and /tools
                self.tools = {**self.tools, **self.executor.mcp.tools()}
            self.conversation = runtime.make_conversation(self.settings, opts, self.resumed,
                                                          self.recorder, self.notice)
            self.agent = runtime.make_agent(self.settings, opts, provider, self.executor,
                                            self.conversation, profile=self.profile,
                                            recorder=self.recorder)
            self.session = build_session(self)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the MCP servers this session started and close the session store."""
        if self.mcp is not None:
            self.mcp.close()
            self.mcp = None
        if self.recorder is not None:
            self.recorder.close()

    # -- small output helpers (all on stderr, sanitised)

    def notice(self, line: str) -> None:
        from rich.text import Text

        self.err.print(Text(sanitize(line), style="dim"))

    def warn(self, line: str) -> None:
        from rich.text import Text

        self.err.print(Text("warning: ", style="yellow") + Text(sanitize(line)))

    def error(self, e: AgentCliError | str, hint: str | None = None) -> None:
        from rich.text import Text

        message = e.message if isinstance(e, AgentCliError) else e
        hint = e.hint if isinstance(e, AgentCliError) and hint is None else hint
        line = Text("error: ", style="bold red") + Text(sanitize(message), style="red")
        if hint:
            line += Text(f" (hint: {sanitize(hint)})", style="dim")
        self.err.print(line, soft_wrap=True)

    @property
    def model(self) -> str:
        return str(getattr(self.agent.provider, "model", None) or self.profile.model or "?")

    # -- the loop

    def run(self) -> int:
        self._banner()
        while True:
            try:
                text = self.session.prompt()
            except KeyboardInterrupt:
                if self.session.kept_on_ctrl_c:
                    self.notice("(input kept in history: press Up to get it back)")
                    continue
                now = time.monotonic()
                if now - self._last_ctrl_c <= DOUBLE_CTRL_C:
                    return EXIT_INTERRUPTED
                self._last_ctrl_c = now
                self.notice("press Ctrl-D or type /exit to quit (Ctrl-C again quits too)")
                continue
            except EOFError:
                return 0
            self._last_ctrl_c = 0.0
            if not text.strip():
                continue
            if self._handle(text) is _EXIT:
                return 0

    def _handle(self, text: str) -> object | None:
        """One input line; whatever goes wrong in it, the session goes on."""
        try:
            if text.startswith("/"):
                from .slash import EXIT, dispatch

                return _EXIT if dispatch(self, text.strip()) is EXIT else None
            self.send(text)
        except KeyboardInterrupt:
            self.notice("(cancelled)")
        except AgentCliError as e:
            self.error(e)
        except Exception as e:  # a bug: say so, keep the conversation
            if debug_enabled():
                raise
            self.error(f"internal error: {type(e).__name__}: {e}",
                       hint="this is a bug in agentcli; AGENTCLI_DEBUG=1 shows the traceback")
        return None

    def _banner(self) -> None:
        tools = ", ".join(sorted(self.tools)) or "none"
        self.notice(f"agentcli chat · {self.profile.name} · {self.model} · tools: {tools}")
        self.notice("Enter sends · Esc+Enter newline · /help · Ctrl-D quits")
        if self.resumed is not None:
            self.notice(runtime.resume_notice(self.resumed, self.profile.name, self.model,
                                              self.settings))
            for line in runtime.unanswered_notices(self.resumed):
                self.notice(line)
        if self.recorder is None:
            self.notice("not saving this conversation (--no-save or save: false)")
        if self.piped_text:
            lines = self.piped_text.count("\n") + (not self.piped_text.endswith("\n"))
            self.notice(f"piped input ({lines} line{'s' if lines != 1 else ''}, "
                        f"{len(self.piped_text):,} characters) will be sent with your first "
                        "message")
        if self.attached:
            self.notice("attached: " + "; ".join(a.describe() for a in self.attached)
                        + " (sent with your first message)")

    def send(self, text: str) -> None:
        """The typed text, with the piped text and the attachments waiting for it; attachments
        the provider cannot take are an error here, and keep waiting."""
        from ...inputs.attachments import check_sendable, compose

        message, piped = compose(text, self.piped_text, self.attached)
        check_sendable([*self.conversation.messages, message], self.profile)
        self.piped_text = None
        self.attached = []
        self.run_turn(message, piped=piped)

    def run_turn(self, text: str | Message, *, piped: int | None = None,
                 media: tuple[Any, ...] = ()) -> None:
        """One user message (its text, or the whole message) through the agent, rendering its
        events as they come; what the turn became is the agent's AgentDone, rendered once."""
        from ...agent.loop import drive
        from ...messages import TextPart

        message = text if isinstance(text, Message) else \
            Message("user", (*media, *([TextPart(text)] if text else [])))
        self.failed_text = None
        out = _TurnOutput(self)
        with self.guard.installed(), echo_off(self.tty_fd):
            try:
                done = drive(self.agent.run(message, piped=piped), out.handle)
            finally:
                with self.guard.ignored():  # a second Ctrl-C must not cut the clean-up short
                    out.close()
        with self.guard.ignored():
            self._report(done, message)
            self.console.print()  # one blank line between a reply and the next prompt

    def _report(self, done: AgentDone, message: Message) -> None:
        """Tell the user, once, how the turn ended."""
        if done.user_dropped:  # /retry sends it again; it is in the input history too
            self.failed_text, self.failed_media = message.text, message.media
        if done.stop_reason == "error":
            self.error(done.error)
            if done.user_dropped:
                self.notice("(the message was not answered: /retry sends it again)")
            elif done.partial_kept:
                self.notice("(the partial reply above is kept in the conversation)")
        elif done.stop_reason == "interrupted":
            if done.partial_kept:
                self.notice("⏹ interrupted — the partial reply is kept in the conversation")
            elif done.user_dropped:
                self.notice("⏹ interrupted before any reply: /retry sends the message again")
            else:
                self.notice("⏹ interrupted")
        else:
            warning = stop_warning(done, self.agent.max_steps)
            if warning is not None:
                self.warn(warning)

    # -- /model and /provider

    def switch(self, *, provider: str | None = None, model: str | None = None) -> None:
        """Re-resolve the profile and rebuild provider + agent, keeping the history."""
        opts = self.opts
        if provider is not None:
            same = provider == self.profile.name
            opts = replace(opts, provider=provider, model=opts.model if same else None,
                           base_url=opts.base_url if same else None)
        if model is not None:
            opts = replace(opts, model=model)
        profile = runtime.resolve(self.settings, opts, self.notice)
        new_provider = self._make_provider(self.settings, profile)
        agent = runtime.make_agent(self.settings, opts, new_provider, self.executor,
                                   self.conversation, profile=profile, recorder=self.recorder)
        self.opts, self.profile, self.agent = opts, profile, agent


class _TurnOutput:
    """Agent events -> terminal: the reply through the markdown stream, tool panels on stderr."""

    def __init__(self, repl: ChatRepl) -> None:
        self.repl = repl
        self.stream: Any = None
        self.reasoning: Any = None  # ui.reasoning.ReasoningBlock while the model thinks
        self.asked = False  # the last call's diff was shown at the approval prompt

    def _text(self, delta: str) -> None:
        if self.stream is None:
            console = self.repl.console
            if console.is_terminal:
                from ..markdown_stream import MarkdownStream

                self.stream = MarkdownStream(console, critical=self.repl.guard.critical)
            else:
                from ..markdown_stream import PlainStream

                self.stream = PlainStream(console.file)
        self.stream.feed(delta)

    def _reasoning(self, delta: str) -> None:
        """Reasoning streams as a dim block that folds to one line when the answer starts."""
        if self.repl.settings.hide_reasoning:
            return
        if self.reasoning is None:
            from ..reasoning import ReasoningBlock

            self.close()
            self.reasoning = ReasoningBlock(self.repl.err, critical=self.repl.guard.critical)
        self.reasoning.feed(delta)

    def close(self) -> None:
        if self.reasoning is not None:
            self.reasoning.fold()
            self.reasoning = None
        if self.stream is not None:
            self.stream.finish()  # if Ctrl-C cuts this short, the clean-up finishes it again
            self.stream = None

    def handle(self, event: AgentEvent) -> None:
        repl = self.repl
        if isinstance(event, ReasoningDelta):
            self._reasoning(event.text)
        elif isinstance(event, TextDelta):
            if self.reasoning is not None:
                self.close()  # the answer starts: the reasoning folds
            self._text(event.text)
        elif isinstance(event, ToolCallReady):
            from ..render import tool_call_panel

            self.close()
            with repl.guard.critical():
                repl.err.print(tool_call_panel(event.call.name, event.call.arguments))
        elif isinstance(event, ToolResultReady):
            from ..render import tool_result_panel

            r = event.result
            self.asked = getattr(event.verdict, "source", None) == "user"
            with repl.guard.critical():
                repl.err.print(tool_result_panel(r.name, r.content, r.is_error))
        elif isinstance(event, FileChanged):
            from ..diff_view import file_change_panel

            with repl.guard.critical():
                repl.err.print(file_change_panel(event.change, with_diff=not self.asked))
        elif isinstance(event, Notice):
            self.close()
            repl.warn(event.text) if event.level == "warning" else repl.notice(event.text)
        elif isinstance(event, AgentDone):
            self.close()
        elif not isinstance(event, (HistoryAppended, ResponseDone)):  # pragma: no cover
            raise TypeError(f"unknown event {event!r}")


# --- entry point ---------------------------------------------------------------------------------

def run_chat(opts: runtime.RunOptions, piped_text: str | None = None) -> int:
    """The `agentcli chat` command: returns the exit code (0 on /exit or Ctrl-D, 130 on a
    double Ctrl-C)."""
    from rich.console import Console

    inp, out, fd, opened = open_terminal()
    try:
        console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
        err = Console(file=sys.stderr, highlight=False)
        repl = ChatRepl(opts, input=inp, output=out, console=console, err=err,
                        piped_text=piped_text, tty_fd=fd)
        try:
            return repl.run()
        finally:
            repl.close()
    finally:
        for f in opened:
            try:
                f.close()
            except OSError:
                pass

