"""Real plugin files for the executor and isolation tests: a module written to disk, run the way
agentcli runs a manifest's tool (``via="host"``: through the tool host), or with the same module
behind a Python callable (``via="fork"``: agentcli forks the supervisor itself)."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from agentcli.toolrun.approval import PolicyApprover
from agentcli.toolrun.executor import Executor, Tool
from agentcli.messages import ToolCall, ToolDefinition, ToolResult
from agentcli.toolrun.host.job import FileEntry

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}},
          "required": ["n"], "additionalProperties": False}
VIAS = ("host", "fork")

ESCAPEE = '''
import subprocess, sys, time

def start_escapee(pid_file, how):
    """Start a `sleep` the tool does not wait for: in its own session, or double-forked into a
    daemon (setsid in between), and note its pid."""
    if how == "setsid":
        child = subprocess.Popen(["sleep", "60"], start_new_session=True)
        open(pid_file, "w").write(str(child.pid))
        return
    daemonize = ("import os, sys, time\\n"
                 "if os.fork(): os._exit(0)\\n"
                 "os.setsid()\\n"
                 "if os.fork(): os._exit(0)\\n"
                 "open(sys.argv[1], 'w').write(str(os.getpid()))\\n"
                 "time.sleep(60)\\n")
    subprocess.run([sys.executable, "-c", daemonize, pid_file], check=True)
    while not os.path.exists(pid_file) or not open(pid_file).read():
        time.sleep(0.01)
'''


def plugin(folder: Path, body: str, *, via: str = "host", name: str = "t", timeout: float = 5,
           cap: int = 1000, options: dict[str, Any] | None = None,
           schema: dict[str, Any] | None = None, preload: Sequence[str] = (),
           escapee: bool = False) -> Tool:
    """A tool whose module (``<folder>/<name>.py``) is ``body``; its function is ``run``."""
    folder.mkdir(parents=True, exist_ok=True)
    module = folder / f"{name}.py"
    source = textwrap.dedent(body)
    if escapee:
        source = "import os\n" + ESCAPEE + source
    module.write_text(source)
    entry = FileEntry(str(module), "run", str(folder / f"{name}.yaml"))
    load: Callable[[], Callable[..., Any]] = entry if via == "host" else (lambda: entry())
    return Tool(ToolDefinition(name, "test tool", schema or SCHEMA), load=load,
                timeout=timeout, output_cap=cap, options=options or {}, preload=tuple(preload))


def run(tool: Tool, args: Any, approver: Any = None, hosts: Any = None) -> ToolResult:
    text = args if isinstance(args, str) else json.dumps(args)
    return Executor({tool.name: tool}, approver or PolicyApprover(yes=True),
                    hosts=hosts).execute(ToolCall("id1", tool.name, text)).result


def alive(pid: int) -> bool:
    """True while the process exists (a zombie counts: nobody reaped it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running(pid: int) -> bool:
    """Exists and is not a zombie (for a process whose reaper is init, not us)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_until(check: Callable[[], bool], seconds: float = 10) -> bool:
    """Poll ``check`` (a safety net, never a timing assertion): True as soon as it holds."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.01)
    return check()


def read_pid(path: Path) -> int:
    assert wait_until(lambda: path.exists() and path.read_text().strip() != ""), path
    return int(path.read_text())
