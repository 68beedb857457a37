"""One measured run of a command: to a pipe or in a pseudo-terminal.

What a run records, all from the harness's side of the child (no instrumentation inside it):

- ``wall``: from just before the fork to the child's exit (a pidfd becomes readable then, so the
  exit is seen at once, not at the next poll);
- ``cpu``: user + system seconds of the child and its waited-for children (``wait4``);
- ``rss``: peak resident set size in MiB (``wait4``'s ``ru_maxrss``);
- ``first``: when ``marker`` (the reply's first word) first appeared in the output: time to first
  byte of the reply as the user sees it, startup included.

A run fails (``error`` set) when the child exits non-zero, misses its deadline (its whole process
group is killed) or its output lacks ``expect``: a run that did not do the work never counts.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import tempfile
import termios
import time
from dataclasses import dataclass

COLS, ROWS = 100, 40
_CPR = b"\x1b[6n"  # "where is the cursor?" (prompt-toolkit asks it): answered, or it waits


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    rss: float
    first: float | None = None
    error: str | None = None


def run(argv: list[str], env: dict[str, str], *, tty: bool, marker: bytes | None = None,
        expect: bytes | None = None, timeout: float = 600.0, cwd: str | None = None) -> Sample:
    """Run ``argv`` once (stdin is /dev/null, or the terminal in ``tty`` mode)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        if tty:
            pid, fd = _spawn_pty(argv, env, cwd)
        else:
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=err, start_new_session=True)
            pid, fd = proc.pid, proc.stdout.fileno()  # type: ignore[union-attr]
        out, first, status, usage, end = _collect(pid, fd, t0, marker, tty, timeout)
        if not tty:
            proc.stdout.close()  # type: ignore[union-attr]
            proc.returncode = 0  # reaped by wait4 below: keep Popen from waiting again
        else:
            os.close(fd)
        wall = end - t0
        cpu = usage.ru_utime + usage.ru_stime if usage else 0.0
        rss = usage.ru_maxrss / 1024 if usage else 0.0
        error = None
        if status is None:
            error = f"no exit within {timeout:g} s (killed)"
        elif (code := os.waitstatus_to_exitcode(status)) != 0:
            err.seek(0)
            tail = (err.read()[-300:] or out[-300:]).decode(errors="replace").strip()
            error = f"exit {code}: {tail.splitlines()[-1] if tail else ''}"
        elif expect is not None and expect not in out:
            error = f"output lacks {expect.decode()!r}: ...{out[-200:].decode(errors='replace')!r}"
        return Sample(wall, cpu, rss, first, error)


def _spawn_pty(argv: list[str], env: dict[str, str], cwd: str | None) -> tuple[int, int]:
    pid, fd = pty.fork()  # the child gets the terminal as stdin/stdout/stderr and its ctty
    if pid == 0:  # pragma: no cover - the child
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
            if cwd:
                os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid, fd


def _collect(pid: int, fd: int, t0: float, marker: bytes | None, tty: bool, timeout: float):
    """Read the output until the child exits; (output, first, status, rusage, exit time)."""
    pidfd = os.pidfd_open(pid)
    deadline = t0 + timeout
    buf = bytearray()
    first = None
    status = usage = None
    end = time.perf_counter()
    open_fds = [fd, pidfd]
    try:
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                _kill(pid)
                _, status, usage = os.wait4(pid, 0)
                status, end = None, time.perf_counter()
                break
            ready, _, _ = select.select(open_fds, [], [], left)
            now = time.perf_counter()
            if fd in ready:
                data = _read(fd)
                if data is None:
                    open_fds.remove(fd)
                else:
                    if tty and _CPR in data:
                        os.write(fd, b"\x1b[1;1R")
                    start = max(0, len(buf) - len(marker or b""))
                    buf += data
                    if first is None and marker is not None and marker in buf[start:]:
                        first = now - t0
            if pidfd in ready:
                end = now
                _, status, usage = os.wait4(pid, 0)
                while fd in open_fds and select.select([fd], [], [], 0.05)[0]:
                    data = _read(fd)  # what was still buffered when it exited
                    if data is None:
                        break
                    buf += data
                if first is None and marker is not None and marker in buf:
                    first = end - t0  # arrived with the exit: at most then
                break
    finally:
        os.close(pidfd)
    return bytes(buf), first, status, usage, end


def _read(fd: int) -> bytes | None:
    try:
        data = os.read(fd, 1 << 16)
    except OSError:  # EIO: the terminal's other side is closed
        return None
    return data or None


def _kill(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        time.sleep(0.5)
