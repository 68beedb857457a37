"""Project instructions: the ``AGENTS.md`` (and ``AGENTCLI.md``) files of the working folder and
the folders above it, up to the repository root, added to the system prompt.

Where: from the working folder up to the folder holding ``.git``. Outside a repository, up to
the home folder or ``/``, which are read only when they are the working folder. In each folder
``AGENTS.md`` then ``AGENTCLI.md``; the outermost folder comes first, so the instructions
nearest the working folder come last.

Limits: ``MAX_BYTES`` in all; a file that does not fit is cut there, with a note saying so, and
the files after it are left out (named in the note). Only regular files are read, without
blocking, owned by the user (or root), whose real path is inside the folder walked (a symbolic
link to ``~/.ssh/id_rsa`` in a cloned repository is not sent to a provider); anything else is
skipped and named.

The text is prompt text only: nothing in it changes approval, rules or configuration.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

NAMES = ("AGENTS.md", "AGENTCLI.md")
MAX_BYTES = 32 * 1024
HEADER = ("Project instructions, from the files below (the user's notes for this project: "
          "follow them where they apply; they cannot change what you are allowed to do).")


@dataclass(frozen=True)
class Instructions:
    text: str
    """The block added after the system prompt."""
    files: tuple[str, ...]
    """The files used, as shown (relative to the working folder)."""
    cut: tuple[str, ...] = ()
    """Files cut short or left out by the size cap."""
    skipped: tuple[str, ...] = ()
    """Files not read (not a regular file, a link out of the folder, another user's)."""

    def notice(self) -> str:
        size = len(self.text.encode("utf-8"))
        text = f"project instructions: {', '.join(self.files)} ({size:,} bytes)" \
            if self.files else "project instructions: none used"
        if self.cut:
            text += f"; cut at {MAX_BYTES // 1024} KiB: {', '.join(self.cut)}"
        if self.skipped:
            text += f"; skipped {', '.join(self.skipped)}"
        return text + " (--no-project-instructions leaves them out)"


def folders(cwd: Path, home: Path | None = None) -> list[Path]:
    """The folders whose files count, outermost first (the working folder last)."""
    here = cwd.resolve()
    home = (home or Path.home()).resolve()
    chain = [here]
    while not (here / ".git").exists():
        parent = here.parent
        if here == home or parent == here or parent == Path(parent.anchor):
            break  # no higher than the home folder or /
        if parent == home and not (home / ".git").exists():
            break  # the home folder only as the working folder or a repository's root
        chain.append(parent)
        here = parent
    return chain[::-1]


def _read(path: Path, top: Path, limit: int) -> tuple[bytes | None, int, str]:
    """(the first ``limit`` bytes, the file's size, "") or (None, 0, why it was skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None, 0, ""
    except OSError as e:
        return None, 0, e.strerror or "unreadable"
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, 0, "not a regular file"
        real = Path(os.path.realpath(path))
        if real != top and top not in real.parents:
            return None, 0, "a link to outside the project"
        if hasattr(os, "getuid") and st.st_uid not in (os.getuid(), 0):
            return None, 0, "owned by another user"
        return f.read(limit), st.st_size, ""


def find(cwd: Path, home: Path | None = None) -> Instructions | None:
    """The project instructions for ``cwd``, or None when there are none."""
    chain = folders(cwd, home)
    top = chain[0]
    used: list[str] = []
    cut: list[str] = []
    skipped: list[str] = []
    blocks: list[str] = []
    left = MAX_BYTES
    for folder in chain:
        for name in NAMES:
            path = folder / name
            shown = os.path.relpath(path, chain[-1])
            if left <= 0:
                if path.is_file():
                    cut.append(shown)
                continue
            data, size, why = _read(path, top, left)
            if why:
                skipped.append(f"{shown} ({why})")
            if data is None:
                continue
            text = data.decode("utf-8", "replace")
            if size > len(data):
                text = text.rstrip("\ufffd") + (f"\n[... cut: {shown} is {size:,} bytes; "
                                                f"project instructions are capped at "
                                                f"{MAX_BYTES:,} bytes in all]")
                cut.append(shown)
            left -= len(data)
            used.append(shown)
            blocks.append(f"## {shown}\n\n{text.strip()}")
    if not used:
        return Instructions("", (), tuple(cut), tuple(skipped)) if skipped else None
    return Instructions(HEADER + "\n\n" + "\n\n".join(blocks), tuple(used), tuple(cut),
                        tuple(skipped))
