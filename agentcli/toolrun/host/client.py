"""agentcli's side of the tool host: a small process that forks the tool calls, so that agentcli,
a big process, need not fork itself for each one.

Forking agentcli for every call (``isolation.run_isolated``) costs time in proportion to its
size: the SDKs, rich, prompt-toolkit and often tiktoken's ~110 MiB of tables make one fork cost
5-20 ms, and a call needs two. The tool host (``toolhost_main.py``) is a fresh interpreter,
``sys.executable -I -c BOOT`` (``-I``: no PYTHON* variables, no user site, not the current
folder; it is given agentcli's ``sys.path`` and its optimise/bytecode/UTF-8 flags instead, so a
plugin imports what it would have imported in agentcli), in a session of its own, with only
its two protocol pipes. It imports no SDK and no plugin, so its forks are cheap, and it forks
each call's supervisor and worker ahead of the call; they are exactly those of
``isolation.py``, with every guarantee. Each job carries agentcli's current folder, and its
environment and ``sys.path`` when they changed: the worker runs where and as agentcli would.

``HostPool`` keeps the hosts of one ``Executor``. A call takes an idle host, even one still
booting (the job waits in its pipe). When there is none - the first call of a run, or calls
that overlap (`mcp serve` runs calls in threads) - it starts one for the next calls and returns
None: the caller forks that call from agentcli itself rather than wait ~50 ms for an
interpreter to boot. ``warm`` starts one ahead (and can wait for it): `ask` and `chat` do
that when a plugin is offered, so the host boots while the provider loads. A host found dead before a job reaches it is replaced; one that dies
during a call (a tool killed it) makes that call an error result (``lost``; the call is never
re-run, it may have had effects). A host that cannot start at all (no ``sys.executable``, a
frozen app) marks the pool broken and every call is forked from agentcli: slower, equally
isolated.

Ctrl-C during a call: the KeyboardInterrupt is caught here, agentcli sends ``C`` and waits (at
most ``2 * GRACE`` seconds, more Ctrl-C ignored) for the host to answer, which it does once the
supervisor has ended the tree; then the KeyboardInterrupt propagates. A host that does not
answer within the call's timeout plus its grace periods is SIGKILLed (its supervisors then end
their trees on their parent-death signal) and the call is a ``lost`` error result.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, Iterator

from . import isolation
from .isolation import GRACE, ChildResult
from .frames import HEADER, write_frame
from .supervisor import signal_quietly

BOOT = ("import sys, json\n"
        "sys.path[:] = json.loads(sys.argv[1])\n"
        "from agentcli.toolrun.host.main import main\n"
        "main()\n")
SLACK = 5.0  # seconds past the timeout and the host's own GRACE periods before it is given up


class _NotDelivered(Exception):
    """The host was gone before the job reached it: nothing ran, another host may take it."""


class ToolHost:
    """One host process; one job at a time (``HostPool`` sees to that)."""

    def __init__(self) -> None:
        if not sys.executable:
            raise OSError("no Python executable to start the tool host with")
        main_thread = threading.current_thread() is threading.main_thread()
        argv = [sys.executable, "-I", *interpreter_flags(), "-c", BOOT,
                json.dumps(sys.path, default=str), str(os.getpid()), "1" if main_thread else "0"]
        self._env = dict(os.environ)
        self._path = list(sys.path)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0, close_fds=True,
                                     start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._to, self._from = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self._buf = bytearray()
        self._ids = itertools.count(1)
        self.ready = False  # it said hello: it started, and it reads jobs
        self.usable = True
        self.failure = ""

    @property
    def alive(self) -> bool:
        return self.usable and self.proc.poll() is None

    def poll_ready(self, wait: float = 0) -> bool:
        """Whether the host has said hello (read here when it is there; waits at most ``wait``
        seconds). False while it boots, and for good when it ended first: then ``failure``
        says how."""
        if self.ready or not self.usable:
            return self.ready
        if not isolation.poll_fds([self._from], wait):
            return False
        frame = self._frame(time.monotonic() + GRACE, 64)
        if isinstance(frame, ChildResult) or frame[0] != b"H":
            self.usable = False
            self.failure = frame.detail if isinstance(frame, ChildResult) else "no hello"
            return False
        self.ready = True
        return True

    def run(self, job: dict[str, Any], *, timeout: float, max_bytes: int) -> ChildResult:
        """Send the job and wait for its answer. Raises _NotDelivered when the host was already
        gone; KeyboardInterrupt after the host has stopped the call."""
        job_id = next(self._ids)
        message = {**job, "id": job_id, "timeout": timeout, "max_bytes": max_bytes}
        try:
            message["cwd"] = os.getcwd()
        except OSError:
            message["cwd"] = "/"
        env = dict(os.environ)
        if env != self._env:
            message["env"] = self._env = env
        if sys.path != self._path:
            self._path = list(sys.path)
            message["path"] = self._path
        payload = json.dumps(message, ensure_ascii=False, default=str).encode("utf-8", "replace")
        limit = 6 * max_bytes + 65_536  # the worker's frame, re-encoded by the host
        sent = False
        try:
            with no_sigint():  # a Ctrl-C meanwhile is raised once the frame is whole
                try:
                    write_frame(self._to, b"J", payload)
                except OSError as e:
                    self.usable = False
                    raise _NotDelivered(str(e)) from None
                sent = True
            return self._answer(job_id, time.monotonic() + timeout + 2 * GRACE + SLACK, limit)
        except BaseException:
            if sent:
                self._cancel(job_id, limit)
            raise

    def _cancel(self, job_id: int, limit: int) -> None:
        try:
            with no_sigint():
                write_frame(self._to, b"C", json.dumps({"id": job_id}).encode())
        except OSError:
            return
        end = time.monotonic() + 2 * GRACE
        while self.usable:
            try:
                self._answer(job_id, end, limit)
                return
            except KeyboardInterrupt:  # more Ctrl-C while the tree is being ended
                continue

    def _answer(self, job_id: int, deadline: float, limit: int) -> ChildResult:
        while True:
            frame = self._frame(deadline, limit)
            if isinstance(frame, ChildResult):
                return frame
            tag, payload = frame
            if tag == b"H":
                self.ready = True
                continue
            try:
                data = json.loads(payload) if tag == b"A" else None
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("id") == job_id:
                return ChildResult(str(data.get("status")), data.get("value"),  # type: ignore[arg-type]
                                   str(data.get("detail") or ""))

    def _frame(self, deadline: float, limit: int) -> tuple[bytes, bytes] | ChildResult:
        """The next frame from the host, or a ``lost`` result (and the host is given up)."""
        while True:
            if len(self._buf) >= HEADER.size:
                tag, size = HEADER.unpack_from(self._buf, 0)
                if size > limit:
                    return self._lose("the tool host sent an over-long answer")
                if len(self._buf) >= HEADER.size + size:
                    payload = bytes(self._buf[HEADER.size:HEADER.size + size])
                    del self._buf[:HEADER.size + size]
                    return tag, payload
            left = deadline - time.monotonic()
            if left <= 0:
                return self._lose("the tool host stopped answering and was stopped")
            if isolation.poll_fds([self._from], left):  # Ctrl-C lands here, while waiting
                with no_sigint():
                    chunk = os.read(self._from, 65_536)
                    self._buf += chunk
                if not chunk:
                    return self._lose(None)

    def _lose(self, why: str | None) -> ChildResult:
        self.usable = False
        if why is not None:
            signal_quietly(self.proc.pid, signal.SIGKILL)
        try:
            code = self.proc.wait(GRACE)
        except subprocess.TimeoutExpired:
            code = None
        if why is None:
            how = ("still running" if code is None else f"exit code {code}" if code >= 0
                   else f"killed by signal {-code}")
            why = f"the tool host process ended during the call ({how})"
        return ChildResult("lost", detail=f"{why}; a new one starts with the next call")

    def close(self) -> None:
        """Close its pipes: the host sees EOF and exits. Not waited for: ``subprocess`` reaps
        it later (or, when agentcli exits first, init does)."""
        self.usable = False
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


@contextlib.contextmanager
def no_sigint() -> Iterator[None]:
    """Ctrl-C is held back while a frame is written or a chunk read and kept, so it never
    leaves half a frame on a pipe (the host would read the next one wrong); it is raised as
    soon as the frame is whole."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs signal handlers in the main thread only: nothing to hold here
        return
    # Not by blocking the signal: with other threads alive (an MCP client's event loop), the
    # kernel hands a blocked signal to one of them and the handler still runs between the two
    # halves. The main thread's handler is swapped for one that only notes it instead.
    pending: list[Any] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if pending:
        if callable(old):
            old(signal.SIGINT, pending[0])
        elif old != signal.SIG_IGN:
            raise KeyboardInterrupt


def interpreter_flags() -> list[str]:
    """agentcli's own interpreter flags that ``-I`` would otherwise drop (PYTHONUTF8, ...)."""
    flags = ["-O"] * min(sys.flags.optimize, 2)
    if sys.flags.dont_write_bytecode:
        flags.append("-B")
    if sys.flags.utf8_mode:
        flags += ["-X", "utf8"]
    return flags


class HostPool:
    """The tool hosts of one Executor; thread-safe."""

    def __init__(self) -> None:
        self._idle: list[ToolHost] = []
        self._lock = threading.Lock()
        self.broken: str | None = None
        """Why no host can start here (then ``run`` returns None and callers fork agentcli)."""
        finalizer = weakref.finalize(self, _close_all, self._idle)
        finalizer.atexit = False  # at exit the kernel closes the pipes: the hosts see EOF

    def warm(self, wait: float = 0) -> bool:
        """Start a host unless one is idle or starting (it boots while agentcli does other
        work); with ``wait``, block up to that many seconds until one is ready. True when a
        host is ready."""
        with self._lock:
            self._take(keep=True)
        end = time.monotonic() + wait
        while True:
            with self._lock:
                for host in self._idle:
                    if host.poll_ready(min(0.05, max(0.0, end - time.monotonic()))):
                        return True
                if self.broken or not self._idle or time.monotonic() >= end:
                    return False
                self._take(keep=True)  # notes a host that ended while booting

    def run(self, job: dict[str, Any], *, timeout: float, max_bytes: int) -> ChildResult | None:
        """The job's outcome, or None when no host can take it now: the caller runs it itself
        (forking agentcli). An idle host takes it even while it boots (it reads the job once
        up); with no idle host one is started for the next calls and this call gets None."""
        for _ in range(2):  # a host found dead before the job reached it is replaced once
            with self._lock:
                host = self._take()
            if host is None:
                return None
            try:
                result = host.run(job, timeout=timeout, max_bytes=max_bytes)
            except _NotDelivered:
                continue
            finally:
                self._give(host)
            if result.status == "lost" and not host.ready:  # it never started: the job never ran
                self.broken = f"the tool host did not start ({result.detail})"
                return None
            return result
        return None

    def _take(self, keep: bool = False) -> ToolHost | None:
        """An idle host, ready or booting, removed from the pool (``keep``: only a ready one,
        left there); else None, after starting one (unless ``keep`` finds one booting). Hosts
        that ended are dropped; one that ended before its hello marks the pool broken. Call
        with the lock held."""
        booting = False
        for host in list(self._idle):
            if host.alive and (host.poll_ready() or not keep):
                if not keep:
                    self._idle.remove(host)
                return host
            if host.alive:
                booting = True
                continue
            self._idle.remove(host)
            if not host.ready:
                self.broken = f"the tool host did not start ({host.failure or 'it ended'})"
            host.close()
        if not booting and not self.broken:
            started = self._spawn()
            if started is not None:
                self._idle.append(started)
        return None

    def _give(self, host: ToolHost) -> None:
        if host.alive:
            with self._lock:
                self._idle.append(host)
        else:
            host.close()

    def _spawn(self) -> ToolHost | None:
        try:
            return ToolHost()
        except (OSError, ValueError) as e:
            self.broken = f"the tool host could not start: {e}"
            return None

    def close(self) -> None:
        with self._lock:
            _close_all(self._idle)


def _close_all(hosts: list[ToolHost]) -> None:
    while hosts:
        hosts.pop().close()
