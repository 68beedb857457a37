"""The tool host: one small fresh interpreter per agentcli run forks the calls (all but the
first), so agentcli does not fork itself; it dies with agentcli, is replaced when it dies, and
never imports plugin code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from plugin_kit import alive, parent_of, plugin, read_pid, run, running, wait_until

import agentcli.toolrun.host.client as toolhost
from agentcli.toolrun.approval import PolicyApprover
from agentcli.toolrun.executor import Executor
from agentcli.messages import ToolCall
from agentcli.toolrun.host.frames import HEADER
from agentcli.toolrun.host.client import HostPool

LINEAGE = """
import os, sys
WATCHED = {"openai", "anthropic", "httpx", "rich", "prompt_toolkit", "tiktoken", "yaml",
           "jsonschema", "pathlib", "subprocess", "typing", "agentcli.toolrun.executor",
           "agentcli.config"}
def run(n):
    supervisor = os.getppid()
    stat = open(f"/proc/{supervisor}/stat").read().rsplit(")", 1)[1].split()
    host = int(stat[1])
    return {"worker": os.getpid(), "supervisor": supervisor, "host": host,
            "host_cmdline": open(f"/proc/{host}/cmdline", "rb").read().decode().split("\\0"),
            "modules": sorted(m for m in sys.modules if m in WATCHED
                              or m.startswith(("agentcli_tool_", "preloaded")))}
"""


def lineage_tool(folder: Path, **kw):
    return plugin(folder, LINEAGE, cap=100_000, **kw)


@pytest.fixture
def hosts():
    """A pool with a host up, so that even the first call goes through it."""
    pool = HostPool()
    assert pool.warm(wait=30), pool.broken
    yield pool
    pool.close()


def lineage(tool, hosts) -> dict:
    r = run(tool, {"n": 1}, hosts=hosts)
    assert not r.is_error, r.content
    return json.loads(r.content)


def test_once_the_host_is_up_calls_run_under_it_and_agentcli_does_not_fork(
        tmp_path, hosts, monkeypatch):
    """The worker's grandparent is the host: not agentcli, not a fork of it (its command line
    is the boot code), the same for every call; and it never imported the SDKs, rich, yaml,
    jsonschema or a plugin module (the worker, its fork, would have them)."""
    pytest.importorskip("openai")
    import openai  # noqa: F401 - agentcli has it loaded; the host must not

    def no_fork():
        raise AssertionError("agentcli forked itself for a tool call")

    monkeypatch.setattr(os, "fork", no_fork)
    first = plugin(tmp_path / "a", "def run(n):\n    return n\n", name="first")
    assert run(first, {"n": 1}, hosts=hosts).content == "1"
    tool = lineage_tool(tmp_path / "b")
    seen = [lineage(tool, hosts) for _ in range(3)]
    host = seen[0]["host"]
    assert host != os.getpid() and parent_of(host) == os.getpid()
    assert all(s["host"] == host for s in seen)
    assert len({s["supervisor"] for s in seen}) == 3 and len({s["worker"] for s in seen}) == 3
    assert "agentcli.toolrun.host.main" in " ".join(seen[0]["host_cmdline"])
    loaded = set(seen[0]["modules"])
    for heavy in ("openai", "anthropic", "httpx", "rich", "prompt_toolkit", "tiktoken", "yaml",
                  "jsonschema", "agentcli.toolrun.executor", "agentcli.config"):
        assert heavy not in loaded, heavy
    assert {"pathlib", "subprocess", "typing"} <= loaded  # the README: already loaded
    assert not [m for m in loaded if m.startswith("agentcli_tool_first")]  # first's module
    assert [m for m in loaded if m.startswith("agentcli_tool_t_")]  # its own, in the worker


def test_a_host_killed_between_calls_is_replaced_without_an_error(tmp_path, hosts):
    """The next call runs (agentcli forks it while a new host starts), then the new host."""
    tool = lineage_tool(tmp_path)
    host = lineage(tool, hosts)["host"]
    os.kill(host, signal.SIGKILL)
    assert wait_until(lambda: not running(host))
    assert lineage(tool, hosts)["host"] == os.getpid()
    assert hosts.warm(wait=30) and lineage(tool, hosts)["host"] not in (host, os.getpid())


def test_a_tool_that_kills_the_host_fails_and_takes_nothing_with_it(tmp_path, hosts):
    """The call is an error result (never re-run: it may have had effects); what the tool
    started dies with the tree (the supervisor's parent-death signal); the next call gets a
    new host."""
    pid = tmp_path / "pid"
    killer = plugin(tmp_path / "k", f"""
        def run(n):
            start_escapee({str(pid)!r}, "setsid")
            host = int(open(f"/proc/{{os.getppid()}}/stat").read().rsplit(")", 1)[1].split()[1])
            os.kill(host, 9)
            time.sleep(60)
    """, name="killer", escapee=True, timeout=30)
    r = run(killer, {"n": 1}, hosts=hosts)
    assert r.is_error and "the tool host process ended during the call (killed by signal 9)" \
        in r.content, r.content
    assert wait_until(lambda: not running(read_pid(pid)))
    assert hosts.warm(wait=30) and lineage(lineage_tool(tmp_path / "l"), hosts)["host"] > 0


def test_a_host_that_stops_answering_is_given_up(tmp_path, hosts, monkeypatch):
    """A stopped (SIGSTOP) host: past the timeout and its grace periods agentcli kills it, the
    call is an error result, and the next call gets a new host."""
    monkeypatch.setattr(toolhost, "GRACE", 0.2)
    monkeypatch.setattr(toolhost, "SLACK", 0.2)
    freezer = plugin(tmp_path / "f", """
        import os, signal, time
        def run(n):
            host = int(open(f"/proc/{os.getppid()}/stat").read().rsplit(")", 1)[1].split()[1])
            os.kill(host, signal.SIGSTOP)
            return "the host is frozen"
    """, name="freezer", timeout=0.5)
    r = run(freezer, {"n": 1}, hosts=hosts)
    assert r.is_error and "the tool host stopped answering" in r.content, r.content
    assert hosts.warm(wait=30) and lineage(lineage_tool(tmp_path / "l"), hosts)["host"] > 0


@pytest.mark.parametrize("how", ["no executable", "boot fails"])
def test_without_a_host_calls_fall_back_to_forking_agentcli(tmp_path, monkeypatch, how):
    if how == "no executable":
        monkeypatch.setattr(sys, "executable", "")
    else:
        monkeypatch.setattr(toolhost, "BOOT", "import sys\nsys.exit(3)\n")
    pool = HostPool()
    tool = lineage_tool(tmp_path)
    for _ in range(2):
        assert lineage(tool, pool)["host"] == os.getpid()  # the supervisor is agentcli's child
    assert pool.broken


def test_preload_happens_once_in_the_host_never_in_agentcli(tmp_path, hosts, monkeypatch):
    """A built-in's ``preload`` (web_fetch: httpx) is imported by the host, once, so every
    worker inherits it; agentcli itself does not import it."""
    lib = tmp_path / "lib"
    lib.mkdir()
    log = tmp_path / "imports"
    (lib / "preloaded_dep.py").write_text(f"import os\nopen({str(log)!r}, 'a').write("
                                          "f'{os.getpid()}\\n')\n")
    monkeypatch.syspath_prepend(str(lib))
    tool = lineage_tool(tmp_path / "p", preload=["preloaded_dep"])
    seen = [lineage(tool, hosts) for _ in range(3)]
    assert log.read_text().split() == [str(seen[0]["host"])]
    assert all("preloaded_dep" in s["modules"] for s in seen)
    assert "preloaded_dep" not in sys.modules
    broken = lineage_tool(tmp_path / "q", name="broken", preload=["no_such_dependency"])
    r = run(broken, {"n": 1}, hosts=hosts)
    assert r.content == ("tool 'broken' could not be loaded: ModuleNotFoundError: No module "
                         "named 'no_such_dependency'")


def test_the_worker_runs_in_agentclis_folder_and_environment(tmp_path, hosts, monkeypatch):
    tool = plugin(tmp_path / "t", """
        import os
        def run(n, context):
            return [os.getcwd(), context.cwd, os.environ.get("AGENTCLI_TEST_VAR")]
    """)
    assert json.loads(run(tool, {"n": 1}, hosts=hosts).content)[2] is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("AGENTCLI_TEST_VAR", "set after the host started")
    assert json.loads(run(tool, {"n": 1}, hosts=hosts).content) == [
        str(elsewhere), str(elsewhere), "set after the host started"]
    monkeypatch.delenv("AGENTCLI_TEST_VAR")
    assert json.loads(run(tool, {"n": 1}, hosts=hosts).content)[2] is None


def test_overlapping_calls_run_at_the_same_time(tmp_path, hosts):
    """`mcp serve` runs calls in threads: two calls that each wait for the other both finish
    (they run at the same time: one in the host, the other forked by agentcli while a second
    host starts for later overlaps)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    tool = plugin(tmp_path / "p", f"""
        import os, time
        def run(n):
            open(os.path.join({str(marks)!r}, str(n)), "w").close()
            other = os.path.join({str(marks)!r}, str(1 - n))
            for _ in range(1000):
                if os.path.exists(other):
                    return "met"
                time.sleep(0.01)
            return "alone"
    """, timeout=30)
    ex = Executor({"t": tool}, PolicyApprover(yes=True), hosts=hosts)
    box: dict[int, str] = {}
    threads = [threading.Thread(target=lambda n=n: box.__setitem__(
        n, ex.execute(ToolCall(str(n), "t", json.dumps({"n": n}))).result.content))
        for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert box == {0: "met", 1: "met"}


def test_after_ctrl_c_the_same_host_serves_the_next_call(tmp_path, hosts, monkeypatch):
    import agentcli.toolrun.host.isolation as isolation

    ready = tmp_path / "ready"
    slow = plugin(tmp_path / "s", f"""
        import os, time
        def run(n):
            open({str(ready)!r}, "w").write(str(os.getpid()))
            time.sleep(60)
    """, name="slow", timeout=30)
    tool = lineage_tool(tmp_path / "l")
    host = lineage(tool, hosts)["host"]
    real_poll = isolation.poll_fds

    def interrupt(fds, timeout):
        monkeypatch.setattr(isolation, "poll_fds", real_poll)
        assert wait_until(lambda: ready.exists() and ready.read_text() != "")
        raise KeyboardInterrupt

    monkeypatch.setattr(isolation, "poll_fds", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(slow, {"n": 1}, hosts=hosts)
    assert not alive(int(ready.read_text()))
    assert lineage(tool, hosts)["host"] == host


AGENTCLI_SCRIPT = """
import json, os, sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from plugin_kit import plugin, run
from agentcli.toolrun.host.client import HostPool

def main():
    tool = plugin(Path({folder!r}), {body!r}, timeout=60, escapee=True)
    hosts = HostPool()
    assert hosts.warm(wait=30)
    print(run(tool, {{"n": 1}}, hosts=hosts).content, flush=True)

if {threaded!r}:  # a host started off the main thread has no parent-death signal: EOF only
    import threading
    worker = threading.Thread(target=main)
    worker.start()
    worker.join()
else:
    main()
"""


def agentcli_process(tmp_path: Path, body: str, threaded: bool = False) -> subprocess.Popen:
    script = tmp_path / "agentcli_like.py"
    script.write_text(AGENTCLI_SCRIPT.format(tests=os.path.dirname(__file__),
                                             folder=str(tmp_path / "plugin"),
                                             body=textwrap.dedent(body), threaded=threaded))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("threaded", [False, True])
def test_the_host_exits_when_agentcli_does(tmp_path, threaded):
    proc = agentcli_process(tmp_path, """
        def run(n):
            return int(open(f"/proc/{os.getppid()}/stat").read().rsplit(")", 1)[1].split()[1])
    """, threaded)
    out, _ = proc.communicate(timeout=60)
    host = int(out)
    assert proc.returncode == 0 and host != proc.pid
    assert wait_until(lambda: not running(host))


@pytest.mark.parametrize("threaded", [False, True])
def test_killing_agentcli_mid_call_ends_the_host_and_the_tools_tree(tmp_path, threaded):
    pid, host_file = tmp_path / "pid", tmp_path / "host"
    proc = agentcli_process(tmp_path, f"""
        def run(n):
            start_escapee({str(pid)!r}, "setsid")
            host = open(f"/proc/{{os.getppid()}}/stat").read().rsplit(")", 1)[1].split()[1]
            open({str(host_file)!r}, "w").write(host)
            time.sleep(60)
    """, threaded)
    try:
        host, escapee = read_pid(host_file), read_pid(pid)
    finally:
        proc.kill()
        proc.wait()
    assert wait_until(lambda: not running(host) and not running(escapee))


def dead(pid: int) -> bool:
    """Gone, or a zombie not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_spare_worker_killed_while_idle_is_replaced(tmp_path, hosts):
    """The host forks the next call's supervisor and worker ahead of time; if they are gone
    when the call comes, the call gets fresh ones."""
    tool = lineage_tool(tmp_path)
    first = lineage(tool, hosts)
    host = first["host"]

    def spare() -> list[int]:
        return [int(p) for p in Path(f"/proc/{host}/task/{host}/children").read_text().split()]

    assert wait_until(lambda: len(spare()) == 1)  # the spare supervisor, forked after the call
    killed = spare()[0]
    os.kill(killed, signal.SIGKILL)
    assert wait_until(lambda: dead(killed))  # killed *while idle*: dead before the call comes
    second = lineage(tool, hosts)
    assert second["host"] == host and second["worker"] != first["worker"]


def test_the_first_call_starts_the_host_and_does_not_wait_for_it(tmp_path):
    """No host exists at a run's first call: agentcli forks that call itself (no ~50 ms wait
    for an interpreter to boot) and starts the host, which the next calls use (waiting for it
    if it still boots: one more fork of agentcli would only slow its boot). Offering tools
    starts nothing, and neither do tools that are Python callables."""
    pool = HostPool()
    try:
        callable_only = Executor({"c": plugin(tmp_path / "c", "def run(n):\n    return n\n",
                                              via="fork")}, PolicyApprover(yes=True), hosts=pool)
        callable_only.definitions()
        assert callable_only.execute(ToolCall("0", "c", '{"n": 1}')).result.content == "1"
        assert pool._idle == []
        ex = Executor({"t": lineage_tool(tmp_path / "t")}, PolicyApprover(yes=True), hosts=pool)
        ex.definitions()
        assert pool._idle == []

        def host_of(call_id: str) -> int:
            return json.loads(ex.execute(ToolCall(call_id, "t", '{"n": 1}')).result.content)[
                "host"]

        assert host_of("1") == os.getpid()
        assert len(pool._idle) == 1
        started = pool._idle[0].proc.pid  # booting, most likely: the next call waits for it
        assert host_of("2") == started and parent_of(started) == os.getpid()
        assert host_of("3") == started
    finally:
        pool.close()


def test_ctrl_c_while_the_job_is_sent_stops_that_call_and_spoils_nothing(tmp_path, hosts,
                                                                       monkeypatch):
    """Ctrl-C arriving while agentcli writes the job is held until the frame is whole (half a
    frame would garble the next call), then stops the call like any Ctrl-C."""
    ran = tmp_path / "ran"
    slow = plugin(tmp_path / "s", f"""
        import time
        def run(n):
            time.sleep(2)
            open({str(ran)!r}, "w").write("the interrupted call ran to its end")
    """, name="slow", timeout=30)
    tool = lineage_tool(tmp_path / "l")
    host = lineage(tool, hosts)["host"]
    real_write = toolhost.write_frame

    def interrupted(fd, tag, data):
        monkeypatch.setattr(toolhost, "write_frame", real_write)  # this frame only
        frame = HEADER.pack(tag, len(data)) + data
        os.write(fd, frame[:10])
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the two halves
        os.write(fd, frame[10:])

    monkeypatch.setattr(toolhost, "write_frame", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(slow, {"n": 1}, hosts=hosts)
    assert lineage(tool, hosts)["host"] == host
    assert not ran.exists()
