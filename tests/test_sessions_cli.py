"""`agentcli sessions list | show | search | export | delete | prune`: output, --json, exit codes,
and that reading commands never create a store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.messages import Message, TextPart, ToolCall, ToolResult, Usage
from agentcli.sessions.store import Header, open_store

DAY = 86400


def home() -> Path:
    return Path(os.environ["AGENTCLI_HOME"])


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(build_app(), ["sessions", *args], input=input)


def add(sid: str, texts: list[str], *, age_days: float = 0, model: str = "gpt-4.1-mini",
        tool: bool = False) -> None:
    store = open_store(home(), create=True)
    now = time.time() - age_days * DAY
    header = Header("openai", model, "Be brief.", None)
    for i, t in enumerate(texts):
        store.append(sid, Message.user(t), turn=None, header=header, now=now, provider="openai",
                     model=model, system="Be brief.")
        parts = (TextPart(f"reply {i}"),)
        if tool:
            parts += (ToolCall(f"c{i}", "calculator", '{"expression": "6*7"}'),)
        store.append(sid, Message("assistant", parts), turn=None, usage=Usage.reported(100, 7),
                     stop_reason="end_turn", now=now, provider="openai", model=model)
        if tool:
            store.append(sid, Message("tool", (ToolResult(f"c{i}", "calculator", "42"),)),
                         turn=None, now=now)
    store.close()


def test_reading_commands_on_no_store_create_nothing():
    for args in (["list"], ["list", "--json"], ["search", "x"]):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
    assert run("list", "--json").stdout.strip() == "[]"
    assert "no saved conversations yet" in run("list").stderr
    assert run("show", "abc").exit_code == 2
    assert list(home().iterdir()) == []


def test_list_is_newest_first_with_turns_tokens_and_first_words():
    add("a" * 32, ["old question"], age_days=3)
    add("b" * 32, ["new question about \x1b]52;c;evil\x07 things", "second"], age_days=1)
    result = run("list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "STARTED", "PROVIDER/MODEL", "TURNS", "TOKENS", "FIRST",
                                "WORDS"]
    assert lines[1].startswith("bbbbbbbb") and lines[2].startswith("aaaaaaaa")
    assert "openai/gpt-4.1-mini" in lines[1] and " 2 " in lines[1] and "214" in lines[1]
    assert "\x1b" not in result.stdout and "␛" in result.stdout  # titles are shown inert
    data = json.loads(run("list", "--json").stdout)
    assert [d["id"] for d in data] == ["b" * 32, "a" * 32]
    assert data[0]["turns"] == 2 and data[0]["usage"]["total_tokens"] == 214
    assert data[1]["first_words"] == "old question"
    limited = run("list", "-n", "1")
    assert len(limited.stdout.splitlines()) == 2 and "1 of 2 shown" in limited.stderr
    assert run("list", "-n", "0").exit_code == 2


def test_show_and_export_markdown_and_json():
    add("c" * 32, ["what is 6*7?"], tool=True)
    shown = run("show", "cccc")
    assert shown.exit_code == 0
    assert "## You\n\nwhat is 6*7?" in shown.stdout
    assert "**tool call** `calculator`" in shown.stdout and "**tool result** `calculator`" in \
        shown.stdout
    assert "Be brief." in shown.stdout and "100 in + 7 out" in shown.stdout
    md = run("export", "cccc", "--format", "markdown")
    assert md.stdout == shown.stdout
    data = json.loads(run("export", "cccc", "--format", "json").stdout)
    assert data["id"] == "c" * 32 and data["system"] == "Be brief."
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "tool"]
    assert data["messages"][1]["parts"][1] == {"kind": "tool_call", "id": "c0",
                                               "name": "calculator",
                                               "arguments": '{"expression": "6*7"}'}
    assert data["messages"][1]["usage"]["input_tokens"] == 100
    assert run("export", "cccc", "--format", "pdf").exit_code == 2


def test_export_to_a_file(tmp_path):
    add("d" * 32, ["hello"])
    out = tmp_path / "chat.json"
    assert run("export", "dddd", "-f", "json", "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text())["messages"][0]["parts"][0]["text"] == "hello"


def test_search_finds_text_in_any_message_with_the_match_marked():
    add("e" * 32, ["where is the config file?"])
    add("f" * 32, ["compute"], tool=True)
    result = run("search", "config")
    assert result.exit_code == 0
    assert result.stdout.startswith("eeeeeeee") and "[config]" in result.stdout
    hits = json.loads(run("search", "calculator", "--json").stdout)
    assert {h["session"] for h in hits} == {"f" * 32} and hits[0]["role"] == "assistant"
    assert run("search", "nothing-like-this").stderr.startswith("no message matches")
    assert run("search", '"unbalanced (NEAR').exit_code == 0


def test_delete_asks_or_needs_yes():
    add("1" * 32, ["keep"])
    add("2" * 32, ["remove me: zebracorn xylophonist"])
    refused = run("delete", "2222")
    assert refused.exit_code == 2 and "--yes" in refused.stderr  # no terminal to ask on
    assert run("delete", "2222", "--yes").exit_code == 0
    assert [d["id"][:4] for d in json.loads(run("list", "--json").stdout)] == ["1111"]
    # nothing of it is left in the files: not in freed pages, the search index or the WAL
    raw = b"".join(p.read_bytes() for p in home().iterdir())
    assert b"zebracorn" not in raw and b"xylophonist" not in raw and b"remove me" not in raw
    assert run("delete", "2222", "--yes").exit_code == 2
    assert run("delete", "zz", "--yes").exit_code == 2


def test_prune_deletes_only_sessions_older_than_the_age():
    add("3" * 32, ["ancient"], age_days=40)
    add("4" * 32, ["old"], age_days=31)
    add("5" * 32, ["recent"], age_days=2)
    dry = run("prune", "--older-than", "30d", "--dry-run")
    assert dry.exit_code == 0 and "would delete 2 sessions" in dry.stderr
    assert len(json.loads(run("list", "--json").stdout)) == 3
    done = run("prune", "--older-than", "30d", "--yes")
    assert done.exit_code == 0 and "deleted 2 sessions" in done.stderr
    assert [d["id"][:4] for d in json.loads(run("list", "--json").stdout)] == ["5555"]
    assert "no session" in run("prune", "--older-than", "1w", "--yes").stderr
    for bad in ("30", "thirty days", "0d", "5y"):
        result = run("prune", "--older-than", bad, "--yes")
        assert result.exit_code == 2 and "not an age" in result.stderr, bad


@pytest.mark.parametrize("answer, kept", [("y\n", 0), ("n\n", 1)])
def test_delete_asks_on_a_terminal(monkeypatch, answer, kept):
    import io
    import sys

    add("6" * 32, ["ask me"])

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    from agentcli.cli import sessions as sessions_cli

    monkeypatch.setattr(sessions_cli.sys, "stdin", Tty(answer))
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    with pytest.raises(SystemExit) as exit_:
        build_app()(["sessions", "delete", "6666"], prog_name="agentcli")
    assert exit_.value.code == 0
    assert "delete session 666666" in captured.getvalue()
    assert len(json.loads(run("list", "--json").stdout)) == kept


def test_transcripts_never_carry_live_control_sequences():
    hostile = "evil \x1b]52;c;aGk=\x07 \x9b2J \u202egnp.exe"
    add("7" * 32, [hostile])
    for args in (["show", "7777"], ["export", "7777", "-f", "json"], ["list", "--json"],
                 ["search", "evil", "--json"], ["search", "evil"], ["list"]):
        out = run(*args).stdout
        assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out, args
    exported = json.loads(run("export", "7777", "-f", "json").stdout)
    assert exported["messages"][0]["parts"][0]["text"] == hostile  # escaped, not lost


def test_unknown_usage_is_shown_as_unknown_never_zero():
    store = open_store(home(), create=True)
    sid = "8" * 32
    store.append(sid, Message.user("to a server without usage"), turn=None,
                 header=Header("ollama", "llama3.2", None, None))
    store.append(sid, Message("assistant", (TextPart("ok"),)), turn=None, usage=Usage.unknown())
    store.close()
    line = run("list").stdout.splitlines()[1]
    assert line.split()[5] == "?"  # id, date, time, provider/model, turns, TOKENS
    assert json.loads(run("list", "--json").stdout)[0]["usage"]["total_tokens"] is None


def test_show_renders_markdown_on_a_terminal(monkeypatch):
    import io
    import sys

    add("9" * 32, ["render **me**"])

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Tty()
    monkeypatch.setattr(sys, "stdout", screen)
    with pytest.raises(SystemExit):
        build_app()(["sessions", "show", "9999"], prog_name="agentcli")
    shown = screen.getvalue()
    assert "render" in shown and "**me**" not in shown and "## You" not in shown
