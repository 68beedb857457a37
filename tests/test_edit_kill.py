"""An interrupted write leaves the old file or the new one, never half of one: writers are
SIGKILLed mid-write (in the middle of the data, before the rename, after it), and the temporary
file a kill leaves behind is removed by the next write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from agentcli.config import load_settings
from agentcli.messages import ToolCall
from agentcli.toolrun.approval import PolicyApprover
from agentcli.toolrun.executor import Executor
from agentcli.toolrun.host import atomic, files
from agentcli.toolrun.manifest import load_tools

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs POSIX processes")

OLD = "old line\n" * 200_000  # 1.8 MB: several chunks
NEW = "new line\n" * 300_000

# A writer process: the real write tool, with one step of the write made to hang (and say so)
# so the test can SIGKILL it exactly there.
WRITER = r"""
import json, os, sys, time
from agentcli.toolrun.host import atomic, files
from agentcli.toolrun.host.job import ToolContext

where, folder, content_file = sys.argv[1], sys.argv[2], sys.argv[3]
real = {name: getattr(os, name) for name in ("write", "replace", "fsync")}
seen = {"write": 0, "fsync": 0}

def hang():
    print("hanging", flush=True)
    time.sleep(60)

def write(fd, data):
    seen["write"] += 1
    n = real["write"](fd, data)
    if where == "write" and seen["write"] == 2:  # a chunk on disk, more to come
        hang()
    return n

def replace(*a, **k):
    if where == "replace":  # all data written and flushed, not yet renamed
        hang()
    return real["replace"](*a, **k)

def fsync(fd):
    seen["fsync"] += 1
    real["fsync"](fd)
    if where == "after" and seen["fsync"] == 2:  # renamed: the folder is being flushed
        hang()

class Os:
    def __getattr__(self, name):
        return {"write": write, "replace": replace, "fsync": fsync}.get(name) or getattr(os, name)

atomic.os = Os()
content = open(content_file).read()
ctx = ToolContext("write", {"max_bytes": 10_000_000}, cwd=folder, writable=(folder,))
files.run_tool("write", {"path": "data.txt", "content": content}, ctx)
print("finished", flush=True)
"""


def kill_writer(tmp_path: Path, where: str) -> None:
    content = tmp_path / "content.txt"
    content.write_text(NEW)
    child = subprocess.Popen([sys.executable, "-c", WRITER, where, str(tmp_path / "work"),
                              str(content)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "hanging"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


@pytest.mark.parametrize("where", ["write", "replace", "after"])
def test_sigkill_mid_write_leaves_the_old_file_or_the_new_one_whole(tmp_path, where):
    work = tmp_path / "work"
    work.mkdir()
    target = work / "data.txt"
    target.write_text(OLD)
    kill_writer(tmp_path, where)
    assert target.read_text() == (NEW if where == "after" else OLD)  # whole, one or the other
    left = [p.name for p in work.iterdir() if atomic.TEMP_TAG in p.name]
    assert len(left) == (0 if where == "after" else 1)  # the killed write's temp file
    # the next write removes what the killed one left (its process is gone) and succeeds
    ctx = SimpleNamespace(cwd=str(work), writable=(str(work),),
                          options={"max_bytes": 10_000_000}, expected={})
    files.run_tool("write", {"path": "data.txt", "content": "fresh\n"}, ctx)
    assert target.read_text() == "fresh\n"
    assert sorted(p.name for p in work.iterdir()) == ["data.txt"]


def test_a_worker_killed_at_its_timeout_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    """Through the executor: the call's worker hangs after writing its first chunk, the
    supervisor SIGKILLs it at the tool's timeout; the file is still the old one."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "data.txt"
    target.write_text(OLD)
    real_write = os.write

    class SlowOs:  # only atomic.py's os: the worker is forked from this process
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def write(fd, data):
            n = real_write(fd, data)
            (tmp_path / "marker").write_text("one chunk written")
            time.sleep(60)
            return n

    builtin = load_tools(load_settings(), warn=lambda line: None)["write"]
    fn = builtin.function()
    tool = replace(builtin, load=lambda: fn, timeout=1.0,
                   options={"max_bytes": 10_000_000})  # a callable: this process forks
    with monkeypatch.context() as patch:
        patch.setattr(atomic, "os", SlowOs())
        outcome = Executor({"write": tool}, PolicyApprover(yes=True)).execute(
            ToolCall("c1", "write", json.dumps({"path": "data.txt", "content": NEW})))
    assert (tmp_path / "marker").exists()  # it was killed in the middle of the data
    assert outcome.result.is_error and "timed out" in outcome.result.content
    assert outcome.change is None  # nothing to undo: nothing was changed
    assert target.read_text() == OLD
    left = [p for p in tmp_path.iterdir() if atomic.TEMP_TAG in p.name]
    assert len(left) == 1 and 0 < left[0].stat().st_size < len(NEW)  # half a file, aside
    big = replace(builtin, options={"max_bytes": 10_000_000})
    outcome = Executor({"write": big}, PolicyApprover(yes=True)).execute(
        ToolCall("c2", "write", json.dumps({"path": "data.txt", "content": "fresh\n"})))
    assert not outcome.result.is_error and target.read_text() == "fresh\n"
    assert not left[0].exists()
