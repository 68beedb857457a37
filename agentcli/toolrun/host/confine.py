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
- **around each command** of a tool that runs commands (``commands.spawn``, used by the
  ``shell`` tool): with bubblewrap when it works here (read-only root, the writable folders bound
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
import os
import socket
import struct
import sys
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from . import landlock, seccomp

HOME_SECRETS = (".ssh", ".gnupg", ".aws", ".azure", ".config/gcloud", ".kube", ".docker",
                ".netrc", ".git-credentials", ".config/gh", ".config/hub", ".npmrc", ".pypirc",
                ".cargo/credentials", ".cargo/credentials.toml", ".password-store",
                ".local/share/keyrings", ".vault-token", ".terraform.d/credentials.tfrc.json",
                ".mozilla", ".config/google-chrome", ".config/chromium")
"""Under the home folder: hidden from every sandboxed tool (with the data folder)."""
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

class Prepared:
    """A worker's Landlock ruleset, built before its job came for the policy the tool host's last
    call had (``prepare``): when the job brings that same policy, confining the worker is only
    enforcing it (~0.1 ms instead of ~2 ms of opening folders). It holds a descriptor until
    ``take`` or ``close``; a job with another policy gets its own ruleset as ever."""

    def __init__(self, policy: Policy, tmp: str, fd: int) -> None:
        self.policy, self.tmp, self._fd = policy, tmp, fd

    def take(self, policy: Policy, tmp: str, netns: bool) -> int | None:
        """The ruleset's descriptor when it was built for exactly this policy and temp folder
        (and no network namespace was made, which would change the TCP rules); else None, and
        the descriptor is closed."""
        fd, self._fd = self._fd, None
        if fd is not None and not netns and policy == self.policy and tmp == self.tmp:
            return fd
        if fd is not None:
            os.close(fd)
        return None

    def close(self) -> None:
        self.take(self.policy, "", True)


def prepare(wire: Mapping[str, Any] | None, tmp: str) -> Prepared | None:
    """The ruleset ``confine_self`` would build for the policy ``wire`` in temp folder ``tmp``,
    built now; None when there is none to build ahead: no policy, one the worker does not
    confine itself by, one that would get namespaces (its TCP rules depend on whether they can
    be made), no Landlock, or a step that failed (the call then builds it, and says why)."""
    policy = Policy.from_wire(wire)
    if policy is None or policy.mode == "off" or not policy.confine_self or \
            _wants_namespaces(policy) or not sys.platform.startswith("linux"):
        return None
    version = landlock.abi()
    if version < 1:
        return None
    try:
        fd, _ = landlock.build(_rules(policy, tmp), version=version,
                               deny_tcp=not policy.network)
    except OSError:
        return None
    return Prepared(policy, tmp, fd)


def _rules(policy: Policy, tmp: str) -> list[tuple[str, int]]:
    return landlock.rules_for(read=["/"], write=[*policy.write, tmp],
                              hidden=[*policy.hide, "/dev"], exposed=policy.read)


def confine_self(policy: Policy, tmp: str, prepared: Prepared | None = None) -> list[str]:
    """Confine this process (and what it will start) by ``policy``; ``tmp`` is its private temp
    folder (writable). Must run single-threaded. ``prepared``: a ruleset built ahead
    (``prepare``), used when it is this policy's. Returns notes on walls that could not be
    built but are covered otherwise; raises SandboxError when a wall is missing."""
    try:
        return _confine(policy, tmp, prepared)
    finally:
        if prepared is not None:
            prepared.close()


def _confine(policy: Policy, tmp: str, prepared: Prepared | None) -> list[str]:
    if not sys.platform.startswith("linux"):
        raise SandboxError(f"no sandbox on {sys.platform}")
    notes: list[str] = []
    netns = _namespaces(policy, notes)
    version = landlock.abi()
    if version < 1:
        raise SandboxError("this kernel has no Landlock (Linux 5.13+)")
    ready = prepared.take(policy, tmp, netns) if prepared is not None else None
    try:
        if ready is not None:
            landlock.enforce(ready)
        else:
            landlock.restrict_self(_rules(policy, tmp), version=version,
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
    wanted = _wants_namespaces(policy)
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


def _wants_namespaces(policy: Policy) -> bool:
    return not policy.network and (not policy.confine_self or not seccomp.supported())


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
