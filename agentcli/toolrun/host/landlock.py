"""Landlock (Linux 5.13+) through ctypes: the file-system wall of the sandbox, with TCP
connect/bind denied where the kernel's ABI is 4 or newer, and signals and abstract Unix sockets
scoped to the sandbox where it is 6 or newer.

Landlock only *allows*: a process that restricts itself keeps exactly the access its rules
grant, for itself and everything it starts, and can never widen it again. The rules here grant:
read (and execute) everywhere except the hidden folders; read and write in the writable
folders; a few devices (``/dev/null`` ...). A hidden folder cannot be carved out of a rule on
its parent (a rule covers everything beneath it), so a rule on a folder that holds a hidden one
is split: the folder itself may be listed (names only), each entry in it gets the rule, except
the hidden one, recursively. Symbolic links are never followed while splitting: a link to a
hidden folder is reached only through the folder's own path, which has no rule.

Known limits (the kernel's): metadata changes (chmod, chown, timestamps) are not controlled;
connecting to a Unix socket by its path is not either (``seccomp.py`` refuses Unix sockets
instead); the names in a hidden folder can be listed, their contents cannot be read.
"""

from __future__ import annotations

import ctypes
import functools
import os
import stat
from typing import Iterable, Sequence

_SYS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446), "riscv64": (444, 445, 446)}
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1, 2, 4, 8
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK = 16, 32, 64, 128, 256, 512
MAKE_FIFO, MAKE_BLOCK, MAKE_SYM, REFER, TRUNCATE, IOCTL_DEV = 1024, 2048, 4096, 8192, 16384, 32768
READ = EXECUTE | READ_FILE | READ_DIR
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # what a file rule may hold
DEVICE_RW = READ_FILE | WRITE_FILE | TRUNCATE
NET_BIND_TCP, NET_CONNECT_TCP = 1, 2
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1, 2
DEVICES = {"/dev/null": DEVICE_RW, "/dev/zero": DEVICE_RW, "/dev/full": DEVICE_RW,
           "/dev/random": READ_FILE, "/dev/urandom": READ_FILE}
"""The only devices a sandboxed process can open (a terminal's or a disk's device never)."""
MAX_SPLIT = 4096  # rules made by splitting folders around hidden ones, at most


class LandlockError(OSError):
    """The kernel refused a step; the message says which."""


class _Attr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except (OSError, AttributeError):
        return None


def _numbers() -> tuple[int, int, int] | None:
    return _SYS.get(os.uname().machine) if hasattr(os, "uname") else None


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when there is no Landlock (or it is disabled)."""
    libc, nums = _libc(), _numbers()
    if libc is None or nums is None:
        return 0
    version = libc.syscall(nums[0], None, ctypes.c_size_t(0),
                           ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(0, int(version))


def handled_fs(version: int) -> int:
    """Every file-system right the kernel of this ABI knows (all of them are restricted)."""
    rights = (MAKE_SYM << 1) - 1
    if version >= 2:
        rights |= REFER
    if version >= 3:
        rights |= TRUNCATE
    if version >= 5:
        rights |= IOCTL_DEV
    return rights


def restrict_self(rules: Iterable[tuple[str, int]], *, version: int, deny_tcp: bool) -> int:
    """Apply a ruleset made of ``rules`` (path, rights) to this process (and what it starts):
    afterwards only what the rules grant is allowed. ``deny_tcp``: no TCP connect or bind
    (ABI 4+). Also sets no_new_privs. Returns the number of rules added; raises LandlockError."""
    ruleset, added = build(rules, version=version, deny_tcp=deny_tcp)
    enforce(ruleset)
    return added


def build(rules: Iterable[tuple[str, int]], *, version: int, deny_tcp: bool) -> tuple[int, int]:
    """``restrict_self``'s first half: the ruleset (its descriptor, which the caller owns and
    ``enforce`` closes) and the number of rules in it. A worker builds it before its job comes
    (``confine.prepare``); each rule holds its folder from then on, as it would from the call."""
    libc, nums = _libc(), _numbers()
    if libc is None or nums is None or version < 1:
        raise LandlockError("this kernel has no Landlock")
    fs = handled_fs(version)
    attr = _Attr(fs, NET_BIND_TCP | NET_CONNECT_TCP if deny_tcp and version >= 4 else 0,
                 SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if version >= 6 else 0)
    size = ctypes.sizeof(_Attr) if version >= 6 else (16 if version >= 4 else 8)
    ruleset = libc.syscall(nums[0], ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise LandlockError(_why("cannot create a Landlock ruleset"))
    try:
        added = sum(_add(libc, nums[1], ruleset, path, rights & fs) for path, rights in rules)
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset, added


def enforce(ruleset: int) -> None:
    """``restrict_self``'s second half: no_new_privs, then the ruleset on this process for good
    (the descriptor is closed either way)."""
    libc, nums = _libc(), _numbers()
    try:
        if libc is None or nums is None:
            raise LandlockError("this kernel has no Landlock")
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise LandlockError(_why("cannot set no_new_privs"))
        if libc.syscall(nums[2], ruleset, ctypes.c_uint32(0)) != 0:
            raise LandlockError(_why("cannot enforce the Landlock ruleset"))
    finally:
        os.close(ruleset)


def _add(libc: ctypes.CDLL, number: int, ruleset: int, path: str, rights: int) -> int:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return 0  # gone meanwhile, or not ours to see: nothing to grant
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_RIGHTS
        if not rights:
            return 0
        rule = _PathBeneath(rights, fd)
        if libc.syscall(number, ruleset, ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                        ctypes.c_uint32(0)) != 0:
            raise LandlockError(_why(f"cannot add a Landlock rule for {path}"))
        return 1
    finally:
        os.close(fd)


def _why(what: str) -> str:
    err = ctypes.get_errno()
    return f"{what}: {os.strerror(err)}" if err else what


# --- the rules of a policy ----------------------------------------------------------------------

def inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or beneath it (both real, absolute paths)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def rules_for(*, read: Sequence[str], write: Sequence[str], hidden: Sequence[str],
              exposed: Sequence[str] = ()) -> list[tuple[str, int]]:
    """The rules granting read everywhere under ``read`` and read-write under ``write``, both
    minus ``hidden``; ``exposed`` folders are readable even inside a hidden one. Every path is
    real (symlinks resolved) and absolute."""
    rules: list[tuple[str, int]] = []
    budget = [MAX_SPLIT]
    for paths, rights in ((read, READ), (write, READ | handled_fs(7))):
        for path in paths:
            if not any(inside(path, h) for h in hidden):
                _split(path, rights, hidden, rules, budget)
    rules.extend((p, READ) for p in exposed)
    rules.extend(DEVICES.items())
    return rules


def _split(path: str, rights: int, hidden: Sequence[str], out: list[tuple[str, int]],
           budget: list[int]) -> None:
    """The rule (path, rights), split around the hidden folders beneath ``path``."""
    beneath = [h for h in hidden if h != path and inside(h, path)]
    if not beneath:
        out.append((path, rights))
        return
    out.append((path, READ_DIR))  # its names can be listed; nothing else at this level
    try:
        entries = list(os.scandir(path))
    except OSError:
        return
    for entry in entries:
        child = os.path.join(path, entry.name)
        if entry.is_symlink() or child in hidden:
            continue
        budget[0] -= 1
        if budget[0] < 0:
            raise LandlockError(f"too many entries to split around the hidden folders in {path}")
        _split(child, rights, beneath, out, budget)
