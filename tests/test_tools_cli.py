"""`agentcli tools list | show | run | validate` through the Typer sub-app."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcli.cli.tools import tools_app

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
    assert 'annotations: {"title": "Read a text file", "read_only": true' in r.stdout
    options, _, params = r.stdout.partition("parameters (JSON Schema, sent to the model):\n")
    assert json.loads(params)["required"] == ["path"]
    rows = {line.split()[0]: line for line in options.split("options (tools.options.file_read in "
                                                             "the config file):\n")[1].splitlines()}
    assert set(rows) == {"confirm", "roots", "max_bytes"}
    assert "integer, >= 1, <= 10000000  Most bytes returned per call" in rows["max_bytes"]


def test_show_unknown_is_usage_error(cli):
    r = cli("show", "nope")
    assert r.exit_code == 2
    assert "unknown tool 'nope'" in r.stderr and "calculator" in r.stderr


def test_run_calculator(cli):
    r = cli("run", "calculator", "--args", '{"expression": "37*91"}')
    assert r.exit_code == 0 and r.stdout == "3367\n"


def test_run_needs_approval_without_terminal(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("agentcli.toolrun.approval.open_tty_prompter", lambda *a, **k: None)
    (tmp_path / "a.txt").write_text("hello\n")
    monkeypatch.chdir(tmp_path)
    r = cli("run", "file_read", "--args", '{"path": "a.txt"}')
    assert r.exit_code == 1 and r.stdout == ""
    assert "no terminal to ask" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    ok = cli("run", "file_read", "--args", '{"path": "a.txt"}', "--yes")
    assert ok.exit_code == 0 and ok.stdout == "hello\n"


def test_run_prompts_on_the_terminal(cli, tmp_path, monkeypatch):
    import io

    from agentcli.toolrun.approval import TerminalPrompter

    shown = io.StringIO()
    monkeypatch.setattr("agentcli.toolrun.approval.open_tty_prompter",
                        lambda *a, **k: TerminalPrompter(io.StringIO("n\nnot now\n"), shown))
    (tmp_path / "a.txt").write_text("hello\n")
    monkeypatch.chdir(tmp_path)
    r = cli("run", "file_read", "--args", '{"path": "a.txt"}')
    assert r.exit_code == 1 and "denied by the user: not now" in r.stderr
    assert '"path": "a.txt"' in shown.getvalue()


def test_run_hint_comes_from_the_verdict_not_the_reason_text(cli, tmp_path, monkeypatch):
    """A user's denial that reads like the no-terminal one gets no --yes hint: the hint is
    chosen by ``verdict.source``, never by parsing the reason."""
    import io

    from agentcli.toolrun.approval import NO_TERMINAL, TerminalPrompter

    monkeypatch.setattr("agentcli.toolrun.approval.open_tty_prompter",
                        lambda *a, **k: TerminalPrompter(io.StringIO(f"n\n{NO_TERMINAL}\n"),
                                                         io.StringIO()))
    (tmp_path / "a.txt").write_text("hello\n")
    monkeypatch.chdir(tmp_path)
    r = cli("run", "file_read", "--args", '{"path": "a.txt"}')
    assert r.exit_code == 1 and "denied by the user: denied: there is no terminal" in r.stderr
    assert "hint: rerun with --yes" not in r.stderr
    monkeypatch.setattr("agentcli.toolrun.approval.open_tty_prompter", lambda *a, **k: None)
    r = cli("run", "file_read", "--args", '{"path": "a.txt"}')
    assert r.exit_code == 1 and "hint: rerun with --yes to approve it" in r.stderr


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
    from agentcli.toolrun.manifest import builtin_tools_dir

    # the built-ins as installed (a wheel's copy, or the checkout's tools/ when editable): a copy
    # elsewhere is a plugin, and only the real built-ins may `preload`
    builtins = cli("validate", str(builtin_tools_dir()))
    assert builtins.exit_code == 0 and builtins.stdout.count("ok: ") == 6


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
    ("name: x\ndescription: d\nentrypoint: x:run\nparameters: {type: object}\n"
     "annotations: {read_only: yes please}\n",
     "def run():\n    pass\n", "field 'annotations/read_only': must be true or false"),
    ("name: x\ndescription: d\nentrypoint: x:run\nparameters: {type: object}\n"
     "annotations: {readOnlyHint: true}\n",
     "def run():\n    pass\n", "field 'annotations/readOnlyHint': unknown"),
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
    code = ("import sys; import agentcli.cli.tools; "
            "bad = [m for m in ('yaml', 'jsonschema', 'httpx', 'agentcli.toolrun.manifest', "
            "'agentcli.toolrun.executor', 'rich') if m in sys.modules]; print(bad)")
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


# --- plugin code never runs in agentcli (end to end, the installed command) --------------------

HOSTILE_IMPORTS = {
    "exits": "import os\nos._exit(0)\n",
    "prints": "print('\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07 import-time noise')\n",
    "hangs": "import time\ntime.sleep(20)\n",
}


def hostile_tool(folder: Path, kind: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{kind}.yaml").write_text(
        f"name: {kind}\ndescription: d\nentrypoint: {kind}:run\nconfirm: never\ntimeout: 1\n"
        "parameters: {type: object}\n")
    (folder / f"{kind}.py").write_text(HOSTILE_IMPORTS[kind] + "def run():\n    return 'ran'\n")
    return folder


def run_installed(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    exe = _agentcli()
    if exe is None:
        pytest.skip("agentcli is not installed as a command")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**__import__("os").environ, "NO_COLOR": "1"},
                          start_new_session=True, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("kind,code,out,words", [
    ("exits", 1, "", "ended without a result (exit code 0)"),   # was: agentcli exit 0, silent
    ("prints", 0, "ran\n", ""),                                   # was: the escapes on stdout
    ("hangs", 1, "", "timed out after 1 s"),                      # was: hung for 20 s
])
def test_tools_run_with_a_hostile_import(tmp_path, kind, code, out, words):
    folder = hostile_tool(tmp_path / "t", kind)
    r = run_installed("tools", "run", kind, "--tools-dir", str(folder), cwd=tmp_path)
    assert (r.returncode, r.stdout) == (code, out), r.stderr
    assert words in r.stderr and "\x1b" not in r.stdout + r.stderr


def test_ask_json_survives_a_tool_whose_import_exits(fake_server, tmp_path):
    """`os._exit(0)` at import used to end `agentcli ask --json` with exit 0 and no JSON."""
    from fake_server import text, tool_calls

    folder = hostile_tool(tmp_path / "t", "exits")
    fake_server.script(tool_calls(("exits", {})), text("the tool broke"))
    r = run_installed("ask", "--json", "-p", "openai", "--base-url", fake_server.openai_base_url,
                      "-m", "m", "--tools-dir", str(folder), "go", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["text"] == "the tool broke"
    [call] = data["tool_calls"]
    assert call["is_error"] and "ended without a result (exit code 0)" in call["result"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_plugins_tool_error_reaches_the_model_as_just_its_message(fake_server, tmp_path,
                                                                      provider):
    """`raise ToolError("msg")` used to reach the model as "Error: tool 'x' failed: msg". Now:
    the message, flagged as an error the way each API flags one (Anthropic: is_error; Chat
    Completions has no flag, so its text starts with "Error: ")."""
    from fake_server import text, tool_calls

    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "city.yaml").write_text(
        "name: city\ndescription: d\nentrypoint: city:run\nconfirm: never\n"
        "parameters: {type: object}\n")
    (folder / "city.py").write_text("from agentcli.errors import ToolError\n\n"
                                    "def run():\n    raise ToolError('no such city: Atlantis')\n")
    fake_server.script(tool_calls(("city", {})), text("no luck"))
    base = fake_server.openai_base_url if provider == "openai" else fake_server.anthropic_base_url
    r = run_installed("ask", "--json", "-p", provider, "--base-url", base, "-m", "m",
                      "--tools-dir", str(folder), "go", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [call] = json.loads(r.stdout)["tool_calls"]
    assert call["is_error"] and call["result"] == "no such city: Atlantis"
    sent = fake_server.requests[1]["body"]["messages"]
    if provider == "openai":
        assert [m["content"] for m in sent if m["role"] == "tool"] == [
            "Error: no such city: Atlantis"]
    else:
        [block] = [b for m in sent if isinstance(m["content"], list) for b in m["content"]
                   if b.get("type") == "tool_result"]
        assert block["is_error"] is True
        assert block["content"] in ("no such city: Atlantis",
                                    [{"type": "text", "text": "no such city: Atlantis"}])


@pytest.mark.parametrize("kind,words", [
    ("exits", "ended its process while importing (exit code 0)"),
    ("hangs", "took longer than the tool's timeout (1 s)"),
])
def test_validate_imports_in_an_isolated_process(tmp_path, kind, words):
    folder = hostile_tool(tmp_path / "t", kind)
    r = run_installed("tools", "validate", str(folder / f"{kind}.yaml"), cwd=tmp_path)
    assert r.returncode == 2 and words in r.stderr, (r.returncode, r.stderr)


def test_validate_ignores_import_time_output(tmp_path):
    folder = hostile_tool(tmp_path / "t", "prints")
    r = run_installed("tools", "validate", str(folder), cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == f"ok: prints ({folder / 'prints.yaml'})\n"


# --- tools validate honours --config and --tools-dir ----------------------------------------------

def test_validate_checks_the_options_in_config(cli, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  options:\n    word_count:\n      ignore_case: 'yes'\n")
    r = cli("validate", str(EXAMPLE / "word_count.yaml"), "--config", str(cfg))
    assert r.exit_code == 2
    assert "tools.options.word_count.ignore_case" in r.stderr and str(cfg) in r.stderr
    cfg.write_text("tools:\n  options:\n    word_count:\n      ignore_case: false\n")
    assert cli("validate", str(EXAMPLE / "word_count.yaml"), "--config", str(cfg)).exit_code == 0


def test_validate_without_path_checks_every_tool_agentcli_would_load(cli, tmp_path):
    r = cli("validate", "--tools-dir", str(EXAMPLE))
    assert r.exit_code == 0, r.stderr
    checked = sorted(line.split()[1] for line in r.stdout.splitlines())
    assert checked == ["calculator", "edit", "file_read", "shell", "web_fetch", "word_count",
                       "write"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.yaml").write_text("name: bad\n")
    r = cli("validate", "--tools-dir", str(EXAMPLE), "--tools-dir", str(broken))
    assert r.exit_code == 2 and "bad.yaml" in r.stderr and "ok: word_count" in r.stdout


def test_validate_warns_when_a_tools_dir_tool_would_shadow_the_path(cli, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for f in EXAMPLE.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    r = cli("validate", str(other / "word_count.yaml"), "--tools-dir", str(EXAMPLE))
    assert r.exit_code == 0
    assert "has the name of" in r.stderr and str(EXAMPLE / "word_count.yaml") in r.stderr


# --- config problems are errors for every tools command -----------------------------------------

BAD_CONFIGS = {
    "option type": ("tools:\n  options:\n    web_fetch:\n      allow_private: 'yes'\n",
                    "tools.options.web_fetch.allow_private"),
    "unknown option": ("tools:\n  options:\n    web_fetch:\n      max_byte: 5\n",
                       "tools.options.web_fetch.max_byte"),
    "confirm": ("tools:\n  options:\n    calculator:\n      confirm: sometimes\n",
                "tools.options.calculator.confirm"),
    "allow rule": ("tools:\n  allow:\n    - {tool: file_read, args: nonsense}\n",
                   "tools.allow[0].args"),
    "deny rule": ("tools:\n  deny:\n    - 12\n", "tools.deny[0]"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
@pytest.mark.parametrize("command", [("list",), ("show", "calculator"),
                                     ("run", "calculator", "--args", '{"expression": "1"}'),
                                     ("validate",)])
def test_bad_config_is_exit_2_for_every_tools_command(cli, tmp_path, case, command):
    text, key = BAD_CONFIGS[case]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    r = cli(*command, "--config", str(cfg))
    assert r.exit_code == 2, r.output
    assert f"in {cfg}" in r.stderr and f"at key '{key}'" in r.stderr
    if command[0] != "validate":  # validate reports each manifest; the others print nothing
        assert r.stdout == ""


@pytest.mark.parametrize("case,command", [
    *((case, ("ask", "hi")) for case in sorted(BAD_CONFIGS)),
    # `config show` loads no tool manifests: it checks confirm and the rules, not options;
    # piped `chat` stops at "needs a terminal" before loading tools (the pty test covers it)
    *((case, command) for case in ("confirm", "allow rule", "deny rule")
      for command in [("config", "show"), ("chat",)]),
])
def test_bad_config_is_exit_2_for_config_show_ask_and_chat(fake_server, tmp_path, case, command):
    """Malformed rules used to pass `config show` (and `tools list`/`show`) silently; no request
    is ever sent with a bad config."""
    from agentcli.cli.app import build_app

    text, key = BAD_CONFIGS[case]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    provider = ["-p", "openai", "--base-url", fake_server.openai_base_url, "-m", "m"]
    args = [*command, "--config", str(cfg), *(provider if command[0] != "config" else [])]
    r = CliRunner().invoke(build_app(), args, input="piped text")
    assert r.exit_code == 2, r.output
    assert f"in {cfg}" in r.stderr and f"at key '{key}'" in r.stderr
    assert fake_server.requests == []


def test_ask_with_bad_tool_options_is_exit_2_before_any_request(fake_server, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  options:\n    web_fetch:\n      max_bytes: -1\n")
    r = run_installed("ask", "-p", "openai", "--base-url", fake_server.openai_base_url, "-m", "m",
                      "--config", str(cfg), "hi", cwd=tmp_path)
    assert r.returncode == 2 and "tools.options.web_fetch.max_bytes" in r.stderr
    assert str(cfg) in r.stderr and fake_server.requests == []


@pytest.mark.pty
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_exit_2_for_chat_in_a_terminal(fake_server, tmp_path, case):
    pexpect = pytest.importorskip("pexpect")
    exe = _agentcli()
    if exe is None:
        pytest.skip("agentcli is not installed as a command")
    text, key = BAD_CONFIGS[case]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    child = pexpect.spawn(exe, ["chat", "-p", "openai", "--base-url", fake_server.openai_base_url,
                                "-m", "m", "--config", str(cfg)], cwd=str(tmp_path),
                          encoding="utf-8", timeout=60,
                          env={"PATH": "/usr/bin:/bin", "AGENTCLI_HOME": str(tmp_path / "h"),
                               "TERM": "dumb"})
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2, child.before
    assert f"at key '{key}'" in child.before.replace("\r\n", "")
    assert fake_server.requests == []


def test_list_shows_a_plugin_and_an_mcp_tool_of_one_name_once_with_ask_s_warning(tmp_path):
    """A plugin named demo__add and the demo server's add (offered as demo__add) clash: `ask`
    keeps the plugin and warns; `tools list` used to show both rows and say nothing."""
    import yaml

    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "demo__add.yaml").write_text(
        "name: demo__add\ndescription: the plugin one\nentrypoint: demo__add:run\n"
        "parameters: {type: object}\n")
    (folder / "demo__add.py").write_text("def run():\n    return 'plugin'\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": {"demo": {
        "command": sys.executable,
        "args": [str(Path(__file__).parent / "mcp_servers" / "demo_server.py")]}}}))
    r = run_installed("tools", "list", "--config", str(cfg), "--tools-dir", str(folder),
                      cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.split()[0] == "demo__add"]
    assert len(rows) == 1 and rows[0].split()[1] == "tools-dir" and "the plugin one" in rows[0]
    assert "demo__echo" in r.stdout  # the server's other tools are listed
    assert r.stderr.count("warning: MCP tool demo__add clashes with another tool of that name; "
                          "keeping the first one") == 1
