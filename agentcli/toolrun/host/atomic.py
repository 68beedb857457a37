"""Atomic writes: a file holds its old content or its new content, never part of one.

The new content goes to a temporary file in the same folder (``.NAME.agentcli-PID-RANDOM.tmp``,
mode 0600 until it is complete), which is given the mode to keep, flushed to disk and renamed
over the file; the folder is flushed too. A kill at any moment leaves the old file or the new
one whole. The temporary file a killed write leaves behind is removed by the next write to that
file (when the process that made it is gone, or after an hour). Standard library only.
"""

from __future__ import annotations

import os
import time

from ...errors import ToolError

TEMP_TAG = ".agentcli-"
STALE_TEMP_SECONDS = 3600


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(folder_fd: int, name: str, data: bytes, mode: int | None) -> None:
    """``name`` in the folder ``folder_fd`` holds ``data`` afterwards, and at no moment holds
    anything but its old content or ``data`` (temp file + fsync + rename). ``mode``: the
    permissions to keep (None: a new file, 0666 less the umask)."""
    clean_temps(folder_fd, name)
    stem = name[:180]
    temp = f".{stem}{TEMP_TAG}{os.getpid()}-{os.urandom(4).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temp, flags, 0o600, dir_fd=folder_fd)
    except OSError as e:
        raise ToolError(f"cannot write in the folder of '{name}': {e.strerror}") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view[:1 << 20]):]
            os.fchmod(fd, (0o666 & ~_umask()) if mode is None else mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException as e:
        try:
            os.unlink(temp, dir_fd=folder_fd)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise ToolError(f"cannot write '{name}': {e.strerror or e}") from None
        raise
    try:
        os.fsync(folder_fd)  # the rename itself reaches the disk
    except OSError:
        pass


def clean_temps(folder_fd: int, name: str) -> list[str]:
    """Remove the temporary files earlier writes of ``name`` left behind (killed mid-write):
    those whose process is gone, or older than an hour. Returns the names removed."""
    prefix = f".{name[:180]}{TEMP_TAG}"
    removed = []
    try:
        entries = os.listdir(folder_fd)
    except OSError:
        return removed
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid_text = entry[len(prefix):].split("-", 1)[0]
        try:
            age = time.time() - os.lstat(entry, dir_fd=folder_fd).st_mtime
        except OSError:
            continue
        if pid_text.isdigit() and _alive(int(pid_text)) and age < STALE_TEMP_SECONDS:
            continue
        try:
            os.unlink(entry, dir_fd=folder_fd)
            removed.append(entry)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True
