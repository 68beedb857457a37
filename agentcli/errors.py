"""The one exception tree of agentcli.

Everything a user can cause ends as an ``AgentCliError``: the CLI catches only this base class,
prints ``error: <message>`` (plus ``hint: <hint>`` when there is one) on stderr and exits with
``exit_code``. Anything else reaching the CLI is a bug and is reported as such.

::

    AgentCliError                  exit 1   base; .message, .hint, .exit_code
    ├── UsageError                 exit 2   bad flags/arguments, nothing to do, no provider set up
    │   └── ConfigError            exit 2   bad config file: names the file and the key
    ├── ProviderError              exit 1   raised only by providers/*, from the SDK error (``from e``)
    │   ├── AuthenticationError             401/403: names the key variable to set
    │   ├── ProviderConnectionError         cannot connect: names the URL
    │   ├── ModelNotFoundError              404 / unknown model: the server's own message
    │   ├── StreamInterruptedError          connection dropped mid-reply (partial text kept)
    │   ├── IdleTimeoutError                no bytes for ``idle_timeout`` seconds
    │   └── ModelLoadError                  local model missing / not GGUF / out of memory
    ├── ToolRunError               exit 1   `agentcli tools run`: the call failed or was denied
    ├── SessionStoreError          exit 1   the session store cannot be opened or read (locked,
    │                                       read-only, full, damaged, newer schema)
    └── PluginError                exit 2   a manifest or plugin module that cannot be loaded

    ToolError (not an AgentCliError)        the plugin API: a tool raises it to fail with just
                                            its message (the model reads it as an error result)

Ctrl-C is Python's KeyboardInterrupt: the CLI maps it to exit 130. Inside a model turn, tool
failures are *data* (an error ``ToolResult``), never exceptions.
"""

from __future__ import annotations

import re

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def debug_enabled() -> bool:
    """``AGENTCLI_DEBUG=1`` (or true/yes) lets an internal error show its traceback; any other
    value, ``0`` included, does not."""
    import os

    return os.environ.get("AGENTCLI_DEBUG", "").strip().lower() in ("1", "true", "yes")


# scheme://userinfo@ : the userinfo runs to the last "@" before the path, query or fragment
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)([^/?#\s]*)@")


def _masked(m: re.Match[str]) -> str:
    user, colon, _ = m.group(2).partition(":")
    return f"{m.group(1)}{user}:***@" if colon else f"{m.group(1)}***@"


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced: ``http://u:PASSWORD@host/v1`` ->
    ``http://u:***@host/v1``; userinfo without a password (often a token) -> ``***@``.
    The one redaction of URLs: every error's message and hint pass through it, and so does
    every URL agentcli prints (config show, notices, warnings)."""
    return _USERINFO.sub(_masked, text) if "@" in text else text


class AgentCliError(Exception):
    """Base of every error a user can cause; carries a one-line message and an optional hint.
    Neither ever holds a password from a URL (``redact_url``): they are printed, put in
    ``--json`` and stored with the session."""

    exit_code: int = EXIT_RUNTIME

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = redact_url(message)
        hint = redact_url(hint) if hint else hint
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(AgentCliError):
    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A config file problem; the message names the file and the key."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 hint: str | None = None) -> None:
        where = ", ".join(p for p in (file and f"in {file}", key and f"at key '{key}'") if p)
        super().__init__(f"{message} ({where})" if where else message, hint=hint)
        self.file = file
        self.key = key


class ProviderError(AgentCliError):
    exit_code = EXIT_RUNTIME


class AuthenticationError(ProviderError):
    pass


class ProviderConnectionError(ProviderError):
    pass


class ModelNotFoundError(ProviderError):
    pass


class StreamInterruptedError(ProviderError):
    """The stream stopped mid-reply. ``partial_text`` is what arrived before the cut."""

    def __init__(self, message: str, *, partial_text: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.partial_text = partial_text


class IdleTimeoutError(StreamInterruptedError):
    pass


class ModelLoadError(ProviderError):
    pass


class ToolRunError(AgentCliError):
    """`agentcli tools run`: the call failed, was refused or was denied."""

    exit_code = EXIT_RUNTIME


class SessionStoreError(AgentCliError):
    """The session store cannot be used; the message says why and what to do."""

    exit_code = EXIT_RUNTIME


class PluginError(AgentCliError):
    """A manifest or plugin module that cannot be loaded; the message names the file and field."""

    exit_code = EXIT_USAGE


class ToolError(Exception):
    """For tool authors: ``raise ToolError("message")`` fails the call and the model reads just
    the message (any other exception reads ``Type: message``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
