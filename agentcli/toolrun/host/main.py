"""The tool host process: a small, fresh interpreter that runs agentcli's tool calls.

Started by ``toolhost.ToolHost`` (never imported by agentcli itself). It imports only the
standard library and agentcli's stdlib-only modules (``isolation``, ``supervisor``,
``toolhost_job``, ``errors``), plus ``COMMON`` stdlib modules most plugins import: never the
SDKs, rich or tiktoken, and never plugin code, so a fork of it costs a fraction of a fork of
agentcli. It keeps a *spare*: a supervisor and worker (``isolation.Tree(deferred=True)``)
forked before the call, the worker waiting for its job on a pipe; a call hands the job over,
waits for the worker's result and the supervisor's cleanup, answers, then forks the next spare
while agentcli is busy with the model. Only ``preload`` modules of built-in tools (agentcli's
own dependencies, e.g. httpx) are imported in the host, once; a spare forked before such an
import is replaced, so every worker inherits them.

Protocol (frames of ``frames.HEADER``: tag + length + JSON), one job at a time:
    host -> agentcli  H {}                once, when ready
    agentcli -> host  J {"id", "kind", "entry", ..., "timeout", "max_bytes", "preload",
                         "cwd", "env"?, "path"?}   (the worker gets the same bytes)
    host -> agentcli  A {"id", "status", "value", "detail"}    exactly one per job
    agentcli -> host  C {"id"}            Ctrl-C: stop the job now (answered "cancelled")
``env`` and ``path`` (agentcli's ``os.environ`` and ``sys.path``) come when they changed since
the last job: the host takes them for later spares, and the job's worker applies them itself.

Lifetime: fd 0 at EOF (agentcli exited, however it died) ends the host, after stopping the
job in progress: the host watches fd 0 during a job (anything readable stops it). When started
from agentcli's main thread it also has SIGTERM as its parent-death signal (Linux; tied to the
thread that started it, hence only then). When the host dies anyway, each supervisor (the
spare's too) has SIGTERM as *its* parent-death signal and ends its tree.
"""

from __future__ import annotations

import importlib
import json
import os
import resource  # noqa: F401 - limits.apply's (a C module): once here, not ~0.8 ms per call
import signal
import sys
from typing import Any

from ... import errors  # noqa: F401 - imported once here, so no worker imports it again
from . import commands, confine  # noqa: F401 - the sandbox (ctypes, socket...): once, not per call
from .isolation import Tree, tie_to_parent
from .frames import read_frame, write_frame
from .supervisor import reap
from .job import WireJob, describe_exception

IN, OUT = 0, 1
COMMON = ("pathlib", "subprocess", "typing")
"""Standard-library modules most plugins import (the built-ins too): imported once here, so a
worker does not spend 2-5 ms importing them in every call."""


def main() -> None:
    """``python -I -c BOOT <sys.path as JSON> <agentcli's pid> <1: parent-death signal>``."""
    death = signal.SIGTERM if sys.argv[3] == "1" else None
    if not tie_to_parent(int(sys.argv[2]), death):  # agentcli is already gone
        return
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 2)  # stray warnings go nowhere; fds 0 and 1 are the protocol
    os.close(fd)
    os.chdir("/")  # hold no folder; each worker goes to agentcli's
    for module in COMMON:
        importlib.import_module(module)
    confine.landlock.abi()  # libc looked up once: every worker inherits it
    try:
        write_frame(OUT, b"H", b"{}")
        spare: Tree | None = Tree(WireJob(), deferred=True)
        expect = None  # the last call's sandbox policy: the next spare builds its walls ahead
        while True:
            frame = read_frame(IN)
            if frame is None:
                return  # EOF: agentcli is gone
            tag, payload = frame
            if tag != b"J":
                continue  # a cancel for a job that had already ended
            job = json.loads(payload)
            answer, pid, spare = _serve(job, payload, spare)
            write_frame(OUT, b"A", json.dumps(answer, ensure_ascii=False).encode())
            if pid is not None:
                reap(pid)  # after answering: agentcli does not wait for C's exit
            if job.get("kind") == "call":
                expect = (job.get("context") or {}).get("sandbox")
            if spare is None:  # the next call's, while agentcli works
                spare = Tree(WireJob(expect), deferred=True)
    except (OSError, ValueError):
        return  # agentcli closed the pipes, or sent what it never sends


def _serve(job: dict[str, Any], payload: bytes,
           spare: Tree | None) -> tuple[dict[str, Any], int | None, Tree | None]:
    """Run one job on the spare (forked before the job came; a fresh one when a preload just
    imported something the spare lacks). Returns the answer, C's pid to reap, and the spare
    when it was not used."""
    answer: dict[str, Any] = {"id": job["id"], "status": "done", "value": None, "detail": ""}
    try:
        if "env" in job:  # for later spares; this job's worker applies them itself
            os.environ.clear()
            os.environ.update(job["env"])
        if "path" in job:
            sys.path[:] = job["path"]
        before = len(sys.modules)
        for module in job.get("preload") or ():
            if module == "httpx":  # its __init__ imports its command-line client (rich,
                sys.modules.setdefault("httpx._main", None)  # pygments, click): +6 MiB to fork
            importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - a broken install: data
        answer.update(status="unstarted", detail=describe_exception(e))
        return answer, None, spare
    if spare is not None and (len(sys.modules) != before or not spare.alive()):
        spare.discard()
        spare = None
    tree = spare or Tree(WireJob(), deferred=True)
    try:
        tree.send(payload)
    except OSError:  # the spare died idle (killed from outside): a fresh one
        tree.discard()
        tree = Tree(WireJob(), deferred=True)
        tree.send(payload)
    result, pid = tree.finish(timeout=float(job["timeout"]), max_bytes=int(job["max_bytes"]),
                              cancel_fd=IN)
    answer.update(status=result.status, value=result.value, detail=result.detail)
    return answer, pid, None
