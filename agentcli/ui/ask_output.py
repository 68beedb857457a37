"""`ask`'s renderer for people: the reply on stdout (markdown in a terminal, plain text in a
pipe), the model's reasoning (dim in a terminal, plain and sanitised in a pipe), tool calls,
results and notices on stderr. It renders the agent's events; the turn's outcome comes from
AgentDone."""

from __future__ import annotations

import sys
from typing import Any

from ..messages import (AgentDone, AgentEvent, FileChanged, HistoryAppended, Notice,
                        ReasoningDelta, ResponseDone, TextDelta, ToolCallReady, ToolResultReady)
from .render import sanitize


class AskOutput:
    """Agent events -> stdout (reply text) and stderr (tool notices, warnings); in --json mode
    stdout gets only the final object (the notices still go to stderr). It renders; the turn's
    outcome comes from AgentDone."""

    def __init__(self, json_mode: bool, *, show_reasoning: bool = True) -> None:
        self.json_mode = json_mode
        self.markdown = not json_mode and sys.stdout.isatty()  # a pipe gets plain text
        self.show_reasoning = show_reasoning
        self._stream: Any = None
        self._at_line_start = True
        self._reasoning: Any = None  # the reasoning being shown on stderr, until the reply
        self.printed_text = False
        self._asked = False  # the last call's diff was shown at the approval prompt

    def _out(self, s: str) -> None:
        if not s:
            return
        sys.stdout.write(s)
        sys.stdout.flush()
        self._at_line_start = s.endswith("\n")

    def _markdown(self, delta: str) -> None:
        if self._stream is None:
            from .markdown_stream import LazyConsole, MarkdownStream

            self._stream = MarkdownStream(LazyConsole(sys.stdout, soft_wrap=False))
        self._stream.feed(delta)

    def handle(self, event: AgentEvent) -> None:
        from .render import eprint, warn

        if isinstance(event, ReasoningDelta):
            if self.show_reasoning:
                self._reason(event.text)
            return
        if not isinstance(event, (HistoryAppended, ResponseDone)):
            self._end_reasoning()  # the reply (or a tool call, a notice) starts
        if isinstance(event, TextDelta):
            if self.json_mode:
                return  # stdout carries only the final object; stderr still gets the rest
            self.printed_text = True
            if self.markdown:
                self._markdown(event.text)
            else:
                self._out(sanitize(event.text))
        elif isinstance(event, ToolCallReady):
            call = event.call
            self.end_line()
            shown = call.arguments if len(call.arguments) <= 400 else call.arguments[:400] + "…"
            eprint(sanitize(f"→ tool {call.name} {shown}"))
        elif isinstance(event, ToolResultReady):
            r = event.result
            first = r.content.strip().splitlines()[0] if r.content.strip() else ""
            more = f" … ({len(r.content):,} chars)" if len(first) < len(r.content.strip()) else ""
            mark = "✗" if r.is_error else "←"
            eprint(sanitize(f"{mark} {r.name}: {first[:300]}{more}"))
            self._asked = getattr(event.verdict, "source", None) == "user"
        elif isinstance(event, FileChanged):
            from .diff_view import as_ansi, change_diff, shown_path

            d = change_diff(event.change)
            eprint(sanitize(f"✎ changed {shown_path(event.change.path)} ({d.counts})"))
            if not self._asked:  # not seen at a prompt (--yes, a rule): shown here
                eprint(as_ansi(d.text))
        elif isinstance(event, Notice):
            self.end_line()
            if event.level == "warning":
                warn(event.text)
            else:
                from ..errors import redact_url

                eprint(sanitize(redact_url(event.text)))
        elif isinstance(event, AgentDone):
            self.end_line()
        elif not isinstance(event, (HistoryAppended, ResponseDone)):  # pragma: no cover
            raise TypeError(f"unknown event {event!r}")

    def _reason(self, delta: str) -> None:
        if self._reasoning is None:
            from .reasoning import ReasoningStream

            self.end_line()  # reasoning after some text (interleaved): the text line ends first
            self._reasoning = ReasoningStream(sys.stderr)
        self._reasoning.feed(delta)

    def _end_reasoning(self) -> None:
        if self._reasoning is not None:
            self._reasoning.finish()
            self._reasoning = None

    def end_line(self) -> None:
        """The text so far is complete (a tool call follows, or the turn ended)."""
        if self._stream is not None:
            self._stream.finish()  # renders the unfinished tail before anything else prints
            self._stream = None
        elif not self.json_mode and not self._at_line_start:
            self._out("\n")
