"""Terminal plumbing for the chat REPL: Ctrl-C deferred around terminal writes, echo off while
a reply streams, and finding the terminal when stdin is a pipe."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from ...errors import UsageError

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output


# --- SIGINT, deferred around terminal writes ---------------------------------------------------

class SigintGuard:
    """While installed, Ctrl-C raises KeyboardInterrupt except inside ``critical()`` sections,
    where it is held until the section ends."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False
        self._critical = _Critical(self)

    def _handler(self, signum: int, frame: Any) -> None:
        if self.depth:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def critical(self) -> _Critical:
        """A section (one terminal write) that Ctrl-C may not cut: the interrupt is raised when
        the outermost section ends. A class, not a generator: it runs once per token."""
        return self._critical

    @contextmanager
    def ignored(self) -> Iterator[None]:
        """Ctrl-C is dropped (not deferred) inside: for clean-up that must finish."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            self.pending = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = signal.signal(signal.SIGINT, self._handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)
            self.pending = False
            self.depth = 0


class _Critical:
    def __init__(self, guard: SigintGuard) -> None:
        self.guard = guard

    def __enter__(self) -> None:
        self.guard.depth += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        g = self.guard
        g.depth -= 1
        if g.depth == 0 and g.pending and exc_type is None:
            g.pending = False
            raise KeyboardInterrupt
        return False


@contextmanager
def echo_off(fd: int | None) -> Iterator[None]:
    """Terminal echo off (signals still on) while output streams; restored afterwards."""
    if fd is None:
        yield
        return
    try:
        import termios

        old = termios.tcgetattr(fd)
        new = list(old)
        new[3] = (new[3] & ~termios.ECHO) | termios.NOFLSH  # keep type-ahead on Ctrl-C
        termios.tcsetattr(fd, termios.TCSANOW, new)
    except (ImportError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, old)
        except OSError:
            pass


def open_terminal() -> tuple[Input, Output, int | None, list[Any]]:
    """prompt-toolkit input/output on the terminal: stdin/stdout when they are terminals, else
    /dev/tty (e.g. `cat notes.md | agentcli chat`)."""
    from prompt_toolkit.input import create_input
    from prompt_toolkit.output import create_output

    opened: list[Any] = []
    if sys.stdin is not None and sys.stdin.isatty():
        tty_in = sys.stdin
    else:
        try:
            tty_in = open("/dev/tty", encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as e:
            raise UsageError("chat needs a terminal to read your messages from, and there is "
                             "none", hint="use `agentcli ask PROMPT` in scripts and pipes") from e
        opened.append(tty_in)
    if sys.stdout.isatty():
        tty_out = sys.stdout
    elif sys.stderr.isatty():
        tty_out = sys.stderr
    else:
        try:
            tty_out = open("/dev/tty", "w", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise UsageError("chat needs a terminal to show its prompt on",
                             hint="use `agentcli ask PROMPT` in scripts and pipes") from e
        opened.append(tty_out)
    return create_input(tty_in), create_output(stdout=tty_out), tty_in.fileno(), opened
