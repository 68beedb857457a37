"""Images and documents in requests, for the fake server: what the real APIs take and refuse
(HTTP 400 with their wording; the request consumes no scripted reply).

- **Chat Completions**: a user message's content is a string or a list of ``text``,
  ``image_url`` and ``file`` parts; an image is an http(s) URL or a base64 data URL of png,
  jpeg, gif or webp whose bytes are that format; a file has ``filename`` and ``file_data``, a
  base64 data URL of a PDF. Tool messages take text only. Text-only models (``gpt-3.5*``,
  ``text-only*``) refuse images.
- **Responses**: ``input_text``, ``input_image`` (``image_url``: a URL or an image data URL;
  ``detail``) and ``input_file`` (``file_url``, or ``file_data`` with ``filename``), in user
  messages and in a ``function_call_output``'s list.
- **Anthropic**: ``image`` blocks (``base64`` source of jpeg, png, gif or webp whose bytes match,
  at most 5 MiB of base64; or a ``url`` source) and ``document`` blocks (a PDF, base64 or url),
  in user turns and inside ``tool_result`` content.

``srv.media_seen`` lists, per request, the attachments it carried as (where, media type, byte
count, url), so tests can see what arrived without digging through the body.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
ANTHROPIC_IMAGE_MAX = 5 * 1024 * 1024
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)
_TEXT_ONLY = re.compile(r"(gpt-3\.5|text-only).*")
Problem = tuple[int, dict[str, Any]]


def sniff(data: bytes) -> str | None:
    """The format the bytes are (the fake's own reading, apart from agentcli's)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def _decode(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _openai_bad(message: str, param: str | None, code: str | None = "invalid_value") -> Problem:
    return 400, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                           "code": code}}


class Seen(list):
    """One request's attachments: (where, media type, bytes, url)."""


# --- OpenAI -------------------------------------------------------------------------------------

def _openai_image(url: Any, param: str, seen: Seen, where: str) -> Problem | None:
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        seen.append((where, "image", 0, url))
        return None
    m = _DATA_URL.fullmatch(url) if isinstance(url, str) else None
    data = _decode(m.group(2)) if m else None
    if m is None or data is None:
        return _openai_bad("Invalid base64 image_url.", param)
    if m.group(1) not in IMAGE_TYPES or sniff(data) != m.group(1):
        return _openai_bad("You uploaded an unsupported image. Please make sure your image has of "
                           "one the following formats: ['png', 'jpeg', 'gif', 'webp'].", param,
                           "invalid_image_format")
    seen.append((where, m.group(1), len(data), None))
    return None


def _openai_file(data_url: Any, filename: Any, param: str, seen: Seen,
                 where: str) -> Problem | None:
    if not isinstance(filename, str) or not filename:
        return _openai_bad(f"Missing required parameter: '{param}.filename'.",
                           f"{param}.filename", "missing_required_parameter")
    m = _DATA_URL.fullmatch(data_url) if isinstance(data_url, str) else None
    data = _decode(m.group(2)) if m else None
    if m is None or data is None or m.group(1) != "application/pdf" or \
            sniff(data) != "application/pdf":
        got = m.group(1) if m else "none"
        return _openai_bad(f"Invalid file data: '{param}.file_data'. Expected a base64-encoded "
                           "data URL with an application/pdf MIME type (e.g. "
                           "'data:application/pdf;base64,SGVsbG8sIFdvcmxkIQ=='), but got "
                           f"unsupported MIME type '{got}'.", f"{param}.file_data")
    seen.append((where, "application/pdf", len(data), None))
    return None


def chat_media_problem(body: dict[str, Any], seen: Seen) -> Problem | None:
    model = str(body.get("model") or "")
    for i, m in enumerate(body.get("messages") or []):
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, list):
            continue
        role = m.get("role")
        allowed = ("text", "image_url", "input_audio", "file") if role == "user" else ("text",)
        for j, part in enumerate(content):
            param = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in allowed:
                listed = ", ".join(f"'{a}'" for a in allowed)
                return _openai_bad(f"Invalid value: '{kind}'. Supported values are: {listed}.",
                                   f"{param}.type")
            if kind == "image_url":
                if _TEXT_ONLY.fullmatch(model):
                    return _openai_bad("Invalid content type. image_url is only supported by "
                                       "certain models.", f"messages.[{i}].content.[{j}].type",
                                       None)
                url = (part.get("image_url") or {}).get("url")
                problem = _openai_image(url, f"{param}.image_url.url", seen, role)
            elif kind == "file":
                file = part.get("file") or {}
                problem = _openai_file(file.get("file_data"), file.get("filename"),
                                       f"{param}.file", seen, role)
            else:
                problem = None
            if problem:
                return problem
    return None


def _responses_part(part: Any, param: str, model: str, seen: Seen,
                    where: str) -> Problem | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "refusal"):
        return None
    if kind == "input_image":
        if _TEXT_ONLY.fullmatch(model):
            return _openai_bad("Invalid content type. image is not supported with this model.",
                               f"{param}.type", None)
        if "detail" not in part:
            return _openai_bad(f"Missing required parameter: '{param}.detail'.",
                               f"{param}.detail", "missing_required_parameter")
        return _openai_image(part.get("image_url"), f"{param}.image_url", seen, where)
    if kind == "input_file":
        if "file_url" in part:
            url = part["file_url"]
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return _openai_bad(f"Invalid '{param}.file_url': expected a URL.",
                                   f"{param}.file_url")
            seen.append((where, "file", 0, url))
            return None
        return _openai_file(part.get("file_data"), part.get("filename"), param, seen, where)
    return _openai_bad(f"Invalid value: '{kind}'. Supported values are: 'input_text', "
                       "'input_image', and 'input_file'.", f"{param}.type")


def responses_media_problem(body: dict[str, Any], seen: Seen) -> Problem | None:
    model = str(body.get("model") or "")
    items = body.get("input")
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            continue
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message" and isinstance(item.get("content"), list):
            parts, base, where = item["content"], f"input[{i}].content", item.get("role")
        elif kind == "function_call_output" and isinstance(item.get("output"), list):
            parts, base, where = item["output"], f"input[{i}].output", "tool"
        else:
            continue
        for j, part in enumerate(parts):
            problem = _responses_part(part, f"{base}[{j}]", model, seen, where)
            if problem:
                return problem
    return None


# --- Anthropic ----------------------------------------------------------------------------------

def _anthropic_source(block: dict[str, Any], where: str, seen: Seen,
                      context: str) -> str | None:
    kind = block["type"]
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return f"{where}.{kind}.source.url: Input should be a valid URL"
        seen.append((context, kind, 0, url))
        return None
    if source.get("type") != "base64":
        return f"{where}.{kind}.source: Input tag '{source.get('type')}' found using 'type' " \
               "does not match any of the expected tags: 'base64', 'url', 'file'"
    media_type = source.get("media_type")
    allowed = IMAGE_TYPES if kind == "image" else ("application/pdf",)
    if media_type not in allowed:
        listed = " or ".join(", ".join(f"'{a}'" for a in allowed).rsplit(", ", 1))
        return f"{where}.{kind}.source.base64.media_type: Input should be {listed}"
    data = _decode(source.get("data"))
    if data is None:
        return f"{where}.{kind}.source.base64.data: invalid base64 data"
    if kind == "image" and len(source["data"]) > ANTHROPIC_IMAGE_MAX:
        return (f"{where}.image.source.base64: image exceeds 5 MB maximum: "
                f"{len(source['data'])} bytes > {ANTHROPIC_IMAGE_MAX} bytes")
    if sniff(data) != media_type:
        return f"{where}.{kind}.source.base64.data: Image does not match the provided media " \
               f"type {media_type}" if kind == "image" else \
               f"{where}.document.source.base64.data: The PDF specified was not valid."
    seen.append((context, media_type, len(data), None))
    return None


def anthropic_media_problem(body: dict[str, Any], seen: Seen) -> str | None:
    for i, m in enumerate(body.get("messages") or []):
        content = m.get("content") if isinstance(m, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(block, dict):
                continue
            where = f"messages.{i}.content.{j}"
            if block.get("type") in ("image", "document"):
                if m.get("role") != "user":
                    return f"{where}.{block['type']}: {block['type']} blocks are only " \
                           "allowed in user messages"
                problem = _anthropic_source(block, where, seen, "user")
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                problem = _tool_result(block["content"], where, seen)
            else:
                problem = None
            if problem:
                return problem
    return None


def _tool_result(content: list[Any], where: str, seen: Seen) -> str | None:
    for k, inner in enumerate(content):
        kind = inner.get("type") if isinstance(inner, dict) else None
        at = f"{where}.tool_result.content.{k}"
        if kind in ("image", "document"):
            problem = _anthropic_source(inner, at, seen, "tool")
            if problem:
                return problem
        elif kind not in ("text", "search_result"):
            return f"{at}: Input tag '{kind}' found using 'type' does not match any of the " \
                   "expected tags: 'text', 'image', 'search_result', 'document'"
    return None
