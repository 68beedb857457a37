"""`agentcli tools list | show | run | validate` through the Typer sub-app."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.tools_cli import tools_app

EXAMPLE = Path(__file__).parent / "data" / "example_tool"


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(tools_app, list(args), input=input)

    return invoke


def test_list(cli):
    r = cli("list")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "APPROVAL", "DESCRIPTION"]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    assert rows["calculator"] == ["builtin", "never"]
    assert rows["file_read"] == ["builtin", "ask"] and rows["web_fetch"] == ["builtin", "ask"]


def test_list_with_tools_dir(cli):
    r = cli("list", "--tools-dir", str(EXAMPLE))
    assert r.exit_code == 0
    assert any(line.startswith("word_count") and "tools-dir" in line
               for line in r.stdout.splitlines())


def test_show(cli):
    r = cli("show", "file_read")
    assert r.exit_code == 0
    assert "approval:    ask" in r.stdout and "entrypoint:  file_read:run" in r.stdout
    schema = json.loads(r.stdout[r.stdout.index("{"):])
    assert schema["required"] == ["path"]


def test_show_unknown_is_usage_error(cli):
    r = cli("show", "nope")
    assert r.exit_code == 2
    assert "unknown tool 'nope'" in r.stderr and "calculator" in r.stderr


def test_run_calculator(cli):
    r = cli("run", "calculator", "--args", '{"expression": "37*91"}')
    assert r.exit_code == 0 and r.stdout == "3367\n"


def test_run_needs_approval_without_terminal(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("agentcli.approval.open_tty_prompter", lambda *a, **k: None)
    (tmp_path / "a.txt").write_text("hello\n")
    monkeypatch.chdir(tmp_path)
    r = cli("run", "file_read", "--args", '{"path": "a.txt"}')
    assert r.exit_code == 1 and r.stdout == ""
    assert "no terminal to ask" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    ok = cli("run", "file_read", "--args", '{"path": "a.txt"}', "--yes")
    assert ok.exit_code == 0 and ok.stdout == "hello\n"


def test_run_prompts_on_the_terminal(cli, tmp_path, monkeypatch):
    import io

    from agentcli.approval import TerminalPrompter

    shown = io.StringIO()
    monkeypatch.setattr("agentcli.approval.open_tty_prompter",
                        lambda *a, **k: TerminalPrompter(io.StringIO("n\nnot now\n"), shown))
    (tmp_path / "a.txt").write_text("hello\n")
    monkeypatch.chdir(tmp_path)
    r = cli("run", "file_read", "--args", '{"path": "a.txt"}')
    assert r.exit_code == 1 and "denied by the user: not now" in r.stderr
    assert '"path": "a.txt"' in shown.getvalue()


def test_run_deny_rule_beats_yes(cli, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  deny: [calculator]\n")
    r = cli("run", "calculator", "--args", '{"expression": "1"}', "--yes", "--config", str(cfg))
    assert r.exit_code == 1 and "tools.deny[0]" in r.stderr


@pytest.mark.parametrize("args,words", [
    ("{bad", "not valid JSON"),
    ('{"expression": 5}', "is not of type 'string'"),
    ("{}", "required property"),
])
def test_run_bad_args_is_usage_error(cli, args, words):
    r = cli("run", "calculator", "--args", args)
    assert r.exit_code == 2 and words in r.stderr


def test_run_tool_failure_is_one_line_exit_1(cli):
    r = cli("run", "calculator", "--args", '{"expression": "1/0"}')
    assert r.exit_code == 1 and "division by zero" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_validate_good(cli):
    r = cli("validate", str(EXAMPLE / "word_count.yaml"))
    assert r.exit_code == 0 and "ok: word_count" in r.stdout
    builtins = cli("validate", str(Path(__file__).parent.parent / "tools"))
    assert builtins.exit_code == 0 and builtins.stdout.count("ok: ") == 3


@pytest.mark.parametrize("manifest,module,words", [
    ("name: x\ndescription: d\nentrypoint: x:run\nparameters: {type: object}\n",
     "raise ImportError('missing dependency')\n", "missing dependency"),
    ("name: x\ndescription: d\nentrypoint: x:nothere\nparameters: {type: object}\n",
     "def run():\n    pass\n", "no function 'nothere'"),
    ("name: x\ndescription: d\nentrypoint: x:run\n"
     "parameters: {type: object, properties: {a: {type: string}}}\n",
     "def run():\n    pass\n", "property 'a' is not a parameter"),
    ("name: x\ndescription: d\nentrypoint: x:run\nparameters: {type: object}\n",
     "def run(needed):\n    pass\n", "needs 'needed'"),
    ("name: x\nentrypoint: x:run\nparameters: {type: object}\n",
     "def run():\n    pass\n", "field 'description'"),
])
def test_validate_bad_exit_2(cli, tmp_path, manifest, module, words):
    (tmp_path / "x.yaml").write_text(manifest)
    (tmp_path / "x.py").write_text(module)
    r = cli("validate", str(tmp_path / "x.yaml"))
    assert r.exit_code == 2
    assert words in r.stderr and "x.yaml" in r.stderr


def test_validate_missing_path(cli, tmp_path):
    assert cli("validate", str(tmp_path / "none.yaml")).exit_code == 2


def test_tools_cli_imports_only_typer_and_stdlib():
    code = ("import sys; import agentcli.tools_cli; "
            "bad = [m for m in ('yaml', 'jsonschema', 'httpx', 'agentcli.plugins', "
            "'agentcli.executor', 'rich') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(not shutil.which("agentcli") and not (Path(sys.executable).parent /
                                                          "agentcli").exists(),
                    reason="agentcli is not installed as a command")
def test_installed_command(tmp_path):
    exe = shutil.which("agentcli") or str(Path(sys.executable).parent / "agentcli")
    r = subprocess.run([exe, "tools", "run", "calculator", "--args", '{"expression":"0.5*2+0.5*3"}'],
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "AGENTCLI_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "2.5\n"


def _agentcli() -> str | None:
    exe = Path(sys.executable).parent / "agentcli"
    return str(exe) if exe.exists() else shutil.which("agentcli")


@pytest.mark.pty
@pytest.mark.parametrize("piped", [False, True], ids=["stdin-tty", "dev-tty"])
def test_prompt_in_a_real_terminal(tmp_path, piped):
    """In a pseudo-terminal: the prompt appears on the terminal (stdin, or /dev/tty when stdin
    is piped); 'y' runs the tool; the result alone goes to stdout."""
    pexpect = pytest.importorskip("pexpect")
    exe = _agentcli()
    if exe is None:
        pytest.skip("agentcli is not installed as a command")
    (tmp_path / "a.txt").write_text("hello from the file\n")
    cmd = f"{exe} tools run file_read --args '{{\"path\": \"a.txt\"}}' > out.txt"
    if piped:
        cmd = "echo piped | " + cmd
    child = pexpect.spawn("/bin/sh", ["-c", cmd], cwd=str(tmp_path), encoding="utf-8",
                          env={"PATH": "/usr/bin:/bin", "AGENTCLI_HOME": str(tmp_path / "home"),
                               "TERM": "dumb"}, timeout=30)
    child.expect("run it\\?")
    assert '"path": "a.txt"' in child.before
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (tmp_path / "out.txt").read_text() == "hello from the file\n"


@pytest.mark.pty
def test_ctrl_c_at_the_prompt_denies(tmp_path):
    pexpect = pytest.importorskip("pexpect")
    exe = _agentcli()
    if exe is None:
        pytest.skip("agentcli is not installed as a command")
    (tmp_path / "a.txt").write_text("x\n")
    child = pexpect.spawn(exe, ["tools", "run", "file_read", "--args", '{"path": "a.txt"}'],
                          cwd=str(tmp_path), encoding="utf-8", timeout=30,
                          env={"PATH": "/usr/bin:/bin", "AGENTCLI_HOME": str(tmp_path / "h"),
                               "TERM": "dumb"})
    child.expect("run it\\?")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "denied by the user" in child.before
