"""The frames that the tool host, the supervisor and the worker exchange over pipes, and the
file descriptors they sit on (a tag byte, a length, the payload)."""

from __future__ import annotations

import os
import struct

HEADER = struct.Struct(">cQ")  # tag (R value, X the job raised, S status), payload length
RESULT_FD = 3  # W -> P: the job's frame
STATUS_FD = 4  # C -> P: the supervisor's status, written after its cleanup; W closes it
JOB_FD = 5  # P -> W: the job of a worker forked ahead of it (the tool host's spare)


def write_frame(fd: int, tag: bytes, data: bytes) -> None:
    view = memoryview(HEADER.pack(tag, len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def read_frame(fd: int) -> tuple[bytes, bytes] | None:
    """Exactly one frame from a blocking fd, never a byte more; None at EOF."""
    head = _read_exactly(fd, HEADER.size)
    if head is None:
        return None
    tag, size = HEADER.unpack(head)
    payload = _read_exactly(fd, size)
    return None if payload is None else (tag, payload)


def _read_exactly(fd: int, size: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        chunk = os.read(fd, size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)
