"""What the OpenAI and Anthropic adapters share: the constructor (key, HTTP client, SDK client),
the request shape, and SDK-error mapping.

Both official SDKs are generated from the same template, so their client constructors take the
same arguments and their exception classes have the same names (``APIStatusError``,
``APITimeoutError``, ``APIConnectionError``, ``APIError``); the code below is written once
against those names and the transport errors underneath them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Generator, Iterator, Sequence
from urllib.parse import urlsplit

from ..config import DEFAULT_BASE_URL_ENV, DEFAULT_KEY_ENV, DEFAULT_MODELS
from ..errors import (AgentCliError, AuthenticationError, IdleTimeoutError, ModelNotFoundError,
                      ProviderConnectionError, ProviderError, StreamInterruptedError, redact_url)
from ..messages import Notice, ToolCall
from .media import plain, refusal_hint
from ._transport import (PLACEHOLDER_KEY, Budget, CompressedReply, DeadlineExceeded,
                         ResponseTooLarge, TransportLimit, guarded_client, host_of,
                         resolve_api_key)

CONNECT_TIMEOUT = 30.0
_MAX_MESSAGE = 500
_KEPT = "the partial reply was kept; "
# a 5xx whose body says the request itself is wrong fails the same way every time
_DETERMINISTIC = re.compile(r"validat|invalid|unsupported|not supported|must be|no attribute|"
                            r"schema", re.IGNORECASE)


def sdk_timeout(sdk: ModuleType, settings: Any) -> Any:
    """The SDK's Timeout: the read timeout applies per read, which is exactly an idle timeout
    (the overall deadline is the transport's, see ``_transport``)."""
    total = float(settings.request_timeout)
    return sdk.Timeout(total, connect=min(total, CONNECT_TIMEOUT),
                       read=min(total, float(settings.idle_timeout)))


def one_line(text: str, secret: str | None = None) -> str:
    """Collapse whitespace, cap the length and never echo the key."""
    if secret and secret != PLACEHOLDER_KEY:
        text = text.replace(secret, "***")
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def first_bytes(data: bytes, n: int = 120) -> str:
    """The start of a body that is not what was expected, as one printable line."""
    text = data[:n].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    return repr(text + ("..." if len(data) > n else ""))


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
    response = getattr(e, "response", None)
    if response is not None and getattr(e, "status_code", None) is not None:
        try:
            if not response.content.strip():
                return "(no message)"  # not the SDK's "Error code: 422"
        except Exception:  # a body that cannot be read (a stream): the SDK's own words
            pass
    return str(getattr(e, "message", "") or e)


@dataclass(frozen=True)
class Refusal:
    """What the HTTP error behind a ProviderError said (``refusal_of``)."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None


def refusal_of(err: BaseException) -> Refusal | None:
    """The status, message, ``param`` and ``code`` of the SDK status error in ``err``'s cause
    chain (None when it was not an HTTP error answer)."""
    for cause in _causes(err):
        status = getattr(cause, "status_code", None)
        if isinstance(status, int):
            body = getattr(cause, "body", None)
            body = body if isinstance(body, dict) else {}
            inner = body.get("error") if isinstance(body.get("error"), dict) else body
            param, code = inner.get("param"), inner.get("code")
            return Refusal(status, server_message(cause), param if isinstance(param, str) else
                           None, code if isinstance(code, str) else None)
    return None


def reasoning_hint(message: str, param: str | None) -> str | None:
    """The hint for a 400 that refuses a reasoning setting (None: it is about something else)."""
    about = f"{param or ''} {message}"
    if not re.search(r"reasoning[._](effort|summary)|reasoning_effort", about):
        return None
    if "/v1/responses" in message:  # tools with reasoning on Chat Completions (2026 models)
        return ("this model takes tools with reasoning only on the Responses API: use --api "
                "responses (or api: responses in the profile), or --reasoning none")
    if re.search(r"Unsupported parameter|Unrecognized|unknown (parameter|field|argument)|"
                 r"Extra inputs|not permitted", message, re.IGNORECASE):
        return "this model takes no reasoning setting: leave out --reasoning (and reasoning: " \
               "in the profile)"
    if re.search(r"does not support 'none'", message):
        return "this model cannot turn reasoning off: leave out --reasoning, or pick a level " \
               "its message lists"
    return "use --reasoning none, or a level the model supports (its message lists them)"


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


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


@dataclass
class ErrorMapper:
    """Turns one SDK's exceptions into agentcli's ProviderError tree (one line, no key)."""

    sdk: ModuleType
    who: str  # "OpenAI", "Anthropic" or "the server at <url>": the subject of messages
    base_url: str  # as shown in messages: a password in it is masked (``redact_url``)
    key_source: str  # an environment variable, "placeholder", or a sentence
    settings: Any
    secret: str | None = field(default=None, repr=False)
    vendor: str = ""
    key_env: str = "the API key variable"  # the vendor's own: OPENAI_API_KEY, ...
    url_env: str = "the base URL variable"  # OPENAI_BASE_URL, ...

    @classmethod
    def for_profile(cls, sdk: ModuleType, vendor: str, default_url: str, official_host: str,
                    profile: Any, settings: Any, key: str, key_source: str) -> ErrorMapper:
        url = (profile.base_url or default_url).rstrip("/")
        who = vendor if urlsplit(url).hostname == official_host else None
        url = redact_url(url)  # what messages and notices show: never a password
        who = who or f"the server at {url}"
        return cls(sdk, who, url, key_source, settings, secret=key, vendor=vendor,
                   key_env=DEFAULT_KEY_ENV.get(profile.type) or cls.key_env,
                   url_env=DEFAULT_BASE_URL_ENV.get(profile.type) or cls.url_env)

    def convert(self, e: Exception, *, partial: str | None) -> ProviderError | None:
        """The ProviderError for ``e``; ``partial`` is None before the reply started.
        None means "not an SDK/transport error": a bug, to be re-raised as is."""
        sdk = self.sdk
        limit = next((c for c in _causes(e) if isinstance(c, TransportLimit)), None)
        if limit is not None:
            return self._limit(limit, partial)
        if isinstance(e, sdk.APIError) and partial is not None and not isinstance(
                e, sdk.APIConnectionError):  # an error event inside the stream
            msg = one_line(server_message(e), self.secret)
            return StreamInterruptedError(
                f"the reply was cut off by a server error: {msg}", partial_text=partial,
                hint=_kept(partial) + "try again")
        if isinstance(e, sdk.APIStatusError):
            return self._status(e)
        if isinstance(e, sdk.APITimeoutError) or _is_transport(e, "TimeoutException"):
            if _is_transport(e, "ConnectTimeout") or _is_transport(e, "PoolTimeout"):
                return ProviderConnectionError(
                    f"cannot connect to {self.base_url}: timed out",
                    hint="check the base_url and that the server is running")
            return IdleTimeoutError(
                f"no data from {self.base_url} for {self.settings.idle_timeout:g} s: "
                "gave up waiting", partial_text=partial or "",
                hint=_kept(partial) + "raise idle_timeout in the config file if the model is "
                                      "just slow")
        if isinstance(e, sdk.APIConnectionError) or _is_transport(e, "TransportError"):
            if partial is not None and not _is_transport(e, "ConnectError"):
                return StreamInterruptedError(
                    f"the reply was cut off: the connection to {self.base_url} closed mid-reply",
                    partial_text=partial, hint=_kept(partial) + "try again")
            if _is_transport(e, "ConnectError"):
                return ProviderConnectionError(
                    f"cannot connect to {self.base_url}: {self._cause_text(e)}",
                    hint="check the base_url and that the server is running")
            return ProviderConnectionError(
                f"the connection to {self.base_url} failed: {self._cause_text(e)}",
                hint=self._retry_hint())
        if isinstance(e, sdk.APIError):
            msg = one_line(server_message(e), self.secret)
            return ProviderError(f"{self.who} returned an error: {msg}",
                                 hint="try again; if it keeps happening, check the base_url "
                                      "and the model")
        if isinstance(e, json.JSONDecodeError):  # e.g. an event whose data is not JSON
            return ProviderError(f"{self.who} sent data that is not valid JSON ({e.msg}): "
                                 f"{first_bytes(e.doc.encode())}", hint=_odd_body_hint(""))
        return None

    def _limit(self, limit: TransportLimit, partial: str | None) -> ProviderError:
        if isinstance(limit, DeadlineExceeded):
            message = (f"no complete reply from {self.base_url} within request_timeout "
                       f"({limit.seconds:g} s): gave up")
            hint = "raise request_timeout in the config file if the model is just slow"
        elif isinstance(limit, ResponseTooLarge):
            message = (f"the reply from {self.base_url} is larger than max_response_bytes "
                       f"({_size(limit.limit)}): stopped reading")
            hint = "raise max_response_bytes in the config file if such a reply is expected"
        elif isinstance(limit, CompressedReply):
            message = (f"{self.who} compressed its reply ({limit.encoding}) although none was "
                       "asked for: refused, its size could not be bounded")
            hint = "check the base_url; a proxy in between may be rewriting the reply"
        else:  # pragma: no cover - every TransportLimit is named above
            message, hint = f"{self.who}: {limit}", None
        if partial is None:
            return ProviderError(message, hint=hint)
        return StreamInterruptedError(message, partial_text=partial,
                                      hint=_kept(partial) + (hint or "try again"))

    def _status(self, e: Any) -> ProviderError:
        status = getattr(e, "status_code", None)
        msg = one_line(server_message(e), self.secret)
        if status in (401, 403):
            what = "rejected the API key" if status == 401 else "refused access"
            return AuthenticationError(f"{self.who} {what} (HTTP {status}): {msg}",
                                       hint=self._key_hint())
        if status == 404:
            return ModelNotFoundError(f"{self.who} says (HTTP {status}): {msg}",
                                      hint="check the model name (--model) and the base_url")
        return ProviderError(f"{self.who} returned an error (HTTP {status}): {msg}",
                             hint=self._status_hint(status, msg, e))

    def _status_hint(self, status: Any, msg: str, e: Any) -> str:
        """What to do about an HTTP error other than 401/403/404 (every one gets a hint)."""
        status = status if isinstance(status, int) else 0
        if status == 400:  # a reasoning setting the model refuses: say which flag
            param = getattr(e, "param", None)
            hint = reasoning_hint(msg, param if isinstance(param, str) else None)
            if hint:
                return hint
        headers = getattr(getattr(e, "response", None), "headers", None) or {}
        if status in (408, 409, 429) or status >= 500:  # the ones the SDKs retry
            if status >= 500 and (_DETERMINISTIC.search(msg)
                                  or headers.get("x-should-retry") == "false"):
                return ("the server refused this request itself (not a temporary failure): "
                        "retrying will not help; see its message")
            return self._retry_hint()
        if status == 413:
            return ("the request is too large for this server: start a new conversation "
                    "(or pipe less), or use a model with a larger context")
        if status in (400, 422):
            return ("the server found the request invalid (retrying will not help): check the "
                    "model (--model) and any setting its message names (--max-tokens, tools: "
                    "--no-tools); check the base_url if it is not the API")
        if status == 402:
            return "the account behind the key has no credit left: check its billing"
        return ("the server refused this request (retrying will not help): see its message; "
                "check the base_url and the model")

    def _key_hint(self) -> str:
        source = self.key_source
        if source == "placeholder":
            return (f"no key was sent: {self.key_env} goes only to {self.vendor}'s own host or "
                    f"to the {self.url_env} exported beside it; if this server needs a key, "
                    f"export {self.url_env}={self.base_url} beside {self.key_env}, or name the "
                    "variable holding its key with api_key_env in a profile")
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", source):
            return f"the key came from {source}: check it (export {source}=<your key>)"
        return f"check {source}"

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

    # -- what came back is not what was asked for ------------------------------------------------

    def not_a_stream(self, response: Any) -> ProviderError | None:
        """An error when a streamed request got something other than an event stream (an HTML
        captive portal, a JSON body from a server that ignores ``stream``); else None."""
        ctype = response.headers.get("content-type", "")
        if not ctype or ctype.split(";")[0].strip().lower() == "text/event-stream":
            return None
        first = next(response.iter_bytes(), b"")
        return ProviderError(
            f"{self.who} answered with {one_line(ctype)} instead of an event stream: "
            f"{first_bytes(first)}", hint=_odd_body_hint(ctype))

    def not_json(self, response: Any) -> ProviderError | None:
        """An error when a non-streamed request got something other than JSON."""
        ctype = response.headers.get("content-type", "")
        if "json" in ctype.lower():
            return None
        return ProviderError(
            f"{self.who} answered with {one_line(ctype) or 'no content type'} instead of JSON: "
            f"{first_bytes(response.content)}", hint=_odd_body_hint(ctype))

    def wrong_shape(self, response: Any, what: str) -> ProviderError:
        return ProviderError(f"{self.who} answered with JSON that is not {what}: "
                             f"{first_bytes(response.content)}",
                             hint="check the base_url: it should point at the API itself "
                                  "(e.g. http://localhost:11434/v1 for Ollama)")

    def empty_stream(self) -> ProviderError:
        from .compat import EmptyStream  # a request with tools is then made again, whole

        return EmptyStream(
            f"the stream from {self.base_url} ended without a reply (no text, no tool call, "
            "no finish reason)",
            hint="the server may have failed mid-request (llama-cpp-python's server does this "
                 "for tool calls it cannot stream): try --no-stream")

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
            odd = self.call(lambda: self.not_a_stream(stream.response))
            if odd is not None:
                raise odd
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
        text = "".join(partial)
        return StreamInterruptedError(
            f"the reply was cut off: the stream from {self.base_url} ended without {what}",
            partial_text=text, hint=_kept(text) + "try again")


def _kept(partial: str | None) -> str:
    """The "partial reply was kept" note, only when something was kept."""
    return _KEPT if partial else ""


def _odd_body_hint(ctype: str) -> str:
    if "html" in ctype.lower():
        return ("a web page, not an API: a captive portal or proxy login page? check the "
                "network and the base_url")
    return "check the base_url: it should point at the API itself"


class SDKAdapter:
    """The shared shape of the SDK adapters: one constructor, build the request, then stream or
    not. Subclasses set the class attributes and provide ``_params``, ``_stream``, ``_complete``.
    """

    sdk: ModuleType
    client_class: Any  # sdk.OpenAI / sdk.Anthropic
    vendor: str
    official_host: str
    default_url: str

    def __init__(self, profile: Any, settings: Any, warn: Any = None) -> None:
        """``warn`` is for adapters with one-time warnings (local); the SDK ones have none."""
        self.name = profile.name
        self.profile = profile
        self.model = profile.model or DEFAULT_MODELS[profile.type] or ""
        key, source = resolve_api_key(profile, self.official_host)
        self.official = (host_of(profile.base_url) or self.official_host) == self.official_host
        self.errors = ErrorMapper.for_profile(self.sdk, self.vendor, self.default_url,
                                              self.official_host, profile, settings, key, source)
        self.budget = Budget(settings.request_timeout, settings.max_response_bytes)
        key_host = host_of(profile.base_url) or self.official_host
        self.client = self.client_class(
            api_key=key, base_url=profile.base_url or None, max_retries=settings.max_retries,
            timeout=sdk_timeout(self.sdk, settings),
            http_client=guarded_client(self.sdk, self.budget, key_host))

    def stream(self, messages: Sequence[Any], tools: Sequence[Any], *,
               system: str | None = None, stream: bool = True,
               output: Any = None) -> Iterator[Any]:
        params = self._params(messages, tools, system)
        if output is not None:  # --schema: said once per adapter when it is sent another way
            for note in self._output(params, output):
                if note not in self.__dict__.setdefault("_told", set()):
                    self._told.add(note)
                    yield Notice(note, level="info")
        if self.profile.temperature is not None:
            params["temperature"] = self.profile.temperature
        self.budget.start()  # request_timeout counts from here, the SDK's retries included
        try:
            yield from (self._stream(params) if stream else self._complete(params))
        except ProviderError as e:  # refused attachments: the hint names them
            refusal_hint(e, messages)
            raise

    def _raw(self, create: Callable[..., Any], params: dict[str, Any]) -> Any:
        """One non-streamed request through ``with_raw_response``: its HTTP response is checked
        (JSON at all?) before the SDK parses it. Returns (parsed, http response)."""
        raw = self.errors.call(lambda: create(**plain(params)))
        http = raw.http_response
        odd = self.errors.not_json(http)
        if odd is not None:
            raise odd
        return self.errors.call(raw.parse), http

    def _params(self, messages: Sequence[Any], tools: Sequence[Any],
                system: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def _stream(self, params: dict[str, Any]) -> Iterator[Any]:
        raise NotImplementedError

    def _output(self, params: dict[str, Any], output: Any) -> list[str]:
        """Add structured output (a ``messages.OutputFormat``) to the request; returns what the
        user should be told (e.g. it went without strict mode)."""
        raise NotImplementedError

    def _complete(self, params: dict[str, Any]) -> Iterator[Any]:
        raise NotImplementedError


def first_refusal(events: Iterator[Any], retry: Callable[[ProviderError], bool]
                  ) -> Generator[Any, None, ProviderError | None]:
    """Yield a provider stream's events. An error raised before the first event, for which
    ``retry`` says the request may be sent another way, is returned instead of raised (None:
    the stream ended normally); any other error propagates."""
    started = False
    try:
        for event in events:
            started = True
            yield event
    except ProviderError as e:
        if started or not retry(e):
            raise
        return e
    return None


def parse_arguments(arguments: str) -> dict[str, Any] | None:
    """A tool call's arguments as a JSON object, or None when they are not one."""
    try:
        return ToolCall("", "", arguments).parsed_arguments()  # one parser for tool arguments
    except ValueError:
        return None
