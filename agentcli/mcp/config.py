"""`mcp_servers:` in the config file: parsing, naming, environment references, and editing.

Shape (close to the ``mcpServers`` JSON of other hosts, so an entry can be copied)::

    mcp_servers:
      time:                              # [A-Za-z0-9][A-Za-z0-9_-]*, no "__", at most 32
        command: uvx                     # stdio: command, args, env, cwd
        args: [mcp-server-time]
        env: {TZ: Europe/Paris}
      github:
        url: https://api.example.com/mcp # streamable HTTP: url, headers
        headers:
          Authorization: "Bearer ${GITHUB_TOKEN}"   # read from the environment at start
        startup_timeout: 10              # seconds to start and list tools (default 10)
        timeout: 60                      # seconds per tool call (default 60)
        disabled: false

``${VAR}`` (or ``${VAR:-default}``) in command, args, env, cwd, url and header values is read
from the environment when the server starts, so keys stay out of the file. This module never
imports the MCP SDK: `config` commands and `--help` stay fast.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, UsageError, redact_url

SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]|_(?!_)){0,31}$")
"""A server name: letters, digits, ``-`` and single ``_`` (``__`` separates server and tool)."""
SEPARATOR = "__"
MAX_TOOL_NAME = 64  # OpenAI and Anthropic both accept ^[A-Za-z0-9_-]{1,64}$
DEFAULT_STARTUP_TIMEOUT = 10.0
DEFAULT_CALL_TIMEOUT = 60.0
KEYS = {"type", "command", "args", "env", "cwd", "url", "headers", "startup_timeout", "timeout",
        "output_cap", "disabled"}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SENSITIVE_KEY = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)


@dataclass(frozen=True)
class ServerSpec:
    """One configured MCP server, as written (environment references not yet resolved)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    timeout: float = DEFAULT_CALL_TIMEOUT
    output_cap: int | None = None
    disabled: bool = False

    @property
    def transport(self) -> str:
        return "http" if self.url else "stdio"

    def describe(self) -> str:
        """The command line or URL as written (``${VAR}`` stays unresolved, a password in the URL
        is masked: nothing secret)."""
        if self.url:
            return redact_url(self.url)
        import shlex

        return " ".join(shlex.quote(p) for p in (self.command or "", *self.args))

    def resolved(self) -> ServerSpec:
        """A copy with ``${VAR}`` references filled from the environment; UsageError names the
        variable and where it is used when one is not set."""
        key = f"mcp_servers.{self.name}"

        def sub(value: str, where: str) -> str:
            def one(m: re.Match[str]) -> str:
                val = os.environ.get(m.group(1))
                if val is None:
                    if m.group(2) is not None:
                        return m.group(2)
                    raise UsageError(f"environment variable {m.group(1)} is not set (used in "
                                     f"{key}.{where})", hint=f"export {m.group(1)}=...")
                return val

            return _ENV_REF.sub(one, value)

        return ServerSpec(
            self.name, sub(self.command, "command") if self.command else None,
            tuple(sub(a, f"args[{i}]") for i, a in enumerate(self.args)),
            {k: sub(v, f"env.{k}") for k, v in self.env.items()},
            os.path.expanduser(sub(self.cwd, "cwd")) if self.cwd else None,
            sub(self.url, "url") if self.url else None,
            {k: sub(v, f"headers.{k}") for k, v in self.headers.items()},
            self.startup_timeout, self.timeout, self.output_cap, self.disabled)


def parse_servers(raw: Any, file: str | None = None) -> dict[str, ServerSpec]:
    """``mcp_servers`` from the config file -> specs; ConfigError names the file and key."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping of server name -> settings", file=file,
                          key="mcp_servers")
    for name in raw:
        if isinstance(name, bool):  # YAML reads an unquoted on/off/yes/no as true/false
            raise ConfigError(f"a server name reads as {str(name).lower()}", file=file,
                              key="mcp_servers",
                              hint="quote the name in the config file, e.g. \"off\":")
    return {str(name): parse_server(str(name), data, file) for name, data in raw.items()}


def parse_server(name: str, data: Any, file: str | None = None) -> ServerSpec:
    key = f"mcp_servers.{name}"

    def bad(message: str, sub: str | None = None, hint: str | None = None) -> ConfigError:
        return ConfigError(message, file=file, key=f"{key}.{sub}" if sub else key, hint=hint)

    if not SERVER_NAME_RE.match(name):
        raise bad("a server name is letters, digits, - and _ (not __), at most 32 characters, "
                  "starting with a letter or digit")
    if not isinstance(data, Mapping):
        raise bad("expected a mapping with command (stdio) or url (streamable HTTP)")
    unknown = sorted(set(map(str, data)) - KEYS)
    if unknown:
        raise bad(f"unknown setting '{unknown[0]}'", unknown[0],
                  hint=f"known keys: {', '.join(sorted(KEYS))}")
    kind = data.get("type")
    if kind is not None and kind not in ("stdio", "http", "streamable-http", "streamable_http"):
        raise bad(f"type {kind!r} is not supported; use stdio or http (streamable HTTP)", "type")
    command, url = data.get("command"), data.get("url")
    if (command is None) == (url is None):
        raise bad("give either command (a stdio server) or url (a streamable HTTP server)")
    for sub, value in (("command", command), ("url", url), ("cwd", data.get("cwd"))):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise bad("expected a non-empty string", sub)
    if url is not None and not re.match(r"^https?://", url, re.IGNORECASE):
        raise bad("the url must start with http:// or https://", "url")
    args = data.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
        raise bad("expected a list of strings", "args")
    maps = {}
    for sub in ("env", "headers"):
        value = data.get(sub) or {}
        if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
                for k, v in value.items()):
            raise bad("expected a mapping of name -> text", sub)
        maps[sub] = {k: str(v) for k, v in value.items()}
    if url is None and maps["headers"]:
        raise bad("headers are for url servers; a stdio server takes env", "headers")
    if url is not None and maps["env"]:
        raise bad("env is for stdio servers; a url server takes headers", "env")
    numbers: dict[str, Any] = {}
    for sub, default, limit in (("startup_timeout", DEFAULT_STARTUP_TIMEOUT, 600),
                                ("timeout", DEFAULT_CALL_TIMEOUT, 86_400)):
        value = data.get(sub, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= limit:
            raise bad(f"expected a number of seconds in (0, {limit}]", sub)
        numbers[sub] = float(value)
    cap = data.get("output_cap")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)
                            or not 100 <= cap <= 1_000_000):
        raise bad("expected an integer in [100, 1000000]", "output_cap")
    disabled = data.get("disabled", False)
    if not isinstance(disabled, bool):
        raise bad("expected true or false", "disabled")
    return ServerSpec(name, command, tuple(str(a) for a in args), maps["env"], data.get("cwd"),
                      url, maps["headers"], numbers["startup_timeout"], numbers["timeout"], cap,
                      disabled)


def redacted(raw: Any) -> Any:
    """``mcp_servers`` for `config show`: a header or env value that looks secret and is not a
    ``${VAR}`` reference is shown as ``***redacted***``."""
    if not isinstance(raw, Mapping):
        return raw
    out: dict[str, Any] = {}
    for name, data in raw.items():
        if not isinstance(data, Mapping):
            out[name] = data
            continue
        entry = dict(data)
        for sub in ("env", "headers"):
            if isinstance(entry.get(sub), Mapping):
                entry[sub] = {k: v if not SENSITIVE_KEY.search(str(k)) or only_env_refs(v)
                              else "***redacted***" for k, v in entry[sub].items()}
        out[name] = entry
    return out


def only_env_refs(value: Any) -> bool:
    text = str(value)
    return bool(_ENV_REF.search(text)) and not re.search(r"[A-Za-z0-9]{16,}",
                                                         _ENV_REF.sub("", text))


# --- tool names -------------------------------------------------------------------------------

def prefixed_name(server: str, tool: str) -> str:
    """``server__tool``, made valid for both APIs (``[A-Za-z0-9_-]``, at most 64 characters):
    other characters become ``_``; a name too long is cut and given a short hash of the original
    so two long names stay apart."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", tool) or "tool"
    name = f"{server}{SEPARATOR}{clean}"
    if len(name) <= MAX_TOOL_NAME and clean == tool:
        return name
    digest = hashlib.sha1(tool.encode("utf-8", "replace")).hexdigest()[:8]
    return f"{name[:MAX_TOOL_NAME - 9]}_{digest}"


def pattern_server_names(patterns: tuple[str, ...], servers: list[str]) -> list[str]:
    """The servers a ``-t`` list can reach (``time__*`` -> time; ``*`` -> all)."""
    from ..toolrun.approval import glob_match

    wanted = []
    for server in servers:
        for p in patterns:
            if SEPARATOR in p:
                hit = glob_match(p.split(SEPARATOR, 1)[0], server, segments=False)
            else:
                hit = p.startswith("*")
            if hit:
                wanted.append(server)
                break
    return wanted


def log_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


def log_path(data_dir: Path, server: str) -> Path:
    """Where a server's stderr (and agentcli's notes about it) go."""
    return log_dir(data_dir) / f"mcp-{server}.log"
