"""What the slash commands, the prompt and the session commands may use of a chat session.

A structural type: ``repl.ChatRepl`` satisfies it without importing this module, and the modules
that act on a session (``slash``, ``repl_prompt``, ``sessions.repl_commands``) depend on this
small contract instead of on ``repl`` (which imports them): no import cycle, and what a command
may touch is written down in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output
    from rich.console import Console

    from ...agent.conversation import Conversation
    from ...agent.loop import Agent
    from ...config import ProviderProfile, Settings
    from ...errors import AgentCliError


class Repl(Protocol):
    settings: Settings
    profile: ProviderProfile
    agent: Agent
    conversation: Conversation
    """The one owner of the history, system prompt, role and usage: commands call its methods
    (``truncate``, ``clear``, ``replace``) and never edit a list."""
    executor: Any
    """The run's executor (plugins, or a router over plugins and MCP servers)."""
    tools: dict[str, Any]
    recorder: Any
    """The session recorder (``sessions.recorder.SessionRecorder``), None with --no-save: it
    renders the conversation's events; commands only read it (``session_id``, ``failed``)."""
    failed_text: str | None
    failed_media: tuple[Any, ...]
    attached: list[Any]
    """Attachments (``inputs.attachments.Attachment``) waiting for the next message."""
    input: Input
    output: Output
    err: Console

    @property
    def model(self) -> str: ...

    def notice(self, line: str) -> None: ...

    def warn(self, line: str) -> None: ...

    def error(self, e: AgentCliError | str, hint: str | None = None) -> None: ...

    def run_turn(self, text: str, *, piped: int | None = None,
                 media: tuple[Any, ...] = ()) -> None: ...

    def switch(self, *, provider: str | None = None, model: str | None = None) -> None: ...
