"""Plugin loading: manifests (good and every kind of broken), sources, clashes, lazy import,
entry points through a real (fake) installed distribution, built-ins inside the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from agentcli.config import Settings, ToolSettings, load_settings
from agentcli.errors import ConfigError, PluginError
from agentcli.toolrun.manifest import builtin_tools_dir, load_tools, parse_manifest

REPO = Path(__file__).resolve().parent.parent
GOOD = """\
name: {name}
description: Echo the text back.
entrypoint: {module}:run
confirm: never
timeout: 5
parameters:
  type: object
  properties:
    text: {{type: string}}
  required: [text]
"""


def write_tool(folder: Path, name: str = "echo", module: str | None = None,
               body: str = "def run(text):\n    return 'echo: ' + text\n",
               manifest: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    module = module or name
    path = folder / f"{name}.yaml"
    path.write_text(manifest if manifest is not None else GOOD.format(name=name, module=module))
    (folder / f"{module}.py").write_text(body)
    return path


def settings(tmp_path: Path, **tools) -> Settings:
    base = load_settings()
    return replace(base, tools=ToolSettings(**tools))


class Warnings(list):
    def __call__(self, line: str) -> None:
        self.append(line)


def test_builtins_load_manifest_only(tmp_path):
    warns = Warnings()
    before = set(sys.modules)
    tools = load_tools(settings(tmp_path), warn=warns)
    assert {"calculator", "file_read", "web_fetch"} <= set(tools)
    assert warns == []
    assert tools["calculator"].confirm == "never"
    assert tools["file_read"].confirm == "ask" and tools["web_fetch"].confirm == "ask"
    assert all(t.source == "builtin" for t in tools.values())
    assert not [m for m in set(sys.modules) - before if "tool" in m], "no plugin imported"


def test_running_a_tool_never_imports_it_in_agentcli(tmp_path):
    from agentcli.toolrun.approval import PolicyApprover
    from agentcli.toolrun.executor import Executor
    from agentcli.messages import ToolCall

    write_tool(tmp_path / "t", name="echo_iso")
    tools = load_tools(settings(tmp_path), extra_dirs=[str(tmp_path / "t")], warn=Warnings())
    r = Executor(tools, PolicyApprover(yes=True)).execute(
        ToolCall("1", "echo_iso", '{"text": "hi"}')).result
    assert r.content == "echo: hi"
    assert not [m for m in sys.modules if "echo_iso" in m]


def test_extra_dir_tool_runs_and_imports_lazily(tmp_path):
    marker = tmp_path / "imported"
    write_tool(tmp_path / "mine", body=f"open({str(marker)!r}, 'w').close()\n"
                                       "def run(text):\n    return 'echo: ' + text\n")
    tools = load_tools(settings(tmp_path), extra_dirs=[str(tmp_path / "mine")], warn=Warnings())
    assert tools["echo"].source == "tools-dir"
    assert not marker.exists()
    assert tools["echo"].function()(text="hi") == "echo: hi"
    assert marker.exists()


def test_user_and_config_dirs(tmp_path, monkeypatch):
    s = settings(tmp_path, dirs=("cfgtools",))
    write_tool(s.user_tools_dir, name="mine_user")
    cfg = tmp_path / "conf"
    write_tool(cfg / "cfgtools", name="mine_cfg")
    s = replace(s, config_file=cfg / "config.yaml")  # config dirs are relative to the config file
    tools = load_tools(s, warn=Warnings())
    assert tools["mine_user"].source == "user"
    assert tools["mine_cfg"].source == "config"


def test_project_tools_folder_is_not_loaded(tmp_path, monkeypatch):
    write_tool(tmp_path / "project" / "tools", name="sneaky")
    monkeypatch.chdir(tmp_path / "project")
    assert "sneaky" not in load_tools(settings(tmp_path), warn=Warnings())


def test_clash_warns_and_first_wins(tmp_path):
    write_tool(tmp_path / "a", name="calculator", module="calc2")
    warns = Warnings()
    tools = load_tools(settings(tmp_path), extra_dirs=[str(tmp_path / "a")], warn=warns)
    assert tools["calculator"].source == "builtin"
    assert len(warns) == 1 and "clashes" in warns[0] and "keeping the builtin one" in warns[0]
    assert str(tmp_path / "a" / "calculator.yaml") in warns[0]


def test_missing_dir_is_a_warning(tmp_path):
    warns = Warnings()
    load_tools(settings(tmp_path), extra_dirs=[str(tmp_path / "nope")], warn=warns)
    assert any("does not exist" in w for w in warns)


BROKEN = {
    "bad_yaml": ("name: [unclosed\n", "invalid YAML"),
    "python_tag": ("!!python/object/apply:os.system ['echo pwned']\n", "invalid YAML"),
    "not_mapping": ("- a\n- b\n", "must be a mapping"),
    "no_name": ("description: d\nentrypoint: m:run\nparameters: {type: object}\n", "'name'"),
    "no_description": ("name: x\nentrypoint: m:run\nparameters: {type: object}\n",
                       "'description'"),
    "no_entrypoint": ("name: x\ndescription: d\nparameters: {type: object}\n", "'entrypoint'"),
    "no_parameters": ("name: x\ndescription: d\nentrypoint: m:run\n", "'parameters'"),
    "bad_name": ("name: 'rm -rf'\ndescription: d\nentrypoint: m:run\nparameters: {type: object}\n",
                 "'name'"),
    "bad_entry": ("name: x\ndescription: d\nentrypoint: ../evil:run\nparameters: {type: object}\n",
                  "'entrypoint'"),
    "bad_confirm": ("name: x\ndescription: d\nentrypoint: m:run\nconfirm: maybe\n"
                    "parameters: {type: object}\n", "'confirm'"),
    "bad_timeout": ("name: x\ndescription: d\nentrypoint: m:run\ntimeout: -1\n"
                    "parameters: {type: object}\n", "'timeout'"),
    "bad_cap": ("name: x\ndescription: d\nentrypoint: m:run\noutput_cap: lots\n"
                "parameters: {type: object}\n", "'output_cap'"),
    "not_object": ("name: x\ndescription: d\nentrypoint: m:run\nparameters: {type: string}\n",
                   "'parameters'"),
    "bad_schema": ("name: x\ndescription: d\nentrypoint: m:run\n"
                   "parameters: {type: object, properties: {a: {type: 12}}}\n",
                   "not a valid JSON Schema"),
    "unknown_key": ("name: x\ndescription: d\nentrypoint: m:run\nparameters: {type: object}\n"
                    "shell: true\n", "'shell'"),
    "reserved_context": ("name: x\ndescription: d\nentrypoint: m:run\n"
                         "parameters: {type: object, properties: {context: {type: string}}}\n",
                         "reserved"),
    "no_module": ("name: x\ndescription: d\nentrypoint: missing:run\nparameters: {type: object}\n",
                  "not found"),
    "bad_preload": ("name: x\ndescription: d\nentrypoint: m:run\nparameters: {type: object}\n"
                    "preload: httpx\n", "'preload'"),
    "plugin_preload": ("name: x\ndescription: d\nentrypoint: m:run\nparameters: {type: object}\n"
                       "preload: [json]\n", "only agentcli's built-in tools may preload"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_manifest_is_a_warning_naming_file_and_field(tmp_path, case):
    text, expected = BROKEN[case]
    folder = tmp_path / "t"
    write_tool(folder, name="good")
    (folder / "m.py").write_text("def run():\n    return 1\n")
    (folder / f"{case}.yaml").write_text(text)
    warns = Warnings()
    tools = load_tools(settings(tmp_path), extra_dirs=[str(folder)], warn=warns)
    assert "good" in tools, "the other tools still load"
    assert len(warns) == 1, warns
    assert f"{case}.yaml" in warns[0] and expected in warns[0]
    assert not (tmp_path / "pwned").exists()


def test_module_that_fails_to_import_is_reported_at_first_call(tmp_path):
    from agentcli.toolrun.approval import PolicyApprover
    from agentcli.toolrun.executor import Executor
    from agentcli.messages import ToolCall

    write_tool(tmp_path / "t", name="boom", body="raise RuntimeError('bad plugin')\n")
    write_tool(tmp_path / "t", name="fine")
    tools = load_tools(settings(tmp_path), extra_dirs=[str(tmp_path / "t")], warn=Warnings())
    result = Executor(tools, PolicyApprover(yes=True)).execute(ToolCall("1", "boom", '{"text": "x"}')).result
    assert result.is_error
    assert "could not be loaded" in result.content and "boom.py" in result.content
    assert "bad plugin" in result.content
    ok = Executor(tools, PolicyApprover(yes=True)).execute(ToolCall("2", "fine", '{"text": "x"}')).result
    assert ok.content == "echo: x"


def test_parse_manifest_defaults(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("name: m\ndescription: d\nentrypoint: m:run\nparameters: {type: object}\n")
    data = parse_manifest(p)
    assert data["confirm"] == "ask" and data["timeout"] == 30.0 and data["output_cap"] == 32000


WITH_OPTIONS = GOOD + """\
options:
  type: object
  properties:
    x: {{type: integer, minimum: 0}}
    flag: {{type: boolean}}
"""


def test_options_reach_tool_and_confirm_overrides_the_default(tmp_path):
    write_tool(tmp_path / "t", manifest=WITH_OPTIONS.format(name="echo", module="echo"))
    s = settings(tmp_path, options={"echo": {"confirm": "ask", "x": 1}})
    tool = load_tools(s, extra_dirs=[str(tmp_path / "t")], warn=Warnings())["echo"]
    assert tool.confirm == "ask" and dict(tool.options) == {"x": 1}  # confirm is agentcli's


def config_with(tmp_path: Path, options_yaml: str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tools:\n  options:\n" + textwrap.indent(options_yaml, "    "))
    return cfg


@pytest.mark.parametrize("options_yaml,key,words", [
    ("web_fetch:\n  allow_private: 'yes'\n", "tools.options.web_fetch.allow_private",
     "'yes' is not of type 'boolean'"),
    ("web_fetch:\n  max_bytes: -1\n", "tools.options.web_fetch.max_bytes",
     "-1 is less than the minimum of 1"),
    ("web_fetch:\n  alow_private: true\n", "tools.options.web_fetch.alow_private",
     "unknown option 'alow_private'"),
    ("file_read:\n  roots: [7]\n", "tools.options.file_read.roots[0]", "not of type"),
    ("file_read:\n  max_bytes: 1.5\n", "tools.options.file_read.max_bytes",
     "not of type 'integer'"),
    ("calculator:\n  precision: 5\n", "tools.options.calculator.precision",
     "none besides confirm"),
])
def test_bad_options_are_config_errors_naming_file_and_key(tmp_path, options_yaml, key, words):
    cfg = config_with(tmp_path, options_yaml)
    with pytest.raises(ConfigError) as e:
        load_tools(load_settings(cfg), warn=Warnings())
    assert f"in {cfg}" in e.value.message and f"at key '{key}'" in e.value.message
    assert words in e.value.message and e.value.exit_code == 2


def test_good_builtin_options_pass(tmp_path):
    cfg = config_with(tmp_path, "web_fetch:\n  allow_private: true\n  max_bytes: 1000\n"
                                "  max_redirects: 0\n  timeout: 2.5\n"
                                "file_read:\n  roots: ['.', '~/notes']\n  max_bytes: 10\n"
                                "calculator:\n  confirm: ask\n")
    tools = load_tools(load_settings(cfg), warn=Warnings())
    assert tools["web_fetch"].options["allow_private"] is True
    assert tools["calculator"].confirm == "ask" and not tools["calculator"].options


def test_manifest_options_schema_rules(tmp_path):
    folder = tmp_path / "t"
    open_schema = GOOD + "options: {{type: object, additionalProperties: true}}\n"
    write_tool(folder, name="open_opts", manifest=open_schema.format(name="open_opts",
                                                                     module="open_opts"))
    write_tool(folder, name="no_opts")
    bad = GOOD + "options: {{type: object, properties: {{confirm: {{type: string}}}}}}\n"
    write_tool(folder, name="claims_confirm", manifest=bad.format(name="claims_confirm",
                                                                  module="claims_confirm"))
    broken = GOOD + "options: {{type: object, properties: {{a: {{type: 12}}}}}}\n"
    write_tool(folder, name="broken_opts", manifest=broken.format(name="broken_opts",
                                                                 module="broken_opts"))
    warns = Warnings()
    s = settings(tmp_path, options={"open_opts": {"anything": [1]}, "ghost": {"x": 1}})
    tools = load_tools(s, extra_dirs=[str(folder)], warn=warns)
    assert tools["open_opts"].options["anything"] == [1]  # the schema allows unknown keys
    assert "claims_confirm" not in tools and "broken_opts" not in tools
    assert any("claims_confirm.yaml" in w and "agentcli's own option" in w for w in warns)
    assert any("broken_opts.yaml" in w and "options/properties/a" in w for w in warns)
    assert any("tools.options.ghost" in w and "no tool named 'ghost'" in w for w in warns)
    with pytest.raises(ConfigError, match="tools.options.no_opts.x"):
        load_tools(settings(tmp_path, options={"no_opts": {"x": 1}}), extra_dirs=[str(folder)],
                   warn=Warnings())
    dangling = GOOD + "options: {{type: object, properties: {{x: {{$ref: '#/nope'}}}}}}\n"
    write_tool(folder, name="ref_opts", manifest=dangling.format(name="ref_opts",
                                                               module="ref_opts"))
    # passes the manifest check, but cannot check a value: one line naming the manifest
    with pytest.raises(PluginError, match="ref_opts.yaml: field 'options'"):
        load_tools(settings(tmp_path, options={"ref_opts": {"x": 1}}), extra_dirs=[str(folder)],
                   warn=Warnings())


def install_entry_point(site: Path, dist: str, line: str, monkeypatch) -> None:
    """A real dist-info with an agentcli.tools entry point, and ``site`` on sys.path."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[agentcli.tools]\n{line}\n")
    monkeypatch.syspath_prepend(str(site))


def test_entry_point_package(tmp_path, monkeypatch):
    """A pip-installed tool package: a real dist-info with entry_points.txt on sys.path."""
    site = tmp_path / "site"
    pkg = site / "ep_tools_pkg"
    write_tool(pkg, name="ep_echo", body="from .helper import PREFIX\n"
                                           "def run(text):\n    return PREFIX + text\n")
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("PREFIX = 'ep: '\n")
    install_entry_point(site, "ep-tools-pkg", "ep = ep_tools_pkg", monkeypatch)
    tools = load_tools(settings(tmp_path), warn=Warnings())
    tool = tools["ep_echo"]
    assert tool.source == "entry-point:ep"
    assert "ep_tools_pkg" not in sys.modules, "not imported at startup"
    assert tool.function()(text="x") == "ep: x"


def test_a_dotted_entry_point_runs_none_of_its_parents_code(tmp_path, monkeypatch):
    """`org_tools.tools`: finding the folder must not import org_tools (its __init__ is plugin
    code, and plugin code never runs in agentcli)."""
    site = tmp_path / "site"
    parent = site / "org_tools"
    write_tool(parent / "tools", name="org_echo")
    (parent / "__init__.py").write_text("raise SystemExit('parent package imported')\n")
    (parent / "tools" / "__init__.py").write_text("raise SystemExit('package imported')\n")
    install_entry_point(site, "org-tools", "org = org_tools.tools", monkeypatch)
    tools = load_tools(settings(tmp_path), warn=Warnings())
    assert tools["org_echo"].source == "entry-point:org"
    assert "org_tools" not in sys.modules and "org_tools.tools" not in sys.modules


def test_entry_point_that_is_not_a_package_warns(tmp_path, monkeypatch):
    import importlib.metadata as md

    ep = md.EntryPoint(name="broken", value="no_such_module_xyz", group="agentcli.tools")
    monkeypatch.setattr("agentcli.toolrun.manifest._entry_points", lambda: [ep])
    warns = Warnings()
    tools = load_tools(settings(tmp_path), warn=warns)
    assert "calculator" in tools
    assert any("no_such_module_xyz" in w for w in warns)


def test_builtin_dir_is_the_checkout_or_the_installed_copy():
    import agentcli

    found = builtin_tools_dir()
    # editable install: the checkout's tools/; wheel install (CI): the copy inside the package
    assert found in (REPO / "tools", Path(agentcli.__file__).parent / "_builtin_tools")
    assert (found / "calculator.yaml").is_file() and (found / "calculator.py").is_file()


def test_wheel_ships_builtins_and_a_plain_install_finds_them(tmp_path):
    """`pip install .` (not -e): build the wheel, install it into a folder, load the tools."""
    out = tmp_path / "wheel"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    if build.returncode != 0:
        pytest.skip(f"cannot build the wheel here: {build.stderr.strip()[-300:]}")
    wheel = next(out.glob("agentcli-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for tool in ("calculator", "file_read", "web_fetch"):
        assert f"agentcli/_builtin_tools/{tool}.yaml" in names
        assert f"agentcli/_builtin_tools/{tool}.py" in names
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=300)
    script = textwrap.dedent("""
        import agentcli, json
        from agentcli.config import load_settings
        from agentcli.toolrun.manifest import load_tools, builtin_tools_dir
        tools = load_tools(load_settings())
        print(json.dumps([agentcli.__file__, str(builtin_tools_dir()), sorted(tools),
                          tools["calculator"].function()(expression="37*91")]))
    """)
    env = {**os.environ, "PYTHONPATH": str(target), "AGENTCLI_HOME": str(tmp_path / "home")}
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr

    file, folder, names, answer = json.loads(run.stdout)
    assert file.startswith(str(target))
    assert folder == str(target / "agentcli" / "_builtin_tools")
    assert {"calculator", "file_read", "web_fetch"} <= set(names)
    assert answer == "3367"


def test_example_tool_from_the_readme_loads_and_runs(tmp_path):
    """tests/data/example_tool is the README's "Write your own tool" example."""
    from agentcli.toolrun.approval import build_approver
    from agentcli.toolrun.executor import Executor
    from agentcli.messages import ToolCall

    folder = Path(__file__).parent / "data" / "example_tool"
    s = settings(tmp_path, options={"word_count": {"ignore_case": False}})
    tools = load_tools(s, extra_dirs=[str(folder)], warn=Warnings())
    tool = tools["word_count"]
    assert tool.confirm == "never"
    ex = Executor(tools, build_approver(s, yes=False, prompter=None))
    r = ex.execute(ToolCall("1", "word_count", '{"text": "The cat and the hat", "top": 1}')).result
    assert not r.is_error, r.content

    data = json.loads(r.content)
    assert data["words"] == 5 and data["characters"] == 19
    assert data["most_common"] == [["The", 1]]  # ignore_case: false from the options
    bad = ex.execute(ToolCall("2", "word_count", '{"text": "x", "top": 99}')).result
    assert bad.is_error and "invalid arguments" in bad.content


def test_bad_confirm_in_config_is_a_config_error_naming_file_and_key(tmp_path):
    """It used to drop the tool with a warning naming no file, exit 0."""
    cfg = config_with(tmp_path, "calculator:\n  confirm: sometimes\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert f"in {cfg}" in e.value.message
    assert "at key 'tools.options.calculator.confirm'" in e.value.message
    assert "'sometimes' must be 'ask' or 'never'" in e.value.message


def test_builtin_manifests_pass_the_full_schema_check():
    """At startup built-ins skip the jsonschema meta-check (speed); this test is that check."""
    manifests = sorted(builtin_tools_dir().glob("*.yaml"))
    assert {m.stem for m in manifests} >= {"calculator", "file_read", "web_fetch"}
    for m in manifests:
        parse_manifest(m)  # builtin=False: the full check, raises on a bad schema


def test_user_manifest_with_bad_schema_is_still_refused(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "name: bad\ndescription: d\nentrypoint: bad:run\n"
        "parameters: {type: object, properties: {x: {type: 12}}}\n")
    (tmp_path / "bad.py").write_text("def run(x=None):\n    return x\n")
    warns: list[str] = []
    from agentcli.config import load_settings

    tools = load_tools(load_settings(), extra_dirs=[str(tmp_path)], warn=warns.append)
    assert "bad" not in tools and any("not a valid JSON Schema" in w for w in warns)


def test_the_example_configs_tool_options_pass_the_manifests(tmp_path):
    """config.example.yaml, with its commented-out tool options switched on, loads cleanly."""
    import re

    text = (REPO / "config.example.yaml").read_text()
    head, _, tools_part = text.partition("\ntools:\n")
    enabled = re.sub(r"(?m)^(      )# (\w+: )", r"\1\2", tools_part)
    enabled = re.sub(r"(?m)^    # (calculator:)\n    #   (confirm: ask)", r"    \1\n      \2",
                     enabled)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(head + "\ntools:\n" + enabled)
    s = load_settings(cfg)
    assert s.tools.options["web_fetch"]["max_redirects"] == 5
    assert s.tools.options["calculator"]["confirm"] == "ask"
    tools = load_tools(s, warn=Warnings())
    assert tools["file_read"].options["max_bytes"] == 100000
    assert tools["calculator"].confirm == "ask"


def test_readme_example_tool_is_the_tested_one():
    """The README's "Write your own tool" files are tests/data/example_tool, byte for byte."""
    readme = (REPO / "README.md").read_text()
    folder = Path(__file__).parent / "data" / "example_tool"
    for name, lang in (("word_count.yaml", "yaml"), ("word_count.py", "python")):
        block = readme.split(f"`{name}`:\n\n```{lang}\n", 1)[1].split("\n```\n", 1)[0]
        assert block + "\n" == (folder / name).read_text()


def test_builtin_preload_is_for_the_tool_host_never_agentcli_nor_the_plugin(tmp_path):
    """web_fetch's `preload` (httpx, httpcore) is imported by the tool host (which workers are
    forked from; tests/test_isolation_host.py), not by agentcli; the web_fetch module itself
    is imported only in the worker."""
    script = textwrap.dedent("""
        import json, sys
        from agentcli.toolrun.approval import PolicyApprover
        from agentcli.config import load_settings
        from agentcli.toolrun.executor import Executor
        from agentcli.messages import ToolCall
        from agentcli.toolrun.manifest import load_tools

        from agentcli.toolrun.host.client import HostPool

        tools = load_tools(load_settings())
        before = "httpx" in sys.modules
        hosts = HostPool()
        assert hosts.warm(wait=30)  # a host is up: the call is not the run's first-call fork
        ex = Executor(tools, PolicyApprover(yes=True), hosts=hosts)
        r = ex.execute(ToolCall("1", "web_fetch", '{"url": "http://127.0.0.1:9/"}')).result
        print(json.dumps([before, "httpx" in sys.modules,
                          [m for m in sys.modules if "web_fetch" in m], r.content]))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "AGENTCLI_HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    before, after, plugin_modules, content = json.loads(run.stdout)
    assert (before, after, plugin_modules) == (False, False, [])
    assert "loopback" in content  # the call itself ran, in the worker
