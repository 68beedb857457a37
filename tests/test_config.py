"""Config: the example loads, precedence, every error names its file and key, `config` commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.config import ProviderProfile, config_path, load_settings, settings_as_dict
from agentcli.providers.profiles import resolve_profile
from agentcli.errors import ConfigError, UsageError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_example_config_loads_and_documents_every_setting():
    settings = load_settings(ROOT / "config.example.yaml")
    assert {"openai", "anthropic", "ollama", "local"} <= set(settings.providers)
    assert settings.providers["ollama"].base_url == "http://localhost:11434/v1"
    assert settings.tools.options["web_fetch"]["allow_private"] is False
    text = (ROOT / "config.example.yaml").read_text()
    for key in settings_as_dict(settings):
        if key not in ("config_file", "config_dir", "data_dir"):
            assert key in text, f"config.example.yaml does not mention {key}"


@pytest.mark.parametrize("text,key", [
    ("bogus: 1\n", "bogus"),
    ("max_steps: ten\n", "max_steps"),
    ("max_steps: true\n", "max_steps"),
    ("max_steps: 0\n", "max_steps"),
    ("providers:\n  x:\n    type: openai\n    colour: red\n", "providers.x.colour"),
    ("providers:\n  x:\n    type: gemini\n", "providers.x.type"),
    ("tools:\n  allow: calculator\n", "tools.allow"),
    ("tools:\n  options:\n    file_read: 3\n", "tools.options.file_read"),
    ("default_provider: nowhere\n", "default_provider"),
    ("max_response_bytes: 0\n", "max_response_bytes"),
    ("max_response_bytes: 1.5\n", "max_response_bytes"),
    ("providers:\n  x:\n    type: openai\n    base_url: notaurl\n", "providers.x.base_url"),
    ("providers:\n  x:\n    type: openai\n    base_url: 'http://[::1'\n", "providers.x.base_url"),
    ("providers:\n  x:\n    type: openai\n    base_url: localhost:11434/v1\n",
     "providers.x.base_url"),
])
def test_bad_config_names_file_and_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    assert f"'{key}'" in str(info.value)


def test_unsafe_yaml_tags_are_refused(tmp_path):
    path = write(tmp_path, "system: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(path)


def test_explicit_missing_file_is_an_error_but_default_missing_is_fine(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    monkeypatch.setenv("AGENTCLI_HOME", str(tmp_path))
    assert load_settings().config_file is None
    assert config_path() == (tmp_path / "config.yaml", False)


def test_env_config_path_and_home(tmp_path, monkeypatch):
    path = write(tmp_path, "max_steps: 3\n")
    monkeypatch.setenv("AGENTCLI_CONFIG", str(path))
    s = load_settings()
    assert s.max_steps == 3 and s.config_file == path


def test_provider_resolution_order(monkeypatch):
    s = load_settings()
    with pytest.raises(UsageError) as info:
        monkeypatch.setattr("agentcli.providers.profiles.local_available", lambda: False)
        resolve_profile(s)
    assert "OPENAI_API_KEY" in info.value.hint and "agentcli[local]" in info.value.hint
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    assert resolve_profile(s).type == "anthropic"
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    assert resolve_profile(s).type == "openai"
    # flags beat everything
    p = resolve_profile(s, "anthropic", "m1", "http://127.0.0.1:9")
    assert (p.type, p.model, p.base_url) == ("anthropic", "m1", "http://127.0.0.1:9")
    with pytest.raises(UsageError, match="unknown provider 'gemini'"):
        resolve_profile(s, "gemini")


def test_env_base_url_applies_when_profile_has_none(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    s = load_settings(write(tmp_path, "providers:\n  o:\n    type: openai\n"
                                      "  pinned:\n    type: openai\n    base_url: http://x/v1\n"))
    assert resolve_profile(s, "o").base_url == "http://127.0.0.1:1/v1"
    assert resolve_profile(s, "pinned").base_url == "http://x/v1"
    assert resolve_profile(s, "pinned", base_url="http://flag/v1").base_url == "http://flag/v1"


def test_a_literal_api_key_in_the_file_is_refused_naming_file_and_key(tmp_path, monkeypatch):
    path = write(tmp_path, "providers:\n  v:\n    type: openai\n    api_key: sk-secret-123\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value) and "'providers.v.api_key'" in str(info.value)
    assert "api_key_env" in info.value.hint and "sk-secret-123" not in str(info.value)
    result = CliRunner().invoke(build_app(), ["config", "show", "--config", str(path)])
    assert result.exit_code == 2 and "sk-secret-123" not in result.output


def test_config_show_never_prints_a_key(tmp_path, monkeypatch):
    path = write(tmp_path, "providers:\n  v:\n    type: openai\n    api_key_env: MY_KEY\n")
    monkeypatch.setenv("MY_KEY", "sk-env-secret")
    result = CliRunner().invoke(build_app(), ["config", "show", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "sk-env-secret" not in result.output and "api_key_set: true" in result.output
    assert repr(ProviderProfile("v", "openai", api_key="sk-x")).count("sk-x") == 0


def test_config_init_refuses_to_overwrite(tmp_path):
    target = tmp_path / "sub" / "config.yaml"
    runner = CliRunner()
    first = runner.invoke(build_app(), ["config", "init", "--config", str(target)])
    assert first.exit_code == 0 and target.exists()
    target.write_text("max_steps: 4\n")
    second = runner.invoke(build_app(), ["config", "init", "--config", str(target)])
    assert second.exit_code == 2 and "--force" in second.output
    assert target.read_text() == "max_steps: 4\n"
    third = runner.invoke(build_app(), ["config", "init", "--config", str(target), "--force"])
    assert third.exit_code == 0
    assert load_settings(target).providers  # the example, written back, loads


def test_config_show_lists_local_model_settings_only_for_local_profiles():
    shown = settings_as_dict(load_settings(ROOT / "config.example.yaml"))["providers"]
    assert "n_ctx" not in shown["openai"] and "n_ctx" not in shown["anthropic"]
    assert shown["local"]["n_ctx"] == 4096


def test_max_response_bytes_is_a_setting(tmp_path):
    assert load_settings().max_response_bytes == 16 * 1024 * 1024
    assert load_settings(write(tmp_path, "max_response_bytes: 1000\n")).max_response_bytes == 1000


def test_agentcli_provider_that_names_nothing_is_blamed_on_the_variable(monkeypatch):
    monkeypatch.setenv("AGENTCLI_PROVIDER", "nosuch")
    with pytest.raises(UsageError) as info:
        load_settings()
    assert "AGENTCLI_PROVIDER is 'nosuch'" in str(info.value)
    assert not isinstance(info.value, ConfigError) and "config.yaml" not in str(info.value)
    assert "openai" in info.value.hint


@pytest.mark.parametrize("url", ["notaurl", "http://[::1", "ftp://host/v1", "http://", "http://h:x/",
                                 "http://h /v1"])
def test_a_bad_base_url_flag_is_a_usage_error_at_once(url):
    with pytest.raises(UsageError) as info:
        resolve_profile(load_settings(), base_url=url)
    assert str(info.value).startswith("--base-url ") and "http://localhost" in info.value.hint


def test_a_bad_base_url_variable_is_blamed_on_the_variable(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:11434")
    with pytest.raises(UsageError, match="^OPENAI_BASE_URL 'localhost:11434' must start with"):
        resolve_profile(load_settings(), "openai")


def test_base_url_without_p_means_an_openai_compatible_server(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    notices: list[str] = []
    p = resolve_profile(load_settings(), base_url="http://127.0.0.1:9/v1", notice=notices.append)
    assert (p.name, p.type, p.base_url, p.base_url_source) == (
        "openai", "openai", "http://127.0.0.1:9/v1", "flag")
    claude = load_settings(write(tmp_path, "default_provider: claude\n"
                                           "providers:\n  claude: {type: anthropic}\n"))
    p = resolve_profile(claude, base_url="http://127.0.0.1:9/v1", notice=notices.append)
    assert p.type == "openai" and "not the default profile 'claude'" in notices[-1]
    ollama = load_settings(write(tmp_path, "default_provider: ollama\nproviders:\n  ollama:\n"
                                           "    type: openai\n    model: llama3.2\n"))
    p = resolve_profile(ollama, base_url="http://127.0.0.1:9/v1")
    assert (p.name, p.model, p.base_url) == ("ollama", "llama3.2", "http://127.0.0.1:9/v1")
    assert resolve_profile(claude, "claude", base_url="http://127.0.0.1:9").type == "anthropic"


def test_base_url_precedence_flag_then_profile_then_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    s = load_settings(write(tmp_path, "providers:\n  o:\n    type: openai\n"
                                      "  pinned:\n    type: openai\n    base_url: http://x/v1\n"))
    assert (resolve_profile(s, "o").base_url, resolve_profile(s, "o").base_url_source) == (
        "http://127.0.0.1:1/v1", "env")
    assert resolve_profile(s, "pinned").base_url_source == "file"
    assert resolve_profile(s, "pinned", base_url="http://f/v1").base_url_source == "flag"


def test_provider_precedence_flag_then_variable_then_file(tmp_path, monkeypatch):
    path = write(tmp_path, "default_provider: claude\nproviders:\n  claude: {type: anthropic}\n"
                           "  mine: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\n")
    assert resolve_profile(load_settings(path)).name == "claude"
    monkeypatch.setenv("AGENTCLI_PROVIDER", "mine")
    assert resolve_profile(load_settings(path)).name == "mine"
    assert resolve_profile(load_settings(path), "openai").name == "openai"
