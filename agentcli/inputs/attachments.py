"""Attachments: ``-a/--attach PATH|URL|-`` on ask and chat, ``/attach PATH`` in the REPL.

Each attachment is read (bounded by ``attach_limit``) and typed from its bytes, never its name:

- png, jpeg, gif, webp and PDF become a ``MediaPart`` (the provider's own image and document
  parts: ``providers/media.py``);
- UTF-8 text without NUL characters becomes a labelled block of the message's text, one per file
  (``<file name="notes.md"> ... </file>``), like piped stdin's ``<stdin>`` block;
- anything else is an unknown binary type.

Bad input is one line naming the attachment and what is wrong, exit 2, before any request: a
missing or unreadable path, a directory, a FIFO, a device or a socket (the type is checked
before the file is opened, and the open itself never waits: a FIFO can never block), a file over
``attach_limit``, an unknown binary type. A URL is fetched with web_fetch's guard (public
addresses only, unless ``tools.options.web_fetch.allow_private``; redirects checked; its
timeout) and ``attach_limit``; a URL on a public address is kept, and an API that takes URLs
gets it instead of the bytes. ``-`` reads piped stdin as an attachment (``cat shot.png | agentcli ask -a - "what is
this?"``): an image or PDF becomes an attachment named ``stdin``, text the usual ``<stdin>``
block.

``check_sendable`` holds the providers' own limits, checked before sending (``LIMITS``).
"""

from __future__ import annotations

import binascii
import hashlib
import html
import os
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import AgentCliError, UsageError
from ..messages import MediaPart, Message, TextPart

MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),  # RIFF....WEBP
    (b"%PDF-", 0, "application/pdf"),
)
KNOWN = "png, jpeg, gif, webp, pdf or UTF-8 text"
MIB = 1024 * 1024
LIMITS = {
    "anthropic": {"image": 5 * MIB, "request": 32 * MIB},
    "openai": {"file": 50 * MIB, "request": 50 * MIB},
}
"""The providers' own limits, in bytes of base64 (what goes on the wire): Anthropic takes an
image of at most 5 MiB and a request of at most 32 MiB (PDFs included); OpenAI files of at most
50 MiB and 50 MiB of them in one request. OpenAI's limits hold for its own API only: another
server's are its own (it answers, and agentcli says which attachment it refused)."""


def sniff(data: bytes) -> str | None:
    """The media type the bytes start with (``MAGIC``), or None."""
    for magic, offset, media_type in MAGIC:
        if data[offset:offset + len(magic)] == magic and (offset == 0 or data[:4] == b"RIFF"):
            return media_type
    return None


OVERLAP = 1 << 20
"""From this size on, the bytes of an attachment sent as bytes are hashed in a thread while they
are base64-encoded (``media_part``)."""


def media_part(data: bytes, media_type: str, name: str, url: str | None = None) -> MediaPart:
    """The part for ``data``, with its sha256. When the bytes will be sent (no URL) and are
    large, their base64 is made here too, while a thread hashes them: hashlib lets go of the
    GIL on large buffers (binascii does not), so on two cores the hash costs no time of its
    own. The part keeps that base64 for every request (``MediaPart.encoded``)."""
    if url is not None or len(data) < OVERLAP:
        return MediaPart(media_type, name, data, url, hashlib.sha256(data).hexdigest(), len(data))
    digest = hashlib.sha256()
    worker = threading.Thread(target=digest.update, args=(data,), daemon=True)
    worker.start()
    encoded = binascii.b2a_base64(data, newline=False)
    worker.join()
    part = MediaPart(media_type, name, data, url, digest.hexdigest(), len(data))
    vars(part)["encoded"] = encoded  # MediaPart.encoded, made once (here) as it would be
    return part


def size_text(n: int) -> str:
    """``20 MiB``, ``3.4 MiB``, ``512 KiB``, ``12 bytes``."""
    if n >= MIB:
        return f"{n / MIB:.1f}".removesuffix(".0") + " MiB"
    if n >= 1024:
        return f"{n / 1024:.1f}".removesuffix(".0") + " KiB"
    return f"{n:,} bytes"


@dataclass(frozen=True)
class Attachment:
    """One attachment, read: ``media`` (an image or PDF) or ``text`` (a text file)."""

    name: str
    media: MediaPart | None = None
    text: str | None = None

    def describe(self) -> str:
        if self.media is not None:
            return self.media.describe()
        return f"{self.name} (text, {len(self.text or ''):,} characters)"

    def block(self) -> str:
        """A text attachment as it goes into the message."""
        name = html.escape(self.name, quote=True)
        return f'<file name="{name}">\n{(self.text or "").rstrip()}\n</file>'


def _bad(name: str, what: str, hint: str | None = None) -> UsageError:
    return UsageError(f"attachment {name}: {what}", hint=hint)


def typed(name: str, data: bytes, url: str | None = None) -> Attachment:
    """Bytes -> an image/PDF attachment or a text one; UsageError for an unknown binary type."""
    media_type = sniff(data)
    if media_type is not None:
        return Attachment(name, media=media_part(data, media_type, name, url))
    if b"\x00" not in data:
        try:
            return Attachment(name, text=data.decode("utf-8-sig"))
        except UnicodeDecodeError:
            pass
    raise _bad(name, f"unknown binary type (agentcli attaches {KNOWN})",
               hint="convert it to one of those, or paste the part that matters into the prompt")


_SPECIAL = ((stat.S_ISDIR, "is a directory", "attach the files in it one by one"),
            (stat.S_ISFIFO, "is a FIFO (named pipe), not a file",
             "pipe it in instead: agentcli ask -a - ... < FIFO"),
            (stat.S_ISCHR, "is a device, not a file", None),
            (stat.S_ISBLK, "is a device, not a file", None),
            (stat.S_ISSOCK, "is a socket, not a file", None))


def _check_type(name: str, mode: int) -> None:
    for test, what, hint in _SPECIAL:
        if test(mode):
            raise _bad(name, what, hint)
    if not stat.S_ISREG(mode):
        raise _bad(name, "is not a regular file")


def _over(name: str, size: int | None, limit: int) -> UsageError:
    was = f"is {size_text(size)}, " if size is not None else ""
    return _bad(name, f"{was}over the {size_text(limit)} attachment limit (attach_limit)",
                hint="raise attach_limit in the config file, or attach a smaller file")


def read_file(name: str, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit``. Its type is checked before it is opened, and
    again on the open descriptor (opened non-blocking: a file swapped for a FIFO in between
    cannot make the open wait)."""
    path = Path(name).expanduser()
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise _bad(name, "no such file", hint="check the path") from None
    except OSError as e:
        raise _bad(name, f"cannot be read ({e.strerror or e})") from None
    _check_type(name, st.st_mode)
    if st.st_size > limit:
        raise _over(name, st.st_size, limit)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _bad(name, f"cannot be read ({e.strerror or e})",
                   hint="check its permissions" if isinstance(e, PermissionError) else None
                   ) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        _check_type(name, st.st_mode)
        try:  # the size it said, then whatever it grew by (a buffer of exactly that size)
            data = f.read(min(st.st_size, limit) + 1)
            if len(data) > st.st_size:
                data += f.read(limit + 1 - len(data))
        except OSError as e:
            raise _bad(name, f"cannot be read ({e.strerror or e})") from None
    if len(data) > limit:
        raise _over(name, None, limit)  # it grew after the check
    return data


def is_url(spec: str) -> bool:
    return spec.lower().startswith(("http://", "https://"))


def fetch(url: str, settings: Any) -> bytes:
    """The body at ``url`` through web_fetch's guard (the built-in tool's own code and its
    ``tools.options.web_fetch``), at most ``attach_limit`` bytes. A refused address, an HTTP
    error status or a body over the limit is a usage error; a network failure is a runtime
    one (exit 1)."""
    module = _web_fetch()
    options = dict(settings.tools.options.get("web_fetch") or {})
    limit = settings.attach_limit
    try:
        _, _, data = module.fetch_bytes(url, options, limit)
    except module.TooLarge:
        raise _over(url, None, limit) from None
    except module.Refused as e:
        raise _bad(url, e.message, hint="attach a public http(s) URL, or download the file and "
                                        "attach it") from None
    except module.ToolError as e:
        if e.message.startswith("HTTP 4"):
            raise _bad(url, e.message, hint="check the URL") from None
        raise AgentCliError(f"attachment {url}: {e.message}",
                            hint="check the network, or download the file and attach it"
                            ) from None
    return data


def _web_fetch() -> Any:
    """The built-in web_fetch tool's module (its guard is written once, there)."""
    from ..toolrun.host.job import FileEntry
    from ..toolrun.manifest import builtin_tools_dir

    folder = builtin_tools_dir()
    path = folder / "web_fetch.py" if folder is not None else None
    if path is None or not path.is_file():
        raise AgentCliError("cannot fetch a URL attachment: the built-in web_fetch tool is "
                            "missing", hint="reinstall agentcli, or download the file and "
                                            "attach it")
    function = FileEntry(str(path), "fetch_bytes", "web_fetch")()
    return sys.modules[function.__module__]


def read_stdin(settings: Any) -> bytes:
    """``-a -``: the piped bytes (bounded like piped stdin, by ``attach_limit``)."""
    from .stdin import read_stream_bounded

    stream = getattr(sys.stdin, "buffer", None)
    if sys.stdin is None or stream is None or sys.stdin.isatty():
        raise _bad("-", "stdin is a terminal: nothing is piped",
                   hint="pipe the file in: agentcli ask -a - \"what is this?\" < photo.png")
    try:
        piped = read_stream_bounded(stream, settings.attach_limit, settings.stdin_timeout)
    except UsageError:
        raise _over("-", None, settings.attach_limit) from None
    if piped is None:
        raise _bad("-", f"nothing arrived on stdin within {settings.stdin_timeout:g} s",
                   hint="pipe the file in, or raise stdin_timeout in the config file")
    return piped.data


def public_url(url: str) -> bool:
    """Can a provider fetch ``url`` itself: does its host resolve to public addresses only?
    (With ``allow_private``, web_fetch fetches from your own network, which no provider can
    reach: such an attachment goes as its bytes.)"""
    import ipaddress
    from urllib.parse import urlsplit

    module = _web_fetch()
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return all(module.address_problem(ipaddress.ip_address(a)) is None
                   for a in module.resolve(parts.hostname or "", port))
    except (module.ToolError, ValueError):
        return False


def read(spec: str, settings: Any) -> Attachment:
    """One attachment, read and typed (``-`` is not handled here: ``read_all``)."""
    if is_url(spec):
        data = fetch(spec, settings)
        return typed(spec, data, url=spec if public_url(spec) else None)
    return typed(spec, read_file(spec, settings.attach_limit))


def read_all(specs: Sequence[str], settings: Any) -> tuple[list[Attachment], str | None]:
    """Every ``-a`` attachment, in order, and the text of ``-a -`` when stdin held text (it is
    then the piped text, in its ``<stdin>`` block)."""
    out: list[Attachment] = []
    piped: str | None = None
    if list(specs).count("-") > 1:
        raise _bad("-", "stdin can be attached only once")
    for spec in specs:
        if spec == "-":
            item = typed("stdin", read_stdin(settings))
            if item.text is not None:
                piped = item.text
                continue
            out.append(item)
        else:
            out.append(read(spec, settings))
    return out, piped


def compose(prompt: str | None, piped: str | None,
            attachments: Sequence[Attachment]) -> tuple[Message, int | None]:
    """The user message: PROMPT, then each text attachment's block, then the piped text's
    ``<stdin>`` block; the images and PDFs before that text, in the order given (models read
    a picture best before the question about it). Returns the message and how many characters
    at the end of its text came from stdin."""
    from .stdin import compose_prompt, piped_share

    blocks = [a.block() for a in attachments if a.text is not None]
    media = tuple(a.media for a in attachments if a.media is not None)
    typed_prompt = prompt if prompt not in (None, "-") and prompt.strip() else None
    head = "\n\n".join([p for p in [typed_prompt, *blocks] if p]) or None
    if head is None and not (piped and piped.strip()) and media:  # attachments alone
        return Message("user", media), None
    text = compose_prompt(head if head is not None else prompt, piped)
    share = piped_share(head, text) if piped and piped.strip() else None
    return Message("user", (*media, TextPart(text))), share


def check_sendable(messages: Sequence[Message], profile: Any) -> None:
    """The attachments ``messages`` carry, against what the profile's provider takes (before
    any request): the local model takes none; Anthropic and OpenAI's own API have size limits
    (``LIMITS``). UsageError naming the attachment otherwise."""
    media = [p for m in messages for p in m.media]
    if not media:
        return
    if profile.type == "local":
        raise _bad(media[0].describe(), "the local model takes no images or PDFs",
                   hint="leave the attachment out, or use a provider that takes them "
                        "(-p openai, -p anthropic)")
    vendor = profile.type if profile.type == "anthropic" or _openai_itself(profile) else None
    if vendor is None:
        return
    limits = LIMITS[vendor]
    who = {"anthropic": "Anthropic", "openai": "OpenAI"}[vendor]
    total = 0
    for p in media:
        encoded = -(-p.size // 3) * 4
        total += encoded
        cap = limits.get("image" if p.is_image else "file")
        if cap is not None and encoded > cap:
            what = "images" if p.is_image else "files"
            raise _bad(p.describe(), f"{who} takes {what} of at most "
                       f"{size_text(cap)} base64-encoded (about {size_text(cap * 3 // 4)} "
                       "of file)", hint="attach a smaller file")
    if total > limits["request"]:
        raise _bad(", ".join(p.name for p in media), f"together {size_text(total)} "
                   f"base64-encoded, over {who}'s request limit of "
                   f"{size_text(limits['request'])}",
                   hint="attach fewer or smaller files (or start a new conversation)")


def _openai_itself(profile: Any) -> bool:
    """An OpenAI profile that talks to OpenAI's own API (its limits are known)."""
    from urllib.parse import urlsplit

    host = urlsplit(profile.base_url).hostname if profile.base_url else "api.openai.com"
    return profile.type == "openai" and host == "api.openai.com"
