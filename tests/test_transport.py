"""The HTTP client both SDKs get: an overall deadline, a size cap, no compressed replies, keys
kept to their host. Against the loopback fake server, the official SDKs running for real."""

from __future__ import annotations

import time

import pytest
from fake_clients import KEY, PATHS, WIRES, collect, done, provider, sent_key, text_of
from fake_server import FakeProviderServer, drip, gzipped, huge, redirect, text

from agentcli.config import Settings
from agentcli.errors import IdleTimeoutError, ProviderError, StreamInterruptedError


def wait_for_disconnect(server, seconds: float = 5) -> int:
    """The server notices a hang-up at its next write; a safety net, not a timing assertion."""
    end = time.monotonic() + seconds
    while server.disconnects == 0 and time.monotonic() < end:
        time.sleep(0.02)
    return server.disconnects


@pytest.mark.parametrize("wire", WIRES)
def test_a_dripping_stream_is_stopped_at_the_deadline_and_keeps_its_text(fake_server, wire):
    # one byte every 0.05 s: the idle timeout (30 s) never fires; only the deadline can stop it
    fake_server.script(drip("so far ", interval=0.05, give_up=30))
    settings = Settings(max_retries=0, idle_timeout=30, request_timeout=0.5)
    events: list = []
    with pytest.raises(StreamInterruptedError) as info:
        collect(provider(fake_server, wire, settings=settings), into=events)
    err = info.value
    assert not isinstance(err, IdleTimeoutError)
    assert "request_timeout (0.5 s)" in str(err) and "\n" not in str(err)
    assert err.partial_text == text_of(events) == "so far "
    assert "partial reply was kept" in (err.hint or "")
    assert wait_for_disconnect(fake_server) == 1  # agentcli hung up; the server did not give up


@pytest.mark.parametrize("wire", WIRES)
def test_a_dripping_body_without_streaming_is_stopped_and_not_retried(fake_server, wire):
    fake_server.script(drip(interval=0.05, give_up=30))
    settings = Settings(max_retries=2, idle_timeout=30, request_timeout=0.5)
    with pytest.raises(ProviderError) as info:
        collect(provider(fake_server, wire, settings=settings), stream=False)
    assert "request_timeout (0.5 s)" in str(info.value)
    assert "kept" not in (info.value.hint or "")  # nothing arrived, nothing was kept
    assert len(fake_server.requests) == 1  # the SDKs' retries do not start the clock again


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("streaming", [True, False])
def test_a_huge_reply_is_cut_at_max_response_bytes(fake_server, wire, streaming):
    fake_server.script(huge(300_000_000, after_text="before it "))
    settings = Settings(max_retries=2, max_response_bytes=1024 * 1024)
    events: list = []
    with pytest.raises(ProviderError) as info:
        collect(provider(fake_server, wire, settings=settings), into=events, stream=streaming)
    assert "larger than max_response_bytes (1 MiB)" in str(info.value)
    assert "max_response_bytes" in (info.value.hint or "")
    if streaming:
        assert info.value.partial_text == text_of(events) == "before it "
    assert wait_for_disconnect(fake_server) == 1  # stopped reading long before 300 MB
    assert len(fake_server.requests) == 1


@pytest.mark.parametrize("wire", WIRES)
def test_a_reply_under_the_cap_arrives_whole(fake_server, wire):
    fake_server.script(huge(200_000))
    settings = Settings(max_retries=0, max_response_bytes=1024 * 1024)
    events = collect(provider(fake_server, wire, settings=settings))
    assert text_of(events) == "x" * 200_000
    assert done(events).stop_reason == "end_turn"


@pytest.mark.parametrize("wire", WIRES)
def test_replies_are_asked_uncompressed_and_a_compressed_one_is_refused(fake_server, wire):
    fake_server.script(gzipped({"choices": [], "content": []}))
    with pytest.raises(ProviderError) as info:
        collect(provider(fake_server, wire, settings=Settings(max_retries=2)), stream=False)
    assert "compressed its reply (gzip)" in str(info.value)
    assert fake_server.requests[0]["headers"]["accept-encoding"] == "identity"
    assert len(fake_server.requests) == 1


@pytest.mark.parametrize("wire", WIRES)
def test_a_redirect_to_another_host_does_not_carry_the_key(fake_server, wire):
    with FakeProviderServer() as elsewhere:
        path = PATHS[wire]
        # same machine, another host name: a different origin to the HTTP client
        fake_server.script(redirect(f"http://localhost:{elsewhere.port}{path}"))
        elsewhere.script(text("moved"))
        events = collect(provider(fake_server, wire))
        assert text_of(events) == "moved"
        assert sent_key(fake_server.requests[0]) == KEY
        assert sent_key(elsewhere.requests[0]) == ""


@pytest.mark.parametrize("wire", WIRES)
def test_a_redirect_on_the_same_host_keeps_the_key(fake_server, wire):
    path = PATHS[wire]
    fake_server.script(redirect(f"{fake_server.url}{path}?moved=1"), text("here"))
    assert text_of(collect(provider(fake_server, wire))) == "here"
    assert [sent_key(r) for r in fake_server.requests] == [KEY, KEY]


def test_the_deadline_starts_again_for_each_model_request(fake_server):
    fake_server.script(text("one"), text("two"))
    p = provider(fake_server, settings=Settings(max_retries=0, request_timeout=0.3))
    assert text_of(collect(p)) == "one"
    time.sleep(0.4)  # longer than request_timeout between two requests: neither is late
    assert text_of(collect(p)) == "two"
