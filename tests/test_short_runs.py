"""What a short run pays once: the tool host starts while the provider loads (so even the first
call runs in it), and parsed manifests are cached in the data folder (so a run need not import
yaml), keyed by the manifest's exact text, never trusted beyond it, and never written for a run
that saves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from agentcli.cli.app import build_app
from agentcli.config import load_settings
from agentcli.toolrun.approval import PolicyApprover
from agentcli.toolrun.executor import Executor
from agentcli.toolrun.manifest import load_tools
from fake_server import text, tool_calls
from plugin_kit import plugin

LINEAGE = """
import os
def run(n):
    supervisor = os.getppid()
    stat = open(f"/proc/{supervisor}/stat").read().rsplit(")", 1)[1].split()
    host = int(stat[1])
    return {"host": host,
            "cmdline": open(f"/proc/{host}/cmdline", "rb").read().decode().split("\\0")}
"""
MANIFEST = ("name: lineage\ndescription: where it runs\nentrypoint: lineage:run\n"
            "parameters: {type: object, properties: {n: {type: integer}}, required: [n]}\n")


def home() -> Path:
    return Path(os.environ["AGENTCLI_HOME"])


def cache_file() -> Path:
    return home() / "cache" / "manifests.json"


def test_the_first_call_of_an_ask_runs_in_the_tool_host_started_before_it(fake_server, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "lineage.yaml").write_text(MANIFEST)
    (tools / "lineage.py").write_text(LINEAGE)
    fake_server.script(tool_calls(("lineage", {"n": 1})), text("done"))
    result = CliRunner().invoke(build_app(), [
        "ask", "-y", "--sandbox", "off", "--tools-dir", str(tools), "-p", "openai",
        "--base-url", fake_server.openai_base_url, "-m", "test-model", "go"])
    assert result.exit_code == 0, result.output
    sent = [m for m in fake_server.requests[-1]["body"]["messages"] if m["role"] == "tool"]
    where = json.loads(sent[0]["content"])
    assert where["host"] != os.getpid()  # not forked from agentcli (this process) itself
    assert "agentcli.toolrun.host.main" in " ".join(where["cmdline"])


def test_warm_starts_a_host_only_for_tools_that_can_run_there(tmp_path):
    callables = Executor({"c": plugin(tmp_path / "c", "def run(n):\n    return n\n",
                                      via="fork")}, PolicyApprover(yes=True))
    callables.warm()
    assert callables._hosts is None
    plugins = Executor({"t": plugin(tmp_path / "t", "def run(n):\n    return n\n")},
                       PolicyApprover(yes=True))
    try:
        plugins.warm()
        assert plugins._hosts is not None and len(plugins._hosts._idle) == 1
    finally:
        plugins.close()


def _load_in_a_fresh_process(cwd: Path) -> tuple[list[str], bool]:
    code = ("import sys, json\n"
            "from agentcli.config import load_settings\n"
            "from agentcli.toolrun.manifest import load_tools\n"
            "tools = load_tools(load_settings(None), warn=print)\n"
            "print(json.dumps(sorted(tools)))\n"
            "print('yaml' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                       env={**os.environ, "HOME": str(cwd)}, timeout=60)
    assert r.returncode == 0, r.stderr
    names, yaml_imported = r.stdout.splitlines()[-2:]
    return json.loads(names), yaml_imported == "True"


def test_a_second_run_reads_the_manifests_without_yaml(tmp_path):
    first, yaml_first = _load_in_a_fresh_process(tmp_path)
    assert yaml_first and cache_file().is_file()
    assert oct(cache_file().stat().st_mode & 0o777) == "0o600"
    second, yaml_second = _load_in_a_fresh_process(tmp_path)
    assert second == first and "calculator" in first
    assert not yaml_second


def test_cached_and_parsed_manifests_make_the_same_tools(tmp_path):
    settings = load_settings(None)
    parsed = load_tools(settings, warn=print)
    cached = load_tools(settings, warn=print)
    assert cache_file().is_file()
    for name, tool in parsed.items():
        other = cached[name]
        assert (tool.definition, tool.confirm, tool.timeout, tool.output_cap, tool.preload,
                tool.network, tool.writes, tool.runs_commands, tool.files, dict(tool.manifest)) \
            == (other.definition, other.confirm, other.timeout, other.output_cap, other.preload,
                other.network, other.writes, other.runs_commands, other.files,
                dict(other.manifest))


def test_a_changed_manifest_is_read_again_and_a_broken_one_is_never_cached(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "m.py").write_text("def run(n):\n    return n\n")
    manifest = folder / "m.yaml"
    manifest.write_text(MANIFEST.replace("lineage", "m"))
    settings = load_settings(None)
    warnings: list[str] = []
    assert load_tools(settings, [str(folder)], warn=warnings.append)["m"].definition.description \
        == "where it runs"
    manifest.write_text(MANIFEST.replace("lineage", "m").replace("where it runs", "changed"))
    assert load_tools(settings, [str(folder)], warn=warnings.append)["m"].definition.description \
        == "changed"
    bad = MANIFEST.replace("lineage", "m").replace("{type: integer}", "{type: integr}")
    manifest.write_text(bad)  # fails the JSON-Schema meta-check, every time
    for _ in range(2):
        assert "m" not in load_tools(settings, [str(folder)], warn=warnings.append)
        assert "not a valid JSON Schema" in warnings[-1]
    assert bad not in cache_file().read_text()


def test_a_damaged_cache_is_ignored_and_replaced(tmp_path):
    settings = load_settings(None)
    cache_file().parent.mkdir(parents=True)
    cache_file().write_text("{not json")
    assert "calculator" in load_tools(settings, warn=print)
    assert isinstance(json.loads(cache_file().read_text()), dict)
    entries = json.loads(cache_file().read_text())
    for entry in entries.values():
        entry["data"] = "not a manifest"
    cache_file().write_text(json.dumps(entries))
    assert "calculator" in load_tools(settings, warn=print)


def test_yaml_that_json_cannot_hold_is_parsed_every_time(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "d.py").write_text("def run(n):\n    return n\n")
    (folder / "d.yaml").write_text(MANIFEST.replace("lineage", "d") +
                                   "options: {type: object, default: {since: 2024-01-01}}\n")
    settings = load_settings(None)
    for _ in range(2):
        tool = load_tools(settings, [str(folder)], warn=print)["d"]
        assert type(tool.manifest["options"]["default"]["since"]).__name__ == "date"


def test_runs_that_save_nothing_write_no_cache(fake_server, tmp_path):
    fake_server.script(text("private"))
    base = ["ask", "-p", "openai", "--base-url", fake_server.openai_base_url, "-m", "m"]
    result = CliRunner().invoke(build_app(), [*base, "--no-save", "secret"])
    assert result.exit_code == 0, result.output
    assert list(home().iterdir()) == []
    (tmp_path / "c.yaml").write_text("save: false\n")
    fake_server.script(text("private too"))
    result = CliRunner().invoke(build_app(), [*base, "--config", str(tmp_path / "c.yaml"), "x"])
    assert result.exit_code == 0, result.output
    assert list(home().iterdir()) == []
