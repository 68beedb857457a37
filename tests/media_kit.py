"""Small real files of every attachable type, and helpers to read what the fake received."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any


def png(pad: int = 0) -> bytes:
    """A valid 1x1 PNG (``pad`` bytes of an ancillary chunk make it bigger)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    extra = chunk(b"tEXt", b"pad\x00" + b"x" * pad) if pad else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + extra + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"


def pdf(pages: int = 1, pad: int = 0) -> bytes:
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % (3 + i) for i in range(pages))
            + b"] /Count %d >>" % pages]
    objs += [b"<< /Type /Page /Parent 2 0 R >>" for _ in range(pages)]
    body = b"".join(b"%d 0 obj %s endobj\n" % (i + 1, o) for i, o in enumerate(objs))
    return b"%PDF-1.4\n" + body + (b"% " + b"p" * pad + b"\n" if pad else b"") + \
        b"trailer << /Root 1 0 R >>\n%%EOF\n"


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def last_user(body: dict[str, Any], key: str = "messages") -> Any:
    """The last user message (Chat Completions, Anthropic) or input item (Responses)."""
    items = body[key]
    return [m for m in items if isinstance(m, dict) and m.get("role") == "user"][-1]
