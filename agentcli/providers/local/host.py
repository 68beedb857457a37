"""agentcli's side of the model host: the process that runs llama.cpp, so that a native crash
(SIGSEGV in ``decode`` on an AMX CPU, SIGABRT on a failed assertion, the OOM killer) ends that
process and not agentcli.

The host is a fresh interpreter, ``sys.executable -I -c BOOT`` (like the tool host, with
agentcli's ``sys.path`` and interpreter flags), in a session of its own, holding only its two
protocol pipes; its stderr goes to an unnamed temporary file, quoted when it ends badly. It
loads the model as soon as it starts (``L``, sent before the first request) and keeps it, and
llama.cpp's KV cache, for the next requests.

``request`` yields a reply's frames. Ctrl-C while it waits (a KeyboardInterrupt), or the
consumer closing the iterator early, sends ``C`` and returns at once: the host stops after the
token in progress (busy loading the model or evaluating a long prompt, right after that) and
answers ``X``, which the next request reads past. The model stays loaded. A host whose pipe
closes raises ``HostGone``, which says how it ended (``ended``: "signal 11: segmentation
fault", ...).
"""

from __future__ import annotations

import _signal
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Iterator

from ...toolrun.host.client import interpreter_flags, no_sigint
from ...toolrun.host.frames import HEADER, write_frame
from . import protocol as p

BOOT = ("import sys, json\n"
        "sys.path[:] = json.loads(sys.argv[1])\n"
        "from agentcli.providers.local.host_main import main\n"
        "main()\n")
_SIGINT = {signal.SIGINT}
MAX_FRAME = 64 * 1024 * 1024  # a frame this big is not from our host: give it up


class HostGone(Exception):
    """The host process ended (or was given up); ``ended`` says how, ``signal`` by which."""

    def __init__(self, ended: str, sig: int | None = None) -> None:
        super().__init__(ended)
        self.ended = ended
        self.signal = sig


class ModelHost:
    """One model host process; one request at a time."""

    def __init__(self, config: p.ModelConfig, boot: str = BOOT) -> None:
        """``boot``: the host's code (a bench gives one with a model that costs nothing)."""
        if not sys.executable:
            raise OSError("no Python executable to start the model process with")
        main_thread = threading.current_thread() is threading.main_thread()
        argv = [sys.executable, "-I", *interpreter_flags(), "-c", boot,
                json.dumps(sys.path, default=str), str(os.getpid()), "1" if main_thread else "0"]
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, bufsize=0, close_fds=True,
                                     start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._to, self._from = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self._buf = bytearray()
        self._poller = select.poll()
        self._poller.register(self._from, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._stale = 0  # replies stopped whose end frame has not been read yet
        self.loaded: dict | None = None
        """Once the model is loaded: what the host says of it (``n_ctx``, ``repack``)."""
        self.stopped_at: int | None = None
        """Tokens the last stopped reply had made when the host stopped it."""
        self.gone: HostGone | None = None
        self._send(p.LOAD, config.to_json())

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def usable(self) -> bool:
        return self.gone is None and self.proc.poll() is None

    def request(self, payload: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Send one request and yield its frames, the last being ``D``, ``X`` or ``E``. An
        early exit (KeyboardInterrupt while waiting, the iterator closed) stops the reply in
        the host. Raises HostGone when the host ends."""
        self._send(p.REQUEST, payload)
        ended = False
        try:
            while True:
                tag, data = self._next()
                if tag == p.LOADED:
                    self.loaded = p.load(data)
                    continue
                if tag == p.ERROR and self.loaded is None:
                    ended = True  # the model did not load: no request will be answered
                elif self._stale:  # the rest of a reply that was stopped
                    if tag in p.ENDS:
                        self._stale -= 1
                        if tag == p.STOPPED:
                            self.stopped_at = p.load(data)["output_tokens"]
                    continue
                elif tag in p.ENDS:
                    ended = True
                yield tag, data
                if ended:
                    return
        finally:
            if not ended and self.gone is None:
                self._stop()

    def _stop(self) -> None:
        """Ask the host to stop the reply in progress, without waiting: it stops after the
        token it is generating (or, busy loading or evaluating a prompt, once that is done),
        and the next request first reads past what is left of this one."""
        try:
            self._send(p.CANCEL, b"{}")
        except HostGone:
            return
        self._stale += 1

    def _send(self, tag: bytes, payload: bytes) -> None:
        try:
            with no_sigint():  # never half a frame on the pipe
                write_frame(self._to, tag, payload)
        except OSError:
            raise self._ended() from None

    def _next(self) -> tuple[bytes, bytes]:
        """The next frame; HostGone when the host ends (Ctrl-C lands in the wait)."""
        while True:
            if len(self._buf) >= HEADER.size:
                tag, size = HEADER.unpack_from(self._buf, 0)
                if size > MAX_FRAME:
                    raise self._ended("it sent an over-long frame and was stopped")
                if len(self._buf) >= HEADER.size + size:
                    payload = bytes(self._buf[HEADER.size:HEADER.size + size])
                    del self._buf[:HEADER.size + size]
                    return tag, payload
            self._poller.poll()
            # Ctrl-C held back while a chunk is read and kept (as ``no_sigint``, but this runs
            # once per token: ``_signal``'s own call skips ``signal``'s enum conversions)
            old = _signal.pthread_sigmask(signal.SIG_BLOCK, _SIGINT)
            try:
                chunk = os.read(self._from, 1 << 16)
                self._buf += chunk
            finally:
                _signal.pthread_sigmask(signal.SIG_SETMASK, old)
            if not chunk:
                raise self._ended()

    def ended(self) -> HostGone:
        """How a host that is no longer ``usable`` ended (it is waited for)."""
        return self._ended()

    def _ended(self, why: str | None = None) -> HostGone:
        """HostGone saying how the host ended (killed first when ``why`` gives it up)."""
        if self.gone is not None:
            return self.gone
        if why is not None:
            with contextlib.suppress(OSError):
                os.kill(self.proc.pid, signal.SIGKILL)
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:  # its pipe closed but it lives on: end it
            os.kill(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        self.gone = HostGone(why or describe_exit(code, self._last_log_line()),
                             -code if code < 0 and why is None else None)
        self.close()
        return self.gone

    def _last_log_line(self) -> str:
        try:
            self._log.seek(max(0, os.fstat(self._log.fileno()).st_size - 4096))
            lines = self._log.read().decode("utf-8", "replace").splitlines()
        except (OSError, ValueError):
            return ""
        last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
        last = "".join(ch if ch.isprintable() else " " for ch in last)
        return last if len(last) <= 160 else last[:157] + "..."

    def close(self) -> None:
        """Close the pipes: the host sees EOF and exits (an idle one at once, a busy one after
        its token; its parent-death signal covers agentcli exiting meanwhile)."""
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if f is not None:
                    f.close()
        with contextlib.suppress(OSError, ValueError):
            self._log.close()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.close()


def describe_exit(code: int, log_line: str = "") -> str:
    """How a host ended, for people: "signal 11: segmentation fault", "exit code 1: ..."."""
    if code < 0:
        sig = -code
        try:
            name = (signal.strsignal(sig) or "").lower()
        except ValueError:
            name = ""
        if sig == signal.SIGKILL:
            name = "killed, perhaps for using too much memory"
        text = f"signal {sig}" + (f": {name}" if name else "")
    else:
        text = f"exit code {code}"
    return text + (f"; its last words: {log_line}" if log_line else "")
