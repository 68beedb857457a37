"""MCP tools beside the plugins, under the same approval model.

``McpExecutor`` is the Executor for the tools of the configured MCP servers: it validates the
arguments against the server's JSON Schema, asks the SAME approver as the plugins (the tool's
default is ``ask``; ``tools.allow``/``tools.deny`` rules match the prefixed name, e.g.
``time__*``), calls the server and turns its result into a capped ``ToolResult`` (with the
images and PDFs it returned as media: ``result_content``). A server's
annotations (read-only, destructive, ...) are shown, never used to approve. ``ToolRouter`` sends
each call to the plugin Executor or to it. ``McpRun`` is what ask/chat hold: the started servers
of one run, closed at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..toolrun.executor import DEFAULT_OUTPUT_CAP, ToolOutcome, admit_call, cap_output, error_outcome
from .client import McpCallError, McpHub, describe_error, start_hub
from .config import SEPARATOR, parse_servers, pattern_server_names, prefixed_name
from ..messages import MediaPart, ToolCall, ToolDefinition, ToolResult

Warn = Callable[[str], None]
_HINTS = (("read_only_hint", "read-only"), ("destructive_hint", "destructive"),
          ("idempotent_hint", "idempotent"), ("open_world_hint", "open-world"))


@dataclass(frozen=True)
class McpTool:
    """An MCP server's tool as agentcli offers it (duck-types ``executor.Tool`` for listings)."""

    definition: ToolDefinition
    server: str
    remote_name: str
    annotations: Mapping[str, Any] = field(default_factory=dict)
    output_cap: int = DEFAULT_OUTPUT_CAP
    confirm: str = "ask"  # MCP tools always ask unless a config rule or --yes says otherwise

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def source(self) -> str:
        return f"mcp:{self.server}"

    def hints(self) -> str:
        """The server's own annotations in words ("read-only, idempotent"); never approval."""
        words = []
        for key, word in _HINTS:
            value = self.annotations.get(key)
            if value is True:
                words.append(word)
            elif value is False and key == "destructive_hint":
                words.append("not destructive")
        return ", ".join(words)


def tool_from_mcp(server: str, tool: Any, output_cap: int | None) -> McpTool | None:
    """None for a tool whose input schema is not a JSON object schema (no API accepts it)."""
    schema = dict(tool.input_schema or {})
    if schema.get("type", "object") != "object":
        return None
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    annotations = tool.annotations.model_dump(exclude_none=True) if tool.annotations else {}
    title = annotations.get("title") or getattr(tool, "title", None)
    description = (tool.description or title or f"{tool.name} (MCP tool of {server})").strip()
    return McpTool(ToolDefinition(prefixed_name(server, tool.name), description, schema),
                   server, tool.name, annotations, output_cap or DEFAULT_OUTPUT_CAP)


def result_content(result: Any, name: str = "tool",
                   media_limit: int = 0) -> tuple[str, tuple[MediaPart, ...]]:
    """The text the model reads, and the images and PDFs it gets as such where the API takes
    them in tool results (``media_limit``: most bytes of one; 0 keeps none). Text content is
    passed as is; every image, audio clip and resource is described in a note, which says
    "not shown to the model" for what is not passed on (audio, other types, bytes that are
    not what the server said they were, or more than ``media_limit``)."""
    parts: list[str] = []
    media: list[MediaPart] = []
    for block in result.content or ():
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            size = _b64_size(block.data)
            found = _media(block.data, block.mime_type, f"{name} {kind} {len(media) + 1}",
                           media_limit) if kind == "image" else None
            media.extend([found] if found else [])
            parts.append(f"[{kind} result: {block.mime_type}, {size:,} bytes"
                         + ("]" if found else "; not shown to the model]"))
        elif kind == "resource":
            res = block.resource
            body = getattr(res, "text", None)
            found = None if body is not None else _media(
                getattr(res, "blob", ""), res.mime_type, str(res.uri), media_limit)
            media.extend([found] if found else [])
            what = (f"{len(body):,} characters of text" if body is not None
                    else f"{_b64_size(getattr(res, 'blob', '')):,} bytes")
            parts.append(f"[resource {res.uri} ({res.mime_type or 'unknown type'}): {what}]")
        elif kind == "resource_link":
            parts.append(f"[resource link {block.uri}: {block.name}"
                         + (f" ({block.mime_type})" if block.mime_type else "") + "]")
        else:
            parts.append(f"[{kind or 'unknown'} content not shown]")
    if not parts and result.structured_content is not None:
        import json

        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(parts), tuple(media)


def result_text(result: Any) -> str:
    """The text of a result (images and documents described in a note)."""
    return result_content(result)[0]


def _media(data: Any, mime_type: Any, name: str, limit: int) -> MediaPart | None:
    """An image or PDF the server sent in base64, when its bytes are what it says they are and
    no more than ``limit``; else None (it stays a note)."""
    from ..inputs.attachments import media_part, sniff

    if not isinstance(data, str) or _b64_size(data) > limit:
        return None
    import base64
    import binascii

    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    kind = sniff(raw)
    if kind is None or kind != {"image/jpg": "image/jpeg"}.get(mime_type, mime_type):
        return None
    return media_part(raw, kind, name)


def _b64_size(data: str | None) -> int:
    """Decoded size of base64 text, without decoding it."""
    data = (data or "").strip()
    return len(data) * 3 // 4 - len(data) + len(data.rstrip("="))


class McpExecutor:
    """Validate -> approve (the shared approver) -> call -> cap, for MCP tools; never raises
    (KeyboardInterrupt aside, after the call was cancelled)."""

    def __init__(self, hub: McpHub, approver: Any, *, patterns: Sequence[str] = (),
                 reserved: Sequence[str] = (), warn: Warn, progress: Any = None,
                 media_limit: int = 0) -> None:
        self.hub = hub
        self.media_limit = media_limit
        """Most bytes of one image or PDF a tool returns that goes to the model as such
        (``attach_limit``; 0: none, they stay notes)."""
        self.approver = approver
        self.patterns = tuple(patterns)
        self.reserved = set(reserved)
        self.warn = warn
        self.progress = progress
        """Where a call's progress is shown (``show(label, progress, total, message)`` and
        ``clear()``, e.g. ``ui.progress.ProgressLine``); None: progress is not asked for."""
        self._tools: dict[str, McpTool] | None = None
        self._validators: dict[str, Any] = {}
        self._warned: set[str] = set()

    def tools(self) -> dict[str, McpTool]:
        """The offered MCP tools; the first use waits for the servers to start."""
        if self._tools is None:
            self.hub.wait()
            from ..toolrun.approval import glob_match

            tools: dict[str, McpTool] = {}
            for st in self.hub.servers.values():
                if st.status != "ready":
                    self._server_warning(st.spec.name)
                    continue
                for remote in st.tools:
                    tool = tool_from_mcp(st.spec.name, remote, st.spec.output_cap)
                    if tool is None:
                        self.warn(f"MCP tool {remote.name!r} of server '{st.spec.name}' is "
                                  "skipped: its input schema is not an object")
                        continue
                    if self.patterns and not any(glob_match(p, tool.name, segments=False)
                                                 for p in self.patterns):
                        continue
                    if tool.name in self.reserved or tool.name in tools:
                        self.warn(f"MCP tool {tool.name} clashes with another tool of that "
                                  "name; keeping the first one")
                        continue
                    tools[tool.name] = tool
            for p in self.patterns:  # `-t time__nosuch`: say so rather than offer nothing
                if SEPARATOR in p and not any(glob_match(p, n, segments=False) for n in tools):
                    self.warn(f"no MCP tool matches -t {p}")
            self._tools = tools
        return self._tools

    def _server_warning(self, name: str) -> None:
        st = self.hub.servers[name]
        if name not in self._warned:
            self._warned.add(name)
            self.warn(f"MCP server '{name}' {_status_words(st.error)}; its tools are not "
                      f"available (log: {st.log})")

    def definitions(self) -> Sequence[ToolDefinition]:
        return [t.definition for t in self.tools().values()]

    def execute(self, call: ToolCall, seen: Any = None) -> ToolOutcome:
        tool = self.tools().get(call.name)
        if tool is None:
            return error_outcome(call, f"unknown tool '{call.name}'")
        admitted = admit_call(call, tool, self._validators, self.approver,
                              schema_owner="server's", describe=describe_error)
        if isinstance(admitted, ToolOutcome):
            return admitted
        args, verdict = admitted
        try:
            result = self._call(tool, args)
        except McpCallError as e:
            st = self.hub.servers[tool.server]
            if st.status != "ready":
                self._server_warning(tool.server)
            elif e.timed_out and f"{tool.server}/hung" not in self._warned:
                self._warned.add(f"{tool.server}/hung")  # once: the model is told every time
                self.warn(f"MCP server '{tool.server}' did not answer {tool.name} within "
                          f"{st.spec.timeout:g} s; the call was cancelled (log: {st.log})")
            return error_outcome(call, f"MCP tool {tool.name} failed: {e}", verdict)
        text, media = result_content(result, tool.name, self.media_limit)
        return ToolOutcome(ToolResult(call.id, call.name, cap_output(text, tool.output_cap),
                                      is_error=bool(result.is_error), media=media), verdict)

    def _call(self, tool: McpTool, args: dict[str, Any]) -> Any:
        """The server's result, its progress shown meanwhile (and gone before anything else
        is printed)."""
        shown = self.progress
        if shown is None:
            return self.hub.call(tool.server, tool.remote_name, args)
        try:
            return self.hub.call(tool.server, tool.remote_name, args,
                                 on_progress=lambda done, total, message: shown.show(
                                     tool.name, done, total, message))
        finally:
            shown.clear()


def _status_words(error: str | None) -> str:
    return f"failed: {error}" if error else "is not running"


class ToolRouter:
    """The run's Executor: plugin calls to the plugin Executor, ``server__tool`` calls to MCP."""

    def __init__(self, plugins: Any, mcp: McpExecutor) -> None:
        self.plugins = plugins
        self.mcp = mcp

    @property
    def approver(self) -> Any:  # /tools reads the policy from here
        return self.plugins.approver

    def definitions(self) -> Sequence[ToolDefinition]:
        return [*self.plugins.definitions(), *self.mcp.definitions()]

    def execute(self, call: ToolCall, seen: Any = None) -> ToolOutcome:
        mcp = self.mcp.tools()
        if call.name in mcp:
            return self.mcp.execute(call)
        plugins = getattr(self.plugins, "tools", None)
        if plugins is not None and call.name not in plugins:  # name them all, not half
            known = ", ".join(sorted([*plugins, *mcp])) or "none"
            return error_outcome(call, f"unknown tool '{call.name}'; available tools: {known}")
        return self.plugins.execute(call, seen=seen)


@dataclass
class McpRun:
    """The MCP side of one ask/chat run: its started servers and the ``-t`` patterns.
    ``progress``: where long calls show their progress (by default a line on stderr that
    updates in place, ``ui.progress.ProgressLine``); set it before ``route`` to show it
    elsewhere."""

    hub: McpHub
    patterns: tuple[str, ...]
    warn: Warn
    progress: Any = None
    media_limit: int = 0

    def route(self, plugins: Any, approver: Any) -> ToolRouter:
        if self.progress is None:
            from ..ui.progress import ProgressLine

            self.progress = ProgressLine()
        return ToolRouter(plugins, McpExecutor(self.hub, approver, patterns=self.patterns,
                                               reserved=list(getattr(plugins, "tools", {})),
                                               warn=self.warn, progress=self.progress,
                                               media_limit=self.media_limit))

    def close(self) -> None:
        self.hub.close()


def configured_servers(settings: Any) -> dict[str, Any]:
    file = str(settings.config_file) if getattr(settings, "config_file", None) else None
    return parse_servers(getattr(settings, "mcp_servers", None), file)


def start_for_run(settings: Any, patterns: tuple[str, ...], warn: Warn) -> McpRun | None:
    """Start (in the background) the servers this run can use: all of them, or with ``-t`` only
    those a pattern reaches (``time__*``). None when there are none."""
    specs = configured_servers(settings)
    names = [n for n, s in specs.items() if not s.disabled]
    if patterns:
        names = pattern_server_names(patterns, names)
    hub = start_hub([specs[n] for n in names], settings.data_dir)
    limit = int(getattr(settings, "attach_limit", 0) or 0)
    return McpRun(hub, patterns, warn, media_limit=limit) if hub is not None else None


def mcp_patterns(settings: Any, patterns: Sequence[str]) -> set[str]:
    """The ``-t`` entries meant for MCP servers (``server__...`` with a configured server)."""
    servers = list(configured_servers(settings))
    return {p for p in patterns if SEPARATOR in p and pattern_server_names((p,), servers)}


def listed_tools(settings: Any, warn: Warn, reserved: Sequence[str] = ()) -> list[McpTool]:
    """For `tools list`: start every enabled server, collect its tools, stop them again. A tool
    whose name is ``reserved`` (a plugin's) is left out with the warning `ask` gives."""
    specs = [s for s in configured_servers(settings).values() if not s.disabled]
    hub = start_hub(specs, settings.data_dir)
    if hub is None:
        return []
    try:
        return list(McpExecutor(hub, None, reserved=reserved, warn=warn).tools().values())
    finally:
        hub.close()


def shown_description(tool: Any) -> str:
    """A tool's description for listings, with an MCP tool's hints in front ("[read-only] ...")."""
    hints = tool.hints() if isinstance(tool, McpTool) else ""
    desc = " ".join(tool.definition.description.split())
    return f"[{hints}] {desc}" if hints else desc
