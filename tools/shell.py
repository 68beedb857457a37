"""shell: run one bash command in the working folder, inside the sandbox, and report its exit code
and output.

The command runs as ``bash -c COMMAND`` (``sh -c`` where bash is missing) with stdin on
/dev/null, in a session of its own, with an environment scrubbed of every variable that holds
a key. It is confined by the call's sandbox policy (``agentcli.toolrun.host.confine``):
bubblewrap when it works here, else Landlock in the command's own process; with no policy
decided the tool refuses. Output is read as it comes: the head and the tail of each stream
are kept, and a flood (more than ``FLOOD_BYTES``) stops the command. When bash exits, its
process group (background jobs included) is killed; the tool host's supervisor then kills
anything else the command started. At the timeout the command and everything it started are
killed and the output so far is returned with "timed out after N s".
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import time
from typing import Any

from agentcli.errors import ToolError
from agentcli.toolrun.host.commands import setup_failure, spawn
from agentcli.toolrun.host.confine import Policy, SandboxError, scrubbed_env

DEFAULT_TIMEOUT = 120
FLOOD_BYTES = 8 * 1024 * 1024
DRAIN_AFTER_EXIT = 0.5  # seconds to read what is left once bash has exited (then it is killed)


class _Capture:
    """One stream: its first and last ``keep`` bytes, and how many came."""

    def __init__(self, keep: int) -> None:
        self.keep, self.head, self.tail, self.total = keep, bytearray(), bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            del self.tail[:max(0, len(self.tail) - self.keep)]

    def text(self, budget: int) -> str:
        if self.total <= budget:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace")
        head = bytes(self.head[:budget * 2 // 3]).decode("utf-8", "replace")
        tail = bytes(self.tail[-(budget - budget * 2 // 3):]).decode("utf-8", "replace")
        cut = self.total - budget
        return f"{head}\n[... {cut} bytes cut: {self.total} bytes in all ...]\n{tail}"


def _shell() -> list[str]:
    bash = shutil.which("bash") or ("/bin/bash" if os.path.exists("/bin/bash") else None)
    return [bash, "-c"] if bash else ["/bin/sh", "-c"]


def run(command: str, timeout: int | None = None, context: Any = None) -> str:
    sandbox = getattr(context, "sandbox", None)
    if not sandbox:
        raise ToolError("no sandbox policy was given for this call, so the command was not run")
    policy = Policy.from_wire(sandbox)
    assert policy is not None
    cwd = getattr(context, "cwd", None) or os.getcwd()
    seconds = DEFAULT_TIMEOUT if timeout is None else int(timeout)
    cap = int(getattr(context, "output_cap", 0) or 30000)
    env = scrubbed_env(os.environ, policy.secret_env)
    confined = None if policy.mode == "off" else policy
    try:
        child = spawn(confined, [*_shell(), command], cwd, env)
    except SandboxError as e:
        raise ToolError(f"the command was not run: {e}") from None
    except OSError as e:
        raise ToolError(f"the command could not start: {e}") from None
    try:
        outs, ended, status = _collect(child.pid, child.stdout, child.stderr, seconds, cap)
        failure = setup_failure(child, status, outs[1].text(cap))
    finally:  # its temp folder (child.tmp) is the worker's: the supervisor removes it
        if child.status_fd is not None:
            os.close(child.status_fd)
    if failure:
        raise ToolError(f"the command was not run: {failure}")
    report = _report(outs, ended, status, seconds, cap, policy, getattr(context, "limits", None))
    if ended == "timeout":
        raise ToolError(report)
    return report


def _collect(pid: int, out_fd: int, err_fd: int, seconds: int, cap: int
             ) -> tuple[list[_Capture], str, int | None]:
    """Read both streams until they end; returns the captures, how it ended (``exit``,
    ``timeout``, ``flood``) and the wait status (None when it had to be killed)."""
    caps = [_Capture(cap), _Capture(cap)]
    fds = {out_fd: caps[0], err_fd: caps[1]}
    deadline = time.monotonic() + seconds
    status: int | None = None
    ended = "exit"
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while fds or status is None:
            now = time.monotonic()
            if now >= deadline:
                ended = "timeout" if status is None else ended
                break
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN | select.POLLHUP)
            if pidfd is not None and status is None:
                poller.register(pidfd, select.POLLIN)
            wait = deadline - now if pidfd is not None or status is not None else 0.05
            ready = poller.poll(max(1, int(min(wait, 3600) * 1000)))
            for fd, _ in ready:
                if fd == pidfd:
                    continue
                chunk = os.read(fd, 65536)
                if chunk:
                    fds[fd].add(chunk)
                else:
                    del fds[fd]
                    os.close(fd)
            if caps[0].total + caps[1].total > FLOOD_BYTES:
                ended = "flood"
                break
            if status is None:
                done, wstatus = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = wstatus
                    _kill(pid)  # its background jobs: the same process group
                    deadline = min(deadline, time.monotonic() + DRAIN_AFTER_EXIT)
    finally:
        for fd in fds:
            os.close(fd)
        if pidfd is not None:
            os.close(pidfd)
        if status is None:  # still running (timeout, flood, or an error here): kill, reap
            _kill(pid)
            try:
                status = os.waitpid(pid, 0)[1] if ended == "exit" else _reaped(pid)
            except ChildProcessError:
                status = None
    return caps, ended, status


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass


def _reaped(pid: int) -> None:
    """Reap a command that was killed: its status says nothing the report needs."""
    os.waitpid(pid, 0)


def _report(caps: list[_Capture], ended: str, status: int | None, seconds: int, cap: int,
            policy: Policy, limits: Any) -> str:
    if ended == "timeout":
        head = f"timed out after {seconds} s: the command and everything it started were stopped"
    elif ended == "flood":
        head = (f"the command was stopped: it printed more than {FLOOD_BYTES // 1048576} MiB "
                f"(exit code unknown)")
    elif status is None:
        head = "exit code unknown"
    elif os.WIFSIGNALED(status):
        head = f"killed by signal {os.WTERMSIG(status)}"
    else:
        head = f"exit code {os.waitstatus_to_exitcode(status)}"
    budget = max(200, cap - 600)
    sizes = [c.total for c in caps]
    shares = [budget // 2, budget // 2]
    for i in (0, 1):  # a short stream gives its unused share to the other
        if sizes[i] < shares[i]:
            shares[1 - i] += shares[i] - sizes[i]
    parts = [head]
    for name, capture, share in (("stdout", caps[0], shares[0]), ("stderr", caps[1], shares[1])):
        if capture.total:
            parts.append(f"--- {name} ---\n{capture.text(share).rstrip(chr(10))}")
    failed = ended != "exit" or status is None or os.waitstatus_to_exitcode(status) != 0
    if failed and policy.mode != "off":
        parts.append(_sandbox_note(policy, limits))
    return "\n".join(parts)


def _sandbox_note(policy: Policy, limits: Any) -> str:
    where = ("nowhere but $TMPDIR" if policy.mode == "read-only" or not policy.write
             else f"only in {', '.join(policy.write)} and $TMPDIR")
    text = (f"[sandbox {policy.mode}: writes {where}; "
            f"{'network allowed' if policy.network else 'no network'}")
    if limits:
        text += (f"; at most {limits.get('memory_mb')} MiB of memory per process and "
                 f"{limits.get('processes')} processes")
    return text + "]"
