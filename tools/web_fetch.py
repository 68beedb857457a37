"""web_fetch: GET a public URL and return readable text, refusing the local network.

Options (config ``tools.options.web_fetch``):
  allow_private: false   true also fetches loopback and private addresses (your own machine and
                         LAN); cloud metadata, link-local, multicast, unspecified and reserved
                         addresses stay refused whatever it says
  max_bytes: 1000000     most body bytes kept, counted after gzip/deflate decoding
  max_redirects: 5       each hop is checked again
  timeout: 15            seconds per connect/read

A body is text only when its type says so and, decoded (gzip/deflate, then the charset), it has
no NUL characters; anything else gets a one-line note instead of its bytes.

``fetch_bytes`` is the same guard, redirects, timeout and decoding for agentcli's URL attachments
(``-a URL``): the body as bytes, bounded by the caller's limit.

SSRF guard: the host is resolved once; every address it resolves to must be public (IPv4-mapped,
6to4, Teredo and NAT64 IPv6 addresses are judged by the IPv4 address inside), and the connection
goes to that checked address (no second lookup, so a DNS answer that changes cannot slip past).
TLS still verifies the certificate for the host name (SNI) and the Host header names the host.
Environment proxies are ignored: a proxy would resolve names where we cannot check them.
"""

from __future__ import annotations

import ipaddress
import socket
import zlib
from typing import Any, Callable, Iterable, TypeVar

import httpcore
import httpx

from agentcli.errors import ToolError

T = TypeVar("T")
DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 15.0
USER_AGENT = "agentcli-web_fetch/0.1 (+https://pypi.org/project/agentcli/)"
METADATA = {ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, Azure, GCP, OpenStack, Oracle, DigitalOcean, ...
    "fd00:ec2::254",    # AWS over IPv6
    "fd20:ce::254",     # GCP over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "169.254.170.2",    # AWS ECS task credentials
    "169.254.170.23",   # AWS EKS pod identity
    "fd00:ec2::23")}    # the same over IPv6
ALLOWED_BY_OPTION = ("a loopback address", "a private address", "not a public address")
"""What ``allow_private`` lets through: the machine itself, RFC 1918 / unique-local networks and
shared address space (carrier-grade NAT, Tailscale). Everything else stays refused."""
NAT64 = ipaddress.ip_network("64:ff9b::/96")
TEXT_TYPES = {"application/json", "application/xml", "application/javascript",
              "application/x-javascript", "application/ecmascript", "application/yaml",
              "application/x-yaml", "application/toml", "application/xhtml+xml",
              "application/rss+xml", "application/atom+xml", "application/ld+json",
              "application/x-sh", "application/sql", "application/csv", "application/x-ndjson"}


class Refused(ToolError):
    """A URL or address the guard will not fetch."""


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                    allow_private: bool = False) -> str | None:
    """Why this address may not be fetched, or None when it may be: a public address, or with
    ``allow_private`` a loopback or private one (never metadata, link-local, multicast,
    unspecified or reserved)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner: list[ipaddress.IPv4Address] = []
        if ip.ipv4_mapped:
            inner.append(ip.ipv4_mapped)
        if ip.sixtofour:
            inner.append(ip.sixtofour)
        if ip.teredo:
            inner.extend(ip.teredo)
        if ip in NAT64:
            inner.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        for v4 in inner:
            problem = address_problem(v4, allow_private)
            if problem:
                return f"{problem} (inside {ip})"
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
    if ip in METADATA:
        return "a cloud metadata address"
    problem = None
    for attr, label in (("is_loopback", "a loopback"), ("is_link_local", "a link-local"),
                        ("is_multicast", "a multicast"), ("is_unspecified", "an unspecified"),
                        ("is_reserved", "a reserved"), ("is_private", "a private")):
        if getattr(ip, attr):
            problem = f"{label} address"
            break
    if problem is None and not ip.is_global:
        problem = "not a public address"
    if allow_private and problem in ALLOWED_BY_OPTION:  # (never metadata: judged above)
        return None
    return problem


def resolve(host: str, port: int) -> list[str]:
    """All addresses for host (kept as a function so tests can fake DNS)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as e:
        raise ToolError(f"cannot resolve host '{host}': {e}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks every address, then connects to a checked address (never by name)."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        addresses = resolve(host, port)
        if not addresses:
            raise ToolError(f"host '{host}' has no addresses")
        for a in addresses:  # every answer, with or without allow_private
            problem = address_problem(ipaddress.ip_address(a), self.allow_private)
            if problem:
                shown = f"{host} is" if host == a else f"{host} resolves to {a}, which is"
                raise Refused(f"refused: {shown} {problem}; " + (
                    "web_fetch never fetches it, not even with allow_private (that option "
                    "opens loopback and private addresses only)"
                    if not problem.startswith(ALLOWED_BY_OPTION) else
                    "web_fetch only fetches public addresses (set "
                    "tools.options.web_fetch.allow_private to fetch from your own network)"))
        error: Exception | None = None
        for a in addresses:
            try:
                return self.inner.connect_tcp(a, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
        raise ToolError(f"cannot connect to {host}:{port}: {error}")

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise Refused("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def make_ssl_context() -> Any:
    """None: httpcore's default context (certifi roots, host name checked). A function so tests
    can trust a test certificate authority."""
    return None


def check_url(url: str) -> httpx.URL:
    try:
        u = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise Refused(f"not a valid URL: {e}") from None
    if u.scheme not in ("http", "https"):
        raise Refused(f"refused: only http:// and https:// URLs are fetched, not "
                      f"'{u.scheme or '(none)'}'")
    if not u.host:
        raise Refused("refused: the URL has no host")
    return u


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for k, v in headers:
        if k.lower() == name:
            return v.decode("latin-1").strip()
    return ""


class _Decoder:
    """Bounded gzip/deflate decoding: never produces more than asked for."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        if encoding in ("", "identity"):
            self.z = None
        elif encoding in ("gzip", "x-gzip"):
            self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.z = zlib.decompressobj(zlib.MAX_WBITS)
            self.first = True
        else:
            raise ToolError(f"the server sent an unsupported content-encoding '{encoding}'")

    def feed(self, data: bytes, budget: int) -> bytes:
        if self.z is None:
            return data[:budget]
        try:
            return self.z.decompress(data, budget)
        except zlib.error as e:
            if self.encoding == "deflate" and getattr(self, "first", False):
                self.z = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate without a header
                self.first = False
                return self.feed(data, budget)
            raise ToolError(f"the body could not be decoded ({self.encoding}): {e}") from None
        finally:
            self.first = False


def _is_text(mime: str) -> bool:
    return (not mime or mime.startswith("text/") or mime in TEXT_TYPES
            or mime.endswith("+xml") or mime.endswith("+json"))


def _options(options: Any) -> tuple[bool, int, int, float]:
    """(allow_private, max_bytes, max_redirects, timeout) from ``tools.options.web_fetch``."""
    options = options or {}
    return (options.get("allow_private", False) is True,
            int(options.get("max_bytes", DEFAULT_MAX_BYTES)),
            int(options.get("max_redirects", DEFAULT_MAX_REDIRECTS)),
            float(options.get("timeout", DEFAULT_TIMEOUT)))


def _get(url: str, options: Any, accept: bytes, read: Callable[[Any, str], T]) -> T:
    """GET ``url`` through the guard, following redirects (each checked again); ``read`` gets
    the final response and its URL."""
    allow_private, _, max_redirects, timeout = _options(options)
    ext = {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}
    pool = httpcore.ConnectionPool(ssl_context=make_ssl_context(), max_connections=2,
                                   network_backend=GuardedBackend(allow_private))
    current = check_url(url)
    try:
        with pool:
            for _ in range(max_redirects + 1):
                headers = [(b"Host", current.netloc), (b"User-Agent", USER_AGENT.encode()),
                           (b"Accept", accept), (b"Accept-Encoding", b"gzip, deflate")]
                target = httpcore.URL(scheme=current.raw_scheme, host=current.raw_host,
                                      port=current.port, target=current.raw_path)
                with pool.stream("GET", target, headers=headers, extensions=ext) as resp:
                    location = _header(resp.headers, b"location")
                    if resp.status in (301, 302, 303, 307, 308) and location:
                        current = check_url(str(current.join(location)))
                        continue
                    return read(resp, str(current))
    except ToolError:
        raise
    except httpcore.TimeoutException:
        raise ToolError(f"timed out fetching {current} (after {timeout:g} s)") from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as e:
        raise ToolError(f"cannot fetch {current}: {type(e).__name__}: {e}") from None
    raise ToolError(f"too many redirects (more than {max_redirects}); last URL {current}")


def run(url: str, context: Any = None) -> str:
    options = getattr(context, "options", None) or {}
    max_bytes = _options(options)[1]
    return _get(url, options, b"text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
                lambda resp, where: _read(resp, where, max_bytes))


class TooLarge(ToolError):
    """A body over the byte limit ``fetch_bytes`` was given (reading stopped there)."""


def fetch_bytes(url: str, options: Any, max_bytes: int) -> tuple[str, str, bytes]:
    """The body of ``url`` as bytes, through the same guard, redirects and timeouts as ``run``
    (``options``: ``tools.options.web_fetch``), for agentcli's attachments: (the final URL, its
    content type, the body after gzip/deflate decoding). ToolError for an HTTP error status;
    TooLarge when the body is over ``max_bytes`` (never read further than that)."""

    def read(resp: Any, where: str) -> tuple[str, str, bytes]:
        if resp.status >= 400:
            raise ToolError(f"HTTP {resp.status} from {where}")
        decoder = _Decoder(_header(resp.headers, b"content-encoding").lower())
        body = bytearray()
        for chunk in resp.iter_stream():
            body += decoder.feed(chunk, max_bytes + 1 - len(body))
            if len(body) > max_bytes:
                raise TooLarge(f"{where} is larger than {max_bytes:,} bytes")
        return where, _header(resp.headers, b"content-type"), bytes(body)

    return _get(url, options, b"*/*", read)


def _read(resp: Any, url: str, max_bytes: int) -> str:
    ctype = _header(resp.headers, b"content-type")
    mime = ctype.split(";")[0].strip().lower()
    status = f"{resp.status} {resp.extensions.get('reason_phrase', b'').decode('latin-1')}"
    head = f"URL: {url}\nStatus: {status.strip()}\nContent-Type: {ctype or '(none)'}\n"
    if not _is_text(mime):
        length = _header(resp.headers, b"content-length")
        size = f", {length} bytes" if length.isdigit() else ""
        return head + f"\n[binary content ({mime}{size}); not downloaded: web_fetch returns text]"
    decoder = _Decoder(_header(resp.headers, b"content-encoding").lower())
    body = bytearray()
    raw = 0
    truncated = False
    for chunk in resp.iter_stream():
        raw += len(chunk)
        body += decoder.feed(chunk, max_bytes + 1 - len(body))
        if len(body) > max_bytes or raw > 4 * max_bytes:
            truncated = True
            del body[max_bytes:]
            break
    data = bytes(body)
    charset = ""
    for param in ctype.split(";")[1:]:
        k, _, v = param.partition("=")
        if k.strip().lower() == "charset":
            charset = v.strip().strip("\"'")
    try:
        text = data.decode(charset or "utf-8", "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    if "\x00" in text:  # judged on the decoded body, all of what would be returned
        note = (f"[binary content ({mime or 'no content type'}, NUL characters in the decoded "
                "body); not shown]")
        if resp.status >= 400:
            raise ToolError(f"HTTP {status.strip()} from {url}\n{note}")
        return head + "\n" + note
    if mime in ("text/html", "application/xhtml+xml") or (not mime and b"<html" in data[:2048].lower()):
        text = html_to_text(data, charset)
    if resp.status >= 400:
        raise ToolError(f"HTTP {status.strip()} from {url}\n{text[:1000]}")
    note = (f"\n\n[truncated: the body is larger than {max_bytes} bytes (after decoding); "
            "showing the first part]" if truncated else "")
    return head + "\n" + text + note


def html_to_text(data: bytes, charset: str = "") -> str:
    """Readable text from HTML with trafilatura (main content first, whole page as fallback).
    Imported here: it costs ~0.3 s and each call imports the tool afresh in its own process."""
    import trafilatura

    source: Any = data
    if charset:
        try:
            source = data.decode(charset, "replace")
        except LookupError:
            pass
    text = trafilatura.extract(source, output_format="markdown", include_links=True,
                               include_tables=True, include_formatting=True, favor_recall=True)
    if not text:
        text = trafilatura.html2txt(source) or ""
    title = ""
    try:
        meta = trafilatura.extract_metadata(source)
        title = (getattr(meta, "title", None) or "").strip() if meta else ""
    except Exception:  # noqa: BLE001 - the title is a nicety
        pass
    text = text.strip() or "(no readable text on the page)"
    return f"Title: {title}\n\n{text}" if title else text
