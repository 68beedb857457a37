"""Config: the example loads, precedence, every error names its file and key, `config` commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.cli import build_app
from agentcli.config import (ProviderProfile, config_path, load_settings, resolve_profile,
                             settings_as_dict)
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
        monkeypatch.setattr("agentcli.config._local_available", lambda: False)
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


def test_config_show_redacts_keys(tmp_path, monkeypatch):
    path = write(tmp_path, "providers:\n  v:\n    type: openai\n    api_key: sk-secret-123\n")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-secret")
    result = CliRunner().invoke(build_app(), ["config", "show", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "sk-secret-123" not in result.output and "sk-env-secret" not in result.output
    assert "redacted" in result.output
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
