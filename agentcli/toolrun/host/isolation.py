"""Run plugin code in a disposable process tree, never in the agentcli process.

One call (POSIX)::

    P --fork--> supervisor (C) --fork--> worker (W) --> anything the tool starts
    ^<------------- status pipe ----'             |
    ^<-------------------------------- result pipe '

P, the process that forks, is the tool host (``toolhost.py``: a small fresh interpreter that
agentcli starts once per run; it forks C and W *before* the call, and W reads its job from a
third pipe, ``Tree(deferred=True)``), or agentcli itself (``run_isolated``): for a call made
before the host is up (a run's first), for a Tool whose ``load`` is a Python callable, and when
no host can start.

- **C, the supervisor**, runs no plugin code. It starts a new session (``setsid``: no
  controlling terminal, so ``/dev/tty`` cannot be opened, and Ctrl-C in the terminal never
  reaches the tool directly), points fds 0-2 at ``/dev/null``, closes every other inherited
  descriptor but its pipes (the terminal, sockets, the prompt's /dev/tty), and on Linux
  becomes a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``: a process the tool started that
  double-forks or calls ``setsid()`` is re-parented to C, not to init) with SIGTERM as its
  parent-death signal (P dies, however: C ends the tree). It waits until W exits or it gets
  SIGTERM (P's timeout, Ctrl-C, a cancel), then SIGKILLs W's process group and, generation by
  generation, every process re-parented to it (``/proc/<C>/task/<C>/children``), reaps them
  all, writes W's exit status on the status pipe and exits.
- **W, the worker**: closes the status pipe (the tool cannot forge it), its own process group,
  SIGKILL as its parent-death signal (a tool that kills C dies with it); imports the plugin and
  calls it (``job``); writes one length-prefixed JSON frame on the result pipe; ``os._exit``.
- **P** reads both pipes until C's status, written only after the cleanup (or EOF, if C died);
  W's result is kept as soon as it is complete (only its first frame counts, and it is
  bounded), then C gets ``GRACE`` seconds for its cleanup. So when ``Tree.finish`` returns,
  nothing the tool started is left; C may still be finishing its exit (``run_isolated`` reaps
  it in a thread, the host after answering). At the timeout, on Ctrl-C, when ``cancel_fd``
  becomes readable (the host's stdin: agentcli sent a cancel, or died) or on an over-long
  result P sends SIGTERM to C and keeps draining; if C has not reported ``GRACE`` seconds
  later, SIGKILL.

Limits: elsewhere than Linux (macOS) there is no subreaper and no ``/proc``: only W's process
group is killed, so a descendant that left the group (``setsid``, ``setpgid``) can outlive the
call. Everywhere, only descendants are tracked: a process another service starts on the tool's
behalf (``systemd-run``, ``at``) is not one. A tool runs with the user's permissions: it can
still open the terminal device by its path (``/dev/pts/N``) or another process's pipes under
``/proc``; isolation stops accidents and misbehaving plugins, it is not a security sandbox.
Without ``fork`` (Windows) ``run_threaded`` runs the job in a thread of this process: a timeout
is reported but cannot stop it.
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal

from .frames import HEADER, write_frame
from .supervisor import PR_SET_PDEATHSIG, reap, signal_quietly, supervise
from .job import describe_exception

__all__ = ["GRACE", "ChildResult", "Tree", "describe_exception", "run_isolated",
           "run_threaded", "run_tree"]

GRACE = 5.0  # seconds C gets to clean up (after W's result, or SIGTERM) before P uses SIGKILL

Status = Literal["done", "failed", "timeout", "crash", "toobig", "cancelled", "lost",
                 "unstarted"]


@dataclass(frozen=True)
class ChildResult:
    """How an isolated job ended. ``done``: ``value`` is what the job returned; ``failed``:
    the job raised, ``detail`` describes it; ``timeout``; ``toobig``: the result frame was over
    the limit; ``crash``: the worker ended without a result, ``detail`` says how (``exit code
    3``, ``killed by signal 9``); ``cancelled``: stopped through ``cancel_fd``; ``lost``: the
    tool host ended or stopped answering during the call (``toolhost.py``), ``detail`` says
    how; ``unstarted``: the tool host could not prepare the call (a ``preload`` module failed
    to import, agentcli's folder is gone), ``detail`` says why."""

    status: Status
    value: Any = None
    detail: str = ""


@functools.lru_cache(maxsize=1)
def libc_prctl() -> Callable[..., int] | None:
    """libc's prctl on Linux (looked up once, in the parent, so children pay nothing)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def tie_to_parent(parent: int, death_signal: int | None) -> bool:
    """A host process's first step: ``death_signal`` (None: none) as its parent-death signal
    (Linux), then whether ``parent`` (agentcli) is still its parent, i.e. alive."""
    prctl = libc_prctl()
    if death_signal is not None and prctl is not None:
        prctl(PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
    return os.getppid() == parent


# --- the parent side ----------------------------------------------------------------------------

def run_isolated(job: Callable[[], Any], *, timeout: float, max_bytes: int) -> ChildResult:
    """Run ``job()`` in a worker process under ``timeout`` seconds; what it returns must be
    JSON-serialisable and, encoded, at most ``max_bytes``. Never raises for what the job does;
    KeyboardInterrupt (or any exception here) first ends the whole tree, then propagates."""
    result, pid = run_tree(job, timeout=timeout, max_bytes=max_bytes)
    if pid is not None:
        # C reported its cleanup done and is exiting: do not wait for the kernel to tear down
        # its address space (~1-2 ms); a daemon thread reaps it
        threading.Thread(target=reap, args=(pid,), daemon=True).start()
    return result


def run_tree(job: Callable[[], Any], *, timeout: float, max_bytes: int,
             cancel_fd: int | None = None) -> tuple[ChildResult, int | None]:
    """``run_isolated`` without the reaping: also returns C's pid when C has reported its
    cleanup but not exited yet (the caller must ``reap`` it; the tool host does so after
    answering), else None. ``cancel_fd``: see ``Tree.finish``."""
    return Tree(job).finish(timeout=timeout, max_bytes=max_bytes, cancel_fd=cancel_fd)


class Tree:
    """One call's supervisor and worker, forked at construction. ``deferred``: the worker
    waits for its job on a pipe (``send``), so the forks can happen before the call (the tool
    host keeps one such spare); ``job`` then reads it (``JOB_FD``)."""

    def __init__(self, job: Callable[[], Any], *, deferred: bool = False) -> None:
        prctl = libc_prctl()
        parent = os.getpid()
        result_r, result_w = os.pipe()
        status_r, status_w = os.pipe()
        job_r, self.job_w = os.pipe() if deferred else (None, None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the supervisor
            for fd in (result_r, status_r, self.job_w):
                if fd is not None:
                    os.close(fd)
            supervise(job, result_w, status_w, parent, prctl, job_r)
        for fd in (result_w, status_w, job_r):
            if fd is not None:
                os.close(fd)
        self.pid, self.result_r, self.status_r = pid, result_r, status_r

    def send(self, payload: bytes) -> None:
        """Give a deferred worker its job (OSError: the worker is gone)."""
        fd, self.job_w = self.job_w, None
        assert fd is not None, "send() needs a deferred Tree, once"
        try:
            write_frame(fd, b"J", payload)
        finally:
            os.close(fd)

    def finish(self, *, timeout: float, max_bytes: int,
               cancel_fd: int | None = None) -> tuple[ChildResult, int | None]:
        """Wait for the call (at most ``timeout`` seconds from now) and the cleanup; see
        ``run_tree``. ``cancel_fd``: when it becomes readable (data or EOF) the call is
        stopped like at a timeout and ends as ``cancelled``; nothing is read from it here."""
        if self.job_w is not None:  # never sent: the worker reads EOF and exits
            os.close(self.job_w)
            self.job_w = None
        pid = self.pid
        pipes = _Pipes(self.result_r, self.status_r, max_bytes, cancel_fd)
        reported = False
        try:
            reason = _drain(pid, pipes, timeout)
            reported = pipes.status is not None
        except BaseException:
            _stop(pid, pipes)
            raise
        finally:
            pipes.close()
            if not (reported and os.waitpid(pid, os.WNOHANG)[0] == 0):
                reap(pid)
                pid = 0
        return pipes.result(reason), (pid or None)

    def alive(self) -> bool:
        """Whether the supervisor is still running (a spare can be killed from outside while
        it waits); it is not reaped here."""
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def discard(self) -> None:
        """End a spare that will not be used, and reap it."""
        _, pid = self.finish(timeout=0, max_bytes=0)
        if pid is not None:
            reap(pid)


def _drain(pid: int, pipes: _Pipes, timeout: float) -> str | None:
    """Read both pipes until C's status (or EOF). running -> (W's result) finishing -> status;
    running or finishing -> (timeout, cancel, or an over-long result) stopping: SIGTERM to C,
    SIGKILL if it has not reported GRACE seconds later. Returns why C was stopped, None when
    the job ended itself."""
    reason: str | None = None
    state = "running"
    deadline = time.monotonic() + timeout
    while not pipes.finished:
        left = deadline - time.monotonic()
        if left <= 0:
            if state == "stopping":
                signal_quietly(pid, signal.SIGKILL)
                return reason
            if state == "running":
                reason = "timeout"
            signal_quietly(pid, signal.SIGTERM)  # or: finishing too long, C's cleanup is stuck
            state, deadline = "stopping", time.monotonic() + GRACE
            continue
        pipes.read(left)
        if state == "stopping":
            continue
        if pipes.cancelled:
            reason = "cancelled"
        elif state == "running" and pipes.overflow:
            reason = "toobig"
        elif state == "running" and pipes.answered:
            state, deadline = "finishing", time.monotonic() + GRACE
            continue
        else:
            continue
        signal_quietly(pid, signal.SIGTERM)
        state, deadline = "stopping", time.monotonic() + GRACE
    pipes.read_rest()
    return reason


def _stop(pid: int, pipes: _Pipes) -> None:
    """Interrupted: ask C to end the tree and wait for its status; more Ctrl-C meanwhile are
    ignored (C's cleanup takes milliseconds), and after GRACE seconds C gets SIGKILL."""
    signal_quietly(pid, signal.SIGTERM)
    end = time.monotonic() + GRACE
    while not pipes.finished and (left := end - time.monotonic()) > 0:
        try:
            pipes.read(left)
        except KeyboardInterrupt:
            continue
        except OSError:
            break
    if not pipes.finished:
        signal_quietly(pid, signal.SIGKILL)


def poll_fds(fds: list[int], timeout: float) -> list[int]:
    """The readable ones (poll, not select: agentcli may hold more than FD_SETSIZE fds)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return [fd for fd, _ in poller.poll(max(0, int(timeout * 1000) + 1))]


def _frame(buf: bytes | bytearray) -> tuple[bytes, bytes] | None:
    """The first complete frame in ``buf``: (tag, payload)."""
    if len(buf) < HEADER.size:
        return None
    tag, size = HEADER.unpack_from(buf, 0)
    if len(buf) - HEADER.size < size:
        return None
    return tag, bytes(buf[HEADER.size:HEADER.size + size])


class _Pipes:
    """W's result pipe (its first frame: R value or X failure; anything after it is ignored,
    and it is bounded) and C's status pipe (one S frame, written after the cleanup; W and the
    tool's processes never hold it, so it cannot be forged)."""

    def __init__(self, result_fd: int, status_fd: int, max_bytes: int,
                 cancel_fd: int | None = None) -> None:
        self.fds = {result_fd: bytearray(), status_fd: bytearray()}
        self.result_fd, self.status_fd = result_fd, status_fd
        self.limit = max_bytes + HEADER.size
        self.overflow = False
        self.open = [result_fd, status_fd]
        self.cancel_fd = cancel_fd
        self.cancelled = False

    def read(self, timeout: float) -> None:
        watched = self.open if self.cancel_fd is None else [*self.open, self.cancel_fd]
        for fd in poll_fds(watched, timeout):
            if fd == self.cancel_fd:  # left unread: the caller reads what it was
                self.cancelled, self.cancel_fd = True, None
                continue
            chunk = os.read(fd, 65_536)
            if not chunk:
                self.open.remove(fd)
            elif fd == self.status_fd or not self.overflow:
                self.fds[fd] += chunk
                if fd == self.result_fd and len(self.fds[fd]) > self.limit:
                    self.overflow = True
                    self.fds[fd].clear()

    def read_rest(self) -> None:
        """After C's status every writer of the result pipe is gone: take what is left."""
        for _ in range(1024):
            if self.result_fd not in self.open or not poll_fds([self.result_fd], 0):
                return
            self.read(0)

    @property
    def answered(self) -> bool:
        return _frame(self.fds[self.result_fd]) is not None

    @property
    def status(self) -> dict[str, Any] | None:
        found = _frame(self.fds[self.status_fd])
        try:
            value = json.loads(found[1]) if found and found[0] == b"S" else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @property
    def finished(self) -> bool:
        return self.status is not None or self.status_fd not in self.open

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)

    def result(self, reason: str | None) -> ChildResult:
        found = _frame(self.fds[self.result_fd])
        if found is not None:
            tag, payload = found
            try:
                if tag == b"R":
                    return ChildResult("done", json.loads(payload.decode("utf-8")))
                if tag == b"X":
                    return ChildResult("failed", detail=payload.decode("utf-8", "replace"))
            except ValueError:
                pass
            return ChildResult("crash", detail="the tool process sent an unreadable result")
        if reason in ("toobig", "timeout", "cancelled"):
            return ChildResult(reason)  # type: ignore[arg-type]
        worker = (self.status or {}).get("worker", "its supervisor process ended unexpectedly")
        return ChildResult("crash", detail=str(worker))


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
