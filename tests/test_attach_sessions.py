"""Attachments in the session store: their bytes once per content hash (a blob table), put back
on resume so a resumed request carries the same bytes, named (never dumped) by
`sessions show/export`, and deleted with the last session that uses them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.config import load_settings
from fake_server import text
from media_kit import b64, last_user, pdf, png, write

PNG, PDF = png(), pdf(pages=3)


def run(*argv: str, input=None):
    return CliRunner().invoke(build_app(), list(argv), input=input)


def ask(server, *args, provider="openai", input=None):
    base = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    return run("ask", "-p", provider, "--base-url", base, "-m", "test-model", "--no-tools", *args,
               input=input)


def store() -> sqlite3.Connection:
    return sqlite3.connect(Path(load_settings().data_dir) / "sessions.db")


def blob_rows() -> list[tuple[str, int]]:
    with store() as db:
        return db.execute("SELECT media_type, size FROM blobs ORDER BY media_type").fetchall()


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "dot.png", PNG)
    write(tmp_path, "doc.pdf", PDF)
    return tmp_path


def images_sent(body) -> list[str]:
    return [p["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
            for p in m["content"] if p["type"] == "image_url"]


def test_the_same_image_twice_is_one_blob_and_resuming_sends_the_same_bytes(fake_server, files):
    fake_server.script(text("a dot"), text("the same dot"), text("still a dot"))
    assert ask(fake_server, "-a", "dot.png", "what is it?").exit_code == 0
    assert ask(fake_server, "-c", "-a", "dot.png", "and this?").exit_code == 0
    assert ask(fake_server, "-c", "and now?", provider="anthropic").exit_code == 0
    assert blob_rows() == [("image/png", len(PNG))]
    with store() as db:
        assert db.execute("SELECT COUNT(*) FROM session_blobs").fetchone()[0] == 1
        stored = db.execute("SELECT parts FROM messages WHERE role = 'user'").fetchall()
    assert all(b64(PNG) not in row[0] for row in stored)  # the bytes are not in the messages
    url = f"data:image/png;base64,{b64(PNG)}"
    assert images_sent(fake_server.requests[1]["body"]) == [url, url]
    anthropic = [b["source"]["data"] for m in fake_server.requests[2]["body"]["messages"]
                 for b in m["content"] if b["type"] == "image"]
    assert anthropic == [b64(PNG), b64(PNG)]


def test_sessions_show_and_export_name_attachments_without_their_bytes(fake_server, files):
    fake_server.script(text("read"))
    result = ask(fake_server, "--json", "-a", "dot.png", "-a", "doc.pdf", "summarise")
    session = json.loads(result.stdout)["session"]
    shown = run("sessions", "show", session).stdout
    assert f"- attachment: dot.png (image/png, {len(PNG):,} bytes)" in shown
    assert f"- attachment: doc.pdf (application/pdf, {len(PDF):,} bytes)" in shown
    markdown = run("sessions", "export", session).stdout
    assert "- attachment: dot.png (image/png" in markdown and b64(PNG)[:40] not in markdown
    exported = json.loads(run("sessions", "export", session, "--format", "json").stdout)
    parts = exported["messages"][0]["parts"]
    assert [p["kind"] for p in parts] == ["media", "media", "text"]
    assert parts[0]["name"] == "dot.png" and parts[0]["size"] == len(PNG)
    assert len(parts[0]["sha256"]) == 64 and "data" not in parts[0]


def test_a_message_of_attachments_alone_is_titled_by_their_names(fake_server, files):
    fake_server.script(text("a dot"))
    session = json.loads(ask(fake_server, "--json", "-a", "dot.png").stdout)["session"]
    listed = json.loads(run("sessions", "list", "--json").stdout)
    assert [s["first_words"] for s in listed if s["id"] == session] == ["dot.png"]


def test_a_blob_is_deleted_with_the_last_session_using_it(fake_server, files):
    fake_server.script(text("1"), text("2"))
    one = json.loads(ask(fake_server, "--json", "-a", "dot.png", "hi").stdout)["session"]
    two = json.loads(ask(fake_server, "--json", "-a", "dot.png", "-a", "doc.pdf",
                         "hi").stdout)["session"]
    assert len(blob_rows()) == 2
    assert run("sessions", "delete", two, "--yes").exit_code == 0
    assert blob_rows() == [("image/png", len(PNG))]  # the first session still holds it
    assert run("sessions", "delete", one, "--yes").exit_code == 0
    assert blob_rows() == []
    with store() as db:
        assert db.execute("SELECT COUNT(*) FROM session_blobs").fetchone()[0] == 0


def test_a_blob_that_is_gone_becomes_a_note_on_resume(fake_server, files):
    fake_server.script(text("a dot"), text("ok"))
    assert ask(fake_server, "-a", "dot.png", "what is it?").exit_code == 0
    with store() as db:
        db.execute("DELETE FROM blobs")
    result = ask(fake_server, "-c", "go on")
    assert result.exit_code == 0, result.output
    first = fake_server.requests[1]["body"]["messages"][0]
    assert first["content"] == (f"[attachment dot.png (image/png, {len(PNG):,} bytes) is no "
                                "longer in the session store]\nwhat is it?")
    assert last_user(fake_server.requests[1]["body"])["content"] == "go on"


def test_an_image_on_stdin_is_named_stdin(fake_server, files):
    fake_server.script(text("a dot"))
    result = ask(fake_server, "--json", "-a", "-", "what is it?", input=PNG)
    shown = run("sessions", "show", json.loads(result.stdout)["session"]).stdout
    assert f"- attachment: stdin (image/png, {len(PNG):,} bytes)" in shown

