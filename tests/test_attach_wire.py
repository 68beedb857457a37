"""`-a/--attach` end to end through the real SDKs against the loopback fake, which validates
the parts as the real APIs do (``fake_media.py``): the exact request parts for Chat Completions,
the Responses API and Anthropic; the type comes from the bytes; URLs; a server that refuses."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.config import ProviderProfile, Settings
from agentcli.errors import ProviderError
from agentcli.inputs import attachments
from agentcli.messages import MediaPart, Message, TextPart
from agentcli.providers.anthropic import AnthropicProvider
from agentcli.providers.openai_chat import convert_messages
from fake_server import text
from media_kit import GIF, JPEG, WEBP, b64, last_user, pdf, png, write

PNG, PDF = png(), pdf()
PROMPT_AND_NOTES = 'what?\n\n<file name="notes.md">\n# notes\n</file>'


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "dot.png", PNG)
    write(tmp_path, "doc.pdf", PDF)
    write(tmp_path, "notes.md", b"# notes\n")
    return tmp_path


def ask(server, *args, provider="openai", api=None, config=None, input=None):
    base = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    argv = ["ask", "-p", provider, "--base-url", base, "-m", "test-model", "--no-tools",
            *(["--api", api] if api else []), *(["--config", str(config)] if config else []),
            *args]
    return CliRunner().invoke(build_app(), argv, input=input)


# --- the exact parts, three wire formats ----------------------------------------------------------

def test_chat_completions_gets_image_url_and_file_parts(fake_server, files):
    fake_server.script(text("a dot"))
    result = ask(fake_server, "-a", "dot.png", "-a", "doc.pdf", "-a", "notes.md", "what?")
    assert result.exit_code == 0, result.output
    assert last_user(fake_server.requests[0]["body"])["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}},
        {"type": "file", "file": {"filename": "doc.pdf",
                                  "file_data": f"data:application/pdf;base64,{b64(PDF)}"}},
        {"type": "text", "text": PROMPT_AND_NOTES}]
    assert [(w, t, n) for w, t, n, _ in fake_server.media_seen[0]] == [
        ("user", "image/png", len(PNG)), ("user", "application/pdf", len(PDF))]


def test_responses_api_gets_input_image_and_input_file(fake_server, files):
    fake_server.script(text("a dot"))
    result = ask(fake_server, "-a", "dot.png", "-a", "doc.pdf", "-a", "notes.md", "what?",
                 api="responses")
    assert result.exit_code == 0, result.output
    body = fake_server.requests[0]["body"]
    assert fake_server.requests[0]["path"] == "/v1/responses"
    assert last_user(body, "input")["content"] == [
        {"type": "input_image", "image_url": f"data:image/png;base64,{b64(PNG)}",
         "detail": "auto"},
        {"type": "input_file", "filename": "doc.pdf",
         "file_data": f"data:application/pdf;base64,{b64(PDF)}"},
        {"type": "input_text", "text": PROMPT_AND_NOTES}]


def test_anthropic_gets_image_and_document_blocks(fake_server, files):
    fake_server.script(text("a dot"))
    result = ask(fake_server, "-a", "dot.png", "-a", "doc.pdf", "-a", "notes.md", "what?",
                 provider="anthropic")
    assert result.exit_code == 0, result.output
    content = last_user(fake_server.requests[0]["body"])["content"]
    assert content[:2] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": b64(PNG)}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": b64(PDF)}, "title": "doc.pdf"}]
    assert content[2]["type"] == "text" and content[2]["text"] == PROMPT_AND_NOTES


def test_a_message_without_attachments_is_sent_as_before(fake_server):
    """No -a: the user content stays a plain string on every wire (prompt caches, old
    servers)."""
    fake_server.script(text("1"), text("2"))
    assert ask(fake_server, "hi").exit_code == 0
    assert ask(fake_server, "hi", provider="anthropic").exit_code == 0
    assert last_user(fake_server.requests[0]["body"])["content"] == "hi"
    assert last_user(fake_server.requests[1]["body"])["content"][0]["text"] == "hi"


# --- typed by the bytes ----------------------------------------------------------------------------

def test_the_type_comes_from_the_bytes_not_the_name(fake_server, files):
    write(files, "photo.png", JPEG)  # a JPEG named .png
    write(files, "anim.txt", GIF)
    write(files, "pic.pdf", WEBP)
    write(files, "report.txt", PDF)
    write(files, "readme.png", "plain text, named like an image\n".encode())
    fake_server.script(text("ok"))
    result = ask(fake_server, *[a for f in ("photo.png", "anim.txt", "pic.pdf", "report.txt",
                                            "readme.png") for a in ("-a", f)], "what are these?",
                 provider="anthropic")
    assert result.exit_code == 0, result.output
    content = last_user(fake_server.requests[0]["body"])["content"]
    assert [(b["type"], b["source"]["media_type"]) for b in content[:4]] == [
        ("image", "image/jpeg"), ("image", "image/gif"), ("image", "image/webp"),
        ("document", "application/pdf")]
    assert content[4]["text"] == ('what are these?\n\n<file name="readme.png">\nplain text, '
                                  'named like an image\n</file>')


def test_several_text_files_are_several_named_blocks_before_piped_stdin(fake_server, files):
    write(files, "a.py", b"print('a')\n")
    write(files, "b \"q\".md", "# b \u00e9\n".encode())
    fake_server.script(text("ok"))
    result = ask(fake_server, "-a", "a.py", "-a", 'b "q".md', "compare", input="piped text\n")
    assert result.exit_code == 0, result.output
    assert last_user(fake_server.requests[0]["body"])["content"] == (
        "compare\n\n<file name=\"a.py\">\nprint('a')\n</file>\n\n"
        "<file name=\"b &quot;q&quot;.md\">\n# b \u00e9\n</file>\n\n<stdin>\npiped text\n</stdin>")


def test_attachments_alone_need_no_prompt(fake_server, files):
    fake_server.script(text("a dot"))
    result = ask(fake_server, "-a", "dot.png")
    assert result.exit_code == 0, result.output
    assert last_user(fake_server.requests[0]["body"])["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}}]


def test_dash_attaches_piped_bytes(fake_server, files):
    """`-a -`: an image on stdin is an image (named stdin), text on stdin the <stdin> block."""
    fake_server.script(text("a dot"), text("ok"))
    assert ask(fake_server, "-a", "-", "what is this?", input=PNG).exit_code == 0
    assert ask(fake_server, "-a", "-", "-a", "dot.png", "sum up", input="some text").exit_code == 0
    first = last_user(fake_server.requests[0]["body"])["content"]
    assert first[0] == {"type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}}
    assert first[1] == {"type": "text", "text": "what is this?"}
    second = last_user(fake_server.requests[1]["body"])["content"]
    assert second[1] == {"type": "text", "text": "sum up\n\n<stdin>\nsome text\n</stdin>"}


# --- a server or model that refuses --------------------------------------------------------------

def test_a_model_that_takes_no_images_is_one_line_naming_the_attachment(fake_server, files):
    fake_server.script(text("never used"))
    base = fake_server.openai_base_url
    result = CliRunner().invoke(build_app(), ["ask", "-p", "openai", "--base-url", base, "-m",
                                              "gpt-3.5-turbo", "--no-tools", "-a", "dot.png",
                                              "hi"])
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "image_url is only supported by certain models" in lines[0]
    assert f"the request carried dot.png (image/png, {len(PNG):,} bytes)" in lines[0]
    assert fake_server.pending == 1  # refused: no reply was used


def _anthropic(server) -> AnthropicProvider:
    profile = ProviderProfile(name="anthropic", type="anthropic", model="claude-sonnet-4-6",
                              base_url=server.anthropic_base_url, api_key_env="FAKE_KEY")
    return AnthropicProvider(profile, Settings(max_retries=0))


def test_the_fake_refuses_bytes_that_are_not_the_declared_type(fake_server, monkeypatch):
    """As Anthropic does: a JPEG sent as image/png is a 400, and the line names it."""
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    lying = MediaPart("image/png", "shot.png", JPEG, None, "x", len(JPEG))
    with pytest.raises(ProviderError) as caught:
        list(_anthropic(fake_server).stream([Message("user", (lying, TextPart("hi")))], []))
    assert "Image does not match the provided media type image/png" in caught.value.message
    assert "shot.png (image/png" in caught.value.hint


# --- URLs ------------------------------------------------------------------------------------------

class _Files(BaseHTTPRequestHandler):
    served = {"/dot.png": PNG, "/doc.pdf": PDF, "/notes.txt": b"remote notes\n"}
    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.hits.append(self.path)
        if self.path in ("/moved", "/to-metadata"):
            self.send_response(302)
            self.send_header("Location", "/dot.png" if self.path == "/moved" else
                             "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/slow.png":
            time.sleep(2)
        data = self.served.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that timed out and left (the slow URL) is the point of that test


@pytest.fixture
def web():
    httpd = _Quiet(("127.0.0.1", 0), _Files)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Files.hits = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _open_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"tools": {"options": {"web_fetch": {"allow_private": True}}}}))
    return cfg


def test_a_url_goes_as_a_url_where_the_api_takes_one(fake_server, web, tmp_path, monkeypatch):
    monkeypatch.setattr(attachments, "public_url", lambda url: True)  # as if on the internet
    cfg = _open_config(tmp_path)
    fake_server.script(text("1"), text("2"), text("3"))
    urls = ["-a", f"{web}/dot.png", "-a", f"{web}/doc.pdf", "-a", f"{web}/notes.txt", "what?"]
    assert ask(fake_server, *urls, api="responses", config=cfg).exit_code == 0
    assert ask(fake_server, *urls, provider="anthropic", config=cfg).exit_code == 0
    assert ask(fake_server, *urls, api="chat", config=cfg).exit_code == 0
    notes = f'what?\n\n<file name="{web}/notes.txt">\nremote notes\n</file>'
    assert last_user(fake_server.requests[0]["body"], "input")["content"] == [
        {"type": "input_image", "image_url": f"{web}/dot.png", "detail": "auto"},
        {"type": "input_file", "file_url": f"{web}/doc.pdf"},
        {"type": "input_text", "text": notes}]
    assert last_user(fake_server.requests[1]["body"])["content"][:2] == [
        {"type": "image", "source": {"type": "url", "url": f"{web}/dot.png"}},
        {"type": "document", "source": {"type": "url", "url": f"{web}/doc.pdf"},
         "title": "doc.pdf"}]
    # Chat Completions of a server that is not OpenAI's: the bytes, fetched (and typed) here
    assert last_user(fake_server.requests[2]["body"])["content"][:2] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}},
        {"type": "file", "file": {"filename": "doc.pdf",
                                  "file_data": f"data:application/pdf;base64,{b64(PDF)}"}}]


def test_a_url_of_your_own_network_goes_as_its_bytes(fake_server, web, tmp_path):
    """allow_private fetched it from 127.0.0.1, which no provider could: the bytes go."""
    fake_server.script(text("a dot"))
    assert ask(fake_server, "-a", f"{web}/dot.png", "hi", api="responses",
               config=_open_config(tmp_path)).exit_code == 0
    assert last_user(fake_server.requests[0]["body"], "input")["content"][0] == {
        "type": "input_image", "image_url": f"data:image/png;base64,{b64(PNG)}",
        "detail": "auto"}


def test_openai_itself_gets_image_urls_on_chat_completions_but_pdf_bytes():
    part = MediaPart("image/png", "https://example.com/a.png", PNG,
                     "https://example.com/a.png", "h", len(PNG))
    doc = MediaPart("application/pdf", "https://example.com/d.pdf", PDF,
                    "https://example.com/d.pdf", "h2", len(PDF))
    sent = convert_messages([Message("user", (part, doc, TextPart("x")))], None, urls=True)
    assert sent[0]["content"][0] == {"type": "image_url",
                                     "image_url": {"url": "https://example.com/a.png"}}
    assert str(sent[0]["content"][1]["file"]["file_data"]) == \
        f"data:application/pdf;base64,{b64(PDF)}"


def test_a_private_address_is_refused_and_a_missing_url_is_bad_input(fake_server, web, tmp_path):
    fake_server.script(text("never used"))
    refused = ask(fake_server, "-a", f"{web}/dot.png", "hi")
    assert refused.exit_code == 2
    assert f"attachment {web}/dot.png: refused: 127.0.0.1 is a loopback address" in \
        refused.stderr
    missing = ask(fake_server, "-a", f"{web}/nothing.png", "hi", config=_open_config(tmp_path))
    assert missing.exit_code == 2 and f"attachment {web}/nothing.png: HTTP 404" in missing.stderr
    assert fake_server.requests == [] and _Files.hits == ["/nothing.png"]


def test_redirects_are_followed_and_checked_again(fake_server, web, tmp_path):
    cfg = _open_config(tmp_path)
    fake_server.script(text("a dot"))
    assert ask(fake_server, "-a", f"{web}/moved", "hi", config=cfg).exit_code == 0
    assert last_user(fake_server.requests[0]["body"])["content"][0] == {
        "type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}}
    refused = ask(fake_server, "-a", f"{web}/to-metadata", "hi", config=cfg)
    assert refused.exit_code == 2
    assert "refused: 169.254.169.254 is a cloud metadata address" in refused.stderr
    assert len(fake_server.requests) == 1


def test_web_fetchs_timeout_holds_for_a_url(fake_server, web, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"tools": {"options": {"web_fetch": {
        "allow_private": True, "timeout": 0.5}}}}))
    result = ask(fake_server, "-a", f"{web}/slow.png", "hi", config=cfg)
    assert result.exit_code == 1 and f"timed out fetching {web}/slow.png" in result.stderr


def test_a_url_that_cannot_be_reached_is_a_runtime_error(fake_server, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = ask(fake_server, "-a", f"http://127.0.0.1:{port}/x.png", "hi",
                 config=_open_config(tmp_path))
    assert result.exit_code == 1
    assert f"attachment http://127.0.0.1:{port}/x.png: cannot connect to 127.0.0.1:{port}" \
        in result.stderr
    assert fake_server.requests == []


def test_json_output_is_unchanged_by_attachments(fake_server, files):
    fake_server.script(text("a dot"))
    result = ask(fake_server, "-a", "dot.png", "--json", "what?")
    assert result.exit_code == 0 and json.loads(result.stdout)["text"] == "a dot"


def test_the_spliced_body_is_the_same_json(fake_server, files):
    """A request with attachments is posted as JSON whose base64 was copied in, not re-encoded:
    the same document, with the SDKs' content type, on all three wires."""
    from agentcli.inputs.attachments import media_part
    from agentcli.providers.media import json_pieces, plain

    part = media_part(PNG, "image/png", "dot.png")
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": part.data_url}},
        {"type": "text", "text": 'quotes " \\ \u00e9 \U0001f600 "agentcli-media-x-0"'}]}],
        "n": 1.5, "ok": True, "none": None}
    assert json.loads(b"".join(json_pieces(body))) == json.loads(json.dumps(plain(body)))
    assert json_pieces({"model": "m", "messages": [{"role": "user", "content": "hi"}]}) is None
    fake_server.script(text("1"), text("2"), text("3"))
    assert ask(fake_server, "-a", "dot.png", "hi").exit_code == 0
    assert ask(fake_server, "-a", "dot.png", "hi", api="responses").exit_code == 0
    assert ask(fake_server, "-a", "dot.png", "hi", provider="anthropic").exit_code == 0
    assert [r["headers"]["content-type"] for r in fake_server.requests] == \
        ["application/json"] * 3
    # sent in pieces, as one body of a known length (never chunked: some servers refuse that)
    assert all(int(r["headers"]["content-length"]) == len(r["raw"]) and
               "transfer-encoding" not in r["headers"] for r in fake_server.requests)
    assert all(b64(PNG) in r["raw"].decode() for r in fake_server.requests)
