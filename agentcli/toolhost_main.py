"""The tool host process: a small, fresh interpreter that runs agentcli's tool calls.

Started by ``toolhost.ToolHost`` (never imported by agentcli itself). It imports only the
standard library and agentcli's stdlib-only modules (``isolation``, ``supervisor``,
``toolhost_job``, ``errors``): never the SDKs, rich or tiktoken, and never plugin code, so a
fork of it costs a fraction of a fork of agentcli. For each job it forks the usual supervisor
and worker (``isolation.run_tree``): the worker imports the plugin and calls it, exactly as when
agentcli forks them itself, and the host answers once the supervisor has ended everything the
tool started. Only ``preload`` modules of built-in tools (agentcli's own dependencies, e.g.
httpx) are imported in the host, once, so every later worker inherits them.

Protocol (frames of ``supervisor.HEADER``: tag + length + JSON), one job at a time:
    host -> agentcli  H {}                once, when ready
    agentcli -> host  J {"id", "kind", "entry", ..., "timeout", "max_bytes", "preload",
                         "cwd", "env"?, "path"?}
    host -> agentcli  A {"id", "status", "value", "detail"}    exactly one per job
    agentcli -> host  C {"id"}            Ctrl-C: stop the job now (answered "cancelled")
A job's ``env`` and ``path`` (agentcli's ``os.environ`` and ``sys.path``) come when they
changed since the last job; ``cwd`` always: the worker runs where agentcli is.

Lifetime: fd 0 at EOF (agentcli exited, however it died) ends the host, after stopping the
job in progress: the host watches fd 0 during a job (anything readable stops it). When started
from agentcli's main thread it also has SIGTERM as its parent-death signal (Linux). When the
host dies anyway, each supervisor has SIGTERM as *its* parent-death signal and ends its tree.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from typing import Any

from . import errors  # noqa: F401 - imported once here, so no worker imports it again
from .isolation import _prctl, run_tree
from .supervisor import _PR_SET_PDEATHSIG, HEADER, reap, write_frame
from .toolhost_job import describe_exception, job_from_wire

IN, OUT = 0, 1


def main() -> None:
    """``python -I -c BOOT <sys.path as JSON> <agentcli's pid> <1: parent-death signal>``."""
    parent, death = int(sys.argv[2]), sys.argv[3] == "1"
    prctl = _prctl()
    if death and prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # agentcli is already gone
        return
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 2)  # stray warnings go nowhere; fds 0 and 1 are the protocol
    os.close(fd)
    try:
        write_frame(OUT, b"H", b"{}")
        while True:
            frame = _read_frame(IN)
            if frame is None:
                return  # EOF: agentcli is gone
            tag, payload = frame
            if tag != b"J":
                continue  # a cancel for a job that had already ended
            job = json.loads(payload)
            answer, pid = _serve(job)
            write_frame(OUT, b"A", json.dumps(answer, ensure_ascii=False).encode())
            if pid is not None:
                reap(pid)  # after answering: agentcli does not wait for C's exit
    except (OSError, ValueError):
        return  # agentcli closed the pipes, or sent what it never sends


def _serve(job: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    answer: dict[str, Any] = {"id": job["id"], "status": "done", "value": None, "detail": ""}
    try:
        if "env" in job:
            os.environ.clear()
            os.environ.update(job["env"])
        if "path" in job:
            sys.path[:] = job["path"]
        os.chdir(job["cwd"])
        for module in job.get("preload") or ():
            importlib.import_module(module)
        work = job_from_wire(job)
    except Exception as e:  # noqa: BLE001 - a broken install or a vanished cwd: data
        answer.update(status="unstarted", detail=describe_exception(e))
        return answer, None
    result, pid = run_tree(work, timeout=float(job["timeout"]), max_bytes=int(job["max_bytes"]),
                           cancel_fd=IN)
    answer.update(status=result.status, value=result.value, detail=result.detail)
    return answer, pid


def _read_frame(fd: int) -> tuple[bytes, bytes] | None:
    """Exactly one frame, never a byte more (so fd 0 readable means a new message)."""
    head = _read_exactly(fd, HEADER.size)
    if head is None:
        return None
    tag, size = HEADER.unpack(head)
    payload = _read_exactly(fd, size)
    return None if payload is None else (tag, payload)


def _read_exactly(fd: int, size: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        chunk = os.read(fd, size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)
