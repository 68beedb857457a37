"""web_fetch: a loopback server with the guard switched off explicitly; with it on, every
address spelling, redirects to private hosts and changing DNS answers are refused."""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from agentcli.toolrun.approval import PolicyApprover
from agentcli.config import load_settings
from agentcli.errors import ToolError
from agentcli.toolrun.executor import Executor, ToolContext
from agentcli.messages import ToolCall
from agentcli.toolrun.manifest import load_tools

ARTICLE = b"""<!doctype html><html><head><title>Tea notes</title>
<script>document.write('tracking')</script><style>p{color:red}</style></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article><h1>How to brew green tea</h1>
<p>Heat the water to about 80 degrees; boiling water makes green tea bitter.</p>
<p>Steep the leaves for two minutes, then pour. Caf\xc3\xa9 owners often use a timer.</p>
</article><footer>Copyright 2026</footer></body></html>"""
BOMB = gzip.compress(b"a" * 30_000_000, compresslevel=9)
GZIP_NULS = gzip.compress(b"\x00" * 1_000_000, compresslevel=9)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="text/plain; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/article":
            self.send(200, ARTICLE, "text/html; charset=utf-8")
        elif path == "/text":
            self.send(200, "plain text \u00e9\n".encode(), "text/plain; charset=utf-8")
        elif path == "/json":
            self.send(200, b'{"a": 1}', "application/json")
        elif path == "/image":
            self.send(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000, "image/png")
        elif path == "/big":
            self.send(200, b"x" * 3_000_000)
        elif path == "/bomb":
            self.send(200, BOMB, headers=[("Content-Encoding", "gzip")])
        elif path == "/gzip-nuls":
            self.send(200, GZIP_NULS, headers=[("Content-Encoding", "gzip")])
        elif path == "/late-nul":
            self.send(200, b"text " * 1000 + b"\x00" + b" more text")
        elif path == "/utf16":
            self.send(200, "h\u00e9llo w\u00f6rld".encode("utf-16"), "text/plain; charset=utf-16")
        elif path == "/deflate":
            self.send(200, zlib.compress(b"deflated text"), headers=[("Content-Encoding", "deflate")])
        elif path == "/redirect":
            self.send(302, b"", headers=[("Location", q["to"])])
        elif path == "/loop":
            self.send(302, b"", headers=[("Location", "/loop")])
        elif path == "/host":
            self.send(200, (self.headers.get("Host") or "").encode())
        elif path == "/missing":
            self.send(404, b"no such page")
        elif path == "/slow":
            time.sleep(3)
            self.send(200, b"late")
        else:
            self.send(500, b"unknown test path")


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that stop reading (caps, timeouts) are the point of several tests


@pytest.fixture(scope="module")
def server():
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def wf():
    return load_tools(load_settings(), warn=lambda line: None)["web_fetch"].function()


@pytest.fixture
def module(wf):
    return sys.modules[wf.__module__]


OPEN = ToolContext("web_fetch", {"allow_private": True})  # explicit, per test
GUARDED = ToolContext("web_fetch", {})


def test_html_becomes_readable_text(wf, server):
    out = wf(url=server + "/article", context=OPEN)
    assert "Status: 200" in out and "Content-Type: text/html" in out
    assert "Heat the water to about 80 degrees" in out and "Café owners" in out
    assert "Title: How to brew green tea" in out
    assert "document.write" not in out and "color:red" not in out and "<p>" not in out


def test_text_and_json_as_is(wf, server):
    assert wf(url=server + "/text", context=OPEN).endswith("plain text é\n")
    assert wf(url=server + "/json", context=OPEN).endswith('{"a": 1}')


def test_binary_gets_a_note(wf, server):
    out = wf(url=server + "/image", context=OPEN)
    assert "binary content (image/png" in out and "\x00" not in out


def test_big_body_capped(wf, server):
    out = wf(url=server + "/big", context=ToolContext("web_fetch", {"allow_private": True,
                                                                     "max_bytes": 10_000}))
    assert out.count("x") <= 10_000 + 5 and "truncated" in out


def test_gzip_bomb_capped_after_decoding(wf, server):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = wf(url=server + "/bomb", context=ToolContext("web_fetch", {"allow_private": True,
                                                                      "max_bytes": 100_000}))
    assert "truncated" in out and out.count("a") <= 100_000 + 50
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 20_000, "the bomb was not inflated in memory"


@pytest.mark.parametrize("path", ["/gzip-nuls", "/late-nul"])
def test_nul_characters_in_the_decoded_body_are_not_returned(wf, server, path):
    """Judged on the decoded body: a gzip text/plain body used to return 1 MB of NULs."""
    out = wf(url=server + path, context=OPEN)
    assert "\x00" not in out and len(out) < 500, out[:200]
    assert "binary content (text/plain, NUL characters" in out


def test_a_declared_wide_charset_is_text_not_binary(wf, server):
    assert wf(url=server + "/utf16", context=OPEN).endswith("h\u00e9llo w\u00f6rld")


def test_deflate(wf, server):
    assert wf(url=server + "/deflate", context=OPEN).endswith("deflated text")


def test_redirect_followed_and_loops_bounded(wf, server):
    out = wf(url=f"{server}/redirect?to=/text", context=OPEN)
    assert out.startswith(f"URL: {server}/text") and "plain text" in out
    with pytest.raises(ToolError, match="too many redirects"):
        wf(url=server + "/loop", context=OPEN)


def test_http_error_is_an_error(wf, server):
    with pytest.raises(ToolError, match="HTTP 404"):
        wf(url=server + "/missing", context=OPEN)


def test_read_timeout(wf, server):
    """The server answers after 3 s; the 0.5 s read timeout must end the fetch first."""
    with pytest.raises(ToolError, match="timed out"):
        wf(url=server + "/slow", context=ToolContext("web_fetch", {"allow_private": True,
                                                                    "timeout": 0.5}))


def test_guard_is_on_by_default_for_the_loopback_server(wf, server):
    with pytest.raises(ToolError, match="loopback"):
        wf(url=server + "/text", context=GUARDED)
    with pytest.raises(ToolError, match="loopback"):
        wf(url=server + "/text")  # no context at all: still guarded


SPELLINGS = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://2852039166/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "not a public"),
    ("http://169.254.1.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[64:ff9b::7f00:1]/", "loopback"),
    ("http://[2002:a9fe:a9fe::]/", "metadata"),
    ("file:///etc/passwd", "only http"),
    ("ftp://example.com/", "only http"),
    ("gopher://127.0.0.1/", "only http"),
    ("javascript:alert(1)", "only http"),
    ("http:///nohost", "no host"),
    ("http://0177.0.0.1/", "not a valid URL"),
]


def refusal(wf, module, monkeypatch, url, context) -> str:
    """The refusal's message; no connection may have been attempted."""
    connects = []
    monkeypatch.setattr(module.httpcore.SyncBackend, "connect_tcp",
                        lambda self, *a, **k: connects.append(a))
    with pytest.raises(ToolError) as e:
        wf(url=url, context=context)
    assert connects == []
    return e.value.message


@pytest.mark.parametrize("url,words", SPELLINGS)
def test_every_spelling_refused(wf, module, monkeypatch, url, words):
    """Refused before any connection is attempted."""
    message = refusal(wf, module, monkeypatch, url, GUARDED)
    assert words in message, message


@pytest.fixture
def trust_127_0_0_1(module, monkeypatch):
    """Pretend 127.0.0.1 is a public host (the 'allowed' server); everything else as usual."""
    real = module.address_problem

    def problem(ip, allow_private=False):
        return None if str(ip) == "127.0.0.1" else real(ip, allow_private)

    monkeypatch.setattr(module, "address_problem", problem)


@pytest.mark.parametrize("target,words", [
    ("http://127.0.0.2:{port}/text", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[::1]:{port}/text", "loopback"),
    ("http://2130706434/", "loopback"),
    ("file:///etc/passwd", "only http"),
])
def test_redirect_to_private_refused(wf, server, trust_127_0_0_1, target, words):
    port = server.rsplit(":", 1)[1]
    assert "plain text" in wf(url=server + "/text", context=GUARDED)  # the allowed host works
    with pytest.raises(ToolError) as e:
        wf(url=f"{server}/redirect?to={target.format(port=port)}", context=GUARDED)
    assert words in e.value.message


def test_any_private_answer_refuses_the_host(wf, module, monkeypatch):
    monkeypatch.setattr(module, "resolve", lambda host, port: ["93.184.216.34", "10.1.2.3"])
    with pytest.raises(ToolError, match="resolves to 10.1.2.3"):
        wf(url="http://mixed.example/", context=GUARDED)


def test_dns_is_asked_once_and_the_checked_address_is_used(wf, module, server, monkeypatch,
                                                             trust_127_0_0_1):
    """DNS rebinding: the first answer is checked and connected to; a later answer would be
    private but is never asked for. The Host header still names the host."""
    port = int(server.rsplit(":", 1)[1])
    answers = [["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]]
    asked = []

    def rebinding(host, p):
        asked.append(host)
        return answers[len(asked) - 1]

    monkeypatch.setattr(module, "resolve", rebinding)
    out = wf(url=f"http://rebind.test:{port}/host", context=GUARDED)
    assert asked == ["rebind.test"]
    assert out.endswith(f"rebind.test:{port}")


def test_through_executor_with_config_switch(server, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  options:\n    web_fetch:\n      allow_private: true\n")
    tools = load_tools(load_settings(cfg), warn=lambda line: None)
    r = Executor(tools, PolicyApprover(yes=True)).execute(
        ToolCall("1", "web_fetch", json.dumps({"url": server + "/text"}))).result
    assert not r.is_error and "plain text é" in r.content
    default = load_tools(load_settings(), warn=lambda line: None)
    r = Executor(default, PolicyApprover(yes=True)).execute(
        ToolCall("2", "web_fetch", json.dumps({"url": server + "/text"}))).result
    assert r.is_error and "loopback" in r.content


def test_allow_private_must_be_true_not_truthy(wf, server):
    with pytest.raises(ToolError, match="loopback"):
        wf(url=server + "/text", context=ToolContext("web_fetch", {"allow_private": "no"}))


def test_https_to_the_checked_address_verifies_the_host_name(wf, module, tmp_path, monkeypatch,
                                                               trust_127_0_0_1):
    """Connecting to the pinned IP still does TLS for the host name: SNI is the name and the
    certificate (issued for the name, not the IP) verifies."""
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=secure.test", "-addext", "subjectAltName=DNS:secure.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    seen_sni = []
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        monkeypatch.setattr(module, "resolve", lambda host, p: ["127.0.0.1"])
        monkeypatch.setattr(module, "make_ssl_context",
                            lambda: ssl.create_default_context(cafile=str(cert)))
        out = wf(url=f"https://secure.test:{port}/host", context=GUARDED)
        assert out.endswith(f"secure.test:{port}")
        assert seen_sni == ["secure.test"]
        monkeypatch.setattr(module, "resolve", lambda host, p: ["127.0.0.1"])
        with pytest.raises(ToolError, match="(?i)certificate|ssl|tls"):
            wf(url=f"https://other.test:{port}/host", context=GUARDED)  # name mismatch
    finally:
        httpd.shutdown()
        httpd.server_close()


NEVER = [(url, words) for url, words in SPELLINGS if words in (
    "metadata", "link-local", "multicast", "unspecified", "reserved")] + [
    ("http://[fd20:ce::254]/", "metadata"),
    ("http://100.100.100.200/", "metadata"),
    ("http://169.254.170.2/v2/credentials", "metadata"),
]


@pytest.mark.parametrize("url,words", NEVER)
def test_allow_private_never_opens_metadata_or_link_local(wf, module, monkeypatch, url, words):
    """allow_private opens loopback and the LAN, nothing more: no connection is even tried."""
    message = refusal(wf, module, monkeypatch, url, OPEN)
    assert words in message and "not even with allow_private" in message


def test_allow_private_still_refuses_a_name_that_resolves_to_metadata(wf, module, monkeypatch):
    monkeypatch.setattr(module, "resolve", lambda host, port: ["169.254.169.254"])
    with pytest.raises(ToolError, match="metadata.google.internal resolves to 169.254.169.254, "
                                        "which is a cloud metadata address"):
        wf(url="http://metadata.google.internal/computeMetadata/v1/", context=OPEN)


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/",
                                    "http://[fe80::1]:{port}/text",
                                    "http://169.254.1.1:{port}/text"])
def test_allow_private_redirect_to_metadata_refused(wf, server, target):
    """The audit's case: a loopback page (allowed by the option) redirecting to metadata."""
    port = server.rsplit(":", 1)[1]
    assert "plain text" in wf(url=server + "/text", context=OPEN)  # loopback: allowed
    with pytest.raises(ToolError, match="not even with allow_private"):
        wf(url=f"{server}/redirect?to={target.format(port=port)}", context=OPEN)


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.1.10", "172.16.0.5", "100.64.3.4",
                                     "::1", "fd12:3456::1", "127.0.0.2"])
def test_allow_private_opens_loopback_and_the_lan(module, address):
    import ipaddress

    ip = ipaddress.ip_address(address)
    assert module.address_problem(ip) is not None
    assert module.address_problem(ip, allow_private=True) is None


def test_tools_run_with_allow_private_does_not_follow_a_redirect_to_metadata(server, tmp_path):
    """The audit's command line, against the installed binary."""
    import os
    import subprocess
    from pathlib import Path

    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  options:\n    web_fetch:\n      allow_private: true\n")
    agentcli = str(Path(sys.executable).parent / "agentcli")
    url = f"{server}/redirect?to=http://169.254.169.254/latest/meta-data/"
    r = subprocess.run([agentcli, "tools", "run", "web_fetch", "-y", "--config", str(cfg),
                        "--args", json.dumps({"url": url})], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "AGENTCLI_HOME": str(tmp_path)})
    assert r.returncode == 1 and r.stdout == ""
    assert "169.254.169.254 is a cloud metadata address" in r.stderr
    assert "not even with allow_private" in r.stderr
