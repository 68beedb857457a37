"""Files the built-in tools read and change: roots, real-path checks, whole-text reads, planned
edits and atomic writes.

Standard library only (and ``agentcli.errors``): the built-in ``file_read``, ``edit`` and
``write`` tools import it in their isolated worker, and agentcli imports it to show the diff a
change would make before it is approved, and for ``/undo``. Both sides apply the same rules.

- A path is taken relative to the working folder. Its folder is resolved (symlinks followed)
  and must lie inside an allowed root, compared by path components (``root-evil`` is not inside
  ``root``); the file itself must not be a symbolic link (``O_NOFOLLOW``), and the folder's
  descriptor is checked again after it is opened (no race with a swapped symlink).
- Only regular files of UTF-8 text without NUL bytes, at most ``max_bytes`` long, are read or
  changed; directories, devices, FIFOs and sockets are refused without blocking.
- A write is atomic and keeps the file's mode (``atomic.py``): a reader, or a kill at any
  moment, sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import ToolError
from .atomic import write_atomic

DEFAULT_MAX_BYTES = 1_048_576
"""The largest file ``edit`` and ``write`` handle (``tools.options.edit.max_bytes``)."""
HASH_CAP = 10_000_000
"""``file_read`` tells agentcli which version of a file the model saw (its SHA-256) for files
up to this size, the largest ``max_bytes`` an edit may have."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- roots ---------------------------------------------------------------------------------------

def root_entries(raw: Any) -> list[tuple[str, bool]]:
    """``file_read``'s ``roots`` option as (folder, writable) pairs: each entry is a folder, or
    ``{path: FOLDER, writable: true}``."""
    if not raw:
        return []
    items = [raw] if isinstance(raw, (str, dict)) else list(raw)
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append((str(item.get("path") or "."), bool(item.get("writable"))))
        else:
            out.append((str(item), False))
    return out


def resolve_roots(raw: Any, cwd: str, *, writable: bool = False) -> list[str]:
    """Real paths of the allowed folders. Reading: the roots given (default the working folder).
    Writing: the working folder and the roots marked writable."""
    entries = root_entries(raw)
    if writable:
        folders = ["."] + [p for p, w in entries if w]
    else:
        folders = [p for p, _ in entries] or ["."]
    return list(dict.fromkeys(os.path.realpath(os.path.join(cwd, os.path.expanduser(f)))
                              for f in folders))


def inside(path: str, roots: Sequence[str]) -> bool:
    parts = Path(path).parts
    return any(parts[:len(Path(r).parts)] == Path(r).parts for r in roots)


def kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def outside(shown: str, roots: Sequence[str]) -> ToolError:
    return ToolError(f"'{shown}' is outside the allowed folders ({' or '.join(roots)}); refused")


# --- one file: where it is, what it holds ----------------------------------------------------------

@dataclass(frozen=True)
class Target:
    shown: str
    """The path as the model gave it (for messages)."""
    folder: str
    """The real path of its folder (symlinks resolved)."""
    name: str

    @property
    def real(self) -> str:
        return os.path.join(self.folder, self.name)


@dataclass(frozen=True)
class Current:
    """What a file holds now: ``text`` None when it does not exist."""

    text: str | None = None
    sha256: str | None = None
    mode: int | None = None

    @property
    def exists(self) -> bool:
        return self.text is not None


def target(path: str, cwd: str, roots: Sequence[str]) -> Target:
    """Where ``path`` is, checked against ``roots``; ToolError when it may not be touched."""
    if "\x00" in path:
        raise ToolError("the path contains a NUL character")
    joined = os.path.normpath(os.path.join(cwd, path))
    name = os.path.basename(joined)
    if not name or joined == os.sep or (os.path.isdir(joined) and not os.path.islink(joined)):
        raise ToolError(f"'{path}' is a directory, not a file")
    folder = os.path.realpath(os.path.dirname(joined))
    real = os.path.join(folder, name)
    if not inside(real, roots):
        raise outside(path, roots)
    return Target(path, folder, name)


def _open_folder(t: Target, roots: Sequence[str], *, create: bool = False) -> int:
    """A descriptor of the target's folder, checked to be inside ``roots`` once open; with
    ``create``, missing folders are made (each checked)."""
    try:
        fd = os.open(t.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        if not create:
            raise ToolError(f"'{t.shown}' does not exist (its folder does not exist)") from None
        _make_folders(t, roots)
        return _open_folder(t, roots)
    except OSError as e:
        raise ToolError(f"cannot open the folder of '{t.shown}': {e.strerror}") from None
    proc = f"/proc/self/fd/{fd}"
    if os.path.exists(proc) and not inside(os.readlink(proc), roots):
        os.close(fd)
        raise outside(t.shown, roots)
    return fd


def _make_folders(t: Target, roots: Sequence[str]) -> None:
    missing = []
    folder = t.folder
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for made in reversed(missing):
        try:
            os.mkdir(made)
        except FileExistsError:
            pass
        except OSError as e:
            raise ToolError(f"cannot make the folder {made} for '{t.shown}': "
                            f"{e.strerror}") from None
        if not inside(os.path.realpath(made), roots):
            raise outside(t.shown, roots)


def _read_at(folder_fd: int, t: Target, max_bytes: int) -> Current:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(t.name, flags, dir_fd=folder_fd)
    except FileNotFoundError:
        try:  # a dangling symbolic link is not "missing": it points somewhere
            st = os.lstat(t.name, dir_fd=folder_fd)
        except FileNotFoundError:
            return Current()
        raise ToolError(f"'{t.shown}' is {kind(st.st_mode)}; refused") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):
            raise ToolError(f"'{t.shown}' is a symbolic link; refused (give the path of the "
                            "file it points to, if that is inside the allowed folders)") from None
        if e.errno == errno.EISDIR:
            raise ToolError(f"'{t.shown}' is a directory, not a file") from None
        raise ToolError(f"cannot read '{t.shown}': {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ToolError(f"'{t.shown}' is {kind(st.st_mode)}, not a regular file; refused")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > max_bytes:
            raise too_big(t.shown, st.st_size, max_bytes)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_big(t.shown, len(data), max_bytes)
    return Current(text_of(data, t.shown), sha256(data), stat.S_IMODE(st.st_mode))


def too_big(shown: str, size: int, max_bytes: int) -> ToolError:
    return ToolError(f"'{shown}' is {size:,} bytes; files over {max_bytes:,} bytes are not "
                     "edited or written (the max_bytes option of the edit and write tools)")


def text_of(data: bytes, shown: str) -> str:
    """The bytes as text; ToolError for a binary file (a NUL byte) or one that is not UTF-8."""
    if b"\x00" in data:
        raise ToolError(f"'{shown}' looks like a binary file (it contains NUL bytes); refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ToolError(f"'{shown}' is not UTF-8 text (an invalid byte at offset {e.start}); "
                        "refused") from None


def read_current(t: Target, roots: Sequence[str], max_bytes: int) -> Current:
    """What the target holds now (``Current()`` when it does not exist, or its folder not)."""
    try:
        fd = _open_folder(t, roots)
    except ToolError:
        if not os.path.exists(t.folder):
            return Current()
        raise
    try:
        return _read_at(fd, t, max_bytes)
    finally:
        os.close(fd)


# --- planned changes ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """A change worked out, not made: the file, what it holds now, and its new text."""

    target: Target
    before: Current
    after: str
    summary: str


def plan(tool: str, args: Mapping[str, Any], cwd: str, roots: Sequence[str],
         max_bytes: int) -> Change:
    """What the ``edit`` or ``write`` call would do; ToolError when it cannot be done."""
    t = target(str(args.get("path", "")), cwd, roots)
    before = read_current(t, roots, max_bytes)
    if tool == "write":
        content = str(args.get("content", ""))
        size = len(encoded(content))
        if size > max_bytes:
            raise too_big(f"the content for '{t.shown}'", size, max_bytes)
        if "\x00" in content:
            raise ToolError("the content contains NUL characters; only text files are written")
        was = "new file" if not before.exists else f"was {_lines(before.text or '')} lines"
        return Change(t, before, content, f"wrote '{t.shown}' ({_lines(content)} lines, {was})")
    if not before.exists:
        raise ToolError(f"'{t.shown}' does not exist; use the write tool to create a file")
    old, new = str(args.get("old", "")), str(args.get("new", ""))
    after, count = edited(before.text or "", old, new, bool(args.get("replace_all")), t.shown)
    size = len(encoded(after))
    if size > max_bytes:
        raise too_big(f"'{t.shown}' after the edit", size, max_bytes)
    return Change(t, before, after, f"edited '{t.shown}': replaced {count} "
                                    f"occurrence{'s' if count != 1 else ''}")


def edited(text: str, old: str, new: str, replace_all: bool, shown: str) -> tuple[str, int]:
    if not old:
        raise ToolError("'old' is empty; give the exact text to replace")
    if old == new:
        raise ToolError("'old' and 'new' are the same; nothing would change")
    count = text.count(old)
    if count == 0:
        hint = ""
        if "\r\n" in text and "\n" in old and "\r\n" not in old:
            hint = " (the file has CRLF line endings: write them as \\r\\n in 'old')"
        raise ToolError(f"'old' was not found in '{shown}'{hint}; read the file again and copy "
                        "the text exactly, whitespace included")
    if count > 1 and not replace_all:
        raise ToolError(f"'old' matches {count} places in '{shown}'; include more of the "
                        "surrounding text so it matches exactly one, or set replace_all to "
                        "replace every one")
    return (text.replace(old, new) if replace_all else text.replace(old, new, 1)), count


def encoded(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ToolError(f"the text has a character that cannot be written as UTF-8 (a lone "
                        f"surrogate at position {e.start}); refused") from None


def _lines(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def apply(change: Change, roots: Sequence[str], max_bytes: int) -> str:
    """Make the change, if the file still holds what it was planned on; returns the SHA-256 of
    what was written."""
    t = change.target
    fd = _open_folder(t, roots, create=not change.before.exists)
    try:
        now = _read_at(fd, t, max_bytes)
        if now.sha256 != change.before.sha256:
            raise ToolError(f"'{t.shown}' changed on disk while the change was being made; "
                            "nothing was written (read it again)")
        data = encoded(change.after)
        write_atomic(fd, t.name, data, now.mode)
        return sha256(data)
    finally:
        os.close(fd)


# --- the edit and write tools, in their worker ----------------------------------------------------

def run_tool(tool: str, args: Mapping[str, Any], context: Any) -> Any:
    """``edit`` / ``write``: plan the change, check it is the one agentcli showed for approval
    (``context.expected``), make it; returns ``WithFiles`` naming the file and what it holds."""
    from .job import WithFiles

    cwd = getattr(context, "cwd", None) or os.getcwd()
    roots = list(getattr(context, "writable", ()) or ()) or [os.path.realpath(cwd)]
    max_bytes = int((getattr(context, "options", None) or {}).get("max_bytes",
                                                                  DEFAULT_MAX_BYTES))
    change = plan(tool, args, cwd, roots, max_bytes)
    expected = getattr(context, "expected", None) or {}
    if change.target.real in expected and expected[change.target.real] != change.before.sha256:
        raise ToolError(f"'{change.target.shown}' changed on disk after the change was shown "
                        "for approval; nothing was written (read it again)")
    written = apply(change, roots, max_bytes)
    return WithFiles(change.summary, ((change.target.real, written),))
