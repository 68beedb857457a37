"""Plugin code runs isolated, and nothing it starts outlives the call: every guarantee checked
both through the tool host (how agentcli runs a manifest's tool) and with agentcli forking the
supervisor itself (a Tool whose ``load`` is a Python callable, or no tool host)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading

import pytest
from plugin_kit import VIAS, alive, plugin, read_pid, run, running, wait_until

from agentcli.toolrun.host.client import HostPool


@pytest.fixture(scope="module")
def pool():
    """One tool host pool for the whole module: the host must survive every hostile test."""
    hosts = HostPool()
    yield hosts
    assert hosts.broken is None  # "host" really ran through a tool host
    hosts.close()


@pytest.fixture(params=VIAS)
def via(request):
    return request.param


@pytest.fixture
def make(tmp_path, via):
    def make_tool(body: str, **kw):
        return plugin(tmp_path / "plugin", body, via=via, **kw)
    return make_tool


@pytest.fixture
def call(pool, via):
    def call_tool(tool, args=None):
        if via == "host":  # a host is up, so the call goes through it (not the first-call fork)
            assert pool.warm(wait=30), pool.broken
        return run(tool, {"n": 1} if args is None else args, hosts=pool)
    return call_tool


def test_results_and_errors_come_back(make, call):
    ok = make("def run(n):\n    return {'double': n * 2}\n")
    assert json.loads(call(ok, {"n": 2}).content) == {"double": 4}
    boom = make("def run(n):\n    raise KeyError('missing thing')\n", name="boom")
    r = call(boom)
    assert r.is_error and r.content == "tool 'boom' failed: KeyError: 'missing thing'"
    plain = make("from agentcli.errors import ToolError\n"
                 "def run(n):\n    raise ToolError('outside the allowed folders')\n", name="pl")
    r = call(plain)  # the plugin API's ToolError: just its message (the README's promise)
    assert r.is_error and r.content == "outside the allowed folders"


def test_timeout_really_stops_the_tool(make, call, tmp_path):
    pid = tmp_path / "pid"
    tool = make("""
        import os, time
        def run(n, context):
            open(context.options["pid"], "w").write(str(os.getpid()))
            time.sleep(60)
    """, timeout=0.3, options={"pid": str(pid)})
    r = call(tool)
    assert r.is_error and "timed out after 0.3 s and was stopped" in r.content
    assert not alive(read_pid(pid))


def test_timeout_kills_grandchildren_and_busy_loops(make, call, tmp_path):
    pid = tmp_path / "pid"
    spawns = make("""
        import subprocess, time
        def run(n, context):
            child = subprocess.Popen(["sleep", "60"])
            open(context.options["pid"], "w").write(str(child.pid))
            while True:
                pass
    """, timeout=0.5, options={"pid": str(pid)})
    assert "timed out" in call(spawns).content
    assert not alive(read_pid(pid))


def test_printing_tool_does_not_touch_the_terminal(make, call, capfd):
    tool = make("""
        import os, sys
        print("\\x1b[2J import-time noise")
        def run(n):
            print("\\x1b[2J garbage on stdout")
            sys.stderr.write("garbage on stderr\\n")
            os.write(1, b"raw fd write\\n")
            return "result"
    """)
    r = call(tool)
    assert r.content == "result"
    assert capfd.readouterr() == ("", "")


def test_fifty_megabytes_printed_and_returned_are_capped(make, call, capfd):
    tool = make("""
        def run(n):
            chunk = "x" * 1_000_000
            for _ in range(50):
                print(chunk)
            return "A" * 25_000_000 + "B" * 25_000_000
    """, cap=1000, timeout=30)
    r = call(tool)
    assert capfd.readouterr() == ("", "")
    assert len(r.content) < 1200
    assert r.content.startswith("A") and r.content.endswith("B")
    assert "characters cut" in r.content and "50000000 characters" in r.content


def test_stdin_is_not_shared_and_context_brings_the_options(make, call):
    tool = make("""
        import sys
        from agentcli.toolrun.executor import ToolContext
        def run(n, context):
            assert isinstance(context, ToolContext)
            return f"{context.name}:{context.options['greeting']}:{n}:{sys.stdin.read()!r}"
    """, options={"greeting": "hi"})
    assert call(tool, {"n": 7}).content == "t:hi:7:''"


def test_tool_that_exits_the_process_is_reported(make, call):
    r = call(make("import os\ndef run(n):\n    os._exit(3)\n"))
    assert r.is_error and "ended without a result" in r.content and "exit code 3" in r.content


def test_the_module_is_imported_in_each_calls_worker_never_in_agentcli(make, call, tmp_path):
    log = tmp_path / "loads"
    tool = make(f"""
        import os
        open({str(log)!r}, "a").write(f"{{os.getpid()}}\\n")
        def run(n):
            return n
    """)
    for _ in range(3):
        assert call(tool, {"n": 5}).content == "5"
    pids = log.read_text().split()
    assert len(pids) == 3 and str(os.getpid()) not in pids and len(set(pids)) == 3


@pytest.mark.parametrize("module,words", [
    ("import time\ntime.sleep(5)\ndef run(n):\n    return 'loaded after all'\n",
     "timed out after 0.3 s"),
    ("import os\nos._exit(0)\n", "ended without a result (exit code 0)"),
    ("raise ImportError(\"No module named 'missing_dependency'\")\n",
     "failed to import: ImportError: No module named 'missing_dependency'"),
    ("def other(n):\n    return n\n", "the module has no function 'run'"),
])
def test_a_hostile_or_broken_import_is_an_error_result(make, call, module, words):
    """An import that hangs is under the timeout; ``os._exit(0)`` at import used to end agentcli
    itself (exit 0, nothing printed)."""
    r = call(make(module, timeout=0.3))
    assert r.is_error and words in r.content, r.content
    if "exit" not in words and "timed" not in words:
        assert r.content.startswith("tool 't' could not be loaded: ")


@pytest.mark.parametrize("how", ["setsid", "double-fork"])
@pytest.mark.parametrize("ending", ["returns", "raises", "times out"])
def test_processes_the_tool_started_die_with_the_call(make, call, tmp_path, how, ending):
    pid = tmp_path / "pid"
    tool = make(f"""
        def run(n):
            start_escapee({str(pid)!r}, {how!r})
            if {ending!r} == "raises":
                raise RuntimeError("failed after starting a process")
            if {ending!r} == "times out":
                time.sleep(60)
            return "started a process and returned"
    """, timeout=2, escapee=True)
    r = call(tool)
    assert r.is_error == (ending != "returns"), r.content
    assert not alive(read_pid(pid))


@pytest.mark.parametrize("how,presses", [("setsid", 1), ("double-fork", 1), ("setsid", 2)])
def test_ctrl_c_during_a_call_ends_the_tool_and_what_it_started(make, call, tmp_path,
                                                                 monkeypatch, how, presses):
    """Ctrl-C (once, or again while the tree is being ended) stops the call and everything the
    tool started before the KeyboardInterrupt reaches the caller."""
    import agentcli.toolrun.host.isolation as isolation

    pid_file, worker_file = tmp_path / "pid", tmp_path / "worker"
    real_poll = isolation.poll_fds
    interrupted = []

    def interrupt_once_started(fds, timeout):
        if interrupted and len(interrupted) >= presses:
            return real_poll(fds, timeout)
        if interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        if wait_until(lambda: all(f.exists() and f.read_text() for f in (pid_file,
                                                                          worker_file))):
            interrupted.append(True)
            raise KeyboardInterrupt
        raise AssertionError("the tool never started")

    tool = make(f"""
        def run(n):
            start_escapee({str(pid_file)!r}, {how!r})
            open({str(worker_file)!r}, "w").write(str(os.getpid()))
            time.sleep(60)
    """, timeout=30, escapee=True)
    monkeypatch.setattr(isolation, "poll_fds", interrupt_once_started)
    with pytest.raises(KeyboardInterrupt):
        call(tool)
    monkeypatch.undo()
    assert not alive(read_pid(pid_file))
    assert not alive(read_pid(worker_file))


@pytest.mark.parametrize("payload", [b"not json", b'"a string, not the [kind, text] pair"',
                                     b'["ok"]'])
def test_a_tool_forging_its_result_frame_gets_an_error_not_a_crash(make, call, payload):
    tool = make(f"""
        import os
        from agentcli.toolrun.host.frames import HEADER, RESULT_FD
        def run(n):
            os.write(RESULT_FD, HEADER.pack(b"R", {len(payload)}) + {payload!r})
            os._exit(0)
    """)
    r = call(tool)
    assert r.is_error and "sent an unreadable result" in r.content, r.content


def test_a_tool_cannot_write_the_supervisors_status(make, call, tmp_path):
    """A status frame written on every descriptor the tool has cannot make agentcli stop
    waiting for the cleanup while the tool still runs (the status pipe is closed in W)."""
    marker = tmp_path / "finished"
    tool = make(f"""
        import os, time
        from agentcli.toolrun.host.frames import HEADER
        def run(n):
            status = b'{{"worker": "exit code 0"}}'
            fake = HEADER.pack(b"S", len(status)) + status
            for fd in range(64):
                try:
                    os.write(fd, fake)
                except OSError:
                    pass
            time.sleep(0.5)
            open({str(marker)!r}, "w").write("the tool ran to its end before the call returned")
            return "finished"
    """)
    r = call(tool)
    assert marker.exists()
    assert r.is_error and "unreadable result" in r.content  # its own result pipe: garbled


def test_a_tool_that_kills_its_supervisor_dies_with_it(make, call, tmp_path):
    pid = tmp_path / "pid"
    tool = make(f"""
        import os, time
        def run(n):
            open({str(pid)!r}, "w").write(str(os.getpid()))
            os.kill(os.getppid(), 9)
            time.sleep(60)
    """, timeout=30)
    r = call(tool)
    assert r.is_error and "supervisor process ended unexpectedly" in r.content
    # the kernel delivers the death signal asynchronously: polled, at most 10 s
    assert wait_until(lambda: not running(read_pid(pid)))


def test_the_tool_sees_none_of_agentclis_descriptors(make, call, tmp_path):
    """The terminal, sockets and files agentcli has open are closed in the tool's process."""
    tool = make("""
        import os
        def run(n):
            out = []
            for fd in sorted(os.listdir("/proc/self/fd"), key=int):
                try:
                    out.append(os.readlink(f"/proc/self/fd/{fd}"))
                except OSError:
                    pass
            return out
    """)
    with open(tmp_path / "agentcli-private.txt", "w"):
        targets = json.loads(call(tool).content)
    assert not any("agentcli-private" in t for t in targets), targets
    assert len(targets) <= 5, targets  # 0-2 on /dev/null, the result pipe, listdir's own fd


def test_calls_and_cleanup_work_from_a_worker_thread(make, call, tmp_path):
    """The REPL may run the agent off the main thread."""
    pid = tmp_path / "pid"
    adds = make("def run(n):\n    return n + 1\n", name="adds")
    hangs = make(f"""
        def run(n):
            start_escapee({str(pid)!r}, "setsid")
            time.sleep(60)
    """, name="hangs", timeout=1, escapee=True)
    box = {}

    def both():
        box["adds"] = call(adds)
        box["hangs"] = call(hangs)

    t = threading.Thread(target=both)
    t.start()
    t.join(60)
    assert box["adds"].content == "2" and "timed out" in box["hangs"].content
    assert not alive(read_pid(pid))


PTY_SCRIPT = """
import json, os, sys
sys.path.insert(0, {tests!r})
from plugin_kit import plugin, run
from pathlib import Path
from agentcli.toolrun.host.client import HostPool

open("/dev/tty", "w").close()  # this process has a terminal
tool = plugin(Path({folder!r}), {body!r}, via={via!r}, timeout=60, schema={{"type": "object"}})
hosts = HostPool()
assert {via!r} == "fork" or hosts.warm(wait=30)
try:
    r = run(tool, {{}}, hosts=hosts)
    print("RESULT", json.dumps([r.is_error, r.content]))
except KeyboardInterrupt:
    print("INTERRUPTED")
"""


def pty_run(tmp_path, via, body: str, *, interrupt_when=None):
    pexpect = pytest.importorskip("pexpect")
    script = tmp_path / "script.py"
    script.write_text(PTY_SCRIPT.format(tests=os.path.dirname(__file__), via=via,
                                        folder=str(tmp_path / "plugin"),
                                        body=textwrap.dedent(body)))
    child = pexpect.spawn(sys.executable, [str(script)], cwd=str(tmp_path), timeout=60,
                          env={**os.environ, "TERM": "dumb"})
    if interrupt_when is not None:
        assert wait_until(interrupt_when, 30)
        child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before.decode("utf-8", "replace")


@pytest.mark.pty
def test_the_tool_has_no_controlling_terminal(tmp_path, via):
    """Run under a pseudo-terminal: agentcli can open /dev/tty, a tool cannot (so it cannot
    write OSC 52 clipboard sequences or clear the screen during `chat`)."""
    status, out = pty_run(tmp_path, via, """
        def run():
            with open("/dev/tty", "w") as tty:
                tty.write("\\x1b]52;c;ZXZpbA==\\x07\\x1b[2JHOSTILE")
            return "wrote to the terminal"
    """)
    assert status == 0, out
    assert "HOSTILE" not in out and "\x1b]52" not in out
    is_error, content = json.loads(out.split("RESULT ", 1)[1])
    assert is_error and "No such device or address" in content, content


@pytest.mark.pty
def test_ctrl_c_in_the_terminal_reaches_agentcli_not_the_tool(tmp_path, via):
    """The tool is in its own session: the terminal's SIGINT goes to agentcli, which ends the
    tool (and what it started) itself; the tool's own SIGINT handler never runs."""
    ready, handled = tmp_path / "ready", tmp_path / "tool-saw-sigint"
    status, out = pty_run(tmp_path, via, f"""
        import os, signal, time
        def run():
            signal.signal(signal.SIGINT, lambda *a: open({str(handled)!r}, "w").close())
            open({str(ready)!r}, "w").write(str(os.getpid()))
            time.sleep(60)
    """, interrupt_when=lambda: ready.exists() and ready.read_text() != "")
    assert "INTERRUPTED" in out and "RESULT" not in out, out
    assert not handled.exists()
    assert not alive(int(ready.read_text()))


def test_a_deleted_current_folder_is_an_error_result_not_a_crash(tmp_path, monkeypatch):
    """The folder agentcli runs in was removed meanwhile (a REPL left open): the call is an
    error result naming why; execute never raises."""
    tool = plugin(tmp_path / "p", "def run(n):\n    return n\n")
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    r = run(tool, {"n": 1})
    assert r.is_error and "current folder is gone" in r.content and "cd to" in r.content
