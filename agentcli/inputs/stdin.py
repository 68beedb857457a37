"""Piped stdin: read bounded and never waited on forever, then composed with the prompt.

Stdin rule: when stdin is not a terminal its text is read (bounded by ``stdin_limit``) and sent
with PROMPT as one user message, PROMPT first and then the piped text in a labelled ``<stdin>``
block. ``-`` or no PROMPT: the piped text is the prompt. Nothing at all: usage error (exit 2).
A pipe that stays open without sending anything is waited on for ``stdin_timeout`` seconds at most.
"""

from __future__ import annotations

import os
import select
import stat
import sys
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import UsageError

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


def piped_share(prompt: str | None, text: str) -> int | None:
    """How many characters at the end of the composed message came from stdin."""
    if prompt is not None and prompt != "-" and prompt.strip():
        return (len(text) - len(prompt)) or None
    return len(text)
