"""The sandbox's walls, proved on this machine for each backend it has (bubblewrap, Landlock
with and without user namespaces): writes outside the working folder fail, the network is
cut off, ~/.ssh and agentcli's data folder are out of reach, keys are not in the environment,
and nothing the command started outlives the call."""

from __future__ import annotations

import os

import pytest

from sandbox_kit import ALL, LoopbackServer, processes_with, python, sh


@pytest.fixture
def workspace(monkeypatch):
    """A base folder on the root file system (not under /tmp: bubblewrap gives /tmp a fresh
    empty tmpfs, which would hide the tests' own tmp folders without the walls being tested)
    holding the working folder, a folder outside it, a home folder with secrets and
    agentcli's data folder."""
    import shutil
    import tempfile
    from pathlib import Path

    base = "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="agentcli-sandbox-test-", dir=base))
    for folder in ("work", "outside", "home/.ssh", "home/.aws", "agentcli_home"):
        (root / folder).mkdir(parents=True)
    (root / "home/.ssh/id_ed25519").write_text("PRIVATE-KEY-BYTES\n")
    (root / "home/.aws/credentials").write_text("aws_secret=AWS-SECRET-BYTES\n")
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setenv("AGENTCLI_HOME", str(root / "agentcli_home"))
    monkeypatch.chdir(root / "work")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("backend", ALL)
def test_a_write_outside_the_working_folder_fails_and_inside_it_works(backend, workspace):
    outside = workspace / "outside" / "escaped.txt"
    r = sh(backend, f"echo in > inside.txt; echo out > {outside}; "
                    "echo tmp > $TMPDIR/t && cat $TMPDIR/t")
    assert (workspace / "work" / "inside.txt").read_text() == "in\n"
    assert not outside.exists()
    assert f"{outside}: Read-only file system" in r.content \
        or f"{outside}: Permission denied" in r.content, r.content  # EROFS / EACCES
    assert "tmp" in r.content  # its private temp folder is writable


@pytest.mark.parametrize("backend", ALL)
def test_read_only_mode_writes_nowhere_but_the_private_temp_folder(backend, workspace):
    r = sh(backend, "echo tmp > $TMPDIR/t && cat $TMPDIR/t; echo x > inside.txt",
           mode="read-only")
    assert not (workspace / "work" / "inside.txt").exists()
    assert "inside.txt: Read-only file system" in r.content \
        or "inside.txt: Permission denied" in r.content, r.content
    assert "tmp" in r.content and "[sandbox read-only: writes nowhere but $TMPDIR" in r.content


@pytest.mark.parametrize("backend", ALL)
def test_a_connect_to_a_loopback_server_started_by_the_test_fails_inside(backend, workspace):
    server = LoopbackServer()
    try:
        probe = (f"{python()} -c \"import socket; socket.create_connection(('127.0.0.1', "
                 f"{server.port}), 3); print('CONNECTED')\"")
        inside = sh(backend, probe)
        assert "CONNECTED" not in inside.content and server.accepted == 0, inside.content
        outside = sh("off", probe, mode="off")  # the same command, no sandbox: it connects
        assert "CONNECTED" in outside.content and server.accepted == 1
    finally:
        server.close()


@pytest.mark.parametrize("backend", ALL)
def test_ssh_keys_and_the_data_folder_are_out_of_reach(backend, workspace):
    data = os.environ["AGENTCLI_HOME"]  # agentcli's data and config folder in tests
    with open(os.path.join(data, "sessions.db"), "w") as f:
        f.write("SESSION-BYTES")
    r = sh(backend, f"cat ~/.ssh/id_ed25519; cat ~/.aws/credentials; cat {data}/sessions.db; "
                    f"echo x > ~/.ssh/authorized_keys")
    for secret in ("PRIVATE-KEY-BYTES", "AWS-SECRET-BYTES", "SESSION-BYTES"):
        assert secret not in r.content, r.content
    assert not (workspace / "home" / ".ssh" / "authorized_keys").exists()
    # bubblewrap puts an empty read-only folder over them; Landlock refuses to read them
    why = "No such file or directory" if backend == "bwrap" else "Permission denied"
    assert f"{data}/sessions.db: {why}" in r.content and f".ssh/id_ed25519: {why}" in r.content


@pytest.mark.parametrize("backend", ALL)
def test_key_variables_are_absent_from_env(backend, workspace, monkeypatch):
    secrets = {"OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "sk-2", "GITHUB_TOKEN": "gh-3",
               "MY_SERVICE_SECRET": "s-4", "AGENTCLI_ANYTHING": "a-5", "DB_PASSWORD": "p-6",
               "AWS_SECRET_ACCESS_KEY": "k-7", "CORP_LLM": "c-8"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    cfg = workspace / "config.yaml"  # a profile naming its key variable: CORP_LLM
    cfg.write_text("providers:\n  corp: {type: openai, api_key_env: CORP_LLM}\n")
    monkeypatch.setenv("AGENTCLI_CONFIG", str(cfg))
    r = sh(backend, "env")
    assert "HARMLESS_SETTING=visible" in r.content
    for name, value in secrets.items():
        assert name not in r.content and value not in r.content, name


@pytest.mark.parametrize("backend", ALL)
def test_a_background_job_is_dead_after_the_call(backend, workspace):
    marker = "987654"  # a unique argument to find the process by
    r = sh(backend, f"sleep {marker} & setsid sleep {marker} & echo started")
    assert "started" in r.content
    assert processes_with(f"sleep\0{marker}") == []


@pytest.mark.parametrize("backend", ALL)
def test_a_timeout_kills_the_tree_and_returns_the_output_so_far(backend, workspace):
    r = sh(backend, "echo early-output; sleep 876543", timeout=1)
    assert r.is_error and "timed out after 1 s" in r.content and "early-output" in r.content
    assert processes_with("sleep\0876543") == []


@pytest.mark.parametrize("backend", ALL)
def test_an_output_flood_is_capped_and_stopped(backend, workspace):
    r = sh(backend, "yes flood", timeout=60)
    assert "the command was stopped: it printed more than 8 MiB" in r.content
    assert len(r.content) <= 30000 and "bytes cut" in r.content
    assert processes_with("yes\0flood") == []


@pytest.mark.parametrize("backend", ALL)
def test_exit_code_and_both_streams_are_reported(backend, workspace):
    r = sh(backend, "echo to-out; echo to-err >&2; exit 3")
    assert not r.is_error
    assert r.content.startswith("exit code 3")
    assert "--- stdout ---\nto-out" in r.content and "--- stderr ---\nto-err" in r.content


def test_without_any_sandbox_the_command_is_refused_with_what_to_install(workspace):
    import dataclasses

    from agentcli.toolrun.host.commands import Support
    from sandbox_kit import call, sandbox, shell_tool

    box = dataclasses.replace(sandbox("landlock"), support=Support("linux", 0, None, None, True))
    r = call(shell_tool(), box, {"command": "touch ran"})
    assert r.is_error and "install bubblewrap" in r.content and "--sandbox off" in r.content
    assert "\n" not in r.content
    assert not (workspace / "work" / "ran").exists()


def test_a_broken_bubblewrap_is_named_in_the_refusal(workspace):
    from agentcli.toolrun.host.commands import Support

    found = Support("linux", 0, None, "bwrap: No permissions to create new namespace", True)
    assert "bubblewrap cannot run here (bwrap: No permissions" in found.command_refusal()


def test_without_a_sandbox_policy_the_shell_refuses(workspace):
    from sandbox_kit import call, shell_tool

    r = call(shell_tool(), None, {"command": "touch ran"})
    assert r.is_error and "no sandbox policy" in r.content
    assert not (workspace / "work" / "ran").exists()


@pytest.mark.parametrize("backend", ALL)
def test_unix_sockets_and_capabilities_are_gone(backend, workspace):
    import socket

    path = str(workspace / "agent.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    try:
        r = sh(backend, f"{python()} -c \"import socket; s = socket.socket(socket.AF_UNIX); "
                        f"s.connect({path!r}); print('CONNECTED')\"; grep CapEff /proc/self/status")
    finally:
        server.close()
    assert "CONNECTED" not in r.content and "CapEff:\t0000000000000000" in r.content, r.content


@pytest.mark.parametrize("backend", ALL)
def test_hidden_names_are_listed_by_landlock_and_gone_in_bubblewrap(backend, workspace):
    r = sh(backend, "ls ~/.ssh; cat ~/.ssh/id_ed25519")
    listed = "--- stdout ---\nid_ed25519" in r.content
    assert listed == (backend != "bwrap"), r.content
    assert "PRIVATE-KEY-BYTES" not in r.content


@pytest.mark.parametrize("backend", ALL)
def test_a_file_read_root_marked_writable_is_writable_and_others_are_not(backend, workspace,
                                                                          monkeypatch):
    extra, other = workspace / "outside" / "lib", workspace / "outside" / "other"
    extra.mkdir()
    other.mkdir()
    cfg = workspace / "config.yaml"
    cfg.write_text(f"tools:\n  options:\n    file_read:\n      roots: ['.', {{path: {extra}, "
                   f"writable: true}}, {other}]\n")
    monkeypatch.setenv("AGENTCLI_CONFIG", str(cfg))
    sh(backend, f"echo a > {extra}/a.txt; echo b > {other}/b.txt")
    assert (extra / "a.txt").read_text() == "a\n" and not (other / "b.txt").exists()


def test_file_read_reads_its_roots_even_inside_a_hidden_folder(workspace, monkeypatch):
    from sandbox_kit import backend_param, call, sandbox  # noqa: F401
    from agentcli.toolrun.manifest import builtin_tools_dir, tool_from_manifest

    aws = workspace / "home" / ".aws"
    cfg = workspace / "config.yaml"
    cfg.write_text(f"tools:\n  options:\n    file_read:\n      roots: ['.', {aws}]\n")
    monkeypatch.setenv("AGENTCLI_CONFIG", str(cfg))
    from agentcli.config import load_settings

    tool = tool_from_manifest(builtin_tools_dir() / "file_read.yaml", "builtin",
                              all_options=load_settings().tools.options)
    if sandbox("landlock").support.landlock < 1:
        pytest.skip("this kernel has no Landlock")
    r = call(tool, sandbox("landlock"), {"path": str(aws / "credentials")})
    assert "AWS-SECRET-BYTES" in r.content, r.content
    shell = sh("landlock", f"cat {aws}/credentials")
    assert "AWS-SECRET-BYTES" in shell.content  # the user named it: readable to every tool


def test_bubblewraps_command_line_has_every_wall(workspace):
    from agentcli.toolrun.host.commands import bwrap_argv
    from agentcli.toolrun.host.confine import Policy

    work = str(workspace / "work")
    policy = Policy("workspace-write", work, write=(work,), hide=(str(workspace / "home"),))
    argv = bwrap_argv("bwrap", policy, ["/bin/bash", "-c", "true"], status_fd=5, seccomp_fd=6)
    for flag in ("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
                 "--unshare-ipc", "--unshare-uts"):
        assert flag in argv
    joined = " ".join(argv)
    for words in ("--cap-drop ALL", "--ro-bind / /", "--tmpfs /tmp", f"--bind {work} {work}",
                  f"--tmpfs {workspace}/home --remount-ro {workspace}/home", "--seccomp 6",
                  f"--chdir {work} -- /bin/bash -c true"):
        assert words in joined


def test_macos_and_other_systems_refuse_commands_and_say_so():
    from agentcli.toolrun.host.commands import Support

    text = Support("darwin").command_refusal()
    assert "not available on darwin" in text and "--sandbox off" in text


@pytest.mark.parametrize("backend", ALL)
def test_other_processes_are_out_of_sight_in_bubblewrap_only(backend, workspace):
    import subprocess

    outside = subprocess.Popen(["sleep", "765432"])
    try:
        # Count the matches inside the sandbox: other processes' command lines can be
        # long enough (a CI runner's) for the whole listing to be cut in the tool result.
        # The pattern does not match itself ('76543[2]' is not '765432').
        r = sh(
            backend,
            "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done"
            " | grep -c 'sleep 76543[2]'; true",
        )
    finally:
        outside.kill()
        outside.wait()
    seen = int(r.content.split("--- stdout ---")[1].split()[0])
    assert (seen > 0) == (backend != "bwrap"), r.content[:300]


@pytest.mark.parametrize("backend", ALL)
def test_a_command_has_a_private_loopback_where_namespaces_exist(backend, workspace):
    r = sh(backend, f"{python()} -c \"import socket; s = socket.socket(); "
                    "s.bind(('127.0.0.1', 0)); s.listen(1); "
                    "socket.create_connection(s.getsockname(), 3); print('LOOPBACK-OK')\"")
    assert ("LOOPBACK-OK" in r.content) == (backend != "landlock-no-userns"), r.content
    if backend == "landlock-no-userns":  # no namespace: no socket at all
        assert "Address family not supported" in r.content


@pytest.mark.parametrize("backend", ALL)
def test_a_working_folder_holding_a_hidden_one_gets_no_new_top_level_file_under_landlock(
        backend, workspace):
    # README "Limits of the walls": Landlock cannot take a folder out of a writable one, so the
    # rule is split around it, and the working folder's own level gets no new names.
    home = workspace / "home"
    (home / "proj").mkdir()
    (home / "notes.txt").write_text("old\n")
    os.chdir(home)
    r = sh(backend, "echo new > new.txt; echo more >> notes.txt; echo deep > proj/deep.txt; "
                    "cat .ssh/id_ed25519")
    assert (home / "notes.txt").read_text() == "old\nmore\n", r.content
    assert (home / "proj" / "deep.txt").read_text() == "deep\n", r.content
    assert (home / "new.txt").exists() == (backend == "bwrap"), r.content
    assert "PRIVATE-KEY-BYTES" not in r.content
