"""Settings: YAML file + environment + flags, merged into one frozen ``Settings``.

The file is read with ``yaml.safe_load`` only, and every key is checked: an unknown key or a
wrong type is a ``ConfigError`` naming the file and the dotted key, never a silent fallback.

Precedence, setting by setting (the README's "Configuration" says the same):

- provider: ``-p`` > ``AGENTCLI_PROVIDER`` > ``default_provider`` in the file > the keys that
  are set (OPENAI_API_KEY, then ANTHROPIC_API_KEY) > the local model. But ``--base-url``
  without ``-p`` always means an OpenAI-compatible server: the default profile when it is
  ``type: openai``, else the built-in ``openai`` (``profiles.resolve_profile``).
- base URL: ``--base-url`` > the profile's own ``base_url`` > OPENAI_BASE_URL /
  ANTHROPIC_BASE_URL (for a profile without one) > the official API. A named profile keeps its
  ``base_url``: a variable exported for another tool must not redirect every profile.
- key: never in the file (a literal ``api_key`` is refused). The variable a profile names with
  ``api_key_env`` goes wherever the profile points; OPENAI_API_KEY / ANTHROPIC_API_KEY go only
  to the official host or to the base URL that came with them (OPENAI_BASE_URL /
  ANTHROPIC_BASE_URL); any other server gets a placeholder (``providers._transport``).
- model: ``-m`` > the profile's ``model`` > the built-in default. ``max_tokens``:
  ``--max-tokens`` > the profile's. ``system``: ``-s`` > the file. ``max_steps``:
  ``--max-steps`` > the file. Every other setting: the file > the default.
- config file: ``--config`` > ``AGENTCLI_CONFIG`` > ``<config dir>/config.yaml``.

Where things live (``AGENTCLI_HOME`` puts all of them in one folder):
- config file: ``--config`` > ``AGENTCLI_CONFIG`` > ``<config dir>/config.yaml``
- config dir (user tools in ``<config dir>/tools``): platformdirs' user config dir
- data dir (REPL history, sessions): platformdirs' user data dir
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import urlsplit

from .errors import ConfigError, UsageError
from .sessions.config import SCHEMA as _SESSION_SCHEMA
from .sessions.config import SessionSettings
from .sessions.config import parse as parse_session_settings

APP = "agentcli"
PROVIDER_TYPES = ("openai", "anthropic", "local")
DEFAULT_MODELS = {"openai": "gpt-4.1-mini", "anthropic": "claude-sonnet-4-6", "local": None}
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "local": None}
DEFAULT_BASE_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
API_CHOICES = ("auto", "responses", "chat")
REASONING_LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh")
SANDBOX_MODES = ("read-only", "workspace-write", "off")


@dataclass(frozen=True)
class ProviderProfile:
    """One named way to reach a model. ``type`` picks the adapter."""

    name: str
    type: str
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)
    """A key given in code (tests, embedding); the config file cannot hold one."""
    max_tokens: int | None = None
    temperature: float | None = None
    # local provider only
    model_path: str | None = None
    n_ctx: int = 4096
    n_threads: int | None = None
    repack: bool | None = None
    """llama.cpp's weight repacking at load time; None: off where AMX could run, else on."""
    context_window: int | None = None  # tokens; unset: config's context_windows, then defaults
    api: str = "auto"
    """OpenAI only: ``responses``, ``chat`` (Chat Completions), or ``auto`` (Responses for the
    official host, Chat Completions for every other base URL)."""
    reasoning: str | None = None
    """One of REASONING_LEVELS; None: the model's own default (nothing is sent)."""
    cache: bool = True
    """Prompt caching (Anthropic ``cache_control`` breakpoints, OpenAI ``prompt_cache_key``)."""
    stream: bool = True
    """False: ask for whole replies (servers that cannot stream tool calls)."""
    base_url_source: str | None = None
    """Where ``base_url`` came from: "flag", "file" or "env" (decides where a key may go)."""

    def key_env(self) -> str | None:
        return self.api_key_env or DEFAULT_KEY_ENV.get(self.type)


@dataclass(frozen=True)
class ToolSettings:
    dirs: tuple[str, ...] = ()
    allow: tuple[Any, ...] = ()
    deny: tuple[Any, ...] = ()
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Settings:
    config_file: Path | None = None
    config_dir: Path = Path(".")
    data_dir: Path = Path(".")
    default_provider: str | None = None
    providers: Mapping[str, ProviderProfile] = field(default_factory=lambda: MappingProxyType({}))
    system: str | None = None
    max_steps: int = 10
    idle_timeout: float = 60.0
    request_timeout: float = 600.0
    max_response_bytes: int = 16 * 1024 * 1024
    max_retries: int = 2
    stdin_limit: int = 1024 * 1024
    stdin_timeout: float = 60.0
    attach_limit: int = 20 * 1024 * 1024
    """Most bytes of one attachment (``-a``, ``/attach``; a URL's body included)."""
    tools: ToolSettings = field(default_factory=ToolSettings)
    mcp_servers: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """As written in the file; checked by ``mcp_config.parse_servers`` when servers start."""
    sessions: SessionSettings = field(default_factory=SessionSettings)  # save, roles, prices...
    hide_reasoning: bool = False
    """True: a model's reasoning is not shown (``--hide-reasoning``)."""
    max_cost: float | None = None
    """``ask``'s spending limit per run in US dollars (``--max-cost``); None: no limit."""
    sandbox: str = "workspace-write"
    """The OS sandbox of tool calls: read-only, workspace-write or off (``--sandbox``)."""
    project_instructions: bool = True
    """False: AGENTS.md / AGENTCLI.md are not added to the system prompt
    (``--no-project-instructions``)."""

    @property
    def user_tools_dir(self) -> Path:
        return self.config_dir / "tools"

    @property
    def history_file(self) -> Path:
        return self.data_dir / "history"


# --- the file's schema --------------------------------------------------------------------------
# key -> accepted python types (a nested dict describes a mapping with fixed keys)
_NUM = (int, float)
_PROFILE_SCHEMA: dict[str, Any] = {
    "type": str, "model": str, "base_url": str, "api_key_env": str,
    "max_tokens": int, "temperature": _NUM, "model_path": str, "n_ctx": int, "n_threads": int,
    "context_window": int, "api": str, "reasoning": str, "cache": bool, "stream": bool,
    "repack": bool,
}
_SCHEMA: dict[str, Any] = {
    "default_provider": str,
    "providers": ("profiles", _PROFILE_SCHEMA),
    "system": str,
    "max_steps": int,
    "idle_timeout": _NUM,
    "request_timeout": _NUM,
    "max_response_bytes": int,
    "max_retries": int,
    "stdin_limit": int,
    "stdin_timeout": _NUM,
    "attach_limit": int,
    "tools": {"dirs": list, "allow": list, "deny": list, "options": dict},
    "mcp_servers": dict,
    "hide_reasoning": bool,
    "max_cost": _NUM,
    "sandbox": str,
    "project_instructions": bool,
    **_SESSION_SCHEMA,  # save, roles, prices, context_windows: agentcli/sessions/config.py
}


def _type_name(t: Any) -> str:
    ts = t if isinstance(t, tuple) else (t,)
    names = {str: "a string", int: "an integer", float: "a number", list: "a list",
             dict: "a mapping", bool: "true/false"}
    return " or ".join(dict.fromkeys(names.get(x, x.__name__) for x in ts))


def _check(data: Any, schema: dict[str, Any], file: str, prefix: str = "") -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {type(data).__name__}", file=file,
                          key=prefix.rstrip(".") or None)
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"unknown setting '{key}'", file=file, key=dotted,
                              hint=f"known keys here: {known}; see config.example.yaml")
        spec = schema[key]
        if value is None:
            continue
        if isinstance(spec, dict):
            _check(value, spec, file, dotted + ".")
        elif isinstance(spec, tuple) and spec and spec[0] == "profiles":
            if not isinstance(value, dict):
                raise ConfigError("expected a mapping of profile name -> settings", file=file,
                                  key=dotted)
            for pname, pdata in value.items():
                _check_profile(pdata, spec[1], file, f"{dotted}.{pname}.")
        else:
            types = spec if isinstance(spec, tuple) else (spec,)
            # YAML `true` is an int to Python: refuse it where a number is expected
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ConfigError(f"expected {_type_name(spec)}, got {value!r}", file=file,
                                  key=dotted)


def _check_profile(data: Any, schema: dict[str, Any], file: str, prefix: str) -> None:
    if isinstance(data, dict) and "api_key" in data:
        raise ConfigError("an API key cannot be stored in the config file", file=file,
                          key=prefix + "api_key",
                          hint="export it in an environment variable and name that variable "
                               "instead: api_key_env: MY_KEY_VAR")
    _check(data, schema, file, prefix)
    if data.get("type") not in PROVIDER_TYPES:
        raise ConfigError(f"provider type must be one of {', '.join(PROVIDER_TYPES)}",
                          file=file, key=prefix + "type")
    for key, choices in (("api", API_CHOICES), ("reasoning", REASONING_LEVELS)):
        if data.get(key) is not None and data[key] not in choices:
            raise ConfigError(f"{data[key]!r} is not one of {', '.join(choices)}", file=file,
                              key=prefix + key)
    problem = base_url_problem(data["base_url"]) if data.get("base_url") else None
    if problem:
        raise ConfigError(f"base_url {problem}", file=file, key=prefix + "base_url",
                          hint=BASE_URL_HINT)


BASE_URL_HINT = "the server's API address, e.g. http://localhost:11434/v1"


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an API base URL (a short phrase), or None when it can. The URL is
    quoted with its password masked, even where ``redact_url`` cannot see it (a space in it)."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        shown = repr(url.replace(password, "***") if password else url)
        return f"{shown} contains spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as e:
        return f"{url!r} is not a valid URL ({e})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"{url!r} must start with http:// or https://"
    if not parts.hostname:
        return f"{url!r} names no host"
    return None


def default_dirs() -> tuple[Path, Path]:
    """(config dir, data dir), honouring AGENTCLI_HOME."""
    home = os.environ.get("AGENTCLI_HOME")
    if home:
        p = Path(home).expanduser()
        return p, p
    import platformdirs

    return Path(platformdirs.user_config_dir(APP)), Path(platformdirs.user_data_dir(APP))


def config_path(explicit: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """The config file to use and whether it was asked for explicitly (then it must exist)."""
    if explicit:
        return Path(explicit).expanduser(), True
    env = os.environ.get("AGENTCLI_CONFIG")
    if env:
        return Path(env).expanduser(), True
    return default_dirs()[0] / "config.yaml", False


def read_config_file(path: Path, must_exist: bool) -> dict[str, Any]:
    try:
        exists = path.exists()  # raises for a folder it may not enter, a name too long, ...
    except OSError as e:
        raise ConfigError(f"cannot read config: {e.strerror or e}", file=str(path),
                          hint="pass --config PATH (or set AGENTCLI_HOME) to a file you can "
                               "read") from e
    if not exists:
        if must_exist:
            raise ConfigError("config file not found", file=str(path),
                              hint="create it with `agentcli config init` or fix the path")
        return {}
    if path.is_dir():
        raise ConfigError("config path is a folder, not a file", file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config: {e}", file=str(path)) from e
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # safe only
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"invalid YAML{where}: {problem}", file=str(path)) from e
    if data is None:
        return {}
    _check(data, _SCHEMA, str(path))
    return data


def _positive(value: Any, key: str, file: str | None) -> None:
    if value is not None and value <= 0:
        raise ConfigError("must be greater than 0", file=file, key=key)


def load_settings(config: str | os.PathLike[str] | None = None) -> Settings:
    """Read the config file (if any) and the environment into Settings. Flags are applied later
    with ``dataclasses.replace`` by the CLI."""
    path, explicit = config_path(config)
    data = read_config_file(path, explicit)
    file = str(path)
    config_dir, data_dir = default_dirs()

    profiles: dict[str, ProviderProfile] = {}
    for name, p in (data.get("providers") or {}).items():
        p = dict(p or {})
        source = "file" if p.get("base_url") else None
        profiles[str(name)] = ProviderProfile(name=str(name), base_url_source=source, **p)
    known = ", ".join([*profiles, *PROVIDER_TYPES])
    file_default = data.get("default_provider")
    if file_default and file_default not in profiles and file_default not in PROVIDER_TYPES:
        raise ConfigError(f"default_provider '{file_default}' is not a profile or a provider type",
                          file=file, key="default_provider",
                          hint=f"define it under providers: or use one of {known}")
    env_default = os.environ.get("AGENTCLI_PROVIDER")
    if env_default and env_default not in profiles and env_default not in PROVIDER_TYPES:
        raise UsageError(f"AGENTCLI_PROVIDER is '{env_default}', which is not a profile or a "
                         "provider type", hint=f"unset it, or use one of: {known}")
    default_provider = env_default or file_default

    t = data.get("tools") or {}
    options = t.get("options") or {}
    for tname, opts in options.items():
        if not isinstance(opts, dict):
            raise ConfigError("expected a mapping of option -> value", file=file,
                              key=f"tools.options.{tname}")
        if opts.get("confirm", "ask") not in ("ask", "never"):  # agentcli's option, any tool
            raise ConfigError(f"{opts['confirm']!r} must be 'ask' or 'never'", file=file,
                              key=f"tools.options.{tname}.confirm")
    from .toolrun.approval import parse_rules  # malformed rules: an error for every command

    for key in ("allow", "deny"):
        parse_rules(t.get(key) or (), f"tools.{key}", file)
    tools = ToolSettings(
        dirs=tuple(str(d) for d in (t.get("dirs") or ())),
        allow=tuple(t.get("allow") or ()),
        deny=tuple(t.get("deny") or ()),
        options=MappingProxyType({k: MappingProxyType(dict(v)) for k, v in options.items()}),
    )
    kwargs: dict[str, Any] = {}
    for key in ("max_steps", "idle_timeout", "request_timeout", "max_response_bytes",
                "stdin_limit", "stdin_timeout", "attach_limit"):
        if data.get(key) is not None:
            _positive(data[key], key, file)
            kwargs[key] = data[key]
    if data.get("max_retries") is not None:
        if data["max_retries"] < 0:
            raise ConfigError("must be 0 or more", file=file, key="max_retries")
        kwargs["max_retries"] = data["max_retries"]
    if data.get("mcp_servers"):
        from .mcp.config import parse_servers

        parse_servers(data["mcp_servers"], file)  # a bad entry is a ConfigError now, not later
    for pname, profile in profiles.items():
        _positive(profile.context_window, f"providers.{pname}.context_window", file)
    if data.get("max_cost") is not None:
        _positive(data["max_cost"], "max_cost", file)
        kwargs["max_cost"] = float(data["max_cost"])
    if data.get("sandbox") is not None:
        if data["sandbox"] not in SANDBOX_MODES:
            raise ConfigError(f"{data['sandbox']!r} is not one of {', '.join(SANDBOX_MODES)}",
                              file=file, key="sandbox",
                              hint="workspace-write (the default) lets commands write only "
                                   "in the working folder")
        kwargs["sandbox"] = data["sandbox"]
    for key in ("hide_reasoning", "project_instructions"):
        if data.get(key) is not None:
            kwargs[key] = bool(data[key])
    kwargs["sessions"] = parse_session_settings(data, file)
    return Settings(
        config_file=path if path.exists() else None,
        config_dir=config_dir,
        data_dir=data_dir,
        default_provider=default_provider,
        providers=MappingProxyType(profiles),
        system=data.get("system"),
        tools=tools,
        mcp_servers=MappingProxyType(dict(data.get("mcp_servers") or {})),
        **kwargs,
    )


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    """Settings as plain data for `config show`; secrets are redacted, never printed."""
    local_only = {"model_path", "n_ctx", "n_threads", "repack"}

    def profile(p: ProviderProfile) -> dict[str, Any]:
        d = {k: v for k, v in vars(p).items() if k not in ("name", "base_url_source")
             and v is not None and (p.type == "local" or k not in local_only)}
        if p.api_key:
            d["api_key"] = "***redacted***"
        env = p.key_env()
        if env:
            d["api_key_env"] = env
            d["api_key_set"] = bool(os.environ.get(env))
        return d

    return {
        "config_file": str(settings.config_file) if settings.config_file else None,
        "config_dir": str(settings.config_dir),
        "data_dir": str(settings.data_dir),
        "default_provider": settings.default_provider,
        "providers": {n: profile(p) for n, p in settings.providers.items()},
        "system": settings.system,
        "max_steps": settings.max_steps,
        "idle_timeout": settings.idle_timeout,
        "request_timeout": settings.request_timeout,
        "max_response_bytes": settings.max_response_bytes,
        "max_retries": settings.max_retries,
        "stdin_limit": settings.stdin_limit,
        "stdin_timeout": settings.stdin_timeout,
        "attach_limit": settings.attach_limit,
        "tools": {
            "dirs": list(settings.tools.dirs),
            "allow": list(settings.tools.allow),
            "deny": list(settings.tools.deny),
            "options": {k: dict(v) for k, v in settings.tools.options.items()},
        },
        "mcp_servers": _mcp_shown(settings.mcp_servers),
        "hide_reasoning": settings.hide_reasoning,
        "max_cost": settings.max_cost,
        "sandbox": settings.sandbox,
        "project_instructions": settings.project_instructions,
        **settings.sessions.as_dict(),
    }


def _mcp_shown(raw: Mapping[str, Any]) -> dict[str, Any]:
    from .mcp.config import redacted

    return redacted(dict(raw))


def example_config_path() -> Path:
    """config.example.yaml: inside the wheel, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "config.example.yaml", here.parent / "config.example.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError("config.example.yaml is missing from this installation",
                      hint="reinstall agentcli")


def write_example(path: Path, *, force: bool = False) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="use --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(example_config_path().read_text(encoding="utf-8"), encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from e
