"""`mcp_servers:` config, tool names, `agentcli mcp add|remove` editing, and the lazy SDK import."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.config import load_settings, settings_as_dict
from agentcli.errors import ConfigError, UsageError
from agentcli.mcp.config import parse_servers, pattern_server_names, prefixed_name

API_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def test_stdio_and_http_entries_parse_like_other_hosts_json():
    # an entry from another host's "mcpServers" JSON, copied as it is
    specs = parse_servers({
        "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
        "docs": {"type": "http", "url": "https://example.com/mcp",
                 "headers": {"Authorization": "Bearer ${DOCS_TOKEN}"}, "timeout": 5},
    })
    assert specs["time"].transport == "stdio" and specs["time"].args == ("mcp-server-time",)
    assert specs["time"].startup_timeout == 10 and specs["time"].timeout == 60
    assert specs["docs"].transport == "http" and specs["docs"].timeout == 5


@pytest.mark.parametrize("entry, key, words", [
    ({"command": "x", "colour": 1}, "mcp_servers.s.colour", "unknown setting"),
    ({"command": "x", "url": "http://h"}, "mcp_servers.s", "either command"),
    ({}, "mcp_servers.s", "either command"),
    ({"url": "ftp://h"}, "mcp_servers.s.url", "http"),
    ({"command": "x", "headers": {"A": "b"}}, "mcp_servers.s.headers", "url servers"),
    ({"command": "x", "args": "not a list"}, "mcp_servers.s.args", "list"),
    ({"command": "x", "startup_timeout": 0}, "mcp_servers.s.startup_timeout", "seconds"),
    ({"command": "x", "type": "sse"}, "mcp_servers.s.type", "not supported"),
])
def test_bad_entries_name_file_and_key(entry, key, words):
    with pytest.raises(ConfigError) as e:
        parse_servers({"s": entry}, "/etc/agentcli.yaml")
    assert f"at key '{key}'" in e.value.message and "/etc/agentcli.yaml" in e.value.message
    assert words in e.value.message


@pytest.mark.parametrize("name", ["a__b", "-x", "", "x" * 33, "sp ace"])
def test_server_names_that_would_break_prefixed_tool_names_are_refused(name):
    with pytest.raises(ConfigError):
        parse_servers({name: {"command": "x"}})


def test_config_file_with_a_bad_server_fails_at_load(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mcp_servers:\n  t:\n    command: x\n    url: http://h\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert "mcp_servers.t" in e.value.message


def test_prefixed_names_are_valid_for_both_apis_and_stay_distinct():
    assert prefixed_name("time", "get_current_time") == "time__get_current_time"
    odd = prefixed_name("fs", "read.file/v2")
    assert API_NAME.match(odd) and odd.startswith("fs__read_file_v2")
    long_a = prefixed_name("server", "a" * 80 + "1")
    long_b = prefixed_name("server", "a" * 80 + "2")
    assert long_a != long_b and len(long_a) == 64 and API_NAME.match(long_a)
    assert prefixed_name("s", "a.b") != prefixed_name("s", "a_b")


def test_tool_patterns_reach_the_servers_they_name():
    servers = ["time", "git", "timer"]
    assert pattern_server_names(("time__*",), servers) == ["time"]
    assert pattern_server_names(("tim*__now",), servers) == ["time", "timer"]
    assert pattern_server_names(("*",), servers) == servers
    assert pattern_server_names(("calculator",), servers) == []


def test_environment_references_are_read_at_start_and_a_missing_one_is_named(monkeypatch):
    spec = parse_servers({"d": {"url": "https://h/mcp",
                                "headers": {"Authorization": "Bearer ${DOCS_TOKEN}",
                                            "X-Team": "${TEAM:-core}"}}})["d"]
    monkeypatch.setenv("DOCS_TOKEN", "s3cret")
    assert spec.resolved().headers == {"Authorization": "Bearer s3cret", "X-Team": "core"}
    assert "s3cret" not in spec.describe()
    monkeypatch.delenv("DOCS_TOKEN")
    with pytest.raises(UsageError) as e:
        spec.resolved()
    assert "DOCS_TOKEN" in e.value.message
    assert "mcp_servers.d.headers.Authorization" in e.value.message


def test_config_show_redacts_literal_secrets_but_shows_references(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": {
        "a": {"url": "https://h/mcp", "headers": {
            "Authorization": "Bearer sk-abcdefghijklmnop123", "X-Api-Key": "${KEY}",
            "Accept": "text/plain"}}}}))
    shown = settings_as_dict(load_settings(cfg))["mcp_servers"]["a"]["headers"]
    assert shown == {"Authorization": "***redacted***", "X-Api-Key": "${KEY}",
                     "Accept": "text/plain"}


# --- agentcli mcp add / remove --------------------------------------------------------------------

CONFIG = """\
# my settings (this comment must survive)
default_provider: openai   # trailing comment
tools:
  allow:
    - calculator           # harmless
mcp_servers:
  # the time server
  time:
    command: uvx
    args: [mcp-server-time]
"""


def run_cli(*args: str):
    return CliRunner().invoke(build_app(), list(args))


def test_add_and_remove_keep_comments_order_and_other_keys(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG)
    r = run_cli("mcp", "add", "git", "--config", str(cfg), "--", "uvx", "mcp-server-git",
                "--repository", ".")
    assert r.exit_code == 0, r.output
    text = cfg.read_text()
    assert text.startswith(CONFIG)  # everything that was there, byte for byte
    assert yaml.safe_load(text)["mcp_servers"]["git"] == {
        "command": "uvx", "args": ["mcp-server-git", "--repository", "."]}
    r = run_cli("mcp", "add", "docs", "--config", str(cfg), "--url", "https://h/mcp",
                "-H", "Authorization: Bearer ${DOCS_TOKEN}")
    assert r.exit_code == 0, r.output
    assert load_settings(cfg).mcp_servers["docs"]["headers"] == {
        "Authorization": "Bearer ${DOCS_TOKEN}"}
    for name in ("git", "docs"):
        assert run_cli("mcp", "remove", name, "--config", str(cfg)).exit_code == 0
    assert cfg.read_text() == CONFIG


def test_add_creates_the_file_and_refuses_duplicates_and_literal_keys(tmp_path):
    cfg = tmp_path / "new" / "config.yaml"
    assert run_cli("mcp", "add", "t", "--config", str(cfg), "--", "srv").exit_code == 0
    assert yaml.safe_load(cfg.read_text()) == {"mcp_servers": {"t": {"command": "srv"}}}
    again = run_cli("mcp", "add", "t", "--config", str(cfg), "--", "other")
    assert again.exit_code == 2 and "already configured" in again.output
    assert run_cli("mcp", "add", "t", "--force", "--config", str(cfg), "--",
                   "other").exit_code == 0
    literal = run_cli("mcp", "add", "d", "--config", str(cfg), "--url", "https://h",
                      "-H", "Authorization: Bearer sk-0123456789abcdefghij")
    assert literal.exit_code == 2 and "does not store keys" in literal.output
    assert "sk-0123456789" not in cfg.read_text()
    neither = run_cli("mcp", "add", "x", "--config", str(cfg))
    assert neither.exit_code == 2 and "either a command" in neither.output


def test_remove_unknown_server_is_a_usage_error(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG)
    r = run_cli("mcp", "remove", "nope", "--config", str(cfg))
    assert r.exit_code == 2 and "no MCP server named 'nope'" in r.output and "time" in r.output
    assert cfg.read_text() == CONFIG


def test_list_with_nothing_configured(tmp_path):
    r = run_cli("mcp", "list")
    assert r.exit_code == 0 and "no MCP servers configured" in r.output


# --- the SDK stays out of commands that need no server --------------------------------------------

@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["config", "show"],
                                  ["config", "path"], ["mcp", "--help"], ["tools", "--help"]])
def test_mcp_sdk_is_not_imported(argv, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mcp_servers:\n  t: {command: never-started}\n")
    code = ("import sys; sys.argv = ['agentcli', *%r]\n"
            "from agentcli.__main__ import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('mcp', 'mcp_types', 'ruamel', 'starlette', 'httpx2'))\n"
            "print('HEAVY=' + ','.join(heavy))" % (argv,))
    env = {**os.environ, "AGENTCLI_CONFIG": str(cfg)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert "HEAVY=\n" in out.stdout, out.stdout[-500:] + out.stderr[-500:]


def test_a_server_named_off_is_quoted_and_a_boolean_name_is_a_config_error(tmp_path):
    """YAML reads an unquoted `off:` as false: `mcp add` quotes such names, and a hand-written
    one is one clear error, not a server called False."""
    cfg = tmp_path / "config.yaml"
    assert run_cli("mcp", "add", "off", "--config", str(cfg), "--", "srv").exit_code == 0
    assert yaml.safe_load(cfg.read_text()) == {"mcp_servers": {"off": {"command": "srv"}}}
    cfg.write_text("mcp_servers:\n  off: {command: srv}\n")
    r = run_cli("mcp", "list", "--config", str(cfg))
    assert r.exit_code == 2 and "reads as false" in r.output and "quote the name" in r.output


@pytest.mark.parametrize("value", ["[a]", "foo"])
def test_add_and_remove_refuse_an_mcp_servers_that_is_not_a_mapping(tmp_path, value):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"mcp_servers: {value}\n")
    for args in (["add", "x", "--config", str(cfg), "--", "srv"],
                 ["remove", "x", "--config", str(cfg)]):
        r = run_cli("mcp", *args)
        assert r.exit_code == 2 and "expected a mapping" in r.output and "bug" not in r.output
    assert cfg.read_text() == f"mcp_servers: {value}\n"  # untouched


@pytest.mark.parametrize("flag,value,hint", [
    ("-e", "GITHUB_TOKEN=ghp_0123456789abcdef",
     "-e 'GITHUB_TOKEN=${GITHUB_TOKEN}' (single quotes keep the shell from expanding it)"),
    ("-H", "Authorization: Bearer sk-0123456789abcdefghij",
     "-H 'Authorization: Bearer ${MY_TOKEN}' (single quotes keep the shell from expanding it)"),
])
def test_a_literal_secret_gets_a_hint_in_the_syntax_of_its_own_flag(tmp_path, flag, value, hint):
    """`-e KEY=literal` used to be told to write 'KEY: Bearer ${MY_TOKEN}', a header."""
    cfg = tmp_path / "config.yaml"
    where = ["--", "srv"] if flag == "-e" else ["--url", "https://h/mcp"]
    r = run_cli("mcp", "add", "s", "--config", str(cfg), flag, value, *where)
    assert r.exit_code == 2 and "does not store keys" in r.output
    assert hint in " ".join(r.output.split())
    assert not cfg.exists()
