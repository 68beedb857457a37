"""`agentcli models`: both vendors' list shapes through the real SDKs, the day-long cache in the
data folder (a broken or stale one is fetched again; no key is ever written), output made
inert in every mode, and the REPL's `/model` completion reading it."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from fake_server import FakeProviderServer, html, wrong_shape
from test_repl import chat  # noqa: F401 - the REPL harness fixture
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.config import ProviderProfile
from agentcli.providers.models import cache_file


def models(*args: str):
    return CliRunner().invoke(build_app(), ["models", *args])


def gets(server) -> list[str]:
    return [r["path"] for r in server.requests if r["method"] == "GET"]


def home() -> Path:
    return Path(os.environ["AGENTCLI_HOME"])


def test_openai_list_is_printed_and_kept_for_a_day(fake_server):
    first = models("--base-url", fake_server.openai_base_url)
    assert first.exit_code == 0, first.output
    ids = [line.split()[0] for line in first.stdout.splitlines()]
    assert ids == fake_server.models
    assert "gpt-5.6-terra" in first.stdout and "openai" in first.stdout  # owned_by
    again = models("--base-url", fake_server.openai_base_url)
    assert again.stdout == first.stdout and "listed 0 s ago" in again.stderr
    assert gets(fake_server) == ["/v1/models"]  # the second came from the cache
    models("--base-url", fake_server.openai_base_url, "--refresh")
    assert gets(fake_server) == ["/v1/models"] * 2


def test_anthropic_pages_are_followed_to_the_end(fake_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_server.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    fake_server.models = [f"claude-test-{i}" for i in range(2500)]
    result = models("-p", "anthropic", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [m["id"] for m in out["models"]] == fake_server.models
    assert out["models"][0]["name"] == "Claude Test 0" and out["models"][0]["created"]
    assert (out["provider"], out["type"], out["cached"]) == ("anthropic", "anthropic", False)
    pages = gets(fake_server)
    assert len(pages) == 3 and "after_id=claude-test-999" in pages[1]
    assert all(r["headers"].get("anthropic-version") for r in fake_server.requests)


def test_a_server_that_always_says_more_is_stopped(fake_server):
    page = {"data": [{"type": "model", "id": "m1", "display_name": "M1",
                      "created_at": "2026-01-01T00:00:00Z"}],
            "has_more": True, "first_id": "m1", "last_id": "m1"}
    fake_server.models_reply = wrong_shape(page)
    result = models("-p", "anthropic", "--base-url", fake_server.anthropic_base_url)
    assert result.exit_code == 0 and result.stdout.split()[0] == "m1"
    assert len(gets(fake_server)) == 2  # the cursor did not move: no third request


def test_a_malformed_or_stale_cache_is_fetched_again(fake_server):
    profile = ProviderProfile("openai", "openai", base_url=fake_server.openai_base_url)
    path = cache_file(home(), profile)
    path.parent.mkdir(parents=True)
    for broken in ('{"version": 1, "models": [', '[[[[' * 5000, json.dumps(
            {"version": 1, "base_url": fake_server.openai_base_url, "fetched_at": 0,
             "models": [{"id": "old-model"}]})):
        path.write_text(broken)
        result = models("--base-url", fake_server.openai_base_url)
        assert result.exit_code == 0 and "gpt-5.6-terra" in result.stdout
        assert "old-model" not in result.stdout
    assert len(gets(fake_server)) == 3
    kept = json.loads(path.read_text())
    assert kept["base_url"] == fake_server.openai_base_url and kept["models"]
    assert time.time() - kept["fetched_at"] < 60 and oct(path.stat().st_mode)[-3:] == "600"


def test_the_cache_never_holds_the_key(fake_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-0123456789")
    assert models().exit_code == 0
    assert fake_server.requests[0]["headers"]["authorization"].endswith("SECRET-0123456789")
    files = list((home() / "models").iterdir())
    assert len(files) == 1 and "SECRET" not in files[0].read_text()


def test_model_names_are_made_inert_in_every_mode(fake_server):
    fake_server.models = ["evil\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u202emodel"]
    plain = models("--base-url", fake_server.openai_base_url)
    assert "\x1b" not in plain.stdout and "\u202e" not in plain.stdout and "evil" in plain.stdout
    as_json = models("--base-url", fake_server.openai_base_url, "--json")
    assert "\x1b" not in as_json.stdout and "\u202e" not in as_json.stdout
    assert json.loads(as_json.stdout)["models"][0]["id"] == fake_server.models[0]


@pytest.mark.parametrize("serve, said", [
    (dict(models=None), "/v1/models does not exist"),
    (dict(models_reply=html()), "instead of JSON"),
    (dict(models_reply=wrong_shape({"models": "none"})), "JSON that is not a model list"),
])
def test_a_server_without_a_usable_list_is_one_line(serve, said):
    with FakeProviderServer(**serve) as srv:
        result = models("--base-url", srv.openai_base_url)
    assert result.exit_code == 1 and said in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout


def test_the_local_provider_has_no_list():
    result = models("-p", "local")
    assert result.exit_code == 2 and "no server to ask" in result.stderr


def test_model_completion_in_the_repl_uses_the_server_list(chat, fake_server):  # noqa: F811
    from prompt_toolkit.document import Document

    from agentcli.ui.repl.prompt import ReplCompleter

    comp = ReplCompleter(chat().repl)

    def complete(s: str) -> list[str]:
        return [c.text for c in comp.get_completions(Document(s, len(s)), None)]

    assert complete("/model gpt-5.4") == []  # nothing known yet: fetched in the background
    for t in threading.enumerate():
        if t.name == "model-list":
            t.join(10)
    assert complete("/model gpt-5.") == ["gpt-5.4-mini", "gpt-5.6-terra"]
    assert complete("/model o4") == ["o4-mini"]
    assert gets(fake_server) == ["/v1/models"]  # fetched once, then read from the cache
