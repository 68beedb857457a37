"""Flags -> Settings -> the objects one run needs (provider, tools, approver, agent).

Shared by ``ask`` and ``chat`` so both build exactly the same core; holds no state itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import UsageError

if TYPE_CHECKING:
    from .agent.conversation import Conversation
    from .agent.loop import Agent
    from .toolrun.approval import Prompter
    from .config import ProviderProfile, Settings
    from .toolrun.executor import Executor, Tool
    from .mcp.tools import McpRun
    from .providers.base import Provider
    from .sessions.recorder import Resumed, SessionRecorder

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
    stream: bool | None = None  # False: --no-stream; None: the profile's ``stream:``
    max_tokens: int | None = None
    api: str | None = None  # --api auto|responses|chat
    reasoning: str | None = None  # --reasoning LEVEL
    hide_reasoning: bool = False  # --hide-reasoning
    max_cost: float | None = None  # --max-cost USD (ask)
    attach: tuple[str, ...] = ()  # -a PATH|URL|- (repeatable)
    continue_latest: bool = False  # -c: the latest saved conversation
    session: str | None = None  # --session ID (or a unique prefix)
    save: bool = True  # False: --no-save
    role: str | None = None
    sandbox: str | None = None  # --sandbox read-only|workspace-write|off
    project_instructions: bool = True  # False: --no-project-instructions

    @property
    def resuming(self) -> bool:
        return self.continue_latest or self.session is not None


def load(opts: RunOptions) -> Settings:
    from .config import load_settings

    settings = load_settings(opts.config)
    changes = {}
    if opts.max_steps is not None:
        if opts.max_steps < 1:
            raise UsageError("--max-steps must be 1 or more")
        changes["max_steps"] = opts.max_steps
    if opts.role is not None:
        from .agent.roles import role_prompt

        changes["system"] = role_prompt(settings, opts.role)  # a typo fails even when -s wins
    if opts.system is not None:
        changes["system"] = opts.system
    if opts.hide_reasoning:
        changes["hide_reasoning"] = True
    if opts.sandbox is not None:
        from .config import SANDBOX_MODES

        if opts.sandbox not in SANDBOX_MODES:
            raise UsageError(f"--sandbox must be one of {', '.join(SANDBOX_MODES)}, not "
                             f"{opts.sandbox!r}")
        changes["sandbox"] = opts.sandbox
    return replace(settings, **changes) if changes else settings


def resolve(settings: Settings, opts: RunOptions, notice: Notice | None = None) -> ProviderProfile:
    from .providers.profiles import resolve_profile

    profile = resolve_profile(settings, opts.provider, opts.model, opts.base_url, notice=notice)
    changes: dict[str, Any] = {}
    if opts.max_tokens is not None:
        if opts.max_tokens < 1:
            raise UsageError("--max-tokens must be 1 or more")
        changes["max_tokens"] = opts.max_tokens
    from .config import API_CHOICES, REASONING_LEVELS

    for flag, value, choices in (("--api", opts.api, API_CHOICES),
                                 ("--reasoning", opts.reasoning, REASONING_LEVELS)):
        if value is not None and value not in choices:
            raise UsageError(f"{flag} must be one of {', '.join(choices)}, not {value!r}")
    if opts.api is not None:
        changes["api"] = opts.api
    if opts.reasoning is not None:
        changes["reasoning"] = opts.reasoning
    if opts.stream is not None:
        changes["stream"] = opts.stream
    return replace(profile, **changes) if changes else profile


def make_provider(settings: Settings, profile: ProviderProfile,
                  warn: Notice | None = None) -> Provider:
    from .providers.base import create_provider

    return create_provider(profile, settings, warn)


def select_tools(settings: Settings, opts: RunOptions, warn: Notice) -> dict[str, Tool]:
    """All loaded tools, narrowed by --no-tools / -t NAME."""
    if opts.no_tools:
        return {}
    from .toolrun.manifest import load_tools

    tools = load_tools(settings, extra_dirs=opts.tools_dirs, warn=warn, write_cache=opts.save)
    if opts.tools:
        from .toolrun.approval import glob_match

        def hits(p: str) -> list[str]:
            return [n for n in tools if glob_match(p, n, segments=False)]

        for_mcp: set[str] = set()  # server__tool names: checked once the servers started
        if getattr(settings, "mcp_servers", None):
            from .mcp.tools import mcp_patterns

            for_mcp = mcp_patterns(settings, opts.tools)
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
    from .mcp.tools import start_for_run

    return start_for_run(settings, opts.tools, warn)


def make_executor(settings: Settings, opts: RunOptions, tools: dict[str, Tool],
                  prompter: Prompter | None, mcp: McpRun | None = None) -> Executor:
    """The plugin Executor, its tool host already starting when a plugin is offered; with MCP
    servers, a router over it and the MCP tools (one approver)."""
    from .toolrun.approval import build_approver
    from .toolrun.executor import Executor
    from .toolrun.sandbox import from_settings

    approver = build_approver(settings, yes=opts.yes, prompter=prompter)
    executor = Executor(tools, approver, sandbox=from_settings(settings, warn=_warn),
                        roots=file_roots(settings))
    executor.warm()  # the tool host boots while the provider loads
    return executor if mcp is None else mcp.route(executor, approver)  # type: ignore[return-value]


def _warn(text: str) -> None:
    from .ui.render import warn

    warn(text)


def file_roots(settings: Settings) -> Any:
    """``file_read``'s ``roots`` option: the folders tools read, those marked writable also
    being the ones ``edit`` and ``write`` may change besides the working folder."""
    return (settings.tools.options.get("file_read") or {}).get("roots")


def make_agent(settings: Settings, opts: RunOptions, provider: Provider, executor: Executor,
               conversation: Conversation | None = None,
               profile: ProviderProfile | None = None,
               recorder: SessionRecorder | None = None, limit: Any = None,
               structured: Any = None) -> Agent:
    """The agent for ``conversation``; with ``profile``, each request is fitted to the model's
    context window (and ``recorder`` keeps the fitter's exact token counts with the
    conversation; a context-window notice already given in it is not given again).
    ``structured``: ``--schema`` (``agent.structured.StructuredOutput``)."""
    from .agent.loop import Agent

    prepare = None
    if profile is not None:
        from .agent.context import make_fitter

        prepare = make_fitter(settings, profile, getattr(provider, "model", None) or profile.model)
        if prepare is not None and conversation is not None and \
                conversation.state.get("context_notice") == prepare.notice_key:
            prepare.told = True
    if recorder is not None:
        recorder.link(prepare)
    stream = profile.stream if profile is not None else opts.stream is not False
    return Agent(provider, executor, conversation=conversation, system=settings.system,
                 max_steps=settings.max_steps, stream=stream, prepare=prepare, limit=limit,
                 structured=structured)


def structured_output(schema: dict[str, Any] | None, profile: ProviderProfile) -> Any:
    """``--schema`` (already read and checked: ``inputs.schema.load_schema``) as the run's
    ``StructuredOutput``; None without one. The local model cannot do it: a usage error,
    before any request."""
    if schema is None:
        return None
    if profile.type == "local":
        raise UsageError("--schema is not available with the local model (provider type local)",
                         hint="use an OpenAI, Anthropic or OpenAI-compatible provider (-p)")
    from .agent.structured import StructuredOutput

    return StructuredOutput(schema)


def cost_limit(settings: Settings, opts: RunOptions, model: str) -> Any:
    """The run's spending limit (``--max-cost``, else config ``max_cost``), None without one.
    A limit needs the model's price: without one it is a usage error, never a silent pass."""
    usd = opts.max_cost if opts.max_cost is not None else settings.max_cost
    if usd is None:
        return None
    if usd <= 0:
        raise UsageError(f"--max-cost must be more than 0, not {usd:g}")
    price = settings.sessions.price(model)
    if price is None:
        raise UsageError(f"--max-cost needs the price of {model or 'the model'}, and the config "
                         "has none", hint=f"add it to the config: prices: {{{model or 'MODEL'}: "
                                          "{input: USD_PER_MTOK, output: USD_PER_MTOK}}")
    from .agent.pricing import CostLimit

    return CostLimit(float(usd), price)


def make_conversation(settings: Settings, opts: RunOptions, resumed: Resumed | None,
                      recorder: SessionRecorder | None,
                      notice: Notice | None = None) -> Conversation:
    """A new conversation, or the resumed one; the recorder (if any) writes it from now on.
    -s or --role win over a resumed conversation's own system prompt and role. The project
    instructions of the working folder follow the system prompt (``notice`` names them)."""
    from .agent.conversation import Conversation

    conversation = Conversation() if resumed is None else Conversation.resumed(resumed)
    if resumed is None or opts.system is not None or opts.role is not None:
        conversation.system = settings.system
        conversation.role = None if opts.system is not None else opts.role
    if opts.project_instructions and settings.project_instructions:
        from pathlib import Path

        from .agent.instructions import find

        try:
            found = find(Path.cwd())
        except OSError:  # the working folder is gone: no instructions to find
            found = None
        if found is not None:
            conversation.instructions = found.text or None
            if notice is not None:
                notice(found.notice())
    if recorder is not None:
        recorder.attach(conversation, resumed)
    return conversation


def settled_profile(profile: ProviderProfile, resumed: Resumed | None) -> ProviderProfile:
    """What a resumed conversation settled on stays: an OpenAI conversation that moved to the
    Responses API (``api: auto`` after the Chat Completions 400) starts there again."""
    if resumed is not None and profile.type == "openai" and profile.api == "auto" and \
            resumed.info.state.get("wire") == "openai_responses":
        return replace(profile, api="responses")
    return profile


# --- conversations: the session store ----------------------------------------------------------

def make_recorder(settings: Settings, opts: RunOptions, warn: Notice,
                  critical: Callable[[], Any] | None = None) -> SessionRecorder | None:
    """The session store's renderer; None for --no-save / ``save: false`` (nothing written)."""
    if not opts.save or not settings.sessions.save:
        return None
    from .sessions.recorder import SessionRecorder

    extra = {"critical": critical} if critical is not None else {}  # else the SIGINT deferral
    return SessionRecorder(settings.data_dir, warn, **extra)


def resume(settings: Settings, opts: RunOptions,
           recorder: SessionRecorder | None) -> Resumed | None:
    """The conversation -c / --session continues (None when neither was given)."""
    if not opts.resuming:
        return None
    if recorder is not None:
        return recorder.load(opts.session)
    from .sessions.recorder import load_from

    return load_from(settings.data_dir, opts.session)


def resume_notice(resumed: Resumed, provider: str, model: str,
                  settings: Settings | None = None) -> str:
    """"continuing session ..."; when the provider or model changed, which ones, and "the history
    is converted" only when the wire format changes (the profiles' types differ: openai,
    anthropic, local). ``settings`` resolves profile names to types; without it only the
    built-in names are known, and an unknown one is never called converted."""
    info = resumed.info
    n = len(resumed.history)
    text = (f"continuing session {info.short_id} ({n} message{'s' if n != 1 else ''}: "
            f"{info.title or 'untitled'})")
    if (info.provider, info.model) != (provider, model):
        was, now = _wire_format(info.provider, settings), _wire_format(provider, settings)
        converted = " (the history is converted)" if was and now and was != now else ""
        text += (f"; it was with {info.provider or '?'} · {info.model or '?'}, now "
                 f"{provider} · {model}{converted}")
    return text


def unanswered_notices(resumed: Resumed) -> list[str]:
    """One line per prompt of the resumed conversation that never got a reply (agentcli was
    stopped while the request ran): kept on record, not sent again."""
    out = []
    for text in resumed.unanswered:
        one = " ".join(text.split())
        shown = one if len(one) <= 60 else one[:59] + "…"
        out.append(f"a message was never answered (agentcli was stopped while waiting for the "
                   f"reply) and is not sent again: {shown}")
    return out


def _wire_format(profile_name: str | None, settings: Settings | None) -> str | None:
    """The type of the profile named so (its wire format), or None when it is not known."""
    from .config import PROVIDER_TYPES

    profiles = getattr(settings, "providers", None) or {}
    if profile_name in profiles:
        return profiles[profile_name].type
    return profile_name if profile_name in PROVIDER_TYPES else None


def tool_names(tools: Sequence[str]) -> tuple[str, ...]:
    """Accept both `-t a -t b` and `-t a,b`."""
    out: list[str] = []
    for t in tools:
        out.extend(x.strip() for x in t.split(",") if x.strip())
    return tuple(dict.fromkeys(out))
