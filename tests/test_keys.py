"""A key reaches only the host it belongs to: the official API, the base URL exported beside it,
or a profile that names its variable. Everything else gets a placeholder."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_clients import collect, sent_key
from fake_server import error, text

from agentcli.config import ProviderProfile, Settings, load_settings
from agentcli.errors import AuthenticationError, UsageError
from agentcli.providers.profiles import resolve_profile
from agentcli.providers._transport import PLACEHOLDER_KEY, resolve_api_key
from agentcli.providers.base import create_provider

OPENAI_KEY = "sk-openai-REAL-123"
ANTHROPIC_KEY = "sk-ant-REAL-456"


def ask_once(settings: Settings, server, **flags) -> dict:
    """Resolve the profile as `ask` does, make one request, return what the server got."""
    profile = resolve_profile(settings, **flags)
    server.script(text("ok"))
    collect(create_provider(profile, settings))
    return server.requests[-1]


def config(tmp_path: Path, text_: str) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(text_, encoding="utf-8")
    return load_settings(path)


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)


def test_base_url_flag_gets_a_placeholder_not_the_exported_key(fake_server, keys):
    request = ask_once(Settings(), fake_server, base_url=fake_server.openai_base_url)
    assert sent_key(request) == PLACEHOLDER_KEY


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_base_url_exported_beside_the_key_gets_it(fake_server, keys, monkeypatch, provider):
    url = fake_server.openai_base_url if provider == "openai" else fake_server.anthropic_base_url
    monkeypatch.setenv(f"{provider.upper()}_BASE_URL", url)
    request = ask_once(Settings(), fake_server, provider=provider)
    assert sent_key(request) == (OPENAI_KEY if provider == "openai" else ANTHROPIC_KEY)


def test_a_profile_with_its_own_base_url_gets_a_placeholder(fake_server, keys, tmp_path):
    settings = config(tmp_path, f"providers:\n  local:\n    type: openai\n"
                                f"    base_url: {fake_server.openai_base_url}\n")
    assert sent_key(ask_once(settings, fake_server, provider="local")) == PLACEHOLDER_KEY


def test_a_profile_naming_its_key_variable_sends_that_key(fake_server, keys, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("ROUTER_KEY", "sk-router-789")
    settings = config(tmp_path, "providers:\n  router:\n    type: openai\n"
                                "    base_url: http://127.0.0.1:9/v1\n"
                                "    api_key_env: ROUTER_KEY\n")
    # the profile named the variable: its key goes wherever the profile is pointed
    request = ask_once(settings, fake_server, provider="router",
                       base_url=fake_server.openai_base_url)
    assert sent_key(request) == "sk-router-789"


def test_anthropic_profile_with_a_base_url_flag_gets_a_placeholder(fake_server, keys):
    request = ask_once(Settings(), fake_server, provider="anthropic",
                       base_url=fake_server.anthropic_base_url)
    assert sent_key(request) == PLACEHOLDER_KEY


def test_base_url_without_p_is_an_openai_compatible_server_even_with_only_anthropic_key(
        fake_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    request = ask_once(Settings(), fake_server, base_url=fake_server.openai_base_url)
    assert request["path"] == "/v1/chat/completions"
    assert sent_key(request) == PLACEHOLDER_KEY


@pytest.mark.parametrize("kind, host", [("openai", "api.openai.com"),
                                        ("anthropic", "api.anthropic.com")])
def test_the_official_host_gets_the_default_variable(keys, kind, host):
    key, source = resolve_api_key(ProviderProfile(kind, kind), host)
    assert key == (OPENAI_KEY if kind == "openai" else ANTHROPIC_KEY)
    assert source == f"{kind.upper()}_API_KEY"
    pinned = ProviderProfile(kind, kind, base_url=f"https://{host}/v1", base_url_source="file")
    assert resolve_api_key(pinned, host)[0] == key
    lookalike = ProviderProfile(kind, kind, base_url=f"https://{host}.example.net/v1",
                                base_url_source="flag")
    assert resolve_api_key(lookalike, host) == (PLACEHOLDER_KEY, "placeholder")


def test_a_named_variable_that_is_unset_is_an_error_naming_it():
    with pytest.raises(UsageError, match="ROUTER_KEY is not set"):
        resolve_api_key(ProviderProfile("r", "openai", base_url="http://h/v1",
                                        api_key_env="ROUTER_KEY"), "api.openai.com")


# --- a 401 says where the key came from ----------------------------------------------------------

def test_401_after_a_placeholder_says_no_key_was_sent_and_how_to_send_one(fake_server, keys):
    fake_server.script(error(401, "missing key"))
    profile = resolve_profile(Settings(), base_url=fake_server.openai_base_url)
    with pytest.raises(AuthenticationError) as info:
        collect(create_provider(profile, Settings(max_retries=0)))
    hint = info.value.hint
    assert "no key was sent" in hint and "api_key_env" in hint
    assert f"OPENAI_BASE_URL={fake_server.openai_base_url}" in hint and OPENAI_KEY not in hint


def test_401_names_the_variable_the_key_came_from(fake_server, monkeypatch, tmp_path):
    monkeypatch.setenv("ROUTER_KEY", "sk-router-789")
    settings = config(tmp_path, f"providers:\n  router:\n    type: openai\n"
                                f"    base_url: {fake_server.openai_base_url}\n"
                                f"    api_key_env: ROUTER_KEY\n    max_tokens: 5\n")
    fake_server.script(error(401, "Incorrect API key provided: sk-router-789"))
    provider = create_provider(resolve_profile(settings, "router"),
                               Settings(max_retries=0))
    with pytest.raises(AuthenticationError) as info:
        collect(provider)
    shown = f"{info.value} {info.value.hint}"
    assert "ROUTER_KEY" in info.value.hint and "sk-router-789" not in shown
