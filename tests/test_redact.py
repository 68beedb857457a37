"""A password in a URL is never printed nor stored: `--base-url http://u:PASSWORD123@host/v1`
shows `u:***@` in the error line, in `--json`, in the connection-refused line, in `config show`,
`mcp list`, warnings, and the session store never holds it."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import typer
from fake_server import drop, error
from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.cli.common import run_command
from agentcli.config import base_url_problem
from agentcli.errors import ProviderError, redact_url

from test_cli import agentcli, one_error_line

SECRET = "PASSWORD123"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("text, shown", [
    ("http://u:PASSWORD123@host/v1", "http://u:***@host/v1"),
    ("cannot connect to https://me:p@ss@127.0.0.1:9/v1: refused",
     "cannot connect to https://me:***@127.0.0.1:9/v1: refused"),
    ("'ftp://u:pw@h'", "'ftp://u:***@h'"),
    ("https://ghp_TOKEN@host/x", "https://***@host/x"),  # a user name alone is often a token
    ("a http://u:a@b and http://v:c@d", "a http://u:***@b and http://v:***@d"),
    ("http://host/v1?mail=a@b.c", "http://host/v1?mail=a@b.c"),  # no userinfo: unchanged
    ("write to a@b.c", "write to a@b.c"),
    ("http://localhost:8080/v1", "http://localhost:8080/v1"),
])
def test_redact_url_masks_the_password_and_nothing_else(text, shown):
    assert redact_url(text) == shown


def test_every_error_message_and_hint_is_redacted_when_made():
    e = ProviderError("the server at http://u:PASSWORD123@h/v1 said no",
                      hint="export OPENAI_BASE_URL=http://u:PASSWORD123@h/v1")
    assert SECRET not in e.message and SECRET not in e.hint and SECRET not in str(e)
    assert "http://u:***@h/v1" in e.message


def test_a_base_url_with_a_space_is_quoted_without_its_password():
    problem = base_url_problem("http://u:PASS WORD@host/v1")
    assert problem is not None and "PASS" not in problem and "u:***@host" in problem


def test_the_internal_error_line_is_redacted_too(capsys):
    def bug() -> int:
        raise RuntimeError("boom at http://u:PASSWORD123@h/v1")

    with pytest.raises(typer.Exit):
        run_command(bug)
    err = capsys.readouterr().err
    assert "internal error" in err and SECRET not in err and "u:***@h" in err


def test_the_connection_refused_line_and_json_hide_the_password():
    url = f"http://u:{SECRET}@127.0.0.1:{closed_port()}/v1"
    plain = agentcli("ask", "--no-tools", "--base-url", url, "hi")
    assert plain.returncode == 1
    line = one_error_line(plain.stderr)
    assert "connection refused" in line and "u:***@127.0.0.1" in line and SECRET not in line
    as_json = agentcli("ask", "--json", "--no-tools", "--base-url", url, "hi")
    assert as_json.returncode == 1 and SECRET.encode() not in as_json.stdout + as_json.stderr
    assert "u:***@127.0.0.1" in json.loads(as_json.stdout)["error"]


def test_an_http_error_line_and_its_key_hint_hide_the_password(fake_server):
    url = fake_server.openai_base_url.replace("http://", f"http://u:{SECRET}@")
    fake_server.script(error(401, "who are you"))
    result = CliRunner().invoke(build_app(), ["ask", "--no-tools", "--base-url", url, "hi"],
                                env={"OPENAI_API_KEY": "sk-x"})
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert "HTTP 401" in line and "u:***@127.0.0.1" in line and SECRET not in result.output


def test_the_session_store_never_holds_the_password(fake_server, tmp_path):
    """A reply cut off mid-stream is kept with its turn's error (which names the server)."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("max_retries: 0\n")
    url = fake_server.openai_base_url.replace("http://", f"http://u:{SECRET}@")
    fake_server.script(drop("half a reply"))
    result = CliRunner().invoke(build_app(), ["ask", "--config", str(cfg), "--no-tools",
                                              "--base-url", url, "hi"])
    assert result.exit_code == 1 and "half a reply" in result.stdout
    assert "closed mid-reply" in result.stderr and SECRET not in result.stderr
    home = Path(os.environ["AGENTCLI_HOME"])
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name.startswith("sessions.db") for p in files)
    for p in files:
        assert SECRET.encode() not in p.read_bytes(), p
    from agentcli.sessions.store import open_store

    store = open_store(home, create=False, readonly=True)
    sid = store.latest().id
    assert "u:***@127.0.0.1" in (store.turns(sid)[-1]["error"] or "")
    store.close()


def test_config_show_masks_passwords_in_every_url(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"providers:\n  proxy:\n    type: openai\n    base_url: http://u:{SECRET}@h/v1\n"
                   f"mcp_servers:\n  docs:\n    url: https://bob:{SECRET}@mcp.example/mcp\n")
    result = CliRunner().invoke(build_app(), ["config", "show", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert "http://u:***@h/v1" in result.stdout and "https://bob:***@mcp.example/mcp" in result.stdout


def test_mcp_list_masks_the_password_of_a_server_url(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"mcp_servers:\n  docs:\n    url: http://bob:{SECRET}@127.0.0.1:{closed_port()}"
                   "/mcp\n    startup_timeout: 5\n")
    proc = agentcli("mcp", "list", "--config", str(cfg))
    out = (proc.stdout + proc.stderr).decode()
    assert "bob:***@127.0.0.1" in out and SECRET not in out, out
    home = Path(os.environ["AGENTCLI_HOME"])
    logs = [p for p in home.rglob("*.log")]
    assert logs and all(SECRET.encode() not in p.read_bytes() for p in logs)  # the server's log


def test_warnings_and_notices_mask_passwords(capsys):
    from agentcli.ui.render import notice, warn

    warn(f"mcp server x: cannot connect to http://bob:{SECRET}@h/mcp")
    notice(f"using http://bob:{SECRET}@h/v1")
    err = capsys.readouterr().err
    assert SECRET not in err and err.count("bob:***@h") == 2


def test_a_usage_error_about_the_url_hides_the_password():
    proc = agentcli("ask", "--no-tools", "--base-url", f"ftp://u:{SECRET}@h/v1", "hi")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "ftp://u:***@h/v1" in line and SECRET not in line


def test_a_provider_notice_in_ask_is_masked(capsys):
    from agentcli.messages import Notice
    from agentcli.ui.ask_output import AskOutput

    for level in ("info", "warning"):
        AskOutput(False).handle(Notice(f"retried http://u:{SECRET}@h/v1 without streaming", level))
    err = capsys.readouterr().err
    assert err.count("u:***@h") == 2 and SECRET not in err
