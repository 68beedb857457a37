"""``/attach`` and ``/detach``: attachments for the next message of the chat REPL.

``/attach PATH|URL`` reads the file now (a bad one is one error line, and nothing else
changes), says what it is and keeps it for the next message; ``/attach`` alone lists what is
waiting; ``/detach`` drops it all. What waits is sent with the next message, and stays waiting
when that message cannot be sent (a provider that takes no images: switch with /model or
/provider, or /detach)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..render import sanitize

if TYPE_CHECKING:
    from .api import Repl as ChatRepl


def _waiting(repl: ChatRepl) -> str:
    items = repl.attached
    listed = "; ".join(a.describe() for a in items)
    return f"{len(items)} attachment{'s' if len(items) != 1 else ''} for your next message: " \
           f"{listed}"


def attach(repl: ChatRepl, arg: str) -> None:
    from ...inputs.attachments import read

    if not arg:
        repl.notice(sanitize(_waiting(repl)) if repl.attached else
                    "nothing attached (/attach PATH or URL adds a file to your next message)")
        return
    if arg == "-":
        repl.error("/attach - is not possible in the chat: stdin is the terminal",
                   hint="give a path or URL, or start with `agentcli chat -a - < FILE`")
        return
    item = read(arg, repl.settings)  # a bad file: one error line (the REPL says it)
    repl.attached.append(item)
    repl.notice(sanitize(f"attached {item.describe()}; {_waiting(repl)}"))


def detach(repl: ChatRepl, arg: str) -> None:
    n = len(repl.attached)
    repl.attached.clear()
    repl.notice(f"dropped {n} attachment{'s' if n != 1 else ''}" if n else "nothing attached")
