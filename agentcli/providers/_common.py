"""What the OpenAI and Anthropic adapters share: key resolution, timeouts and SDK-error mapping.

Both official SDKs are generated from the same template, so their exception classes have the
same names (``APIStatusError``, ``APITimeoutError``, ``APIConnectionError``, ``APIError``); the
mapping below is written once against those names and the transport errors underneath them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlsplit

from ..errors import (AgentCliError, AuthenticationError, IdleTimeoutError, ModelNotFoundError,
                      ProviderConnectionError, ProviderError, StreamInterruptedError, UsageError)
from ..messages import ToolCall

PLACEHOLDER_KEY = "not-needed"
"""Sent to servers that need no key (Ollama, llama.cpp, ...): the SDKs refuse to run without one."""

CONNECT_TIMEOUT = 30.0
_MAX_MESSAGE = 500


def resolve_api_key(profile: Any, official_host: str) -> str:
    """The profile's key; a placeholder for a non-official base URL that names no key variable
    (Ollama, llama.cpp, ...); else a UsageError naming the variable to set."""
    key = profile.resolved_api_key()
    if key:
        return key
    host = urlsplit(profile.base_url).hostname if profile.base_url else None
    if host and host != official_host and not profile.api_key_env:
        return PLACEHOLDER_KEY
    env = profile.key_env() or "an API key"
    raise UsageError(f"no API key for provider '{profile.name}': {env} is not set",
                     hint=f"export {env}=... , or set api_key_env for this profile in the config "
                          "file; for a local OpenAI-compatible server pass --base-url")


def sdk_timeout(sdk: ModuleType, settings: Any) -> Any:
    """The SDK's Timeout: the read timeout applies per read, which is exactly an idle timeout."""
    total = float(settings.request_timeout)
    return sdk.Timeout(total, connect=min(total, CONNECT_TIMEOUT),
                       read=float(settings.idle_timeout))


def one_line(text: str, secret: str | None = None) -> str:
    """Collapse whitespace, cap the length and never echo the key."""
    if secret and secret != PLACEHOLDER_KEY:
        text = text.replace(secret, "***")
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def server_message(e: Any) -> str:
    """The server's own error message, whichever shape its body has."""
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str) and inner:
            return inner
        if body.get("message"):
            return str(body["message"])
        if body.get("detail"):
            return str(body["detail"])
    if isinstance(body, str) and body.strip():
        return body
    return str(getattr(e, "message", "") or e)


def _causes(e: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _is_transport(e: BaseException, kind: str) -> bool:
    """Is ``e`` (or its cause) an httpx/httpx2 exception named ``kind`` or a subclass of one?"""
    for err in _causes(e):
        for cls in type(err).__mro__:
            if cls.__name__ == kind and cls.__module__.split(".")[0] in ("httpx", "httpx2"):
                return True
    return False


@dataclass
class ErrorMapper:
    """Turns one SDK's exceptions into agentcli's ProviderError tree (one line, no key)."""

    sdk: ModuleType
    who: str  # "OpenAI", "Anthropic" or "the server at <url>": the subject of messages
    base_url: str
    key_env: str | None
    settings: Any
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def for_profile(cls, sdk: ModuleType, vendor: str, default_url: str, official_host: str,
                    profile: Any, settings: Any, secret: str) -> ErrorMapper:
        url = (profile.base_url or default_url).rstrip("/")
        who = vendor if urlsplit(url).hostname == official_host else f"the server at {url}"
        return cls(sdk, who, url, profile.key_env(), settings, secret=secret)

    def convert(self, e: Exception, *, partial: str | None) -> ProviderError | None:
        """The ProviderError for ``e``; ``partial`` is None before the reply started.
        None means "not an SDK/transport error": a bug, to be re-raised as is."""
        sdk = self.sdk
        if isinstance(e, sdk.APIError) and partial is not None and not isinstance(
                e, sdk.APIConnectionError):  # an error event inside the stream
            msg = one_line(server_message(e), self.secret)
            return StreamInterruptedError(
                f"the reply was cut off by a server error: {msg}", partial_text=partial,
                hint="the partial reply was kept; try again")
        if isinstance(e, sdk.APIStatusError):
            return self._status(e)
        if isinstance(e, sdk.APITimeoutError) or _is_transport(e, "TimeoutException"):
            if _is_transport(e, "ConnectTimeout") or _is_transport(e, "PoolTimeout"):
                return ProviderConnectionError(
                    f"cannot connect to {self.base_url}: timed out",
                    hint="check the base_url and that the server is running")
            return IdleTimeoutError(
                f"no data from {self.base_url} for {self.settings.idle_timeout:g} s: "
                "gave up waiting"
                + (" (the partial reply was kept)" if partial else ""),
                partial_text=partial or "",
                hint="raise idle_timeout in the config file if the model is just slow")
        if isinstance(e, sdk.APIConnectionError) or _is_transport(e, "TransportError"):
            if partial is not None and not _is_transport(e, "ConnectError"):
                return StreamInterruptedError(
                    f"the reply was cut off: the connection to {self.base_url} closed mid-reply",
                    partial_text=partial, hint="the partial reply was kept; try again")
            if _is_transport(e, "ConnectError"):
                return ProviderConnectionError(
                    f"cannot connect to {self.base_url}: {self._cause_text(e)}",
                    hint="check the base_url and that the server is running")
            return ProviderConnectionError(
                f"the connection to {self.base_url} failed: {self._cause_text(e)}",
                hint=self._retry_hint())
        if isinstance(e, sdk.APIError):
            msg = one_line(server_message(e), self.secret)
            return ProviderError(f"{self.who} returned an error: {msg}")
        if isinstance(e, json.JSONDecodeError):
            return ProviderError(f"{self.who} sent a reply that is not valid JSON: "
                                 f"{one_line(str(e))}")
        return None

    def _status(self, e: Any) -> ProviderError:
        status = getattr(e, "status_code", None)
        msg = one_line(server_message(e), self.secret)
        if status in (401, 403):
            env = self.key_env or "the API key"
            what = "rejected the API key" if status == 401 else "refused access"
            return AuthenticationError(
                f"{self.who} {what} (HTTP {status}): {msg}",
                hint=f"check {env}: export {env}=<your key>")
        if status == 404:
            return ModelNotFoundError(f"{self.who} says (HTTP 404): {msg}",
                                      hint="check the model name (--model) and the base_url")
        hint = None
        if status == 429 or (isinstance(status, int) and status >= 500):
            hint = self._retry_hint()
        return ProviderError(f"{self.who} returned an error (HTTP {status}): {msg}", hint=hint)

    def _retry_hint(self) -> str:
        n = self.settings.max_retries
        if n:
            return f"gave up after {n} retr{'y' if n == 1 else 'ies'} (max_retries in the " \
                   "config file); try again later"
        return "retries are off (max_retries: 0 in the config file); try again"

    def _cause_text(self, e: BaseException) -> str:
        root = str(list(_causes(e))[-1]) or str(e)
        if _is_transport(e, "ConnectError") and ("refused" in root.lower() or not root):
            return "connection refused"
        return one_line(root, self.secret)

    # -- running SDK calls ------------------------------------------------------------------------

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run one SDK request, converting its errors."""
        try:
            return fn()
        except AgentCliError:
            raise
        except Exception as e:
            err = self.convert(e, partial=None)
            if err is None:
                raise
            raise err from e

    def iterate(self, open_stream: Callable[[], Any], partial: list[str]) -> Iterator[Any]:
        """Open an SDK stream and yield its events, converting errors (``partial`` holds the text
        received so far). The HTTP response is closed however the iteration ends."""
        stream = self.call(open_stream)
        try:
            for item in stream:
                yield item
        except AgentCliError:
            raise
        except Exception as e:
            err = self.convert(e, partial="".join(partial))
            if err is None:
                raise
            raise err from e
        finally:
            stream.close()

    def cut_off(self, partial: list[str], what: str) -> StreamInterruptedError:
        """The stream ended cleanly but without its final event (a proxy or server hung up)."""
        return StreamInterruptedError(
            f"the reply was cut off: the stream from {self.base_url} ended without {what}",
            partial_text="".join(partial), hint="the partial reply was kept; try again")


class SDKAdapter:
    """The shared shape of the SDK adapters: build the request, then stream or not.
    Subclasses provide ``_params`` (the SDK request), ``_stream`` and ``_complete``."""

    profile: Any

    def stream(self, messages: Sequence[Any], tools: Sequence[Any], *,
               system: str | None = None, stream: bool = True) -> Iterator[Any]:
        params = self._params(messages, tools, system)
        if self.profile.temperature is not None:
            params["temperature"] = self.profile.temperature
        yield from (self._stream(params) if stream else self._complete(params))

    def _params(self, messages: Sequence[Any], tools: Sequence[Any],
                system: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def _stream(self, params: dict[str, Any]) -> Iterator[Any]:
        raise NotImplementedError

    def _complete(self, params: dict[str, Any]) -> Iterator[Any]:
        raise NotImplementedError


def parse_arguments(arguments: str) -> dict[str, Any] | None:
    """A tool call's arguments as a JSON object, or None when they are not one."""
    try:
        return ToolCall("", "", arguments).parsed_arguments()  # one parser for tool arguments
    except ValueError:
        return None
