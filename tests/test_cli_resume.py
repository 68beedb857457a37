"""The resume notice says "the history is converted" only when the wire format changes (the
profiles' types differ), not when one OpenAI-type profile follows another."""

from __future__ import annotations

from fake_server import text
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.messages import Message, Usage
from agentcli.runtime import resume_notice
from agentcli.sessions.recorder import Resumed
from agentcli.sessions.store import SessionInfo


def test_converted_only_between_wire_formats(fake_server, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "providers:\n"
        f"  fast: {{type: openai, base_url: '{fake_server.openai_base_url}', model: m1}}\n"
        f"  slow: {{type: openai, base_url: '{fake_server.openai_base_url}', model: m2}}\n"
        f"  claude: {{type: anthropic, base_url: '{fake_server.anthropic_base_url}', "
        "model: c1}\n")
    fake_server.script(text("one"), text("two"), text("three"))

    def ask(*args: str):
        result = CliRunner().invoke(build_app(), ["ask", "--config", str(cfg), "--no-tools",
                                                  *args])
        assert result.exit_code == 0, result.output
        return result.stderr

    ask("-p", "fast", "first")
    other_openai = ask("-p", "slow", "-c", "second")
    assert "it was with fast · m1, now slow · m2" in other_openai
    assert "converted" not in other_openai  # both speak OpenAI's format: nothing was converted
    to_anthropic = ask("-p", "claude", "-c", "third")
    assert "now claude · c1 (the history is converted)" in to_anthropic
    assert fake_server.requests[-1]["path"] == "/v1/messages"


def resumed(provider: str) -> Resumed:
    info = SessionInfo("ab" * 16, 0.0, 0.0, provider, "m", None, None, "hi", 1, 2, Usage())
    return Resumed(info, [Message.user("hi")], [0])


def test_without_settings_only_built_in_names_are_known():
    assert "converted" in resume_notice(resumed("openai"), "anthropic", "m")
    assert "converted" in resume_notice(resumed("local"), "openai", "m")
    assert "converted" not in resume_notice(resumed("groq"), "openai", "m")  # type unknown
    assert "converted" not in resume_notice(resumed("openai"), "openai", "m2")
