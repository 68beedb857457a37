"""`agentcli tools list | show NAME | run NAME --args JSON | validate PATH`.

Only typer and the stdlib are imported at module level (startup time); the rest is imported inside
each command. Errors are AgentCliError subclasses turned into one line + exit code by the main
CLI's ``run_command``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, List, Optional

import typer

from .common import ConfigOpt, ToolsDirOpt, run_command
from ..ui.render import warn

tools_app = typer.Typer(
    name="tools", no_args_is_help=True, add_completion=False,
    help="List, inspect, run and validate tool plugins.",
)


def _load(config: str | None, tools_dirs: list[str] | None) -> tuple[Any, dict[str, Any]]:
    from ..config import load_settings
    from ..toolrun.manifest import load_tools

    settings = load_settings(config)
    return settings, load_tools(settings, extra_dirs=tuple(tools_dirs or ()), warn=warn)


def _get(tools: dict[str, Any], name: str) -> Any:
    from ..errors import UsageError

    if name not in tools:
        raise UsageError(f"unknown tool '{name}'",
                         hint=f"available: {', '.join(sorted(tools)) or 'none'}")
    return tools[name]


def _out(text: str) -> None:
    """Text from outside (manifests, tool output, MCP servers) to stdout, made inert in every
    output mode: a pipe (`| less -R`) would replay escapes just like a terminal."""
    from ..ui.render import sanitize

    text = sanitize(text)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


@tools_app.command("list")
def list_tools(tools_dir: Optional[List[str]] = ToolsDirOpt,
               config: Optional[str] = ConfigOpt) -> None:
    """Every tool: name, source, approval default, description."""

    def body() -> int:
        settings, tools = _load(config, tools_dir)
        rows = [(t.name, t.source, t.confirm, t.definition.description.split("\n")[0])
                for t in tools.values()]
        if settings.mcp_servers:  # MCP servers' tools, source mcp:SERVER (the servers start)
            from ..mcp.tools import listed_tools, shown_description

            rows += [(t.name, t.source, t.confirm, shown_description(t))
                     for t in listed_tools(settings, warn, reserved=list(tools))]
        if not rows:
            print("no tools found")
            return 0
        w = [max(len(r[i]) for r in rows + [("NAME", "SOURCE", "APPROVAL", "")]) for i in range(3)]
        lines = [f"{'NAME':<{w[0]}}  {'SOURCE':<{w[1]}}  {'APPROVAL':<{w[2]}}  DESCRIPTION"]
        for name, source, confirm, desc in rows:
            desc = desc if len(desc) <= 80 else desc[:79] + "…"
            lines.append(f"{name:<{w[0]}}  {source:<{w[1]}}  {confirm:<{w[2]}}  {desc}")
        _out("\n".join(lines))
        return 0

    run_command(body)


def _needs(tool: Any) -> str:
    """What the tool asks of the sandbox, in words."""
    needs = [word for flag, word in ((tool.network, "the network"),
                                     (tool.writes, "writes the working folder"),
                                     (tool.runs_commands, "confines the commands it runs"))
             if flag]
    return ", ".join(needs) or "nothing (reads only, no network)"


@tools_app.command("show")
def show_tool(name: str = typer.Argument(..., help="Tool name."),
              tools_dir: Optional[List[str]] = ToolsDirOpt,
              config: Optional[str] = ConfigOpt) -> None:
    """The tool's manifest, where it came from, its config options and its parameter schema."""

    def body() -> int:
        _, tools = _load(config, tools_dir)
        t = _get(tools, name)
        m = t.manifest
        lines = [f"name:        {t.name}", f"source:      {t.source}", f"manifest:    {t.path}",
                 f"entrypoint:  {m.get('entrypoint', '?')}", f"approval:    {t.confirm}",
                 f"timeout:     {t.timeout:g} s", f"output cap:  {t.output_cap} characters",
                 f"sandbox:     {_needs(t)}",
                 f"limits:      {t.memory_mb} MiB of memory per process, {t.processes} processes"]
        if t.options:
            lines.append(f"options set: {json.dumps(dict(t.options), default=str)}")
        if m.get("annotations"):
            lines.append(f"annotations: {json.dumps(m['annotations'], ensure_ascii=False)}")
        lines += ["description:", *("  " + ln for ln in t.definition.description.splitlines())]
        lines += [f"options (tools.options.{t.name} in the config file):",
                  *_option_lines(m.get("options") or {})]
        lines += ["parameters (JSON Schema, sent to the model):",
                  json.dumps(t.definition.parameters, indent=2, ensure_ascii=False)]
        _out("\n".join(lines))
        return 0

    run_command(body)


def _option_lines(schema: dict[str, Any]) -> list[str]:
    """The manifest's options schema, one line per option: name, type and range, description."""
    rows = [("confirm", "ask | never", "agentcli's own, any tool: overrides the approval default")]
    for name, spec in (schema.get("properties") or {}).items():
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("type", "any")
        kind = " or ".join(kind) if isinstance(kind, list) else str(kind)
        if "enum" in spec:
            kind = " | ".join(json.dumps(v) for v in spec["enum"])
        bounds = [f"{op} {spec[key]}" for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                       ("maximum", "<="), ("exclusiveMaximum", "<"))
                  if key in spec]
        rows.append((str(name), ", ".join([kind, *bounds]), str(spec.get("description", ""))))
    if schema.get("additionalProperties") not in (None, False) or schema.get("patternProperties"):
        rows.append(("(other keys)", "allowed by the manifest", ""))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f"  {a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]


@tools_app.command("run")
def run_tool(name: str = typer.Argument(..., help="Tool name."),
             args: str = typer.Option("{}", "--args", metavar="JSON",
                                      help='Arguments as a JSON object, e.g. \'{"path": "README.md"}\'.'),
             yes: bool = typer.Option(False, "--yes", "-y", help="Approve without asking."),
             tools_dir: Optional[List[str]] = ToolsDirOpt,
             config: Optional[str] = ConfigOpt) -> None:
    """Run one tool directly, through the same validation and approval as a model's call."""

    def body() -> int:
        from ..toolrun.approval import build_approver, open_tty_prompter
        from ..errors import ToolRunError, UsageError
        from ..toolrun.executor import Executor, validate_arguments
        from ..messages import ToolCall

        settings, tools = _load(config, tools_dir)
        tool = _get(tools, name)
        call = ToolCall("cli-run", name, args)
        try:
            parsed = call.parsed_arguments()
        except ValueError as e:
            raise UsageError(f"--args: {e}", hint='pass a JSON object, e.g. --args \'{"x": 1}\'')
        problem = validate_arguments(parsed, tool.definition.parameters)
        if problem:
            raise UsageError(f"--args: invalid arguments for {name}: {problem}",
                             hint=f"see `agentcli tools show {name}`")
        prompter = None if yes else open_tty_prompter()
        try:
            from ..toolrun.sandbox import from_settings

            executor = Executor({name: tool}, build_approver(settings, yes=yes,
                                                             prompter=prompter),
                                sandbox=from_settings(settings, warn=warn))
            outcome = executor.execute(call)
        finally:
            if prompter is not None:
                prompter.close()
        result = outcome.result
        if result.is_error:
            first, _, rest = result.content.partition("\n")
            no_terminal = getattr(outcome.verdict, "source", None) == "no_terminal"
            raise ToolRunError(first, hint="rerun with --yes to approve it" if no_terminal
                               else None)
        _out(result.content)
        return 0

    run_command(body)


@tools_app.command("validate")
def validate_tool(path: Optional[str] = typer.Argument(
                      None, help="A manifest file, or a folder of them (default: every tool "
                                 "agentcli would load)."),
                  config: Optional[str] = ConfigOpt,
                  tools_dir: Optional[List[str]] = ToolsDirOpt) -> None:
    """Check manifests, their options in the config, and import each module in an isolated
    process: exit 0 when all are fine, 2 otherwise."""

    def body() -> int:
        from ..config import load_settings
        from ..errors import PluginError
        from ..ui.render import report_error
        from ..toolrun.check import validate

        settings = load_settings(config)
        problems = 0
        for checked, problem in validate(settings, path, tuple(tools_dir or ()), warn):
            if problem:
                problems += 1
                report_error(PluginError(problem))
            else:
                _out(f"ok: {checked}")
        if problems:
            raise PluginError(f"{problems} manifest(s) failed validation")
        return 0

    run_command(body)
