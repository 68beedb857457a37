"""`agentcli ask`: one turn of the agent, reply on stdout, everything else on stderr.

Stdin rule: when stdin is not a terminal its text is read (bounded by ``stdin_limit``) and sent
with PROMPT as one user message, PROMPT first and then the piped text in a labelled ``<stdin>``
block. ``-`` or no PROMPT: the piped text is the prompt. Nothing at all: usage error (exit 2).
A pipe that stays open without sending anything is waited on for ``stdin_timeout`` seconds at most.
"""

from __future__ import annotations

import json
import os
import re
import select
import stat
import sys
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import EXIT_INTERRUPTED, EXIT_RUNTIME, UsageError
from ..messages import (AgentDone, AgentEvent, HistoryAppended, Message, Notice, ResponseDone,
                       TextDelta, ToolCallReady, ToolResultReady)
from ..ui.render import sanitize
from ..runtime import RunOptions

_CHUNK = 65536


def _is_regular(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return True  # not a real file descriptor (tests): reads cannot block


def _wait_readable(fd: int, timeout: float, first: bool) -> bool:
    """True when ``fd`` has data or EOF within ``timeout`` s. Before the first byte, a note on
    the terminal after 2 s says what agentcli is waiting for."""
    deadline = time.monotonic() + timeout
    told = not first
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], min(left, 2.0) if not told else left)
        if ready:
            return True
        if not told and sys.stderr.isatty():
            print("agentcli: waiting for input on stdin (Ctrl-C cancels; add `< /dev/null` to "
                  "skip it)", file=sys.stderr, flush=True)
        told = True


@dataclass(frozen=True)
class PipedInput:
    data: bytes
    stalled: bool = False
    """The writer went quiet for ``stdin_timeout`` seconds without closing the pipe: ``data``
    is what arrived until then."""


def read_stream_bounded(stream: BinaryIO, limit: int, timeout: float) -> PipedInput | None:
    """Read a whole stream up to ``limit`` bytes. ``timeout`` is an idle limit: the longest wait
    for the next byte (a slow writer that keeps writing is read to the end). None when nothing at
    all arrived in time; UsageError when it is bigger than ``limit`` (reading stops there)."""
    chunks: list[bytes] = []
    size = 0
    read = getattr(stream, "read1", stream.read)
    fd = None if _is_regular(stream) else stream.fileno()
    while True:
        if fd is not None and not _wait_readable(fd, timeout, first=not chunks):
            return PipedInput(b"".join(chunks), stalled=True) if chunks else None
        chunk = read(_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise UsageError(f"piped input is larger than the {limit:,}-byte limit",
                             hint="pipe less (e.g. `| head -c 500000`) or raise stdin_limit in "
                                  "the config file")
    return PipedInput(b"".join(chunks))


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
    from ..ui.render import warn

    if sys.stdin is None or sys.stdin.isatty():
        return None
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        return None
    piped = read_stream_bounded(stream, settings.stdin_limit, settings.stdin_timeout)
    if piped is None:
        if required or not prompt_given:
            raise UsageError(f"nothing arrived on stdin within {settings.stdin_timeout:g} s",
                             hint="pipe text in, pass PROMPT, or raise stdin_timeout in config")
        warn(f"nothing arrived on stdin within {settings.stdin_timeout:g} s; continuing without it")
        return None
    if piped.stalled:
        warn(f"stdin sent nothing for {settings.stdin_timeout:g} s without closing; using the "
             f"{len(piped.data):,} bytes that arrived (raise stdin_timeout for slower input)")
    return decode_input(piped.data, warn)


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
    """Agent events -> stdout (reply text) and stderr (tool notices, warnings); in --json mode
    stdout gets only the final object (the notices still go to stderr). It renders; the turn's
    outcome comes from AgentDone."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.markdown = not json_mode and sys.stdout.isatty()  # a pipe gets plain text
        self._stream: Any = None
        self._at_line_start = True
        self.printed_text = False

    def _out(self, s: str) -> None:
        if not s:
            return
        sys.stdout.write(s)
        sys.stdout.flush()
        self._at_line_start = s.endswith("\n")

    def _markdown(self, delta: str) -> None:
        if self._stream is None:
            from ..ui.markdown_stream import LazyConsole, MarkdownStream

            self._stream = MarkdownStream(LazyConsole(sys.stdout, soft_wrap=False))
        self._stream.feed(delta)

    def handle(self, event: AgentEvent) -> None:
        from ..ui.render import eprint, warn

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
        elif isinstance(event, Notice):
            self.end_line()
            warn(event.text) if event.level == "warning" else eprint(sanitize(event.text))
        elif isinstance(event, AgentDone):
            self.end_line()
        elif not isinstance(event, (HistoryAppended, ResponseDone)):  # pragma: no cover
            raise TypeError(f"unknown event {event!r}")

    def end_line(self) -> None:
        """The text so far is complete (a tool call follows, or the turn ended)."""
        if self._stream is not None:
            self._stream.finish()  # renders the unfinished tail before anything else prints
            self._stream = None
        elif not self.json_mode and not self._at_line_start:
            self._out("\n")


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_line(payload: dict[str, Any]) -> str:
    """One JSON object on one line. Readable text stays readable (``ensure_ascii=False``), but
    DEL, C1 controls (``\\u009b`` is a CSI), bidi overrides and line separators are escaped:
    ``jq -r`` or a terminal must never receive them raw. (json escapes C0 itself.)"""
    return json_text(payload)


def json_text(payload: Any, indent: int | None = None) -> str:
    """``json_line``'s escaping, for any JSON value (``sessions`` exports and listings)."""
    text = json.dumps(payload, ensure_ascii=False, indent=indent)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def turn_json(done: AgentDone, provider: str, model: str) -> dict[str, Any]:
    """The --json object, made from the agent's AgentDone alone."""
    calls = []
    for record in done.calls:
        try:
            args: Any = record.call.parsed_arguments()
        except ValueError:
            args = record.call.arguments
        entry: dict[str, Any] = {"id": record.call.id, "name": record.call.name,
                                 "arguments": args, "result": record.result.content,
                                 "is_error": record.result.is_error}
        verdict = record.verdict
        if verdict is not None and hasattr(verdict, "as_json"):
            entry["approval"] = verdict.as_json()
        calls.append(entry)
    payload: dict[str, Any] = {
        "text": done.text,
        "tool_calls": calls,
        "usage": done.usage.as_json(),
        "provider": provider,
        "model": model,
        "stop_reason": done.stop_reason,
        "steps": done.steps,
        "partial": done.partial_kept,
    }
    if done.error is not None:
        payload["error"] = done.error.message
    return payload


def run_ask(opts: RunOptions, prompt: str | None, *, json_out: bool = False) -> int:
    from .. import runtime
    from ..agent.loop import drive
    from ..ui.render import eprint, notice, warn

    settings = runtime.load(opts)
    piped = read_piped_stdin(settings, required=False,
                             prompt_given=prompt not in (None, "-"))
    text = compose_prompt(prompt, piped)
    profile = runtime.resolve(settings, opts, notice=notice)
    recorder = runtime.make_recorder(settings, opts, warn)
    mcp = None
    prompter = None
    try:
        resumed = runtime.resume(settings, opts, recorder)
        tools = runtime.select_tools(settings, opts, warn)
        mcp = runtime.start_mcp(settings, opts, warn)  # servers start while the provider loads
        if (tools or mcp) and not opts.yes:
            from ..toolrun.approval import open_tty_prompter

            prompter = open_tty_prompter()
        provider = runtime.make_provider(settings, profile)
        model = getattr(provider, "model", None) or profile.model or ""
        executor = runtime.make_executor(settings, opts, tools, prompter, mcp)
        agent = runtime.make_agent(settings, opts, provider, executor, profile=profile,
                                   history=resumed.history if resumed else None,
                                   recorder=recorder)
        agent.system = runtime.conversation_system(settings, opts, resumed)
        out = AskOutput(json_out)
        handle = out.handle
        if resumed is not None and not json_out:
            notice(runtime.resume_notice(resumed, profile.name, model))
        if recorder is not None:
            recorder.begin_turn(provider=profile.name, model=model, system=agent.system,
                                role=runtime.conversation_role(opts, resumed),
                                piped=piped_share(prompt, text) if piped else None)
            handle = _both(recorder.handle, out.handle)
        done = drive(agent.run(Message.user(text)), handle)
    finally:
        if mcp is not None:
            mcp.close()  # every server process it started is gone after this
        if prompter is not None:
            prompter.close()  # the /dev/tty handles it opened
        if recorder is not None:
            recorder.close()

    if json_out:
        payload = turn_json(done, profile.name, model)
        payload["session"] = recorder.session_id if recorder and not recorder.failed else None
        from ..agent.pricing import cost

        spent = cost(settings.sessions, {model: done.usage})
        if spent is not None:
            payload["cost"] = spent.as_json()
        print(json_line(payload))
    return exit_code(done, settings, warn, eprint, printed=not json_out and out.printed_text)


def piped_share(prompt: str | None, text: str) -> int | None:
    """How many characters at the end of the composed message came from stdin."""
    if prompt is not None and prompt != "-" and prompt.strip():
        return (len(text) - len(prompt)) or None
    return len(text)


def _both(first: Any, second: Any) -> Any:
    def handle(event: AgentEvent) -> None:
        first(event)
        second(event)
    return handle


def exit_code(done: AgentDone, settings: Any, warn: Any, eprint: Any, *, printed: bool) -> int:
    """Say on stderr how the turn ended (when it did not simply finish) and pick the exit code."""
    reason = done.stop_reason
    if reason == "error":
        if done.partial_kept and printed:
            eprint("(the reply above is incomplete)")
        raise done.error
    if reason == "interrupted":
        eprint("interrupted" + (" (the reply above is incomplete)" if done.partial_kept
                                and printed else ""))
        return EXIT_INTERRUPTED
    if reason == "max_steps":
        warn(f"stopped after {settings.max_steps} model requests without a final answer "
             "(raise it with --max-steps)")
        return EXIT_RUNTIME
    if reason == "max_tokens":
        warn("the reply was cut off by the reply token limit; raise it with --max-tokens N "
             "(or max_tokens in the provider profile)")
        return EXIT_RUNTIME
    if reason == "content_filter":
        warn("the provider withheld the rest of the reply (content filter / refusal)")
        return EXIT_RUNTIME
    return 0
