"""Terminal escapes from outside (manifests, tool output, MCP servers, the config, saved
conversations) never reach a pipe raw: `agentcli ... | less -R` would replay them just like a
terminal. Each command runs as the installed binary with stdout and stderr on pipes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fake_server import text

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
DEMO = Path(__file__).parent / "mcp_servers" / "demo_server.py"
# OSC 52 (clipboard write), a screen clear, BEL, the C1 CSI and a right-to-left override
ESCAPES = "clip \x1b]52;c;ZXZpbA==\x07 clear \x1b[2J bell \x07 csi \x9b31m bidi \u202eexe.txt"
YAML_ESCAPES = "clip \\e]52;c;ZXZpbA==\\a clear \\e[2J bell \\a csi \\x9b31m bidi \\u202eexe.txt"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def run(tmp: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    if BIN is None:
        pytest.skip("agentcli is not installed as a command")
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=tmp, stdin=subprocess.DEVNULL, start_new_session=True,
                          env={**os.environ, "NO_COLOR": "1"})


def assert_inert(r: subprocess.CompletedProcess, *shown: str) -> None:
    """Nothing raw in either stream, and the text itself was printed, made visible."""
    assert r.returncode == 0, r.stderr
    for ch in RAW:
        assert ch not in r.stdout and ch not in r.stderr, (ch, r.stdout, r.stderr)
    for words in shown:
        assert words in r.stdout, r.stdout


@pytest.fixture
def evil_tools(tmp_path) -> Path:
    """A plugin whose description, and whose output, carry every escape; in a folder whose
    name carries one too."""
    folder = tmp_path / "tools\x1b[2J"
    folder.mkdir()
    (folder / "evil.yaml").write_text(
        f'name: evil\ndescription: "Evil {YAML_ESCAPES}"\nentrypoint: evil:run\n'
        "confirm: never\nparameters: {type: object}\n")
    (folder / "evil.py").write_text(f"def run():\n    return {('out ' + ESCAPES)!r}\n")
    return folder


@pytest.fixture
def evil_config(tmp_path) -> Path:
    """An MCP server whose tool's description and title carry every escape, and a role and a
    system prompt that do."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": {"demo": {
        "command": sys.executable, "args": [str(DEMO)], "env": {"DEMO_EXTRA": "escapes"}}}},
        allow_unicode=True) + f'roles:\n  evil: "Role {YAML_ESCAPES}"\n'
        f'system: "System {YAML_ESCAPES}"\n')
    return cfg


def test_tools_list_piped(tmp_path, evil_tools, evil_config):
    r = run(tmp_path, "tools", "list", "--tools-dir", str(evil_tools), "--config", str(evil_config))
    assert_inert(r, "Evil clip ␛]52;c;ZXZpbA==␇ clear ␛[2J", "demo__evil", "<U+202E>")
    assert sum("Evil clip" in line for line in r.stdout.splitlines()) == 2  # plugin + MCP


def test_tools_show_piped(tmp_path, evil_tools):
    r = run(tmp_path, "tools", "show", "evil", "--tools-dir", str(evil_tools))
    assert_inert(r, "Evil clip ␛]52", "csi \\x9b31m", "tools␛[2J")


def test_tools_run_piped(tmp_path, evil_tools):
    r = run(tmp_path, "tools", "run", "evil", "--tools-dir", str(evil_tools))
    assert_inert(r, "out clip ␛]52;c;ZXZpbA==␇")


def test_tools_validate_piped(tmp_path, evil_tools):
    r = run(tmp_path, "tools", "validate", str(evil_tools))
    assert_inert(r, "ok: evil (", "tools␛[2J")


def test_mcp_list_piped(tmp_path, evil_config):
    r = run(tmp_path, "mcp", "list", "--config", str(evil_config))
    assert_inert(r, "demo__evil  Evil clip ␛]52;c;ZXZpbA==␇ clear ␛[2J bell ␇ csi \\x9b31m")


def test_roles_list_piped(tmp_path, evil_config):
    r = run(tmp_path, "roles", "list", "--config", str(evil_config))
    assert_inert(r, "evil  Role clip ␛]52")


def test_config_show_piped(tmp_path, evil_config):
    r = run(tmp_path, "config", "show", "--config", str(evil_config))
    assert_inert(r, "System clip \\e]52", "Role clip \\e]52")  # YAML's own escapes


@pytest.fixture
def evil_session(fake_server, tmp_path) -> Path:
    """A saved conversation whose prompt and reply carry every escape."""
    fake_server.script(text("Reply " + ESCAPES))
    r = run(tmp_path, "ask", "-p", "openai", "--base-url", fake_server.openai_base_url,
            "-m", "m", "--no-tools", "Prompt " + ESCAPES)
    assert r.returncode == 0, r.stderr
    return tmp_path


@pytest.mark.parametrize("command,shown", [
    (("sessions", "list"), "Prompt clip ␛]52"),
    (("sessions", "search", "clip"), "[clip] ␛]52"),
    (("sessions", "show", "{id}"), "Reply clip ␛]52"),
    (("sessions", "export", "{id}"), "Reply clip ␛]52"),
    (("sessions", "export", "{id}", "--format", "json"), "Reply clip \\u001b]52"),
    (("sessions", "list", "--json"), "Prompt clip \\u001b]52"),
])
def test_sessions_piped(evil_session, command, shown):
    import json

    listed = run(evil_session, "sessions", "list", "--json")
    sid = json.loads(listed.stdout)[0]["id"]
    r = run(evil_session, *(part.format(id=sid) for part in command))
    assert_inert(r, shown)
