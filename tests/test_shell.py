"""The shell tool end to end through `agentcli ask` (the installed binary, the fake provider),
and the settings that shape it: --sandbox, config `sandbox:`, manifest keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentcli.config import load_settings
from agentcli.errors import ConfigError, PluginError
from agentcli.toolrun.manifest import check_manifest, tool_from_manifest
from fake_server import text, tool_calls
from sandbox_kit import ALL, sh

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")


def ask(server, cwd: Path, *args: str, extra_env: dict | None = None):
    env = {**os.environ, "NO_COLOR": "1", **(extra_env or {})}
    return subprocess.run([BIN, "ask", "-y", "-p", "openai", "--base-url",
                           server.openai_base_url, "-m", "test-model", *args], input=b"",
                          capture_output=True, timeout=60, cwd=cwd, env=env,
                          start_new_session=True)


def tool_result(server) -> str:
    body = server.requests[-1]["body"]
    return [m for m in body["messages"] if m["role"] == "tool"][-1]["content"]


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def test_ask_runs_the_shell_in_the_default_sandbox(fake_server, project, tmp_path):
    if sys.platform.startswith("linux") and not (shutil.which("bwrap") or _landlock()):
        pytest.skip("no sandbox on this machine: the refusal is tested in test_sandbox.py")
    outside = tmp_path / "outside.txt"
    fake_server.script(tool_calls(("shell", {"command": f"echo hi > made.txt; cat made.txt; "
                                             f"echo x > {outside}"})), text("done"))
    proc = ask(fake_server, project, "make a file")
    assert proc.returncode == 0, proc.stderr
    result = tool_result(fake_server)
    assert result.startswith("exit code ") and "--- stdout ---\nhi" in result
    assert (project / "made.txt").exists() and not outside.exists()  # (bwrap: a private /tmp)
    assert b"sandbox off" not in proc.stderr


def _landlock() -> bool:
    from agentcli.toolrun.host import landlock

    return landlock.abi() > 0


def test_sandbox_off_is_said_once_and_lifts_the_walls(fake_server, project, tmp_path):
    outside = tmp_path / "outside.txt"
    call = ("shell", {"command": f"echo x > {outside}"})
    fake_server.script(tool_calls(call), tool_calls(call), text("done"))
    proc = ask(fake_server, project, "--sandbox", "off", "go")
    assert proc.returncode == 0, proc.stderr
    assert outside.exists()
    assert proc.stderr.count(b"sandbox off: tools run with your full permissions") == 1


def test_a_bad_sandbox_mode_is_a_usage_error(fake_server, project):
    proc = ask(fake_server, project, "--sandbox", "none", "hi")
    assert proc.returncode == 2
    assert b"--sandbox must be one of read-only, workspace-write, off" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_config_sandbox_is_checked_and_used(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("sandbox: read-only\n")
    assert load_settings(cfg).sandbox == "read-only"
    assert load_settings().sandbox == "workspace-write"
    cfg.write_text("sandbox: nowhere\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert e.value.key == "sandbox" and "read-only, workspace-write, off" in e.value.message


def _manifest(**extra) -> dict:
    return {"name": "t", "description": "d", "entrypoint": "t:run",
            "parameters": {"type": "object", "properties": {"c": {"type": "string"}}}, **extra}


@pytest.mark.parametrize("extra,field", [
    ({"sandbox": {"network": "yes"}}, "sandbox/network"),
    ({"sandbox": {"root": True}}, "sandbox/root"),
    ({"sandbox": []}, "sandbox"),
    ({"limits": {"memory_mb": 10}}, "limits/memory_mb"),
    ({"limits": {"processes": 0}}, "limits/processes"),
    ({"limits": {"cpu": 1}}, "limits/cpu"),
    ({"command_arg": "nope"}, "command_arg"),
])
def test_bad_sandbox_keys_in_a_manifest_name_the_field(extra, field):
    with pytest.raises(PluginError) as e:
        check_manifest(_manifest(**extra), "m.yaml")
    assert f"field '{field}'" in e.value.message


def test_only_built_ins_may_confine_their_own_commands(tmp_path):
    (tmp_path / "t.py").write_text("def run(c):\n    return c\n")
    (tmp_path / "t.yaml").write_text(json.dumps(_manifest(sandbox={"commands": True})))
    with pytest.raises(PluginError) as e:
        tool_from_manifest(tmp_path / "t.yaml", "user")
    assert "sandbox/commands" in e.value.message
    (tmp_path / "t.yaml").write_text(json.dumps(_manifest(
        sandbox={"network": True, "write": True}, limits={"memory_mb": 512, "processes": 8},
        command_arg="c")))
    tool = tool_from_manifest(tmp_path / "t.yaml", "user")
    assert (tool.network, tool.writes, tool.runs_commands, tool.command_arg, tool.memory_mb,
            tool.processes) == (True, True, False, "c", 512, 8)


@pytest.mark.parametrize("backend", ALL)
def test_the_command_runs_in_the_working_folder_with_stdin_empty(backend, project,
                                                                  monkeypatch):
    monkeypatch.chdir(project)
    r = sh(backend, "pwd; cat; echo end")
    assert r.content.startswith("exit code 0")
    assert f"{os.path.realpath(project)}\nend" in r.content


def test_the_built_ins_declare_what_they_need():
    from agentcli.toolrun.manifest import builtin_tools_dir

    def load(name):
        return tool_from_manifest(builtin_tools_dir() / f"{name}.yaml", "builtin")

    shell, fetch, read, calc = (load(n) for n in ("shell", "web_fetch", "file_read",
                                                  "calculator"))
    assert (shell.confirm, shell.writes, shell.runs_commands, shell.network) == \
        ("ask", True, True, False)
    assert (shell.memory_mb, shell.processes) == (4096, 256)
    assert fetch.network and not fetch.writes
    assert not (read.network or read.writes) and not (calc.network or calc.writes)
    assert (calc.memory_mb, calc.processes) == (2048, 64)


def test_on_a_system_without_a_sandbox_plugins_run_with_one_notice(tmp_path, monkeypatch):
    import dataclasses

    from agentcli.toolrun.host.commands import Support
    from plugin_kit import plugin
    from sandbox_kit import call, sandbox

    monkeypatch.chdir(tmp_path)
    said: list[str] = []
    box = dataclasses.replace(sandbox("landlock"), support=Support("darwin"), warn=said.append)
    tool = plugin(tmp_path / "p", "def run(n):\n    return n * 2\n")
    assert call(tool, box, {"n": 2}).content == "4"
    assert said == ["sandbox: there is no sandbox on darwin yet, so plugin tools run without "
                    "walls (the limits still apply)"]


def test_tools_show_says_what_a_tool_needs_from_the_sandbox():
    from typer.testing import CliRunner

    from agentcli.cli.app import build_app

    shell = CliRunner().invoke(build_app(), ["tools", "show", "shell"])
    assert "sandbox:     writes the working folder, confines the commands it runs" in shell.stdout
    assert "limits:      4096 MiB of memory per process, 256 processes" in shell.stdout
    fetch = CliRunner().invoke(build_app(), ["tools", "show", "web_fetch"])
    assert "sandbox:     the network" in fetch.stdout
    calc = CliRunner().invoke(build_app(), ["tools", "show", "calculator"])
    assert "sandbox:     nothing (reads only, no network)" in calc.stdout


def test_a_plugins_manifest_keys_reach_the_sandbox(tmp_path, monkeypatch):
    """A plugin (not a built-in) that declares `write: true` may write the working folder; the
    same plugin without it may not."""
    import dataclasses

    from sandbox_kit import call, sandbox

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (tmp_path / "w.py").write_text("def run(c):\n    open('made.txt', 'w').write(c)\n"
                                   "    return 'ok'\n")
    (tmp_path / "w.yaml").write_text(json.dumps(_manifest(
        name="w", entrypoint="w:run", sandbox={"write": True})))
    writer = tool_from_manifest(tmp_path / "w.yaml", "user")
    box = sandbox("landlock")
    if box.support.landlock < 1:
        pytest.skip("this kernel has no Landlock")
    assert call(writer, box, {"c": "x"}).content == "ok" and (work / "made.txt").exists()
    (work / "made.txt").unlink()
    reader = dataclasses.replace(writer, writes=False)
    assert "Permission denied" in call(reader, box, {"c": "x"}).content
    assert not (work / "made.txt").exists()
