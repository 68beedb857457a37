"""Run the real shell tool (and plugins) through the Executor in each sandbox backend this
machine has: bubblewrap, Landlock with user namespaces, and Landlock without them (forced), each
skipped with the reason when the machine lacks it."""

from __future__ import annotations

import dataclasses
import os
import json
import sys
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from agentcli.config import load_settings
from agentcli.messages import ToolCall, ToolResult
from agentcli.toolrun.approval import PolicyApprover
from agentcli.toolrun.executor import Executor, Tool
from agentcli.toolrun.host import commands, landlock
from agentcli.toolrun.manifest import builtin_tools_dir, tool_from_manifest
from agentcli.toolrun.sandbox import Sandbox, from_settings

BACKENDS = ("bwrap", "landlock", "landlock-no-userns")


def _reason(backend: str) -> str | None:
    if not sys.platform.startswith("linux"):
        return "the sandbox is Linux-only"
    if backend == "bwrap":
        found = commands.detect()
        if found.bwrap is None:
            return ("bubblewrap is not usable here: " + (found.bwrap_problem or "not installed "
                    "(.ci/run installs it with apt-get when it can)"))
        return None
    if landlock.abi() < 1:
        return "this kernel has no Landlock"
    return None


def backend_param(backend: str) -> Any:
    reason = _reason(backend)
    marks = [pytest.mark.skip(reason=reason)] if reason else []
    return pytest.param(backend, marks=marks, id=backend)


ALL = [backend_param(b) for b in BACKENDS]


def shell_tool(**changes: Any) -> Tool:
    tool = tool_from_manifest(builtin_tools_dir() / "shell.yaml", "builtin")
    return dataclasses.replace(tool, **changes) if changes else tool


def sandbox(backend: str, mode: str = "workspace-write", **extra: Any) -> Sandbox:
    """The run's sandbox as the CLI makes it, with the backend forced."""
    base = from_settings(dataclasses.replace(load_settings(), sandbox=mode))
    if backend == "off" or mode == "off":
        return base
    found = commands.detect(probe_bwrap=backend == "bwrap")
    support = commands.Support("linux", found.landlock, found.bwrap if backend == "bwrap"
                              else None, None, found.seccomp)
    return dataclasses.replace(base, support=support, userns=backend != "landlock-no-userns",
                               **extra)


def call(tool: Tool, box: Sandbox | None, args: dict[str, Any]) -> ToolResult:
    ex = Executor({tool.name: tool}, PolicyApprover(yes=True), sandbox=box)
    return ex.execute(ToolCall("1", tool.name, json.dumps(args))).result


def sh(backend: str, command: str, mode: str = "workspace-write", **args: Any) -> ToolResult:
    return call(shell_tool(), sandbox(backend, mode), {"command": command, **args})


class LoopbackServer:
    """A TCP server on 127.0.0.1 started by the test: counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def processes_with(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def python() -> str:
    """An interpreter the sandboxed command can run: this one, unless its path is under /tmp
    (CI makes its virtualenv there), which bubblewrap replaces with a private /tmp; then the
    interpreter that one links to, or a python3 from PATH that lives elsewhere (the commands
    use only the standard library)."""
    import shutil
    import tempfile

    tmp = {"/tmp", os.path.realpath(tempfile.gettempdir()), tempfile.gettempdir()}

    def hidden(path: str) -> bool:
        return any(p == d or p.startswith(d + os.sep)
                   for p in (os.path.normpath(path), os.path.realpath(path)) for d in tmp)

    found = [sys.executable, os.path.realpath(sys.executable),
             *(shutil.which("python3", path=f) or "" for f in os.environ.get("PATH", "")
               .split(os.pathsep) if f), "/usr/bin/python3", "/usr/local/bin/python3"]
    for candidate in found:
        if candidate and os.access(candidate, os.X_OK) and not hidden(candidate):
            return candidate
    pytest.skip("no python3 outside /tmp for a command inside the sandbox to run")
