"""The session store on real media that cannot be written: a read-only mount (a bind mount in a
private mount namespace, so root cannot write either), a file and folder another user cannot
write (the command run as `nobody`), and a full disk (a 1 MiB tmpfs). Reading commands work,
`ask -c` resumes and answers, and one warning line says the conversation is not being saved and
why. Skipped where mounts or user switching are not allowed."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest
from fake_server import text

from agentcli.sessions import db
from agentcli.sessions.store import open_store

from test_cli import BIN

UNSHARE = shutil.which("unshare")
SETPRIV = shutil.which("setpriv")


def _can_mount() -> bool:
    if UNSHARE is None or os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as d:
        probe = subprocess.run([UNSHARE, "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {d}"],
                               capture_output=True, timeout=30)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs root and mount namespaces")


def run_script(script: str, env: dict[str, str], prefix: list[str]) -> None:
    proc = subprocess.run([*prefix, "sh", "-c", script], env={**os.environ, "NO_COLOR": "1", **env},
                          capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr.decode()


def steps(out: Path, commands: dict[str, str]) -> str:
    """A shell script running each command with its stdout, stderr and exit code kept in
    ``out``/NAME.{out,err,rc}."""
    return "".join(f"{cmd} >{out}/{name}.out 2>{out}/{name}.err </dev/null; "
                   f"echo $? >{out}/{name}.rc\n" for name, cmd in commands.items())


def result(out: Path, name: str) -> tuple[int, str, str]:
    return (int((out / f"{name}.rc").read_text()), (out / f"{name}.out").read_text(),
            (out / f"{name}.err").read_text())


def first_conversation(home: Path, server, config: Path) -> None:
    server.script(text("first answer"))
    proc = subprocess.run([BIN, "ask", "--config", str(config), "--no-tools", "--base-url",
                           server.openai_base_url, "hello from the first run"],
                          env={**os.environ, "AGENTCLI_HOME": str(home)}, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stderr


def readers_and_resume(server, config: Path, out: Path, ask: str) -> str:
    server.script(text("second answer"))
    url = server.openai_base_url
    return steps(out, {
        "list": f"{ask} sessions list",
        "search": f"{ask} sessions search first",
        "show": f"{ask} sessions show $({ask} sessions list --json | cut -c10-17)",
        "resume": f"{ask} ask --config {config} --no-tools --base-url {url} -c 'and again'",
    })


def assert_read_and_resumed(server, out: Path, why: str) -> None:
    code, stdout, stderr = result(out, "list")
    assert code == 0 and "hello from the first run" in stdout, stderr
    code, stdout, stderr = result(out, "search")
    assert code == 0 and "first" in stdout, stderr
    code, stdout, stderr = result(out, "show")
    assert code == 0 and "hello from the first run" in stdout and "first answer" in stdout, stderr
    code, stdout, stderr = result(out, "resume")
    assert code == 0 and stdout == "second answer\n", stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "not being saved" in warnings[0] and why in warnings[0], stderr
    assert "error" not in stderr and "Traceback" not in stderr
    sent = server.requests[-1]["body"]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [
        "hello from the first run", "and again"]  # the conversation was read and continued


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@needs_mount
def test_a_read_only_mount_is_read_and_the_turn_is_answered(fake_server, tmp_path):
    home, out, config = tmp_path / "home", tmp_path / "out", tmp_path / "config.yaml"
    home.mkdir(), out.mkdir()
    config.write_text("max_retries: 0\n")
    first_conversation(home, fake_server, config)
    before = digest(home)
    script = f"mount --bind -o ro {home} {home}\n" + readers_and_resume(fake_server, config, out,
                                                                         BIN)
    run_script(script, {"AGENTCLI_HOME": str(home)}, [UNSHARE, "-m"])
    assert_read_and_resumed(fake_server, out, "the session store is read-only")
    assert digest(home) == before  # nothing written (and no -wal/-shm left behind)


@pytest.mark.skipif(SETPRIV is None or os.geteuid() != 0, reason="needs root and setpriv")
def test_a_store_another_user_cannot_write_is_read_and_the_turn_is_answered(fake_server,
                                                                             tmp_path):
    """File 0644 and folder 0755, both root's: `nobody` may read them, not write them."""
    shared = Path(tempfile.mkdtemp(prefix="agentcli-ro-"))  # tmp_path is root's, mode 0700
    try:
        home, out, config = shared / "home", shared / "out", shared / "config.yaml"
        home.mkdir(), out.mkdir()
        config.write_text("max_retries: 0\n")
        first_conversation(home, fake_server, config)
        for path, mode in ((shared, 0o755), (home, 0o755), (config, 0o644),
                           (home / "sessions.db", 0o644), (out, 0o777)):
            path.chmod(mode)
        before = digest(home)
        as_nobody = [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups", BIN]
        probe = subprocess.run([*as_nobody, "--version"], capture_output=True, timeout=30)
        if probe.returncode != 0:
            pytest.skip("nobody cannot run this agentcli")
        script = readers_and_resume(fake_server, config, out, " ".join(as_nobody))
        run_script(script, {"AGENTCLI_HOME": str(home), "HOME": str(shared)}, [])
        assert_read_and_resumed(fake_server, out, "the session store is read-only")
        assert digest(home) == before
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@needs_mount
def test_a_full_disk_says_full_and_the_turn_is_answered(fake_server, tmp_path):
    home, out, config = tmp_path / "home", tmp_path / "out", tmp_path / "config.yaml"
    home.mkdir(), out.mkdir()
    config.write_text("max_retries: 0\n")
    fake_server.script(text("first answer"))
    script = (f"mount -t tmpfs -o size=1m tmpfs {home}\n"
              f"{BIN} ask --config {config} --no-tools --base-url {fake_server.openai_base_url} "
              f"'hello from the first run' >/dev/null </dev/null || exit 3\n"
              f"dd if=/dev/zero of={home}/filler bs=4096 2>/dev/null\n"  # until the disk is full
              + readers_and_resume(fake_server, config, out, BIN))
    run_script(script, {"AGENTCLI_HOME": str(home)}, [UNSHARE, "-m"])
    assert_read_and_resumed(fake_server, out, "the disk holding the session store is full")
    assert "disk I/O error" not in result(out, "resume")[2]


def test_an_io_error_on_a_full_disk_is_called_full(tmp_path, monkeypatch):
    """SQLite's own code for the -shm file that could not grow (as on the tmpfs above)."""
    e = sqlite3.OperationalError("disk I/O error")
    e.sqlite_errorname = "SQLITE_IOERR_SHMSIZE"
    e.sqlite_errorcode = 4874
    path = tmp_path / "sessions.db"
    assert "disk I/O error" in db.describe_failure(e, path)  # this disk has room: as it is

    class Full:
        f_flag, f_bavail, f_frsize = 0, 3, 4096

    monkeypatch.setattr(db.os, "statvfs", lambda p: Full())
    assert db.describe_failure(e, path) == (
        f"the disk holding the session store is full ({path}): free some space")
    assert "full" in db.describe_failure(OSError(28, "No space left on device"), path)
    Full.f_flag = os.ST_RDONLY  # a read-only mount reports no free space: not "full"
    e.sqlite_errorname = "SQLITE_READONLY"
    assert "read-only" in db.describe_failure(e, path)


def test_a_store_opened_for_writing_says_why_it_is_read_only(tmp_path, monkeypatch):
    open_store(tmp_path, create=True).close()
    real_access = os.access
    monkeypatch.setattr(db.os, "access",
                        lambda p, mode: False if mode == os.W_OK else real_access(p, mode))
    store = open_store(tmp_path, create=True)
    assert store.read_only == f"the session store is read-only ({tmp_path / 'sessions.db'})"
    assert store.latest() is None  # reads work
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store.conn.execute("INSERT INTO schema_version VALUES (9)")
    store.close()
    monkeypatch.undo()
    writable = open_store(tmp_path, create=True)
    assert writable.read_only is None
    writable.close()
