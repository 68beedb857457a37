"""The installed binary: `agentcli ask` runs edit and write (with -y; denied without a
terminal), shows each change on stderr, and `agentcli sessions undo ID [N]` restores the files,
refuses (exit 1, the conflict shown) when a file changed since, and says when there is nothing
to undo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fake_server import text, tool_calls

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
pytestmark = pytest.mark.skipif(BIN is None, reason="agentcli is not installed")


def agentcli(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "OPENAI_API_KEY": "sk-test"}
    return subprocess.run([BIN, *args], input=stdin, capture_output=True, timeout=60, env=env,
                          cwd=cwd, start_new_session=True)


def ask(server, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return agentcli("ask", "-p", "openai", "--base-url", server.openai_base_url, "-m",
                    "test-model", *args, cwd=cwd)


@pytest.fixture
def work(tmp_path):
    work = tmp_path / "work"  # not the folder holding the data folder (the sandbox hides it)
    work.mkdir()
    (work / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    return work


def edited_session(fake_server, work) -> str:
    fake_server.script(tool_calls(("edit", {"path": "notes.txt", "old": "beta", "new": "BETA"}),
                                  ("write", {"path": "docs/new.md", "content": "# new\n"})),
                       text("done"))
    proc = ask(fake_server, "-y", "--json", "edit my notes", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "notes.txt").read_text() == "alpha\nBETA\ngamma\n"
    err = proc.stderr.decode()
    assert "✎ changed notes.txt (+1 -1)" in err and "-beta\n+BETA" in err  # -y: shown here
    assert "✎ changed docs/new.md (+1 -0)" in err
    return json.loads(proc.stdout)["session"]


def test_sessions_undo_restores_the_newest_change_then_the_next(fake_server, work):
    sid = edited_session(fake_server, work)
    proc = agentcli("sessions", "undo", sid[:8], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert not (work / "docs" / "new.md").exists()
    assert "+++ /dev/null" in proc.stdout.decode() and "-# new" in proc.stdout.decode()
    assert "removed docs/new.md" in proc.stderr.decode()
    assert "1 more can be undone" in proc.stderr.decode()
    proc = agentcli("sessions", "undo", sid, "1", cwd=work)
    assert proc.returncode == 0 and (work / "notes.txt").read_text() == "alpha\nbeta\ngamma\n"
    assert "-BETA\n+beta" in proc.stdout.decode()
    proc = agentcli("sessions", "undo", sid, cwd=work)
    assert proc.returncode == 0 and "has no file change to undo" in proc.stderr.decode()


def test_sessions_undo_refuses_a_file_changed_since(fake_server, work):
    sid = edited_session(fake_server, work)
    (work / "notes.txt").write_text("alpha\nBETA\ngamma\nmine\n")
    proc = agentcli("sessions", "undo", sid, "2", cwd=work)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "+mine" in err and "not undone: 'notes.txt' changed after agentcli changed it" in err
    assert err.strip().splitlines()[-1].startswith("error: not undone")  # one line, last
    assert (work / "notes.txt").read_text() == "alpha\nBETA\ngamma\nmine\n"
    assert (work / "docs" / "new.md").exists()  # nothing at all was restored


def test_sessions_undo_counts_dry_run_and_bad_ids(fake_server, work):
    sid = edited_session(fake_server, work)
    proc = agentcli("sessions", "undo", sid, "3", cwd=work)
    assert proc.returncode == 2 and "only 2 file changes" in proc.stderr.decode()
    proc = agentcli("sessions", "undo", sid, "2", "--dry-run", cwd=work)
    assert proc.returncode == 0 and "would undo 2 file changes" in proc.stderr.decode()
    assert "-BETA" in proc.stdout.decode() and (work / "notes.txt").read_text() == \
        "alpha\nBETA\ngamma\n"
    assert agentcli("sessions", "undo", "ffffffff", cwd=work).returncode == 2
    assert agentcli("sessions", "undo", sid, "0", cwd=work).returncode == 2


def test_ask_without_a_terminal_denies_an_edit(fake_server, work):
    fake_server.script(tool_calls(("edit", {"path": "notes.txt", "old": "beta", "new": "x"})),
                       text("could not"))
    proc = ask(fake_server, "edit my notes", cwd=work)
    assert proc.returncode == 0
    assert "no terminal" in proc.stderr.decode()
    assert (work / "notes.txt").read_text() == "alpha\nbeta\ngamma\n"
