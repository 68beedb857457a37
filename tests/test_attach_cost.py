"""What a large attachment costs: its bytes are base64-encoded once, that base64 is the only copy
of it made on the way to the socket (the request goes in pieces, the base64 bytes one of them),
and the hash made while it is encoded is the file's. Counted in bytes allocated and calls,
never in time (the timings are ``bench/bench_attach.py``'s)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import tracemalloc

import pytest

from agentcli.config import ProviderProfile, load_settings
from agentcli.inputs import attachments
from agentcli.messages import Message, TextPart
from agentcli.providers.base import create_provider
from agentcli.providers.media import plain, post_body
from fake_server import error, text
from media_kit import last_user, pdf, png, write
from test_attach_wire import ask

MIB = 1024 * 1024
BIG_PNG, BIG_PDF = png(pad=3 * MIB), pdf(pad=3 * MIB)
WIRES = [("openai", "chat"), ("openai", "responses"), ("anthropic", None)]


@pytest.fixture
def big(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, data in (("big.png", BIG_PNG), ("big.pdf", BIG_PDF)):
        write(tmp_path, name, data)
    return tmp_path


def _provider(kind: str, api: str | None, settings):
    base = "http://127.0.0.1:9" + ("/v1" if kind == "openai" else "")
    return create_provider(ProviderProfile(name=kind, type=kind, model="test-model",
                                           base_url=base, api=api or "auto"), settings)


@pytest.mark.parametrize("name", ["big.png", "big.pdf"])
@pytest.mark.parametrize("kind,api", WIRES)
def test_the_base64_is_the_only_copy_made_on_the_way_to_the_socket(big, name, kind, api):
    """From the file to the request's pieces, memory peaks at the file's bytes plus the base64
    encoder's own buffer (CPython's binascii takes twice the input, then shrinks it to the
    base64), and what stays is the file and one base64 of it: the body is pieces, the base64
    bytes one of them. (Before: text, bytes and a one-piece body, five copies of the base64,
    three of them alive at once.)"""
    settings = load_settings()
    provider = _provider(kind, api, settings)
    size = (big / name).stat().st_size
    tracemalloc.start()
    try:
        message, _ = attachments.compose("hi", None, [attachments.read(name, settings)])
        sent = post_body(provider.client, {**provider._params([message], [], None),
                                           "stream": True})
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    encoded = -(-size // 3) * 4
    assert peak < size + 2 * size + MIB // 2
    assert held < size + encoded + MIB // 2
    pieces = sent["content"]
    assert sum(len(p) for p in pieces) == int(sent["options"]["headers"]["Content-Length"])
    body = json.loads(b"".join(pieces))
    assert json.dumps(body) == json.dumps(plain({**provider._params([message], [], None),
                                                 "stream": True}))


def test_a_large_attachment_is_hashed_while_it_is_encoded_and_encoded_once(monkeypatch):
    """Over ``OVERLAP`` the hash runs beside the encoding: the part holds the file's sha256 and
    base64 all the same, and sending it (both spellings, several requests) encodes nothing
    more."""
    expected = base64.b64encode(BIG_PDF).decode()
    calls = []
    real = binascii.b2a_base64

    def counted(data, **kw):
        calls.append(len(data))
        return real(data, **kw)

    monkeypatch.setattr(binascii, "b2a_base64", counted)
    part = attachments.typed("big.pdf", BIG_PDF).media
    assert len(BIG_PDF) >= attachments.OVERLAP
    assert part.sha256 == hashlib.sha256(BIG_PDF).hexdigest() and part.size == len(BIG_PDF)
    assert str(part.base64) == expected
    assert str(part.data_url) == "data:application/pdf;base64," + expected
    assert calls == [len(BIG_PDF)]
    small = attachments.typed("small.png", png()).media
    assert small.sha256 == hashlib.sha256(png()).hexdigest()
    assert str(small.base64) == real(png(), newline=False).decode()


@pytest.mark.parametrize("kind,api", WIRES)
def test_a_large_attachment_arrives_whole_and_again_on_a_retry(fake_server, big, kind, api):
    """The pieces reach the server as one JSON body of the right length, the bytes intact
    (the fake decodes and checks them, as the APIs do); the SDK's retry after a 503 sends
    them all again."""
    fake_server.script(error(503), text("seen"))
    result = ask(fake_server, "-a", "big.pdf", "-a", "big.png", "what?", provider=kind, api=api)
    assert result.exit_code == 0, result.output
    assert len(fake_server.requests) == 2
    assert fake_server.requests[0]["raw"] == fake_server.requests[1]["raw"]
    request = fake_server.requests[1]
    assert int(request["headers"]["content-length"]) == len(request["raw"])
    assert [(t, n) for _, t, n, _ in fake_server.media_seen[-1]] == [
        ("application/pdf", len(BIG_PDF)), ("image/png", len(BIG_PNG))]
    content = last_user(request["body"], "input" if api == "responses" else "messages")
    assert base64.b64encode(BIG_PDF).decode() in json.dumps(content)


@pytest.mark.parametrize("kind,api", WIRES)
def test_a_request_the_sdk_encodes_itself_carries_the_base64_as_text(fake_server, kind, api):
    """A non-streamed request (a compatible server that cannot stream with tools) goes through
    the SDK's own encoder: the base64 is text there, the same bytes arrive."""
    base = fake_server.openai_base_url if kind == "openai" else fake_server.anthropic_base_url
    provider = create_provider(ProviderProfile(name=kind, type=kind, model="test-model",
                                               base_url=base, api=api or "auto"),
                               load_settings())
    part = attachments.typed("big.pdf", BIG_PDF).media
    fake_server.script(text("seen"))
    list(provider.stream([Message("user", (part, TextPart("what?")))], [], stream=False))
    assert fake_server.requests[0]["body"].get("stream") in (None, False)
    assert [(t, n) for _, t, n, _ in fake_server.media_seen[0]] == [
        ("application/pdf", len(BIG_PDF))]


def test_an_sdk_without_raw_content_gets_the_body_with_text():
    """An SDK whose ``post`` takes no ``content=``: the body, its base64 as text."""
    class Client:
        def post(self, path, *, cast_to, body=None, options=None):
            raise AssertionError("not called")

    part = attachments.typed("big.pdf", BIG_PDF).media
    body = {"messages": [{"role": "user", "content": [{"type": "base64", "data": part.base64}]}]}
    sent = post_body(Client(), body, {"headers": {"x": "1"}})
    assert sent == {"body": {"messages": [{"role": "user", "content": [
        {"type": "base64", "data": base64.b64encode(BIG_PDF).decode()}]}]},
        "options": {"headers": {"x": "1"}}}
