"""`agentcli ask`: one turn of the agent, reply on stdout, everything else on stderr.

Stdin rule: when stdin is not a terminal its text is read (bounded by ``stdin_limit``) and sent
with PROMPT as one user message, PROMPT first and then the piped text in a labelled ``<stdin>``
block. ``-`` or no PROMPT: the piped text is the prompt. Nothing at all: usage error (exit 2).
A pipe that stays open without sending anything is waited on for ``stdin_timeout`` seconds at most.
"""

from __future__ import annotations

import json
import os
import select
import stat
import sys
import time
from typing import Any, BinaryIO

from .errors import EXIT_INTERRUPTED, EXIT_RUNTIME, ProviderError, StreamInterruptedError, UsageError
from .messages import (AgentDone, Message, TextDelta, ToolCallReady, ToolResultReady, TurnDone,
                       Usage)
from .render import sanitize
from .runtime import RunOptions

_CHUNK = 65536


def _wait_readable(stream: BinaryIO, timeout: float) -> bool:
    """True when the stream has data or EOF within ``timeout`` s (always true for files)."""
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return True
    if stat.S_ISREG(mode):
        return True
    deadline = time.monotonic() + timeout
    told = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        step = min(left, 2.0) if not told else left
        ready, _, _ = select.select([fd], [], [], step)
        if ready:
            return True
        if not told and sys.stderr.isatty():
            print("agentcli: waiting for input on stdin (Ctrl-C cancels; add `< /dev/null` to "
                  "skip it)", file=sys.stderr, flush=True)
        told = True


def read_stream_bounded(stream: BinaryIO, limit: int, timeout: float) -> bytes | None:
    """Read a whole stream up to ``limit`` bytes. None when nothing arrived within ``timeout``;
    UsageError when it is bigger than ``limit`` (we stop reading there, never buffer it all)."""
    if not _wait_readable(stream, timeout):
        return None
    chunks: list[bytes] = []
    size = 0
    read = getattr(stream, "read1", stream.read)
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise UsageError(f"piped input is larger than the {limit:,}-byte limit",
                             hint="pipe less (e.g. `| head -c 500000`) or raise stdin_limit in "
                                  "the config file")
    return b"".join(chunks)


def decode_input(data: bytes, warn: Any) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd")
        warn(f"stdin is not valid UTF-8: {bad} undecodable byte sequence(s) replaced with U+FFFD")
        return text


def read_piped_stdin(settings: Any, *, required: bool, prompt_given: bool = True) -> str | None:
    """The piped text (None if stdin is a terminal or nothing arrived in time)."""
    from .render import warn

    if sys.stdin is None or sys.stdin.isatty():
        return None
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        return None
    data = read_stream_bounded(stream, settings.stdin_limit, settings.stdin_timeout)
    if data is None:
        if required or not prompt_given:
            raise UsageError(f"nothing arrived on stdin within {settings.stdin_timeout:g} s",
                             hint="pipe text in, pass PROMPT, or raise stdin_timeout in config")
        warn(f"nothing arrived on stdin within {settings.stdin_timeout:g} s; continuing without it")
        return None
    return decode_input(data, warn)


def compose_prompt(prompt: str | None, piped: str | None) -> str:
    """PROMPT first, then the piped text in a clearly labelled block; `-` means stdin only."""
    has_prompt = prompt is not None and prompt != "-" and prompt.strip() != ""
    has_piped = piped is not None and piped.strip() != ""
    if has_prompt and has_piped:
        return f"{prompt}\n\n<stdin>\n{piped.rstrip()}\n</stdin>"
    if has_prompt:
        return prompt  # type: ignore[return-value]
    if has_piped:
        return piped  # type: ignore[return-value]
    raise UsageError("nothing to ask: give a PROMPT or pipe text into stdin",
                     hint='agentcli ask "your question"   or   cat file | agentcli ask "question"')


class AskOutput:
    """Events -> stdout (reply text) and stderr (tool notices); or collected for --json."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.text: list[str] = []
        self.calls: dict[str, dict[str, Any]] = {}
        self.markdown = not json_mode and sys.stdout.isatty()  # a pipe gets plain text
        self._stream: Any = None
        self._at_line_start = True

    def _out(self, s: str) -> None:
        if self.json_mode or not s:
            return
        sys.stdout.write(s)
        sys.stdout.flush()
        self._at_line_start = s.endswith("\n")

    def _markdown(self, delta: str) -> None:
        if self._stream is None:
            from rich.console import Console

            from .markdown_stream import MarkdownStream

            self._stream = MarkdownStream(Console(file=sys.stdout, soft_wrap=False))
        self._stream.feed(delta)

    def handle(self, event: Any) -> None:
        from .render import eprint

        if isinstance(event, TextDelta):
            self.text.append(event.text)
            if self.markdown:
                self._markdown(event.text)
            else:
                self._out(sanitize(event.text))
        elif isinstance(event, ToolCallReady):
            call = event.call
            try:
                args: Any = call.parsed_arguments()
            except ValueError:
                args = call.arguments
            self.calls[call.id] = {"id": call.id, "name": call.name, "arguments": args}
            self.end_line()
            shown = call.arguments if len(call.arguments) <= 400 else call.arguments[:400] + "…"
            eprint(sanitize(f"→ tool {call.name} {shown}"))
        elif isinstance(event, ToolResultReady):
            r = event.result
            entry = self.calls.setdefault(r.call_id, {"id": r.call_id, "name": r.name})
            entry.update(result=r.content, is_error=r.is_error)
            first = r.content.strip().splitlines()[0] if r.content.strip() else ""
            more = f" … ({len(r.content):,} chars)" if len(first) < len(r.content.strip()) else ""
            mark = "✗" if r.is_error else "←"
            eprint(sanitize(f"{mark} {r.name}: {first[:300]}{more}"))
        elif isinstance(event, (TurnDone, AgentDone)):
            pass
        else:  # pragma: no cover
            raise TypeError(f"unknown event {event!r}")

    def end_line(self) -> None:
        """The text so far is complete (a tool call follows, or the turn ended)."""
        if self._stream is not None:
            self._stream.finish()  # renders the unfinished tail before anything else prints
            self._stream = None
        elif not self.json_mode and not self._at_line_start:
            self._out("\n")


def run_ask(opts: RunOptions, prompt: str | None, *, json_out: bool = False) -> int:
    from . import runtime
    from .render import eprint, notice, warn

    settings = runtime.load(opts)
    piped = read_piped_stdin(settings, required=False,
                             prompt_given=prompt not in (None, "-"))
    text = compose_prompt(prompt, piped)
    profile = runtime.resolve(settings, opts, notice=notice)
    tools = runtime.select_tools(settings, opts, warn)
    prompter = None
    if tools and not opts.yes:
        from .approval import open_tty_prompter

        prompter = open_tty_prompter()
    provider = runtime.make_provider(settings, profile)
    executor = runtime.make_executor(settings, opts, tools, prompter)
    agent = runtime.make_agent(settings, opts, provider, executor)

    out = AskOutput(json_out)
    done: AgentDone | None = None
    error: ProviderError | None = None
    events = agent.run(Message.user(text))
    try:
        for event in events:
            out.handle(event)
            if isinstance(event, AgentDone):
                done = event
    except KeyboardInterrupt:
        events.close()
        done = AgentDone("interrupted", agent.usage, 0)
    except ProviderError as e:
        error = e
    finally:
        if prompter is not None:
            prompter.close()  # the /dev/tty handles it opened
    out.end_line()

    reason = done.reason if done else "error"
    if json_out:
        payload = {
            "text": "".join(out.text),
            "tool_calls": list(out.calls.values()),
            "usage": _usage_dict(agent.usage),
            "provider": profile.name,
            "model": getattr(provider, "model", profile.model),
            "stop_reason": reason,
            "steps": done.steps if done else None,
        }
        if error is not None:
            payload["error"] = error.message
        print(json.dumps(payload, ensure_ascii=False))
    if error is not None:
        if isinstance(error, StreamInterruptedError) and "".join(out.text):
            eprint("(the reply above is incomplete)")
        raise error
    if reason == "interrupted":
        eprint("interrupted")
        return EXIT_INTERRUPTED
    if reason == "max_steps":
        warn(f"stopped after {settings.max_steps} model requests without a final answer "
             "(raise it with --max-steps)")
        return EXIT_RUNTIME
    return 0


def _usage_dict(u: Usage) -> dict[str, int]:
    return {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
            "total_tokens": u.total_tokens}
