"""`/attach` in the chat REPL (prompt-toolkit pipe input, the loopback fake, the real adapters):
what is attached goes with the next message only, a bad file is one error line, `chat -a`
attaches to the first message, paths complete, /retry sends the same bytes again, and
attachments the provider cannot take keep waiting."""

from __future__ import annotations

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from agentcli.ui.repl.prompt import ReplCompleter
from fake_server import error, text
from media_kit import b64, pdf, png, write
from scripted import ScriptedProvider, reply
import test_repl

harness = test_repl.chat  # the REPL harness (test_repl's fixture ``chat``)

PNG = png()
IMAGE = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}}


def user_contents(request) -> list:
    return [m["content"] for m in request["body"]["messages"] if m["role"] == "user"]


def test_attach_goes_with_the_next_message_only(harness, fake_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "dot.png", PNG)
    write(tmp_path, "notes.md", b"remember the milk\n")
    fake_server.script(text("a dot"), text("fine"))
    h = harness()
    h.run("/attach dot.png\r/attach notes.md\rwhat is this?\rthanks\r")
    assert f"attached dot.png (image/png, {len(PNG):,} bytes); 1 attachment for your next " \
           "message" in h.err
    assert "2 attachments for your next message: dot.png (image/png" in h.err
    first, second = fake_server.requests
    assert user_contents(first) == [[IMAGE, {"type": "text", "text": (
        'what is this?\n\n<file name="notes.md">\nremember the milk\n</file>')}]]
    assert user_contents(second)[-1] == "thanks"


def test_a_bad_attachment_is_one_error_line_and_nothing_changes(harness, fake_server, tmp_path,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pics").mkdir()
    h = harness()
    h.run("/attach nope.png\r/attach pics\r/attach\r")
    errors = [ln for ln in h.err.splitlines() if ln.startswith("error:")]
    assert errors == ["error: attachment nope.png: no such file (hint: check the path)",
                      "error: attachment pics: is a directory (hint: attach the files in it "
                      "one by one)"]
    assert "nothing attached" in h.err and fake_server.requests == []
    assert h.repl.attached == [] and len(h.repl.conversation) == 0


def test_list_and_detach(harness, fake_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "dot.png", PNG)
    fake_server.script(text("plain"))
    h = harness()
    h.run("/attach dot.png\r/attach\r/detach\rhi\r")
    assert "1 attachment for your next message: dot.png" in h.err
    assert "dropped 1 attachment" in h.err
    assert user_contents(fake_server.requests[0]) == ["hi"]


def test_chat_dash_a_attaches_to_the_first_message(harness, fake_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "doc.pdf", pdf())
    fake_server.script(text("read"))
    h = harness(attach=("doc.pdf",))
    h.run("summarise\r")
    assert "attached: doc.pdf (application/pdf" in h.err and "first message" in h.err
    content = user_contents(fake_server.requests[0])[0]
    assert content[0]["type"] == "file" and content[0]["file"]["filename"] == "doc.pdf"
    assert content[1] == {"type": "text", "text": "summarise"}


def test_attach_completes_paths(harness, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "diagram.png", PNG)
    (tmp_path / "docs").mkdir()
    completer = ReplCompleter(harness().repl)
    found = [c.text for c in completer.get_completions(Document("/attach d"), CompleteEvent())]
    assert sorted(found) == ["iagram.png", "ocs"]
    names = [c.text for c in completer.get_completions(Document("/att"), CompleteEvent())]
    assert names == ["/attach"]


def test_retry_sends_the_attachment_again(harness, fake_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "dot.png", PNG)
    fake_server.script(error(400, "bad request"), text("a dot"))
    h = harness()
    h.run("/attach dot.png\rwhat?\r/retry\r")
    assert "retrying: what?" in h.err and "a dot" in h.out
    assert user_contents(fake_server.requests[1]) == [[IMAGE, {"type": "text", "text": "what?"}]]


def test_attachments_a_provider_cannot_take_keep_waiting(harness, tmp_path, monkeypatch):
    """The local model takes no images: the message is not sent, the attachment waits (so the
    user can switch provider or /detach), and nothing joins the conversation."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "dot.png", PNG)
    scripted = ScriptedProvider([reply("hello")])
    h = harness(provider="local", base_url=None, model=None,
             make_provider=lambda settings, profile: scripted)
    h.run("/attach dot.png\rwhat is it?\r/detach\rhi\r")
    assert "attachment dot.png (image/png" in h.err
    assert "the local model takes no images or PDFs" in h.err
    assert "dropped 1 attachment" in h.err
    assert [m.text for m in h.repl.conversation.messages] == ["hi", "hello"]
