"""Images and PDFs (``MediaPart``) in each wire format, and the hint for a server that refuses
them. No SDK import.

- **Chat Completions**: an image is an ``image_url`` part (a data URL, or the URL it came from on
  OpenAI's own API); a PDF a ``file`` part with ``file_data`` (a data URL) and ``filename``.
  Tool messages take only text: a tool's images stay the note its text carries.
- **Responses**: ``input_image`` (``image_url``: the URL or a data URL) and ``input_file``
  (``file_url``, or ``file_data`` with ``filename``), in user messages and in a
  ``function_call_output``'s list.
- **Anthropic**: ``image`` and ``document`` blocks with a ``url`` or ``base64`` source, in user
  turns and inside ``tool_result`` content.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Callable, Sequence

from ..messages import Base64Text, MediaPart, Message, TextPart


def data_url(p: MediaPart) -> str:
    return p.data_url


def _sendable(p: MediaPart) -> MediaPart:
    if p.data is None and p.url is None:  # pragma: no cover - the store turns these into notes
        raise TypeError(f"the attachment {p.name} has neither bytes nor a URL")
    return p


def user_content(m: Message, part: Callable[[MediaPart], dict[str, Any]],
                 text_type: str) -> str | list[dict[str, Any]]:
    """An OpenAI user message's content: its text as a string, or, when it carries
    attachments, a list of parts in the message's order (``part`` makes an attachment's, and
    text goes as ``{"type": text_type, "text": ...}``)."""
    out: list[dict[str, Any]] = []
    for p in m.parts:
        if isinstance(p, MediaPart):
            out.append(part(p))
        elif isinstance(p, TextPart):
            if p.text:
                out.append({"type": text_type, "text": p.text})
        else:
            raise TypeError(f"a user message holds only TextParts and MediaParts, got {p!r}")
    return out if any(isinstance(p, MediaPart) for p in m.parts) else m.text


# --- Chat Completions --------------------------------------------------------------------------

def chat_part(p: MediaPart, urls: bool) -> dict[str, Any]:
    """``urls``: the server fetches image URLs itself (OpenAI's own API)."""
    _sendable(p)
    if p.is_image:
        url = p.url if urls and p.url else data_url(p)
        return {"type": "image_url", "image_url": {"url": url}}
    return {"type": "file", "file": {"filename": _filename(p), "file_data": data_url(p)}}


# --- Responses ---------------------------------------------------------------------------------

def responses_part(p: MediaPart) -> dict[str, Any]:
    _sendable(p)
    if p.is_image:
        return {"type": "input_image", "image_url": p.url or data_url(p), "detail": "auto"}
    if p.url:
        return {"type": "input_file", "file_url": p.url}
    return {"type": "input_file", "filename": _filename(p), "file_data": data_url(p)}


# --- Anthropic ---------------------------------------------------------------------------------

def anthropic_block(p: MediaPart) -> dict[str, Any]:
    _sendable(p)
    source = {"type": "url", "url": p.url} if p.url else \
        {"type": "base64", "media_type": p.media_type, "data": p.base64}
    if p.is_image:
        return {"type": "image", "source": source}
    return {"type": "document", "source": source, "title": _basename(p)}


def _basename(p: MediaPart) -> str:
    """The file's own name: ``docs/report.pdf`` -> ``report.pdf`` (a URL: its last segment)."""
    return p.name.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "attachment"


def _filename(p: MediaPart) -> str:
    name = _basename(p)
    return name if name.lower().endswith(".pdf") else name + ".pdf"


# --- what a tool returned, where only text goes --------------------------------------------------

def unsent_note(media: Sequence[MediaPart]) -> str:
    """For an API that takes only text in tool results: the tool's images and documents were
    not shown (their note in the result's text says what they were)."""
    what = "image" if all(p.is_image for p in media) else "document" \
        if not any(p.is_image for p in media) else "image and document"
    return f"[the {what} result{'s' if len(media) != 1 else ''} above could not be shown: " \
           "this API takes only text in tool results]"


# --- a server that refuses them ----------------------------------------------------------------

_ABOUT_MEDIA = re.compile(r"image|vision|multimodal|multi-modal|pdf|document|file|media|mmproj|"
                          r"content.{0,20}(type|part)|image_url|too large|payload",
                          re.IGNORECASE)


def refusal_hint(error: Any, messages: Sequence[Message]) -> None:
    """A request carrying attachments that the server refused (an HTTP 4xx or 500 about images,
    files or the request's size): give the error a hint naming them. It is still exit 1 (the
    server's answer), but the line says what to leave out."""
    media = [p for m in messages for p in m.media]
    if not media:
        return
    cause = error.__cause__
    status = getattr(cause, "status_code", None)
    if not isinstance(status, int) or not (400 <= status < 500 or status == 500):
        return
    if status != 413 and not _ABOUT_MEDIA.search(str(getattr(error, "message", error))):
        return
    names = ", ".join(p.describe() for p in media[:3]) + (
        f" and {len(media) - 3} more" if len(media) > 3 else "")
    error.hint = (f"the request carried {names}: this server or model may not take "
                  f"{'images' if all(p.is_image for p in media) else 'images or PDFs'} (or "
                  "not that many bytes); leave the attachment out, or use a model that takes it")


# --- the request body ----------------------------------------------------------------------------

def _swap(x: Any, swap: Callable[[Base64Text], Any]) -> Any:
    """``x`` (a request body) with every ``Base64Text`` in it replaced by ``swap(it)``."""
    if isinstance(x, dict):
        return {k: _swap(v, swap) for k, v in x.items()}
    if isinstance(x, list):
        return [_swap(v, swap) for v in x]
    return swap(x) if isinstance(x, Base64Text) else x


def plain(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with its base64 as text, for an SDK that encodes the request itself."""
    return _swap(body, str)


def json_pieces(body: dict[str, Any]) -> list[bytes] | None:
    """``body`` as the JSON the SDKs would send, in pieces to send one after the other: each
    attachment's base64 bytes are a piece of their own, as they are, never scanned by the JSON
    encoder (for 13 MB of base64: about 40 ms against 2), made text, or copied into one body;
    None when the body holds no attachment (the SDK encodes it, as for any request)."""
    found: list[Base64Text] = []
    token = f"agentcli-media-{uuid.uuid4().hex}-"

    def mark(x: Base64Text) -> str:
        found.append(x)
        return f"{token}{len(found) - 1}"

    skeleton = _swap(body, mark)
    if not found:
        return None
    text = json.dumps(skeleton, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    pieces: list[bytes] = []
    for i, piece in enumerate(re.split(f'"{re.escape(token)}(\\d+)"', text)):
        if i % 2 == 0:
            pieces.append(piece.encode())
        else:
            inline = found[int(piece)]
            pieces += [b'"', inline.head, inline.encoded, b'"']
    return [p for p in pieces if p]


def post_body(client: Any, body: dict[str, Any], options: Any = None) -> dict[str, Any]:
    """The keywords of ``client.post`` for ``body`` and the request ``options``: ``content=``
    the JSON in pieces (``json_pieces``), with its Content-Length (sent as one body, not
    chunked), where the SDK's ``post`` takes raw content and the body holds attachments; else
    ``body=`` (``plain``)."""
    import inspect

    options = dict(options or {})
    pieces = json_pieces(body)
    if pieces is None:
        return {"body": body, "options": options}
    if "content" not in inspect.signature(client.post).parameters:
        return {"body": plain(body), "options": options}
    length = str(sum(len(p) for p in pieces))
    return {"content": pieces,
            "options": {**options, "headers": {**(options.get("headers") or {}),
                                               "Content-Length": length}}}
