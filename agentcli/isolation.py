"""Run plugin code in a disposable process tree, never in the agentcli process.

One call (POSIX)::

    agentcli (P) --fork--> supervisor (C) --fork--> worker (W) --> anything the tool starts
         ^---------------- pipe: W's result frame, then C's status frame -------------'

- **C, the supervisor**, runs no plugin code. It starts a new session (``setsid``: no
  controlling terminal, so ``/dev/tty`` cannot be opened, and Ctrl-C in the terminal never
  reaches the tool directly), points fds 0-2 at ``/dev/null``, closes every other inherited
  descriptor but the pipe (the terminal, sockets, the prompt's /dev/tty), and on Linux becomes
  a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``: a process the tool started that
  double-forks or calls ``setsid()`` is re-parented to C, not to init) with SIGTERM as its
  parent-death signal. It waits until W exits or it gets SIGTERM (P's timeout or Ctrl-C), then
  SIGKILLs W's process group and, generation by generation, every process re-parented to it
  (``/proc/<C>/task/<C>/children``), reaps them all, writes W's exit status and exits.
- **W, the worker**: its own process group; imports the plugin and calls it (``job``); writes
  one length-prefixed JSON frame; ``os._exit``.
- **P** reads frames until C's status frame, written only after the cleanup (or EOF, if C
  died); W's result is kept as soon as it is complete, then C gets ``GRACE`` seconds for its
  cleanup. So when ``run_isolated`` returns, nothing the tool started is left; C itself may still
  be finishing its exit, and a daemon thread reaps it. At the timeout,
  on Ctrl-C or on an over-long result it sends SIGTERM to C and keeps draining; if C is not
  gone ``GRACE`` seconds later, SIGKILL.

Limits: elsewhere than Linux (macOS) there is no subreaper and no ``/proc``: only W's process
group is killed, so a descendant that left the group (``setsid``, ``setpgid``) can outlive the
call. Everywhere, only descendants are tracked: a process another service starts on the tool's
behalf (``systemd-run``, ``at``) is not one. A tool runs with the user's permissions: it can
still open the terminal device by its path (``/dev/pts/N``); isolation stops accidents and
misbehaving plugins, it is not a security sandbox. Without ``fork`` (Windows) ``run_threaded``
runs the job in a thread of this process: a timeout is reported but cannot stop it.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import select
import signal
import struct
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal, NoReturn

GRACE = 5.0  # seconds C gets to clean up (after W's result, or SIGTERM) before P uses SIGKILL
_HEADER = struct.Struct(">cQ")  # tag (R result, X job failed, S supervisor status), length
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_MAX_ROUNDS = 10_000  # kill-and-reap rounds in C (each round ends one generation)
_STATUS_FD = 3

Status = Literal["done", "failed", "timeout", "crash", "toobig"]


@dataclass(frozen=True)
class ChildResult:
    """How an isolated job ended. ``done``: ``value`` is what the job returned; ``failed``:
    the job raised, ``detail`` describes it; ``timeout``; ``toobig``: the result frame was over
    the limit; ``crash``: the worker ended without a result, ``detail`` says how (``exit code
    3``, ``killed by signal 9``)."""

    status: Status
    value: Any = None
    detail: str = ""


@functools.lru_cache(maxsize=1)
def _prctl() -> Callable[..., int] | None:
    """libc's prctl on Linux (looked up once, in the parent, so children pay nothing)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def describe_exception(e: BaseException) -> str:
    """Our own errors (AgentCliError, the plugin API's ToolError) read as just their message,
    anything else as ``Type: message``."""
    from .errors import AgentCliError, ToolError

    if isinstance(e, (AgentCliError, ToolError)):
        return e.message
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# --- the parent side ----------------------------------------------------------------------------

def run_isolated(job: Callable[[], Any], *, timeout: float, max_bytes: int) -> ChildResult:
    """Run ``job()`` in a worker process under ``timeout`` seconds; what it returns must be
    JSON-serialisable and, encoded, at most ``max_bytes``. Never raises for what the job does;
    KeyboardInterrupt (or any exception here) first ends the whole tree, then propagates."""
    prctl = _prctl()
    parent = os.getpid()
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the supervisor
        os.close(r)
        _supervise(job, w, parent, prctl)
    os.close(w)
    frames = _Frames(max_bytes)
    finished = False
    try:
        reason = _drain(r, pid, frames, timeout)
        finished = frames.status_received
    except BaseException:
        _stop(pid, r, frames)
        raise
    finally:
        os.close(r)
        if finished and os.waitpid(pid, os.WNOHANG)[0] == 0:
            # C reported its cleanup done and is exiting: do not wait for the kernel to tear
            # down its address space (~1-2 ms); a daemon thread reaps it
            threading.Thread(target=_reap, args=(pid,), daemon=True).start()
        else:
            _reap(pid)
    return frames.result(reason)


def _drain(r: int, pid: int, frames: _Frames, timeout: float) -> str | None:
    """Read the pipe until EOF. running -> (result) finishing -> EOF; running -> (timeout or
    overflow) stopping: SIGTERM to C, then SIGKILL if the pipe is still open GRACE seconds
    later. Returns why C was stopped, None when the job ended by itself."""
    reason: str | None = None
    state = "running"
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            if state == "stopping":
                _signal(pid, signal.SIGKILL)
                return reason
            if state == "running":
                reason = "timeout"
            _signal(pid, signal.SIGTERM)  # finishing too long: C's cleanup is stuck
            state, deadline = "stopping", time.monotonic() + GRACE
            continue
        if not _wait_readable(r, left):
            continue
        chunk = os.read(r, 65_536)
        if not chunk:
            return reason
        frames.feed(chunk)
        if frames.status_received:  # C's last word: the tree is gone
            return reason
        if state != "running":
            continue
        if frames.overflow:
            reason = "toobig"
            _signal(pid, signal.SIGTERM)
            state, deadline = "stopping", time.monotonic() + GRACE
        elif frames.answered:
            state, deadline = "finishing", time.monotonic() + GRACE


def _stop(pid: int, r: int, frames: _Frames) -> None:
    """Interrupted: ask C to end the tree and wait for its status (or EOF); more Ctrl-C
    meanwhile are ignored (C's cleanup takes milliseconds), and after GRACE seconds C gets
    SIGKILL."""
    _signal(pid, signal.SIGTERM)
    end = time.monotonic() + GRACE
    while (left := end - time.monotonic()) > 0:
        try:
            if _wait_readable(r, left):
                chunk = os.read(r, 65_536)
                frames.feed(chunk)
                if not chunk or frames.status_received:
                    return
        except KeyboardInterrupt:
            continue
        except OSError:
            break
    _signal(pid, signal.SIGKILL)


def _wait_readable(fd: int, timeout: float) -> bool:
    """poll, not select: agentcli may hold more than FD_SETSIZE descriptors (sessions, MCP)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(max(0, int(timeout * 1000) + 1)))


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class _Frames:
    """The bytes from the pipe, parsed into frames: R (the job's value), X (the job raised),
    S (the supervisor's status, always last)."""

    def __init__(self, max_bytes: int) -> None:
        self.limit = max_bytes + 4096
        self.buf = bytearray()
        self.overflow = False

    def feed(self, chunk: bytes) -> None:
        if self.overflow:
            return
        self.buf += chunk
        if len(self.buf) > self.limit:
            self.overflow = True
            del self.buf[:]

    def frames(self) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        at = 0
        while len(self.buf) - at >= _HEADER.size:
            tag, size = _HEADER.unpack_from(self.buf, at)
            start = at + _HEADER.size
            if len(self.buf) - start < size:
                break
            out.setdefault(tag, bytes(self.buf[start:start + size]))
            at = start + size
        return out

    @property
    def answered(self) -> bool:
        found = self.frames()
        return b"R" in found or b"X" in found

    @property
    def status_received(self) -> bool:
        return b"S" in self.frames()

    def result(self, reason: str | None) -> ChildResult:
        found = self.frames()
        try:
            if b"R" in found:
                return ChildResult("done", json.loads(found[b"R"].decode("utf-8")))
            if b"X" in found:
                return ChildResult("failed", detail=found[b"X"].decode("utf-8", "replace"))
        except ValueError:
            return ChildResult("crash", detail="the tool process sent an unreadable result")
        if reason == "toobig":
            return ChildResult("toobig")
        if reason == "timeout":
            return ChildResult("timeout")
        try:
            worker = json.loads(found[b"S"].decode("utf-8"))["worker"]
        except (KeyError, ValueError, TypeError):
            worker = "its supervisor process ended unexpectedly"
        return ChildResult("crash", detail=str(worker))


def _write_frame(fd: int, tag: bytes, data: bytes) -> None:
    view = memoryview(_HEADER.pack(tag, len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


# --- the supervisor (C) and the worker (W) -------------------------------------------------------

def _supervise(job: Callable[[], Any], w: int, parent: int,
               prctl: Callable[..., int] | None) -> NoReturn:  # pragma: no cover - in C
    code = 0
    try:
        os.setsid()  # no controlling terminal; out of the terminal's process group
        if prctl is not None:
            prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # agentcli died before the death signal was armed
            os._exit(1)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGCHLD})
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # never SIG_IGN: we wait for children
        except (ValueError, OSError):
            pass
        _quiet_descriptors(w)
        gc.freeze()  # objects from agentcli are never collected (and finalised) in the tree
        wpid = os.fork()
        if wpid == 0:
            _work(job)
        worker = _wait_worker(wpid)
        _kill_tree(wpid)
        _write_frame(_STATUS_FD, b"S", json.dumps({"worker": worker}).encode())
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child
        code = 1
    finally:
        os._exit(code)


def _quiet_descriptors(w: int) -> None:
    """fds 0-2 on /dev/null, the pipe on fd 3, every other inherited descriptor closed."""
    if w != _STATUS_FD:  # first: the pipe may be fd 0-2 when agentcli's stdin was closed
        os.dup2(w, _STATUS_FD, inheritable=False)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        limit = os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        limit = 65_536
    os.closerange(_STATUS_FD + 1, max(limit, _STATUS_FD + 2))


def _wait_worker(wpid: int) -> str:
    """Until W exits (left unreaped, so its process group id stays taken) or SIGTERM comes."""
    while True:
        info = os.waitid(os.P_PID, wpid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None and info.si_pid == wpid:
            if info.si_code == os.CLD_EXITED:
                return f"exit code {info.si_status}"
            return f"killed by signal {info.si_status}"
        if signal.sigwait({signal.SIGTERM, signal.SIGCHLD}) == signal.SIGTERM:
            return "stopped"


def _kill_tree(wpid: int) -> None:
    """SIGKILL W's process group, then every child of ours, round by round (a killed process's
    children are re-parented to us, the subreaper), reaping as we go."""
    try:
        os.killpg(wpid, signal.SIGKILL)
    except OSError:
        pass
    me = os.getpid()
    for _ in range(_MAX_ROUNDS):
        kids = _children(me)
        if kids is None:  # no /proc: reap what has ended and stop there
            _reap(wpid)
            try:
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                pass
            return
        if not kids:
            return
        for kid in kids:
            _signal(kid, signal.SIGKILL)
        for kid in kids:
            _reap(kid)


def _children(pid: int) -> list[int] | None:
    """Our children (zombies included), from /proc; None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    kids = []
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if len(fields) > 1 and int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _work(job: Callable[[], Any]) -> NoReturn:  # pragma: no cover - runs in W
    code = 0
    try:
        os.setpgid(0, 0)
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGALRM", "SIGCHLD", "SIGUSR1",
                     "SIGUSR2", "SIGWINCH"):
            try:
                signal.signal(getattr(signal, name), signal.SIG_DFL)
            except (AttributeError, ValueError, OSError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        quiet = open(os.devnull, "r+", encoding="utf-8")  # noqa: SIM115
        sys.stdin = sys.stdout = sys.stderr = quiet  # Python-level streams may be proxies
        sys.__stdin__ = sys.__stdout__ = sys.__stderr__ = quiet
        try:
            tag, data = b"R", json.dumps(job(), ensure_ascii=False, default=str)
        except BaseException as e:  # noqa: BLE001 - failures are data
            tag, data = b"X", describe_exception(e)
        _write_frame(_STATUS_FD, tag, data.encode("utf-8", "replace"))
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


# --- without fork ---------------------------------------------------------------------------------

def run_threaded(job: Callable[[], Any], *, timeout: float) -> ChildResult:
    """Where fork does not exist: a daemon thread; a timeout is reported but cannot stop it."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = job()
        except BaseException as e:  # noqa: BLE001 - failures are data
            box["error"] = describe_exception(e)

    worker = threading.Thread(target=target, name="agentcli-tool", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return ChildResult("timeout")
    if "error" in box:
        return ChildResult("failed", detail=box["error"])
    return ChildResult("done", box.get("value"))
