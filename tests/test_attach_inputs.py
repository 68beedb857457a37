"""Bad attachments: each is exit 2 before any request, with one line naming the file and what
is wrong; a FIFO never blocks; nothing of a conversation is lost."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from fake_server import text
from media_kit import pdf, png, write

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")


def ask(server, *args, provider="openai", base=None, env=None):
    base = base or (server.openai_base_url if provider == "openai" else
                    server.anthropic_base_url)
    argv = ["ask", "-p", provider, *(["--base-url", base] if base != "none" else []),
            "-m", "test-model", "--no-tools", *args]
    return CliRunner().invoke(build_app(), argv, env=env)


def one_line(result, code: int = 2) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == code, result.output
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_missing_file(fake_server, here):
    line = one_line(ask(fake_server, "-a", "nope.png", "hi"))
    assert line.startswith("error: attachment nope.png: no such file")
    assert fake_server.requests == []


def test_a_directory(fake_server, here):
    (here / "pics").mkdir()
    line = one_line(ask(fake_server, "-a", "pics", "hi"))
    assert "attachment pics: is a directory" in line and "one by one" in line
    assert fake_server.requests == []


def test_a_device(fake_server, here):
    line = one_line(ask(fake_server, "-a", "/dev/zero", "hi"))
    assert "attachment /dev/zero: is a device, not a file" in line
    assert fake_server.requests == []


def test_a_socket(fake_server, here):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(here / "s.sock"))
    try:
        line = one_line(ask(fake_server, "-a", "s.sock", "hi"))
    finally:
        sock.close()
    assert "attachment s.sock: is a socket, not a file" in line


def test_a_fifo_is_refused_without_blocking(fake_server, tmp_path):
    """Nobody writes to the FIFO: opening it to read would wait forever. The installed binary
    must answer at once."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    proc = subprocess.run([BIN, "ask", "-p", "openai", "--base-url", fake_server.openai_base_url,
                           "-m", "test-model", "--no-tools", "-a", str(fifo), "hi"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
                          env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert f"attachment {fifo}: is a FIFO (named pipe), not a file" in proc.stderr
    assert fake_server.requests == []


def test_over_the_size_cap_says_the_cap(fake_server, here):
    (here / "config.yaml").write_text(yaml.safe_dump({"attach_limit": 1000}))
    write(here, "big.png", png(pad=2000))
    line = one_line(ask(fake_server, "--config", "config.yaml", "-a", "big.png", "hi"))
    assert "attachment big.png: is 2 KiB, over the 1,000 bytes attachment limit " \
        "(attach_limit)" in line and "raise attach_limit" in line
    assert fake_server.requests == []


def test_the_default_cap_is_20_mib(fake_server, here):
    with open(here / "huge.pdf", "wb") as f:
        f.write(b"%PDF-1.4\n")
        f.truncate(20 * 1024 * 1024 + 1)  # sparse: costs no disk
    line = one_line(ask(fake_server, "-a", "huge.pdf", "hi"))
    assert "attachment huge.pdf: is 20 MiB, over the 20 MiB attachment limit" in line


def test_unknown_binary_type(fake_server, here):
    write(here, "data.bin", b"\x00\x01\x02\x03binary")
    write(here, "latin1.txt", "caf\xe9".encode("latin-1"))
    for name in ("data.bin", "latin1.txt"):
        line = one_line(ask(fake_server, "-a", name, "hi"))
        assert f"attachment {name}: unknown binary type (agentcli attaches png, jpeg, gif, " \
               "webp, pdf or UTF-8 text)" in line
    assert fake_server.requests == []


@pytest.mark.parametrize("name,data", [("doc.pdf", pdf()), ("dot.png", png())])
def test_the_local_model_takes_no_images_or_pdfs(fake_server, here, name, data):
    write(here, name, data)
    line = one_line(ask(fake_server, "-a", name, "hi", provider="local", base="none"))
    assert f"attachment {name} (" in line and "the local model takes no images or PDFs" in line


def test_unreadable_file(fake_server):
    root = Path(tempfile.mkdtemp(prefix="agentcli-attach-"))  # a path anyone may traverse
    try:
        root.chmod(0o755)
        secret = write(root, "secret.png", png())
        secret.chmod(0)
        home = root / "home"
        home.mkdir(mode=0o777)
        home.chmod(0o777)
        argv = [BIN, "ask", "-p", "openai", "--base-url", fake_server.openai_base_url, "-m",
                "test-model", "--no-tools", "--no-save", "-a", str(secret), "hi"]
        if os.geteuid() == 0:  # root reads anything: run it as nobody
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("needs setpriv to drop root")
            argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
            probe = subprocess.run([*argv[:4], BIN, "--version"], capture_output=True, timeout=30)
            if probe.returncode != 0:  # e.g. a virtualenv in a private temporary folder
                pytest.skip("nobody cannot run this agentcli")
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30, env={**os.environ, "NO_COLOR": "1",
                                               "AGENTCLI_HOME": str(home)})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert proc.returncode == 2, proc.stderr
    assert f"attachment {secret}: cannot be read (Permission denied)" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and fake_server.requests == []


def test_anthropic_image_limit_is_checked_before_sending(fake_server, here):
    write(here, "photo.png", png(pad=4_000_000))  # base64: 5.3 MB > 5 MiB
    line = one_line(ask(fake_server, "-a", "photo.png", "hi", provider="anthropic"))
    assert "attachment photo.png (image/png, 4,000,0" in line
    assert "Anthropic takes images of at most 5 MiB base64-encoded (about 3.8 MiB of file)" \
        in line
    assert fake_server.requests == []


def test_anthropic_request_limit_counts_every_attachment(fake_server, here):
    write(here, "a.pdf", pdf(pad=13_000_000))
    write(here, "b.pdf", pdf(pad=13_000_000))
    line = one_line(ask(fake_server, "-a", "a.pdf", "-a", "b.pdf", "hi", provider="anthropic"))
    assert "attachment a.pdf, b.pdf: together 33.1 MiB base64-encoded, over Anthropic's " \
           "request limit of 32 MiB" in line
    assert fake_server.requests == []


def sparse_pdf(folder: Path, name: str, size: int) -> None:
    with open(folder / name, "wb") as f:
        f.write(b"%PDF-1.4\n")
        f.truncate(size)  # costs no disk


def test_openais_own_limits_apply_to_its_api_only(fake_server, here, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (here / "config.yaml").write_text(yaml.safe_dump({"attach_limit": 60 * 1024 * 1024}))
    sparse_pdf(here, "big.pdf", 40 * 1024 * 1024)
    sparse_pdf(here, "a.pdf", 30 * 1024 * 1024)
    sparse_pdf(here, "b.pdf", 30 * 1024 * 1024)
    line = one_line(ask(fake_server, "--config", "config.yaml", "-a", "big.pdf", "hi",
                        base="none"))  # OpenAI itself: refused here, nothing sent anywhere
    assert "attachment big.pdf (application/pdf, 41,943,040 bytes): OpenAI takes files of at " \
           "most 50 MiB base64-encoded (about 37.5 MiB of file)" in line
    line = one_line(ask(fake_server, "--config", "config.yaml", "-a", "a.pdf", "-a", "b.pdf",
                        "hi", base="none"))
    assert "attachment a.pdf, b.pdf: together 80 MiB base64-encoded, over OpenAI's request " \
           "limit of 50 MiB" in line
    fake_server.script(text("read it"))  # another server decides for itself
    result = ask(fake_server, "--config", "config.yaml", "-a", "big.pdf", "hi")
    assert result.exit_code == 0, result.output


def test_a_bad_attachment_loses_nothing_of_the_conversation(fake_server, here):
    fake_server.script(text("first answer"))
    first = ask(fake_server, "--json", "first question")
    assert first.exit_code == 0
    session = json.loads(first.stdout)["session"]
    bad = ask(fake_server, "-c", "-a", "missing.pdf", "second question")
    assert bad.exit_code == 2 and "attachment missing.pdf: no such file" in bad.stderr
    shown = CliRunner().invoke(build_app(), ["sessions", "show", session])
    assert "first question" in shown.stdout and "first answer" in shown.stdout
    assert "second question" not in shown.stdout
    assert len(fake_server.requests) == 1


def test_a_resumed_conversation_with_images_is_refused_for_the_local_model(fake_server, here):
    write(here, "dot.png", png())
    fake_server.script(text("a dot"))
    assert ask(fake_server, "-a", "dot.png", "what is it?").exit_code == 0
    line = one_line(ask(fake_server, "-c", "and now?", provider="local", base="none"))
    assert "attachment dot.png (image/png" in line and "the local model takes no" in line
    assert len(fake_server.requests) == 1


def test_the_local_adapter_refuses_an_attachment_in_one_line():
    """The adapter's own check, behind ask's and chat's."""
    from agentcli.errors import UsageError
    from agentcli.inputs.attachments import media_part
    from agentcli.messages import Message
    from agentcli.providers.local.tool_format import chat_messages

    part = media_part(png(), "image/png", "dot.png")
    with pytest.raises(UsageError, match="attachment dot.png .*: the local model takes no"):
        chat_messages([Message("user", (part,))], "system")


def test_stdin_can_be_attached_once(fake_server, here):
    line = one_line(CliRunner().invoke(build_app(), [
        "ask", "-p", "openai", "--base-url", fake_server.openai_base_url, "--no-tools",
        "-a", "-", "-a", "-", "hi"], input=b"text"))
    assert "attachment -: stdin can be attached only once" in line
