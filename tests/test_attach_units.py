"""The pieces of attachments on their own: typing by the bytes, what the context window counts,
the store's encoding (no bytes in the JSON), and which images and PDFs of an MCP result go to
the model as such."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

from agentcli.agent.context import ContextFitter, media_tokens
from agentcli.agent.tokens import TokenCounter
from agentcli.inputs.attachments import media_part, sniff
from agentcli.mcp.tools import result_content
from agentcli.messages import Message, TextPart, ToolResult
from agentcli.sessions import codec
from media_kit import GIF, JPEG, WEBP, pdf, png


def test_sniff_knows_five_types_by_their_first_bytes():
    assert [sniff(d) for d in (png(), JPEG, GIF, WEBP, pdf())] == [
        "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"]
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None  # RIFF, but not WebP
    assert sniff(b"hello") is None and sniff(b"") is None


def test_the_context_window_counts_an_image_and_a_pdfs_pages():
    image = media_part(png(), "image/png", "a.png")
    three = media_part(pdf(pages=3), "application/pdf", "a.pdf")
    unknown = media_part(b"%PDF-1.7\n" + b"\x00" * 250_000, "application/pdf", "b.pdf")
    assert (media_tokens(image), media_tokens(three), media_tokens(unknown)) == \
        (1600, 9000, 6000)  # pages counted; else one per 100 KB
    fitter = ContextFitter(TokenCounter(None), 100_000, 0)
    plain = Message("user", (TextPart("look"),))
    with_image = Message("user", (image, TextPart("look")))
    assert fitter.cost(with_image) - fitter.cost(plain) >= 1600
    assert fitter.bound(with_image) >= fitter.cost(with_image)


def test_the_store_encoding_keeps_no_bytes_and_round_trips_the_rest():
    image = media_part(png(), "image/png", "a.png", url="https://x.test/a.png")
    result = ToolResult("c1", "shot", "[image result]", media=(image,))
    message = Message("tool", (result,))
    text = codec.encode_parts(message.parts)
    assert base64.b64encode(png()).decode()[:20] not in text and "data" not in json.loads(text)[0]
    (parts,) = codec.decode_many(f"[{text}]")
    back = parts[0].media[0]
    assert (back.name, back.media_type, back.sha256, back.size, back.url, back.data) == \
        ("a.png", "image/png", image.sha256, image.size, "https://x.test/a.png", None)
    assert codec.blobs(message) == {image.sha256: ("image/png", png())}


def _result(*blocks):
    return SimpleNamespace(content=list(blocks), structured_content=None)


def _image(data: bytes, mime: str):
    return SimpleNamespace(type="image", data=base64.b64encode(data).decode(), mime_type=mime)


def test_mcp_images_go_as_media_only_when_true_and_small_enough():
    ok = _image(png(), "image/png")
    jpg = _image(JPEG, "image/jpg")  # a common alias
    lying = _image(JPEG, "image/png")
    svg = _image(b"<svg/>", "image/svg+xml")
    text, media = result_content(_result(ok, jpg, lying, svg), "demo__shot", 10_000)
    assert [m.media_type for m in media] == ["image/png", "image/jpeg"]
    assert [m.name for m in media] == ["demo__shot image 1", "demo__shot image 2"]
    assert text.splitlines()[2:] == [
        f"[image result: image/png, {len(JPEG)} bytes; not shown to the model]",
        "[image result: image/svg+xml, 6 bytes; not shown to the model]"]
    assert result_content(_result(ok), "demo__shot", len(png()) - 1)[1] == ()  # over the limit
    assert result_content(_result(ok))[1] == ()  # no limit given: notes only
