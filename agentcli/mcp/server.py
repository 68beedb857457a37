"""`agentcli mcp serve`: the plugin tools over stdio MCP, for any MCP host.

Each call goes through the same ``Executor`` as in `ask` (argument validation, a forked child with
the manifest's timeout, the output cap). The host does the approving; agentcli still applies its
config's ``tools.deny`` rules (a denied call is an error result, never run), and the tools keep
their own guards (file_read's roots, web_fetch's address guard, from ``tools.options``). The
transport is ``serve_stdio``'s (bounded, answers malformed requests); while serving, fd 1
points at stderr, so nothing but protocol messages reaches stdout.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Mapping

from .. import __version__
from ..toolrun.approval import build_approver
from ..toolrun.executor import Executor, Tool
from ..messages import ToolCall

INSTRUCTIONS = ("Tools of agentcli, a terminal agent: the host approves each call; agentcli's own "
                "deny rules, file roots and network guard still apply.")


def serve_executor(settings: Any, tools: Mapping[str, Tool]) -> Executor:
    """The Executor `mcp serve` runs calls through: every call is approved (the host asked the
    user) except what a ``tools.deny`` rule matches."""
    from ..toolrun.sandbox import from_settings
    from ..ui.render import warn

    return Executor(dict(tools), build_approver(settings, yes=True, prompter=None),
                    sandbox=from_settings(settings, warn=warn))


_HINTS = {"read_only": "read_only_hint", "destructive": "destructive_hint",
          "idempotent": "idempotent_hint", "open_world": "open_world_hint"}


def tool_annotations(annotations: Mapping[str, Any] | None, types: Any) -> dict[str, Any]:
    """A manifest's ``annotations`` as the MCP tool's ``title`` and ``annotations`` (none when
    the manifest has none: a host then assumes the worst, as the spec says)."""
    if not annotations:
        return {}
    hints = {_HINTS[k]: v for k, v in annotations.items() if k in _HINTS}
    title = annotations.get("title")
    return {"title": title, "annotations": types.ToolAnnotations(title=title, **hints)}


def build_server(executor: Executor) -> Any:
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    ids = itertools.count(1)
    listing = [types.Tool(name=t.name, description=t.definition.description,
                          input_schema=dict(t.definition.parameters),
                          **tool_annotations(t.manifest.get("annotations"), types))
               for t in executor.tools.values()]

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=listing)

    async def call_tool(ctx: Any, params: Any) -> Any:
        call = ToolCall(f"mcp-{next(ids)}", params.name,
                        json.dumps(params.arguments or {}, ensure_ascii=False))
        # the fork and the wait happen in a worker thread: the loop keeps serving other requests
        outcome = await anyio.to_thread.run_sync(executor.execute, call,
                                                 abandon_on_cancel=True)
        result = outcome.result
        return types.CallToolResult(content=[types.TextContent(type="text",
                                                               text=result.content)],
                                    is_error=result.is_error)

    return Server("agentcli", version=__version__, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


def serve(settings: Any, tools: Mapping[str, Tool]) -> int:
    """Serve until the host closes stdin; returns the exit code."""
    import anyio

    from ..ui.render import warn
    from .serve_stdio import server_streams

    server = build_server(serve_executor(settings, tools))

    async def main() -> None:
        async with server_streams(warn) as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)
    return 0
