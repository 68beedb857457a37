"""A seccomp filter (classic BPF, built here with ``struct``) that refuses to create sockets:
the network wall where no network namespace can be had, and the wall against Unix sockets
(a D-Bus session bus, an ssh-agent, a docker.sock reached by its path) everywhere.

``program(allow_inet)`` is the filter as bytes: ``socket()`` of any family other than Unix
fails with EAFNOSUPPORT, and ``socket(AF_UNIX, ...)`` with EPERM; with ``allow_inet`` (inside a
private network namespace, where only the sandbox's own loopback exists) IP, netlink and the
others are let through and only Unix sockets are refused. ``io_uring_setup`` fails with EPERM
(io_uring can open sockets without the ``socket`` system call). ``socketpair`` stays allowed:
it connects nothing outside. A 32-bit x86 call on a 64-bit kernel is filtered the same way
(``socketcall`` included). The same bytes serve ``apply`` (this process, after no_new_privs)
and bubblewrap's ``--seccomp FD``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

_ARCH = {  # machine -> (AUDIT_ARCH, socket, io_uring_setup)
    "x86_64": (0xC000003E, 41, 425),
    "aarch64": (0xC00000B7, 198, 425),
}
_I386 = (0x40000003, 359, 425, 102)  # x86 compat: AUDIT_ARCH, socket, io_uring_setup, socketcall
_X32_BIT = 0x40000000
AF_UNIX = 1
_LD_W_ABS, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
PR_SET_SECCOMP, SECCOMP_MODE_FILTER, PR_SET_NO_NEW_PRIVS = 22, 2, 38


def supported() -> bool:
    return hasattr(os, "uname") and os.uname().machine in _ARCH


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(allow_inet: bool) -> bytes:
    """The filter for this machine's architecture (ValueError where there is none)."""
    machine = os.uname().machine
    if machine not in _ARCH:
        raise ValueError(f"no seccomp filter for {machine}")
    arch, sock, uring = _ARCH[machine]
    deny_eperm = _ERRNO | errno.EPERM
    # the socket family test: AF_UNIX -> EPERM; others -> allowed (allow_inet) or refused
    unix, other = deny_eperm, _ALLOW if allow_inet else _ERRNO | errno.EAFNOSUPPORT
    native = [
        _insn(_LD_W_ABS, 0),                      # 0: nr
        _insn(_JGE, _X32_BIT, 7, 0) if machine == "x86_64" else _insn(_JEQ, 0xFFFFFFFF, 7, 0),
        _insn(_JEQ, uring, 6, 0),                 # 2: io_uring_setup -> EPERM
        _insn(_JEQ, sock, 0, 4),                  # 3: socket?
        _insn(_LD_W_ABS, 16),                     # 4: args[0], low 32 bits (the family)
        _insn(_JEQ, AF_UNIX, 0, 1),               # 5
        _insn(_RET, unix),                        # 6
        _insn(_RET, other),                       # 7
        _insn(_RET, _ALLOW),                      # 8
        _insn(_RET, deny_eperm),                  # 9: x32 calls, io_uring
    ]
    compat: list[bytes] = []
    if machine == "x86_64":
        c_arch, c_sock, c_uring, c_socketcall = _I386
        compat = [
            _insn(_JEQ, c_arch, 0, 5),            # not i386 either: refuse (unknown ABI)
            _insn(_LD_W_ABS, 0),
            _insn(_JEQ, c_sock, 3, 0),
            _insn(_JEQ, c_socketcall, 2, 0),
            _insn(_JEQ, c_uring, 1, 0),
            _insn(_RET, _ALLOW),
            _insn(_RET, deny_eperm),
        ]
    head = [_insn(_LD_W_ABS, 4), _insn(_JEQ, arch, 0, len(native))]  # arch == native?
    if not compat:
        compat = [_insn(_RET, deny_eperm)]
    return b"".join(head + native + compat)


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def apply(allow_inet: bool) -> None:
    """Install the filter on this process (inherited by what it starts); OSError on failure."""
    code = program(allow_inet)
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _Prog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot install the seccomp filter: {os.strerror(err)}")
