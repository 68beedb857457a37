"""The OS sandbox of tool calls (Linux): what a tool may read, write and reach.

A ``Policy`` (made by agentcli for each call, sent to the worker as JSON) says the mode and the
folders: the working folder, the folders the tool may write (``workspace-write`` and a tool
whose manifest says ``sandbox: {write: true}``), folders hidden from it (agentcli's data and
config folders, ``~/.ssh``, ``~/.aws``, ...), and whether it may use the network (manifest
``sandbox: {network: true}``). It is enforced in one of two ways:

- **in the worker itself** (``confine_self``), before the plugin module is even imported:
  Landlock for the file system (``landlock.py``), no capabilities, and unless the tool needs
  the network a seccomp filter refusing every socket (``seccomp.py``) with Landlock's TCP rules.
  Cheap (about 1 ms), so every plugin call gets it where the kernel has Landlock.
- **around each command** of a tool that runs commands (``spawn``, used by the ``shell``
  tool): with bubblewrap when it works here (read-only root, the writable folders bound
  writable, hidden ones under empty read-only tmpfs, a private ``/tmp``, new network, pid and
  IPC namespaces, ``--die-with-parent``, ``--new-session``, no capabilities, the same seccomp
  filter refusing Unix sockets); otherwise the command's process confines itself as above,
  with its own private temp folder, and a new user and network namespace (only a private
  loopback) where unprivileged user namespaces are allowed, the seccomp filter then refusing
  Unix sockets only. The tool's own worker stays outside, so the command cannot read the
  worker's memory or environment (Landlock forbids tracing a process outside the sandbox).

What cannot be built is an error with one line saying what to install or set, never a silent
run without the wall.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from . import landlock, seccomp

HOME_SECRETS = (".ssh", ".gnupg", ".aws", ".azure", ".config/gcloud", ".kube", ".docker",
                ".netrc", ".git-credentials", ".config/gh", ".config/hub", ".npmrc", ".pypirc",
                ".cargo/credentials", ".cargo/credentials.toml", ".password-store",
                ".local/share/keyrings", ".vault-token", ".terraform.d/credentials.tfrc.json",
                ".mozilla", ".config/google-chrome", ".config/chromium")
"""Under the home folder: hidden from every sandboxed tool (with the data folder)."""
INSTALL_HINT = ("install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap, "
                "pacman -S bubblewrap) or use a Linux kernel with Landlock (5.13+), or run "
                "with --sandbox off")
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


class SandboxError(OSError):
    """A wall could not be built: the call is refused (the message is for the model and user)."""


@dataclass(frozen=True)
class Policy:
    mode: str
    workspace: str
    write: tuple[str, ...] = ()
    """Folders the tool may write, besides its private temp folder (empty in read-only)."""
    read: tuple[str, ...] = ()
    """Folders readable even inside a hidden one (file_read's roots, the tool's own folder)."""
    hide: tuple[str, ...] = ()
    network: bool = False
    bwrap: str | None = None
    """bubblewrap's path when it works here (commands are then run inside it)."""
    secret_env: tuple[str, ...] = ()
    """Variables that hold keys, besides the ones their names give away (scrubbed_env)."""
    confine_self: bool = True
    """True: the worker confines itself; False: the tool confines each command it runs."""
    userns: bool = True
    """False: never try a user namespace (tests force the Landlock-only walls with it)."""

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any] | None) -> Policy | None:
        if not data:
            return None
        fields = dict(data)
        for key in ("write", "read", "hide", "secret_env"):
            fields[key] = tuple(fields.get(key) or ())
        return cls(**fields)


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


def hidden_paths(home: str, extra: Sequence[str]) -> tuple[str, ...]:
    """The real paths of what is hidden and exists: the secrets in ``home`` and ``extra``."""
    found = []
    for path in [*(os.path.join(home, p) for p in HOME_SECRETS), *extra]:
        real = os.path.realpath(path)
        if os.path.lexists(path) and os.path.exists(real):
            found.append(real)
    return tuple(dict.fromkeys(found))


def scrubbed_env(env: Mapping[str, str], names: Sequence[str] = ()) -> dict[str, str]:
    """``env`` without the variables that hold keys: ``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``
    and the like, ``AGENTCLI_*``, agent sockets, and ``names`` (the profiles' ``api_key_env``);
    also without BASH_ENV/ENV (a file bash would run first)."""
    drop = set(names) | {"SSH_AUTH_SOCK", "GPG_AGENT_INFO", "BASH_ENV", "ENV"}
    return {k: v for k, v in env.items() if k not in drop and not secret_name(k)}


def secret_name(name: str) -> bool:
    upper = name.upper()
    if upper.startswith("AGENTCLI_"):
        return True
    words = ("API_KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL",
             "PRIVATE_KEY", "ACCESS_KEY")
    return any(w in upper for w in words) or upper.endswith(("_KEY", "_PAT", "_AUTH"))


# --- confining this process --------------------------------------------------------------------

def confine_self(policy: Policy, tmp: str) -> list[str]:
    """Confine this process (and what it will start) by ``policy``; ``tmp`` is its private temp
    folder (writable). Must run single-threaded. Returns notes on walls that could not be
    built but are covered otherwise; raises SandboxError when a wall is missing."""
    if not sys.platform.startswith("linux"):
        raise SandboxError(f"no sandbox on {sys.platform}")
    notes: list[str] = []
    netns = _namespaces(policy, notes)
    version = landlock.abi()
    if version < 1:
        raise SandboxError("this kernel has no Landlock (Linux 5.13+)")
    rules = landlock.rules_for(
        read=["/"], write=[*policy.write, tmp],
        hidden=[*policy.hide, "/dev"], exposed=policy.read)
    try:
        landlock.restrict_self(rules, version=version,
                               deny_tcp=not policy.network and not netns)
    except OSError as e:
        raise SandboxError(str(e)) from None
    if not policy.network:
        if not netns and not seccomp.supported() and version < 4:
            raise SandboxError("the network cannot be cut off here: no user namespaces, no "
                               "Landlock network rules (ABI 4) and no seccomp filter for "
                               f"{os.uname().machine}")
        if seccomp.supported():
            try:
                seccomp.apply(allow_inet=netns)
            except OSError as e:
                raise SandboxError(str(e)) from None
    os.environ["TMPDIR"] = tmp
    return notes


def _namespaces(policy: Policy, notes: list[str]) -> bool:
    """For a command that may not use the network: a new user and network namespace (only a
    private loopback, up), this user's ids mapped. True when it was made. A plugin does not get
    one where the seccomp filter can refuse every socket instead (cheaper: a new network
    namespace costs 1-4 ms, mostly bringing its loopback up). Capabilities are dropped either
    way."""
    wanted = not policy.network and (not policy.confine_self or not seccomp.supported())
    uid, gid = os.geteuid(), os.getegid()
    if wanted and policy.userns and _unshare(_CLONE_NEWUSER | _CLONE_NEWNET):
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
            _loopback_up()
        except OSError as e:
            raise SandboxError(f"cannot set up the sandbox's namespaces: {e}") from None
        _drop_capabilities()  # those of the new namespace: nothing for the tool to use
        return True
    _drop_capabilities()
    if wanted:
        notes.append("no user namespace")
    return False


def _unshare(flags: int) -> bool:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(ctypes.c_int(flags)) == 0


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _drop_capabilities() -> None:
    """Empty the bounding set (where allowed) and every capability set: with no_new_privs, no
    program run later gets any back, root's included."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (EINVAL past the last one)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) != 0:
        raise SandboxError("cannot drop root's capabilities")


# --- confining a command ------------------------------------------------------------------------

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
