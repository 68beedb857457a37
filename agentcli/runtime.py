"""Flags -> Settings -> the objects one run needs (provider, tools, approver, agent).

Shared by ``ask`` and ``chat`` so both build exactly the same core; holds no state itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Sequence

from .errors import UsageError

if TYPE_CHECKING:
    from .agent import Agent
    from .approval import Prompter
    from .config import ProviderProfile, Settings
    from .executor import Executor, Tool
    from .mcp_tools import McpRun
    from .messages import Message
    from .providers.base import Provider

Notice = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    """The chat/ask flags that shape a run (None = not given on the command line)."""

    config: str | None = None
    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    system: str | None = None
    yes: bool = False
    no_tools: bool = False
    tools: tuple[str, ...] = ()
    tools_dirs: tuple[str, ...] = ()
    max_steps: int | None = None
    stream: bool = True
    max_tokens: int | None = None


def load(opts: RunOptions) -> Settings:
    from .config import load_settings

    settings = load_settings(opts.config)
    changes = {}
    if opts.max_steps is not None:
        if opts.max_steps < 1:
            raise UsageError("--max-steps must be 1 or more")
        changes["max_steps"] = opts.max_steps
    if opts.system is not None:
        changes["system"] = opts.system
    return replace(settings, **changes) if changes else settings


def resolve(settings: Settings, opts: RunOptions, notice: Notice | None = None) -> ProviderProfile:
    from .profiles import resolve_profile

    profile = resolve_profile(settings, opts.provider, opts.model, opts.base_url, notice=notice)
    if opts.max_tokens is not None:
        if opts.max_tokens < 1:
            raise UsageError("--max-tokens must be 1 or more")
        profile = replace(profile, max_tokens=opts.max_tokens)
    return profile


def make_provider(settings: Settings, profile: ProviderProfile) -> Provider:
    from .providers.base import create_provider

    return create_provider(profile, settings)


def select_tools(settings: Settings, opts: RunOptions, warn: Notice) -> dict[str, Tool]:
    """All loaded tools, narrowed by --no-tools / -t NAME."""
    if opts.no_tools:
        return {}
    from .plugins import load_tools

    tools = load_tools(settings, extra_dirs=opts.tools_dirs, warn=warn)
    if opts.tools:
        from .approval import _glob
        from .mcp_tools import mcp_patterns

        def hits(p: str) -> list[str]:
            return [n for n in tools if _glob(p, n, segments=False)]

        for_mcp = mcp_patterns(settings, opts.tools)  # server__tool names: checked once started
        missing = [p for p in opts.tools if p not in for_mcp and not hits(p)]
        if missing:
            raise UsageError(f"unknown tool: {', '.join(missing)}",
                             hint=f"available: {', '.join(sorted(tools)) or 'none'} "
                                  "(see `agentcli tools list`)")
        tools = {n: tools[n] for p in opts.tools for n in hits(p)}
    return tools


def start_mcp(settings: Settings, opts: RunOptions, warn: Notice) -> McpRun | None:
    """Start the run's MCP servers in the background (None: no servers, or --no-tools)."""
    if opts.no_tools or not getattr(settings, "mcp_servers", None):
        return None
    from .mcp_tools import start_for_run

    return start_for_run(settings, opts.tools, warn)


def make_executor(settings: Settings, opts: RunOptions, tools: dict[str, Tool],
                  prompter: Prompter | None, mcp: McpRun | None = None) -> Executor:
    """The plugin Executor; with MCP servers, a router over it and the MCP tools (one approver)."""
    from .approval import build_approver
    from .executor import Executor

    approver = build_approver(settings, yes=opts.yes, prompter=prompter)
    executor = Executor(tools, approver)
    return executor if mcp is None else mcp.route(executor, approver)  # type: ignore[return-value]


def make_agent(settings: Settings, opts: RunOptions, provider: Provider, executor: Executor,
               history: list[Message] | None = None) -> Agent:
    from .agent import Agent

    return Agent(provider, executor, system=settings.system, max_steps=settings.max_steps,
                 history=history, stream=opts.stream)


def tool_names(tools: Sequence[str]) -> tuple[str, ...]:
    """Accept both `-t a -t b` and `-t a,b`."""
    out: list[str] = []
    for t in tools:
        out.extend(x.strip() for x in t.split(",") if x.strip())
    return tuple(dict.fromkeys(out))
