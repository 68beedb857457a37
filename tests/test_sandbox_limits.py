"""Limits and the sandbox of plugin calls: a tool that eats memory is told "out of memory"; a
fork bomb is bounded by the process limit and the call ends; every plugin call is confined
in-process (Landlock) where the kernel has it: no writes outside the working folder unless the
manifest says it writes, no network unless it says so, secrets unreadable; and a normal user
(not root) gets the same walls."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from plugin_kit import plugin
from sandbox_kit import (ALL, LoopbackServer, backend_param, call, processes_with, python,
                         sandbox, shell_tool)

LANDLOCK = [backend_param("landlock"), backend_param("landlock-no-userns")]


@pytest.fixture
def work(tmp_path, monkeypatch):
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.parametrize("grow", [False, True])
def test_a_tool_that_eats_memory_gets_out_of_memory(tmp_path, work, grow):
    body = ("def run(n):\n    hog = []\n    while True:\n        hog.append(bytearray(1 << 20))\n"
            if grow else "def run(n):\n    return len(bytearray(3 << 30))\n")
    tool = dataclasses.replace(plugin(tmp_path / "p", body, timeout=60), memory_mb=256)
    r = call(tool, None, {"n": 1})
    assert r.is_error and "out of memory" in r.content and "256 MiB" in r.content, r.content


def test_the_manifest_can_raise_the_memory_limit(tmp_path, work):
    body = "def run(n):\n    return len(bytearray(300 << 20))\n"
    small = dataclasses.replace(plugin(tmp_path / "p", body, timeout=60), memory_mb=128)
    assert "out of memory" in call(small, None, {"n": 1}).content
    big = dataclasses.replace(small, memory_mb=1024)
    assert call(big, None, {"n": 1}).content == str(300 << 20)


@pytest.mark.parametrize("backend", ALL)
def test_a_memory_hog_in_the_shell_is_refused_its_memory(backend, work):
    tool = shell_tool(memory_mb=256)
    r = call(tool, sandbox(backend), {"command": f"{python()} -c 'bytearray(1 << 30)'"})
    assert "MemoryError" in r.content and "at most 256 MiB of memory per process" in r.content


def _bomb_script(counter: Path, marker: str) -> str:
    """Forks for 12 generations (4096 processes if nothing stops it: bounded by design, far
    below this machine's pid limit), each successful fork noted in ``counter``."""
    return textwrap.dedent(f"""\
        import os, sys, time
        for _ in range(12):
            try:
                if os.fork() == 0:
                    with open({str(counter)!r}, "a") as f:
                        f.write("x")
            except OSError:
                pass
        time.sleep(60)
        """) + f"# {marker}\n"


@pytest.mark.parametrize("backend", ALL)
def test_a_fork_bomb_is_bounded_and_the_call_ends(backend, work):
    from agentcli.toolrun.host.limits import process_limit_possible

    if not process_limit_possible():
        pytest.skip("running as root without a writable pids cgroup: no process limit here")
    marker = "bomb-5e1f"
    (work / "bomb.py").write_text(_bomb_script(work / "count", marker))
    tool = shell_tool(processes=40)
    r = call(tool, sandbox(backend), {"command": f"{python()} bomb.py {marker}", "timeout": 3})
    assert r.is_error and "timed out after 3 s" in r.content
    forks = len((work / "count").read_text()) if (work / "count").exists() else 0
    assert 0 < forks < 40, forks  # bounded by the limit (unbounded: 4095)
    assert processes_with(marker) == []


# --- plugins confined in-process -------------------------------------------------------------

PROBE = '''
import os, socket

def run(n, context=None):
    out = []
    for path in (os.environ["PROBE_OUTSIDE"], os.path.join(context.cwd, "inside.txt")):
        try:
            with open(path, "w") as f:
                f.write("x")
            out.append("wrote " + os.path.basename(path))
        except OSError as e:
            out.append(f"no write {os.path.basename(path)}: {e.strerror}")
    try:
        open(os.path.expanduser("~/.ssh/id_ed25519")).read()
        out.append("read the key")
    except OSError as e:
        out.append(f"no key: {e.strerror}")
    try:
        socket.create_connection(("127.0.0.1", n), 3).close()
        out.append("connected")
    except OSError as e:
        out.append(f"no connect: {e.strerror}")
    return "\\n".join(out)
'''


@pytest.fixture
def secrets(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("KEY")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PROBE_OUTSIDE", str(tmp_path / "outside.txt"))
    return tmp_path


@pytest.mark.parametrize("backend", LANDLOCK)
def test_every_plugin_call_is_confined(backend, secrets, work):
    server = LoopbackServer()
    try:
        tool = plugin(secrets / "p", PROBE, timeout=20)
        lines = call(tool, sandbox(backend), {"n": server.port}).content.splitlines()
        assert lines[0].startswith("no write outside.txt: Permission denied")
        assert lines[1].startswith("no write inside.txt")  # the manifest does not say it writes
        assert lines[2] == "no key: Permission denied"
        assert lines[3] == "no connect: Address family not supported by protocol"
        assert server.accepted == 0  # no socket can even be opened
        writer = dataclasses.replace(tool, writes=True, network=True)  # what it may declare
        lines = call(writer, sandbox(backend), {"n": server.port}).content.splitlines()
        assert lines[0].startswith("no write outside.txt") and lines[1] == "wrote inside.txt"
        assert lines[2] == "no key: Permission denied"
        assert lines[3] == "connected" and server.accepted == 1
        free = call(tool, sandbox("off", mode="off"), {"n": server.port}).content.splitlines()
        assert free == ["wrote outside.txt", "wrote inside.txt", "read the key", "connected"]
    finally:
        server.close()


def test_an_unconfined_plugin_without_landlock_says_so_once(tmp_path, work):
    from agentcli.toolrun.host.commands import Support
    from agentcli.toolrun.executor import Executor
    from agentcli.toolrun.approval import PolicyApprover
    from agentcli.messages import ToolCall

    said: list[str] = []
    box = dataclasses.replace(sandbox("landlock"), support=Support("linux", 0, None, None, True),
                              warn=said.append)
    tool = plugin(tmp_path / "p", "def run(n):\n    return n\n")
    ex = Executor({"t": tool}, PolicyApprover(yes=True), sandbox=box)
    for i in range(3):
        assert ex.execute(ToolCall(str(i), "t", '{"n": 5}')).result.content == "5"
    assert said == ["sandbox: this kernel has no Landlock (Linux 5.13+), so plugin tools run "
                    "without walls (the limits still apply)"]


# --- as a normal user --------------------------------------------------------------------------

NOBODY_SCRIPT = '''
import json, os, sys
from types import SimpleNamespace
sys.path.insert(0, sys.argv[1])
from agentcli.toolrun.host.commands import detect
from agentcli.toolrun.host.confine import Policy
import shell
work, hidden, outside, port, backend = sys.argv[2:7]
found = detect()
policy = Policy("workspace-write", work, write=(work,), hide=(hidden,),
                bwrap=found.bwrap if backend == "bwrap" else None,
                userns=backend != "landlock-no-userns")
ctx = SimpleNamespace(sandbox=policy.to_wire(), cwd=work, output_cap=30000,
                      limits={"memory_mb": 256, "processes": 40})
print(shell.run(f"id -u; echo in > in.txt; echo out > {outside}; cat {hidden}/key; "
                f"{sys.executable} -c \\"import socket; socket.create_connection(('127.0.0.1', "
                f"{port}), 3); print('CONNECTED')\\"", 20, ctx))
from agentcli.toolrun.host.limits import Limits, apply
apply(Limits(256, 40))  # as the worker does: RLIMIT_NPROC, the user's tasks + 40
try:
    shell.run(f"{sys.executable} bomb.py", 3, ctx)
except Exception as e:
    print("BOMB:", str(e).splitlines()[0])
'''


def _as_nobody() -> list[str] | None:
    if os.geteuid() != 0:
        return None
    for tool in ("setpriv", "runuser"):
        if shutil.which(tool):
            return (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
                    if tool == "setpriv" else ["runuser", "-u", "nobody", "--"])
    return None


@pytest.mark.parametrize("backend", ALL)
def test_a_normal_user_gets_the_same_walls(backend):
    """Root skips some kernel checks (DAC, RLIMIT_NPROC): run the shell tool as `nobody`, with
    a system Python and a copy of the stdlib-only modules it needs, in a world-readable place."""
    prefix = _as_nobody()
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if prefix is None or system_python is None:
        pytest.skip("needs root (to become nobody) with setpriv or runuser, and /usr/bin/python3")
    import agentcli
    from agentcli.toolrun.manifest import builtin_tools_dir

    root = Path(tempfile.mkdtemp(prefix="agentcli-nobody-", dir="/var/tmp"
                                 if os.path.isdir("/var/tmp") else None))
    server = LoopbackServer()
    try:
        pkg = Path(agentcli.__file__).parent
        lib = root / "lib"
        shutil.copytree(pkg / "toolrun" / "host", lib / "agentcli" / "toolrun" / "host")
        for name in ("__init__.py", "errors.py"):
            shutil.copy(pkg / name, lib / "agentcli" / name)
        (lib / "agentcli" / "toolrun" / "__init__.py").write_text("")
        shutil.copy(builtin_tools_dir() / "shell.py", lib / "shell.py")
        (root / "script.py").write_text(NOBODY_SCRIPT)
        for folder in ("work", "outside", "hidden"):
            (root / folder).mkdir()
        (root / "hidden" / "key").write_text("NOBODYS-SECRET")
        (root / "work" / "bomb.py").write_text(_bomb_script(root / "work" / "count", "nb"))
        os.chmod(root / "hidden" / "key", 0o644)
        for path in [root, *root.rglob("*")]:
            os.chmod(path, 0o777 if path.is_dir() else 0o644)
        done = subprocess.run([*prefix, system_python, str(root / "script.py"), str(lib),
                               str(root / "work"), str(root / "hidden"),
                               str(root / "outside" / "x"), str(server.port), backend],
                              capture_output=True, text=True, timeout=60, cwd=str(root))
        out = done.stdout + done.stderr
        assert "65534" in out, out
        assert (root / "work" / "in.txt").exists() and not (root / "outside" / "x").exists()
        assert "NOBODYS-SECRET" not in out and "CONNECTED" not in out and server.accepted == 0
        assert "BOMB: timed out after 3 s" in out, out
        forks = len((root / "work" / "count").read_text())
        assert 0 < forks < 40, forks  # bounded by RLIMIT_NPROC (unbounded: 4095)
    finally:
        server.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("backend", LANDLOCK)
def test_a_plugins_private_temp_folder_is_its_own_and_goes_away(backend, tmp_path, work):
    from plugin_kit import wait_until

    body = ("import os, tempfile\n"
            "def run(n):\n"
            "    fd, path = tempfile.mkstemp()\n"
            "    os.write(fd, b'x')\n"
            "    return path\n")
    tool = plugin(tmp_path / "p", body)
    first = call(tool, sandbox(backend), {"n": 1}).content
    second = call(tool, sandbox(backend), {"n": 1}).content
    assert os.path.dirname(first) != os.path.dirname(second)  # a fresh folder per call
    assert f"agentcli-{os.getuid()}" in first
    assert wait_until(lambda: not os.path.exists(first) and not os.path.exists(second))
