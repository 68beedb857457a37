"""`agentcli mcp list | add NAME -- CMD ARGS... | add NAME --url URL | remove NAME | serve`.

Only typer and the stdlib at module level (the MCP SDK loads only in `list` and `serve`). `add`
and `remove` edit the config file with ruamel.yaml's round trip, so its comments, order and other
keys stay as they were.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from .common import ConfigOpt, ToolOpt, ToolsDirOpt, run_command
from ..ui.render import eprint, warn

mcp_app = typer.Typer(
    name="mcp", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="MCP servers as tool sources (list, add, remove), and agentcli's tools served to any "
         "MCP host (serve).",
)


def _out(text: str) -> None:
    """Server-supplied text (descriptions, errors) made inert in every output mode."""
    from ..ui.render import sanitize

    print(sanitize(text), flush=True)


# --- list ---------------------------------------------------------------------------------------

@mcp_app.command("list")
def list_servers(config: Optional[str] = ConfigOpt) -> None:
    """Start every configured server and show whether it started, and its tools (exit 1 when
    one failed)."""

    def body() -> int:
        from ..config import load_settings
        from ..mcp.client import start_hub
        from ..mcp.tools import configured_servers, tool_from_mcp

        settings = load_settings(config)
        specs = configured_servers(settings)
        if not specs:
            _out("no MCP servers configured (add one: agentcli mcp add NAME -- COMMAND ARGS...)")
            return 0
        hub = start_hub(list(specs.values()), settings.data_dir)  # None: all disabled
        try:
            if hub is not None:
                hub.wait()
            failed = 0
            for name, spec in specs.items():
                st = hub.servers.get(name) if hub is not None else None
                if st is None:
                    status = "disabled"
                elif st.status == "ready":
                    status = f"ready ({st.started_in or 0:.1f} s, {len(st.tools)} tools)"
                else:
                    failed += 1
                    status = f"failed: {st.error} (log: {st.log})"
                _out(f"{name}  [{spec.transport}] {spec.describe()}\n  {status}")
                for remote in (st.tools if st is not None else ()):
                    tool = tool_from_mcp(name, remote, spec.output_cap)
                    if tool is None:
                        continue
                    hints = f" [{tool.hints()}]" if tool.hints() else ""
                    desc = " ".join(tool.definition.description.split())
                    _out(f"    {tool.name}{hints}  {desc[:90]}")
        finally:
            if hub is not None:
                hub.close()
        return 1 if failed else 0

    run_command(body)


# --- add / remove ---------------------------------------------------------------------------------

def edit_config(path: Path, change: Callable[[Any], None]) -> None:
    """Load ``path`` with ruamel's round trip, apply ``change`` to the top mapping, write it
    back atomically. Comments, key order and every other key are kept."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    from ..errors import ConfigError, UsageError

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config: {e}", file=str(path)) from e
    try:
        doc = yaml.load(text) if text.strip() else None
        if doc is not None:  # write it back indented the way it was written
            mapping, offset = _indents(text)
            yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    except YAMLError as e:
        raise ConfigError(f"invalid YAML: {str(e).splitlines()[0]}", file=str(path)) from e
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, dict):
        raise ConfigError("the config file is not a mapping", file=str(path))
    change(doc)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(buf.getvalue(), encoding="utf-8")
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from e


def _indents(text: str) -> tuple[int, int]:
    """(mapping indent, offset of a block list's dash under its key) as the file has them."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    depth = [len(ln) - len(ln.lstrip(" ")) for ln in lines]
    mapping = min((d for d, ln in zip(depth, lines) if d and not ln.lstrip().startswith("-")),
                  default=2)
    for i in range(1, len(lines)):
        if lines[i].lstrip().startswith("- ") and lines[i - 1].rstrip().endswith(":"):
            return mapping, max(0, depth[i] - depth[i - 1])
    return mapping, 0


_YAML_BOOLS = {"y", "n", "yes", "no", "on", "off", "true", "false"}


def _servers_map(doc: Any, create: bool, path: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap

    servers = doc.get("mcp_servers")
    if servers is not None and not isinstance(servers, dict):
        from ..errors import ConfigError

        raise ConfigError("expected a mapping of server name -> settings", file=str(path),
                          key="mcp_servers")
    if servers is None or (not servers and create):  # absent, empty or `{}`: a block mapping
        if not create:
            return None
        servers = CommentedMap()
        doc["mcp_servers"] = servers
    return servers


def _pairs(items: list[str] | None, sep: str, what: str) -> dict[str, str]:
    from ..errors import UsageError

    out = {}
    for item in items or ():
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise UsageError(f"{what} {item!r} must look like NAME{sep}{' ' if sep == ':' else ''}"
                             "VALUE")
        out[key.strip()] = value.strip()
    return out


def _refuse_literal_secrets(values: dict[str, str], what: str) -> None:
    """Keys live in the environment: a secret-looking value must be a ``${VAR}`` reference.
    The hint is written in the syntax of the flag the value came with (-e or -H)."""
    from ..errors import UsageError
    from ..mcp.config import SENSITIVE_KEY, only_env_refs

    for key, value in values.items():
        if SENSITIVE_KEY.search(key) and value and not only_env_refs(value):
            if what == "header":
                scheme = value.split(" ", 1)[0] + " " if " " in value.strip() else ""
                example = f"-H '{key}: {scheme}${{MY_TOKEN}}'"
            else:
                example = f"-e '{key}=${{{key}}}'"
            raise UsageError(f"{what} {key} holds a literal value; agentcli does not store keys",
                             hint=f"write it as a reference to an environment variable, e.g. "
                                  f"{example} (single quotes keep the shell from expanding it)")


@mcp_app.command("add")
def add_server(
    name: str = typer.Argument(..., help="Server name: its tools are offered as NAME__TOOL."),
    command: Optional[List[str]] = typer.Argument(None, metavar="[-- COMMAND ARGS...]",
                                                  help="A stdio server's command line."),
    url: Optional[str] = typer.Option(None, "--url", help="A streamable HTTP server's URL."),
    header: Optional[List[str]] = typer.Option(
        None, "--header", "-H", metavar="'NAME: VALUE'",
        help="HTTP header (repeatable); secrets as ${ENV_VAR}, read when the server starts."),
    env: Optional[List[str]] = typer.Option(None, "--env", "-e", metavar="NAME=VALUE",
                                            help="Environment variable for a stdio server."),
    cwd: Optional[str] = typer.Option(None, "--cwd", help="Working folder of a stdio server."),
    force: bool = typer.Option(False, "--force", help="Replace a server of that name."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """Add a server to the config file (comments and other settings are kept)."""

    def body() -> int:
        from ..config import config_path
        from ..errors import UsageError
        from ..mcp.config import parse_server

        if bool(command) == bool(url):
            raise UsageError("give either a command after -- or --url URL",
                             hint="agentcli mcp add time -- uvx mcp-server-time   or   "
                                  "agentcli mcp add docs --url https://example.com/mcp")
        entry: dict[str, Any] = {}
        if command:
            entry["command"] = command[0]
            if command[1:]:
                entry["args"] = list(command[1:])
        else:
            entry["url"] = url
        headers, envs = _pairs(header, ":", "--header"), _pairs(env, "=", "--env")
        _refuse_literal_secrets(headers, "header")
        _refuse_literal_secrets(envs, "environment variable")
        if headers:
            entry["headers"] = headers
        if envs:
            entry["env"] = envs
        if cwd:
            entry["cwd"] = cwd
        path, _ = config_path(config)
        parse_server(name, entry, str(path))  # the same checks as when the file is read

        def change(doc: Any) -> None:
            from ruamel.yaml.comments import CommentedMap, CommentedSeq

            servers = _servers_map(doc, create=True, path=path)
            if name in servers and not force:
                raise UsageError(f"an MCP server named '{name}' is already configured",
                                 hint="use --force to replace it, or `agentcli mcp remove "
                                      f"{name}` first")
            value = CommentedMap()
            for k, v in entry.items():
                if isinstance(v, list):
                    seq = CommentedSeq(v)
                    seq.fa.set_flow_style()
                    v = seq
                value[k] = v
            from ruamel.yaml.scalarstring import DoubleQuotedScalarString

            # quoted when an unquoted key would read as true/false (on, off, yes, no, ...)
            key = DoubleQuotedScalarString(name) if name.lower() in _YAML_BOOLS else name
            servers[key] = value

        edit_config(path, change)
        eprint(f"added MCP server '{name}' to {path}; its tools are offered as {name}__TOOL "
               f"(check it with `agentcli mcp list`)")
        return 0

    run_command(body)


@mcp_app.command("remove")
def remove_server(name: str = typer.Argument(..., help="Server name."),
                  config: Optional[str] = ConfigOpt) -> None:
    """Remove a server from the config file (comments and other settings are kept)."""

    def body() -> int:
        from ..config import config_path
        from ..errors import UsageError

        path, _ = config_path(config)

        def change(doc: Any) -> None:
            servers = _servers_map(doc, create=False, path=path)
            if not servers or name not in servers:
                known = ", ".join(servers or ()) or "none"
                raise UsageError(f"no MCP server named '{name}' in {path}",
                                 hint=f"configured: {known}")
            del servers[name]

        edit_config(path, change)
        eprint(f"removed MCP server '{name}' from {path}")
        return 0

    run_command(body)


# --- serve ----------------------------------------------------------------------------------------

@mcp_app.command("serve")
def serve_cmd(tool: Optional[List[str]] = ToolOpt,
              tools_dir: Optional[List[str]] = ToolsDirOpt,
              config: Optional[str] = ConfigOpt) -> None:
    """Serve agentcli's tool plugins over stdio MCP, for Claude Desktop, Claude Code or any MCP
    host. The host approves each call; agentcli still enforces tools.deny from its config,
    file_read's roots and web_fetch's address guard. Only protocol messages go to stdout."""

    def body() -> int:
        from ..mcp.server import serve
        from ..runtime import RunOptions, load, select_tools, tool_names

        opts = RunOptions(config=config, tools=tool_names(tool or []),
                          tools_dirs=tuple(tools_dir or ()))
        settings = load(opts)
        tools = select_tools(settings, opts, warn)
        if not tools:
            warn("no tools to serve")
        if sys.stdin.isatty():
            eprint(f"agentcli mcp serve: serving {len(tools)} tool(s) over MCP on stdin/stdout; "
                   "an MCP host starts this command itself (see the README). Ctrl-C quits.")
        return serve(settings, tools)

    run_command(body)
