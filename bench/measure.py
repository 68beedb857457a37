"""One measured run of a command: to a pipe or in a pseudo-terminal.

What a run records, all from the harness's side of the child (no instrumentation inside it):

- ``wall``: from just before the fork to the child's exit (a pidfd becomes readable then, so the
  exit is seen at once, not at the next poll);
- ``cpu``: user + system seconds of the child and its waited-for children (``wait4``);
- ``rss``: peak resident set size of the program in MiB: its ``VmHWM`` (``/proc/PID/status``),
  read every few milliseconds while it runs (``wait4``'s ``ru_maxrss`` cannot serve: it keeps the
  RSS the child had before ``exec``, i.e. the harness's own);
- ``first``: when ``marker`` (the reply's first word) first appeared in the output: time to first
  byte of the reply as the user sees it, startup included.

A run fails (``error`` set) when the child exits non-zero, misses its deadline (its whole process
group is killed) or its output lacks ``expect``: a run that did not do the work never counts.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import tempfile
import termios
import time
from dataclasses import dataclass

COLS, ROWS = 100, 40
HWM_EVERY = 0.005  # seconds between reads of the peak RSS while the program runs
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
        if tty:  # the terminal is the child's stdin, stdout, stderr and controlling terminal
            fd, child_end = os.openpty()
            fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=child_end, stdout=child_end,
                                    stderr=child_end, start_new_session=True,
                                    preexec_fn=_take_terminal)
            os.close(child_end)
        else:
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=err, start_new_session=True)
            fd = proc.stdout.fileno()  # type: ignore[union-attr]
        # Popen returns once the exec succeeded: from here /proc/PID is the program's own
        out, first, status, usage, end, hwm = _collect(proc.pid, fd, t0, marker, tty, timeout)
        proc.returncode = 0  # reaped by wait4: keep Popen from waiting again
        if tty:
            os.close(fd)
        else:
            proc.stdout.close()  # type: ignore[union-attr]
        wall = end - t0
        cpu = usage.ru_utime + usage.ru_stime if usage else 0.0
        rss = hwm / 1024
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


def _take_terminal() -> None:  # pragma: no cover - in the child, after setsid
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _hwm(pid: int) -> int:
    """The process's peak RSS so far, KiB (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _collect(pid: int, fd: int, t0: float, marker: bytes | None, tty: bool, timeout: float):
    """Read the output until the child exits; (output, first, status, rusage, exit time,
    peak RSS in KiB)."""
    pidfd = os.pidfd_open(pid)
    deadline = t0 + timeout
    buf = bytearray()
    first = None
    status = usage = None
    end = time.perf_counter()
    open_fds = [fd, pidfd]
    hwm = _hwm(pid)
    try:
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                _kill(pid)
                _, status, usage = os.wait4(pid, 0)
                status, end = None, time.perf_counter()
                break
            ready, _, _ = select.select(open_fds, [], [], min(left, HWM_EVERY))
            now = time.perf_counter()
            hwm = max(hwm, _hwm(pid))
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
    return bytes(buf), first, status, usage, end, hwm


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
