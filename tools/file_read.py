"""file_read: a text file inside the allowed roots, never anything else.

Options (config ``tools.options.file_read``):
  roots: [folders]   allowed folders (default: the working folder); relative to the working folder;
                     ``{path: FOLDER, writable: true}`` also lets edit and write change files there
  max_bytes: N       most bytes returned per call (default 100000)

Containment is checked on the real path (symlinks resolved) by path components, so ``root-evil``
is not inside ``root``; the opened file descriptor is checked again (no race with a swapped
symlink). Devices, FIFOs, sockets and directories are refused after ``stat`` and the file is
opened with ``O_NONBLOCK``, so nothing ever blocks. Binary files are refused: a NUL byte in the
first 8 KB or anywhere in what would be returned.

For a file of at most ``files.HASH_CAP`` bytes the result also names the version read (the
SHA-256 of the whole file, ``WithFiles``): agentcli refuses an edit of a file that changed
since the model last read it.
"""

from __future__ import annotations

import codecs
import io
import os
import stat
from typing import Any

from agentcli.errors import ToolError
from agentcli.toolrun.host.files import HASH_CAP, inside, kind, resolve_roots, sha256
from agentcli.toolrun.host.job import WithFiles

DEFAULT_MAX_BYTES = 100_000
SNIFF_BYTES = 8192


def run(path: str, offset: int | None = None, limit: int | None = None,
        context: Any = None) -> str:
    options = getattr(context, "options", None) or {}
    cwd = getattr(context, "cwd", None) or os.getcwd()
    max_bytes = int(options.get("max_bytes", DEFAULT_MAX_BYTES))
    roots = resolve_roots(options.get("roots"), cwd)
    shown = path
    if "\x00" in path:
        raise ToolError("the path contains a NUL character")
    real = os.path.realpath(os.path.join(cwd, path))
    where = " or ".join(roots)
    if not inside(real, roots):
        raise ToolError(f"'{shown}' is outside the allowed folders ({where}); refused")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise ToolError(f"'{shown}' does not exist") from None
    except OSError as e:
        raise ToolError(f"cannot read '{shown}': {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"'{shown}' is a directory, not a file; give the path of a file "
                        "inside it")
    if not stat.S_ISREG(st.st_mode):
        raise ToolError(f"'{shown}' is {kind(st.st_mode)}, not a regular file; refused")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags)
    except OSError as e:
        raise ToolError(f"cannot open '{shown}': {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ToolError(f"'{shown}' is {kind(st.st_mode)}, not a regular file; refused")
        proc = f"/proc/self/fd/{fd}"
        if os.path.exists(proc):
            real = os.readlink(proc)
            if not inside(real, roots):
                raise ToolError(f"'{shown}' is outside the allowed folders ({where}); refused")
        if st.st_size > HASH_CAP:
            return _read(f, shown, st.st_size, offset, limit, max_bytes)
        data = f.read(HASH_CAP + 1)  # the whole file: the version the model sees is known
        if len(data) > HASH_CAP:
            return _read(io.BytesIO(data), shown, len(data), offset, limit, max_bytes)
        text = _read(io.BytesIO(data), shown, len(data), offset, limit, max_bytes)
        return WithFiles(text, ((real, sha256(data)),))


def _read(f: Any, shown: str, size: int, offset: int | None, limit: int | None,
          max_bytes: int) -> str:
    head = f.read(SNIFF_BYTES)
    _refuse_binary(head, shown, 0)
    notes: list[str] = []
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    replaced = False

    def decode(data: bytes, final: bool = False) -> str:
        nonlocal decoder, replaced
        try:
            return decoder.decode(data, final)
        except UnicodeDecodeError:
            replaced = True
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            return decoder.decode(data, final)

    if offset is None and limit is None:
        data = head + f.read(max(0, max_bytes - len(head)))
        data = data[:max_bytes]
        _refuse_binary(data, shown, 0)  # all of what is returned, not just the first bytes
        truncated = size > len(data)
        if not truncated:
            text = _decode_all(data)
            replaced = "\ufffd" in text and _decode_all(data, strict=True) is None
        else:
            text = decode(data)
            notes.append(f"[truncated: '{shown}' is {size} bytes, shown the first {len(data)}; "
                         "read further with offset/limit (line numbers)]")
        if replaced:
            notes.append("[note: the file is not valid UTF-8; undecodable bytes were replaced "
                         "with U+FFFD]")
        return text + ("\n\n" + "\n".join(notes) if notes else "")

    first = offset or 1
    lines: list[str] = []
    used = 0
    lineno = 0
    pending = head
    stopped_by_cap = False
    more = False
    f_iter = _lines(f, pending)
    for raw in f_iter:
        lineno += 1
        if lineno < first:
            continue
        if limit is not None and len(lines) >= limit:
            more = True
            break
        if used + len(raw) > max_bytes:
            stopped_by_cap = True
            break
        _refuse_binary(raw, shown, lineno)
        used += len(raw)
        lines.append(decode(raw))
    text = "".join(lines) + decode(b"", True)
    last = first + len(lines) - 1
    if not lines:
        header = f"[no lines: '{shown}' has {lineno} lines, offset was {first}]"
    else:
        header = f"[lines {first}-{last} of '{shown}']"
    if stopped_by_cap:
        notes.append(f"[stopped at the size cap of {max_bytes} bytes after line {last}; "
                     f"continue with offset={last + 1}]")
    elif more:
        notes.append(f"[more lines follow; continue with offset={last + 1}]")
    if replaced:
        notes.append("[note: the file is not valid UTF-8; undecodable bytes were replaced "
                     "with U+FFFD]")
    sep = "" if not text or text.endswith("\n") else "\n"
    return header + "\n" + text + (sep + "\n".join(notes) if notes else "")


def _refuse_binary(data: bytes, shown: str, line: int) -> None:
    if b"\x00" in data:
        where = f" on line {line}" if line else ""
        raise ToolError(f"'{shown}' looks like a binary file (it contains NUL bytes{where}); "
                        "refused")


def _decode_all(data: bytes, strict: bool = False) -> Any:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None if strict else data.decode("utf-8", "replace")


def _lines(f: Any, first: bytes, chunk: int = 65536) -> Any:
    """Lines (bytes, with their newline) of a file whose first bytes were already read; very
    long lines are split every ``chunk`` bytes so memory stays bounded."""
    buf = first
    while True:
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            yield buf[:i + 1]
            buf = buf[i + 1:]
        if len(buf) >= chunk:
            yield buf
            buf = b""
        data = f.read(chunk)
        if not data:
            if buf:
                yield buf
            return
        buf += data
