"""The HTTP client both SDKs are given (``http_client=``), so a hostile server cannot hang or
exhaust agentcli, and a key reaches only its own host.

It is the SDK's own client class with its own defaults (``DefaultHttpxClient``: connection limits,
redirects, environment proxies), plus two httpx event hooks that run for every HTTP request the
SDK makes (its retries and redirects included):

- **deadline**: one model request (``Budget.start()``, called by the adapter) may take at most
  ``request_timeout`` seconds, every attempt and every byte of the reply included. It is checked
  at each read of the body, and each phase's reads are clipped to the time left; the idle timeout
  (httpx's read timeout) still bounds every single read. A server dripping one byte every 0.5 s
  is stopped at the deadline.
- **size**: a reply body, streamed or not, larger than ``max_response_bytes`` is cut there. So
  no line of it can be longer either, and neither SDK can buffer without bound. Bytes are
  counted per read (one ``len`` per chunk, nothing per character). Replies are asked for
  uncompressed (``Accept-Encoding: identity``) and a compressed one is refused: its decoded size
  could not be bounded by counting what arrives.
- **keys**: a request to any host but the one the key was resolved for (a redirect elsewhere)
  leaves without ``Authorization``/``x-api-key``; httpx strips only ``Authorization``.

Hooks rather than a wrapped transport: with a custom transport httpx would ignore the proxy
environment variables, and redirect bodies are read before the transport's caller sees them.

The errors raised here are deliberately not httpx errors: the OpenAI SDK does not retry them.
The Anthropic SDK wraps any transport error in ``APIConnectionError`` and retries it, so a limit,
once hit, stays hit for the rest of the model request (later attempts fail before sending).
``ErrorMapper`` finds them in the cause chain and turns them into ``ProviderError``s.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterator
from urllib.parse import urlsplit

from ..errors import UsageError

KEY_HEADERS = ("authorization", "x-api-key", "api-key")
PLACEHOLDER_KEY = "not-needed"
"""Sent to servers that get no key (Ollama, llama.cpp, ...): the SDKs refuse to run without one."""


def resolve_api_key(profile: Any, official_host: str) -> tuple[str, str]:
    """(the key to send, where it came from). A key reaches only the host it belongs to:

    - a key variable the profile names (``api_key_env``) goes wherever the profile points;
    - the default variable (OPENAI_API_KEY / ANTHROPIC_API_KEY) goes only to the official host
      or to the base URL that came with it (OPENAI_BASE_URL / ANTHROPIC_BASE_URL);
    - any other server gets a placeholder (Ollama, llama.cpp, ... want none).
    """
    if profile.api_key:  # given in code; the config file cannot hold one
        return profile.api_key, f"the api_key given to profile '{profile.name}'"
    if profile.api_key_env:
        key = os.environ.get(profile.api_key_env)
        if key:
            return key, profile.api_key_env
        raise _no_key(profile, profile.api_key_env)
    env = profile.key_env() or "an API key"
    host = host_of(profile.base_url) or official_host
    if host == official_host or profile.base_url_source == "env":
        key = os.environ.get(env)
        if key:
            return key, env
        if host == official_host:
            raise _no_key(profile, env)
    return PLACEHOLDER_KEY, "placeholder"


def _no_key(profile: Any, env: str) -> UsageError:
    return UsageError(f"no API key for provider '{profile.name}': {env} is not set",
                      hint=f"export {env}=... , or set api_key_env for this profile in the config "
                           "file; for a local OpenAI-compatible server pass --base-url")


def host_of(url: str | None) -> str | None:
    return (urlsplit(url).hostname or None) if url else None


class TransportLimit(Exception):
    """A limit of this module was hit (never an httpx error, so the SDKs do not retry it)."""


class DeadlineExceeded(TransportLimit):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete reply within {seconds:g} s")
        self.seconds = seconds


class ResponseTooLarge(TransportLimit):
    def __init__(self, limit: int) -> None:
        super().__init__(f"reply larger than {limit} bytes")
        self.limit = limit


class CompressedReply(TransportLimit):
    def __init__(self, encoding: str) -> None:
        super().__init__(f"reply compressed with {encoding!r} although none was asked for")
        self.encoding = encoding


class Budget:
    """What one model request may still spend; the adapter starts it before each request."""

    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.seconds = float(seconds)
        self.max_bytes = int(max_bytes)
        self.deadline = 0.0
        self.tripped: TransportLimit | None = None
        self.start()

    def start(self) -> None:
        self.deadline = time.monotonic() + self.seconds
        self.tripped = None

    def trip(self, limit: TransportLimit) -> TransportLimit:
        self.tripped = limit
        return limit

    def left(self) -> float:
        """Seconds left; raises once the deadline has passed (or a limit was already hit)."""
        if self.tripped is not None:
            raise self.tripped
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.trip(DeadlineExceeded(self.seconds))
        return left


def _clip(request: Any, left: float) -> None:
    """No phase of ``request`` may wait longer than the time left."""
    timeouts = request.extensions.get("timeout")
    if isinstance(timeouts, dict):
        request.extensions["timeout"] = {k: left if v is None or v > left else v
                                         for k, v in timeouts.items()}


class _Counted:
    """A response body stream that counts bytes and watches the clock at every read."""

    def __init__(self, inner: Any, budget: Budget) -> None:
        self._inner = inner
        self._budget = budget

    def __iter__(self) -> Iterator[bytes]:
        budget = self._budget
        limit, deadline = budget.max_bytes, budget.deadline
        total = 0
        for chunk in self._inner:
            total += len(chunk)
            if total > limit:
                raise budget.trip(ResponseTooLarge(limit))
            if time.monotonic() > deadline:
                raise budget.trip(DeadlineExceeded(budget.seconds))
            yield chunk

    def close(self) -> None:
        self._inner.close()


def httpx_module(client_class: type) -> Any:
    """The httpx flavour (``httpx`` or ``httpx2``) an SDK's client class is built on."""
    for cls in client_class.__mro__:
        top = cls.__module__.split(".")[0]
        if top in ("httpx", "httpx2") and cls.__name__ == "Client":
            return sys.modules[top]
    raise TypeError(f"{client_class!r} is not an httpx client")


def guarded_client(sdk: Any, budget: Budget, key_host: str | None) -> Any:
    """The SDK's default HTTP client, with the deadline, the size cap and the key guard."""
    client_class = sdk.DefaultHttpxClient
    counted = type("CountedStream", (_Counted, httpx_module(client_class).SyncByteStream), {})

    def on_request(request: Any) -> None:
        _clip(request, budget.left())
        request.headers["Accept-Encoding"] = "identity"
        if key_host is not None and request.url.host.lower() != key_host:
            for name in KEY_HEADERS:
                request.headers.pop(name, None)

    def on_response(response: Any) -> None:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise budget.trip(CompressedReply(encoding))
        _clip(response.request, budget.left())  # the body's reads, too, wait at most the time left
        response.stream = counted(response.stream, budget)

    return client_class(event_hooks={"request": [on_request], "response": [on_response]})
