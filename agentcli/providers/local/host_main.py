"""The model host process: a fresh interpreter that loads llama.cpp and the GGUF, and answers
agentcli's requests over two pipes (``protocol``).

Started by ``host.ModelHost`` as ``python -I -c BOOT <sys.path as JSON> <agentcli's pid>
<1: parent-death signal>``; agentcli itself never imports this module or llama.cpp. Whatever
llama.cpp does here — a segfault in ``decode`` on an AMX CPU, an abort on a failed assertion, the
out-of-memory killer — ends this process only; agentcli sees the pipe close and says how.

Lifetime: EOF on fd 0 (agentcli closed it, or died) ends the host: it is read between requests
and polled after every generated token. Started from agentcli's main thread, it also has SIGKILL
as its parent-death signal (Linux; tied to the thread that started it, hence only then), which
ends it even while llama.cpp is busy loading or evaluating a long prompt. It runs in its own
session, so the terminal's Ctrl-C reaches agentcli only, which sends ``C`` instead.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from typing import Any

from ...errors import AgentCliError
from ...messages import TextDelta
from ...toolrun.host.frames import read_frame, write_frame
from ...toolrun.host.isolation import tie_to_parent
from . import protocol as p

IN, OUT = 0, 1
TEXT_EVERY = 0.02
"""Seconds: text goes to agentcli at most this often (a fast model's tokens in twos and threes,
so agentcli wakes less often while llama.cpp computes); the first piece after a pause goes at
once, and what is held goes before anything else."""


def main(engine: Any = None) -> None:
    """``engine``: the class that runs the model (``engine.Engine``; a bench passes one that
    makes tokens for free, to measure the protocol alone)."""
    death = signal.SIGKILL if sys.argv[3] == "1" else None  # ends it even inside llama.cpp
    if not tie_to_parent(int(sys.argv[2]), death):  # agentcli is already gone
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.chdir("/")  # hold no folder; the model path is absolute
    try:
        Host(engine).serve()
    except OSError:
        return  # agentcli closed the pipes


class Host:
    def __init__(self, engine: Any = None) -> None:
        self._engine = engine
        self._poller = select.poll()
        self._poller.register(IN, select.POLLIN | select.POLLHUP | select.POLLERR)

    def serve(self) -> None:
        frame = read_frame(IN)
        if frame is None or frame[0] != p.LOAD:
            return
        from .engine import Engine, Stopped

        engine = (self._engine or Engine)(p.ModelConfig.from_json(frame[1]), warn=self._warn,
                                          should_stop=self._should_stop)
        try:
            llm = engine.load()
        except AgentCliError as e:
            self._error(e)
            return  # nothing loaded: agentcli starts a new host for the next message
        write_frame(OUT, p.LOADED, p.dump({"n_ctx": llm.n_ctx(), "repack": engine.repack_used()}))
        while True:
            frame = read_frame(IN)
            if frame is None:
                return  # EOF: agentcli is gone
            tag, payload = frame
            if tag != p.REQUEST:
                continue  # a stop for a reply that had already ended
            try:
                self._answer(engine, payload)
            except Stopped as e:
                write_frame(OUT, p.STOPPED, p.dump({"output_tokens": e.output_tokens}))
            except AgentCliError as e:
                self._error(e)
            except Exception as e:  # noqa: BLE001 - a bug here: one error, the host goes on
                self._error(AgentCliError(f"the local model failed: {type(e).__name__}: {e}"))

    def _answer(self, engine: Any, payload: bytes) -> None:
        messages, tools, system = p.decode_request(payload)
        pending: list[str] = []
        sent = 0.0
        try:
            for event in engine.stream(messages, tools, system):
                if isinstance(event, TextDelta):
                    pending.append(event.text)
                    now = time.monotonic()
                    if now - sent >= TEXT_EVERY:
                        self._text(pending)
                        sent = now
                    continue
                self._text(pending)
                done = event.message
                write_frame(OUT, p.DONE, p.dump({
                    "stop_reason": event.stop_reason,
                    "input_tokens": event.usage.input_tokens,
                    "output_tokens": event.usage.output_tokens,
                    "calls": [[c.id, c.name, c.arguments] for c in done.tool_calls]}))
        except AgentCliError:
            self._text(pending)  # the text before a failure is the partial reply
            raise

    @staticmethod
    def _text(pending: list[str]) -> None:
        if pending:
            write_frame(OUT, p.TEXT, "".join(pending).encode("utf-8", "surrogatepass"))
            pending.clear()

    def _should_stop(self) -> bool:
        """After each token: has agentcli asked to stop (``C``), or gone (EOF)?"""
        if not self._poller.poll(0):
            return False
        frame = read_frame(IN)
        if frame is None:
            os._exit(0)  # agentcli is gone: nothing to answer, nothing to keep
        return frame[0] == p.CANCEL

    @staticmethod
    def _warn(line: str) -> None:
        write_frame(OUT, p.WARNING, line.encode("utf-8", "replace"))

    @staticmethod
    def _error(e: AgentCliError) -> None:
        write_frame(OUT, p.ERROR, p.dump({"type": type(e).__name__, "message": e.message,
                                          "hint": e.hint}))
