"""Commands run in the sandbox (``spawn``, for the ``shell`` tool), and what this machine
offers (``detect``): bubblewrap when it works here, else the command's own process confines
itself (``confine.confine_self``) before it execs the program. ``confine.py`` says what each
wall is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from . import landlock, seccomp
from .confine import Policy, SandboxError, confine_self

INSTALL_HINT = ("install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap, "
                "pacman -S bubblewrap) or use a Linux kernel with Landlock (5.13+), or run "
                "with --sandbox off")


@dataclass(frozen=True)
class Support:
    """What this machine offers (``detect``)."""

    platform: str
    landlock: int = 0
    bwrap: str | None = None
    bwrap_problem: str | None = None
    seccomp: bool = False
    notes: tuple[str, ...] = field(default=())

    def command_refusal(self) -> str | None:
        """Why a command cannot be sandboxed here (None: it can)."""
        if self.bwrap or self.landlock:
            return None
        if self.platform != "linux":
            return (f"the sandbox is not available on {self.platform} yet, so commands are "
                    "refused; run with --sandbox off to run them with your permissions")
        why = (f"bubblewrap cannot run here ({self.bwrap_problem})" if self.bwrap_problem
               else "bubblewrap is not installed")
        return f"the sandbox cannot run commands here: {why} and this kernel has no " \
               f"Landlock; {INSTALL_HINT}"


def detect(probe_bwrap: bool = True) -> Support:
    """Landlock's ABI, seccomp, and whether bubblewrap is installed and works (it is run once,
    with the options the sandbox uses, on ``true``)."""
    if not sys.platform.startswith("linux"):
        return Support(sys.platform)
    found = shutil.which("bwrap") if probe_bwrap else None
    problem = None
    if found:
        argv = bwrap_argv(found, Policy("read-only", "/"), ["true"], status_fd=None,
                          seccomp_fd=None)
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=10, cwd="/")
            if done.returncode != 0:
                lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
                problem = (lines[-1] if lines else f"exit code {done.returncode}")[:200]
        except (OSError, subprocess.SubprocessError) as e:
            problem = str(e)[:200]
    return Support("linux", landlock.abi(), found if found and not problem else None, problem,
                   seccomp.supported())


def bwrap_argv(bwrap: str, policy: Policy, argv: Sequence[str], *, status_fd: int | None,
               seccomp_fd: int | None) -> list[str]:
    """bubblewrap's command line running ``argv`` (already resolved to a path) by ``policy``."""
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev",
            "--proc", "/proc", "--tmpfs", "/tmp"]
    if not policy.network:
        args.append("--unshare-net")
    mounts: list[tuple[str, list[str]]] = []
    for path in policy.write:
        mounts.append((path, ["--bind", path, path]))
    for path in policy.hide:
        if os.path.isdir(path):
            mounts.append((path, ["--tmpfs", path, "--remount-ro", path]))
        else:
            mounts.append((path, ["--ro-bind", "/dev/null", path]))
    for path in policy.read:  # only where a hidden folder would cover it
        if os.path.exists(path) and any(landlock.inside(path, h) for h in policy.hide):
            mounts.append((path, ["--ro-bind", path, path]))
    for _, words in sorted(mounts, key=lambda m: m[0].count("/")):  # parents first
        args.extend(words)
    if status_fd is not None:
        args += ["--json-status-fd", str(status_fd)]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    args += ["--chdir", policy.workspace, "--", *argv]
    return args


@dataclass
class Spawned:
    """A command started by ``spawn``: its pid (the leader of its own session and process
    group), its output pipes, and its private temp folder (this process's, ``limits``)."""

    pid: int
    stdout: int
    stderr: int
    tmp: str | None = None
    status_fd: int | None = None
    """bubblewrap's status pipe (``setup_failure`` reads it)."""


def spawn(policy: Policy | None, argv: Sequence[str], cwd: str,
          env: Mapping[str, str]) -> Spawned:
    """Start ``argv`` (argv[0] a path) in ``cwd`` with stdin on /dev/null, in a new session,
    confined by ``policy`` (None: mode off, unconfined). Raises SandboxError when the sandbox
    cannot be built, OSError when the program cannot start."""
    env = dict(env)
    if policy is not None and policy.bwrap:
        program = None
        if not policy.network and seccomp.supported():
            program = seccomp.program(allow_inet=True)  # inside its own network namespace
        return _spawn_bwrap(policy, argv, env, program)
    tmp = None
    if policy is not None:
        from .limits import private_tmp

        tmp = private_tmp()
        env["TMPDIR"] = tmp
    pid, out_r, err_r = _fork_exec(list(argv), cwd, env, policy, tmp)
    return Spawned(pid, out_r, err_r, tmp)


def _spawn_bwrap(policy: Policy, argv: Sequence[str], env: dict[str, str],
                 program: bytes | None) -> Spawned:
    status_r, status_w = os.pipe()
    keep = [status_w]
    filter_r = None
    if program is not None:
        filter_r, filter_w = os.pipe()
        os.write(filter_w, program)  # a few hundred bytes: the pipe holds them
        os.close(filter_w)
        keep.append(filter_r)
    env["TMPDIR"] = "/tmp"
    full = bwrap_argv(policy.bwrap or "bwrap", policy, argv, status_fd=status_w,
                      seccomp_fd=filter_r)
    try:
        pid, out, err = _fork_exec(full, "/", env, None, None, keep)
    except BaseException:
        os.close(status_r)
        raise
    finally:
        for fd in keep:
            os.close(fd)
    os.set_blocking(status_r, False)
    return Spawned(pid, out, err, status_fd=status_r)


def setup_failure(spawned: Spawned, wait_status: int | None, stderr: str) -> str | None:
    """After a command ended: why bubblewrap failed to set the sandbox up, or None when the
    command ran. bubblewrap reports the command's exit on its status pipe; an exit 1 without
    that report is its own failure, told on stderr."""
    if spawned.status_fd is None:
        return None
    try:
        report = os.read(spawned.status_fd, 65536)
    except OSError:
        report = b""
    finally:
        os.close(spawned.status_fd)
        spawned.status_fd = None
    if b'"exit-code"' in report or wait_status is None or not os.WIFEXITED(wait_status) \
            or os.WEXITSTATUS(wait_status) != 1:
        return None
    lines = [ln for ln in stderr.splitlines() if ln.startswith("bwrap:")]
    return "the sandbox (bubblewrap) did not start: " + (lines[-1] if lines else "exit code 1")


def _drain(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def _fork_exec(argv: list[str], cwd: str, env: dict[str, str], policy: Policy | None,
               tmp: str | None, keep: Sequence[int] = ()) -> tuple[int, int, int]:
    """Fork; the child goes to its own session, confines itself by ``policy`` (if any) and
    execs ``argv``; a failure before the exec is raised here. ``keep``: descriptors the program
    inherits (bubblewrap's status and seccomp pipes)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    fail_r, fail_w = os.pipe()  # close-on-exec: EOF means the exec happened
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            low = 3
            for fd in sorted({fail_w, *keep}):
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, _max_fd())
            for fd in keep:
                os.set_inheritable(fd, True)
            os.chdir(cwd)
            if policy is not None:
                confine_self(policy, tmp or "/nonexistent")
            os.execve(argv[0], argv, env)
        except BaseException as e:  # noqa: BLE001 - told to the parent, then gone
            text = str(e) if isinstance(e, SandboxError) else f"{type(e).__name__}: {e}"
            try:
                os.write(fail_w, json.dumps([type(e).__name__, text]).encode())
            finally:
                os._exit(127)
    for fd in (out_w, err_w, fail_w):
        os.close(fd)
    failure = _drain(fail_r)
    if failure:
        for fd in (out_r, err_r):
            os.close(fd)
        os.waitpid(pid, 0)
        kind, text = json.loads(failure)
        raise SandboxError(text) if kind == "SandboxError" else OSError(text)
    return pid, out_r, err_r


def _max_fd() -> int:
    try:
        return min(int(os.sysconf("SC_OPEN_MAX")), 1 << 20)
    except (OSError, ValueError):
        return 65536
