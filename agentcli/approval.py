"""Approval of tool calls: an injected ``Approver`` decides whether a call may run.

The decision logic is a pure function so tests can call it without a terminal; the terminal
prompt lives behind the protocol. (The tools issue fills in the full policy: deny rules, --yes,
allow rules, session grants, manifest default.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .messages import ToolCall


@dataclass(frozen=True)
class Decision:
    approved: bool
    reason: str | None = None
    """Why (denials: shown to the user and sent to the model)."""
    remember: bool = False
    """Prompt answers only: "always for this tool this session"."""


class Prompter(Protocol):
    """The terminal side of approval (a /dev/tty prompt for `ask`, the REPL's own for `chat`)."""

    def confirm(self, tool_name: str, arguments: dict[str, Any]) -> Decision:
        """Show the tool name and full arguments; ask yes once / always this session
        (``remember=True``) / no with an optional reason. Ctrl-C or EOF answers no."""
        ...


class Approver(Protocol):
    def approve(self, call: ToolCall, arguments: dict[str, Any], confirm: str) -> Decision:
        """Decide on one validated call; ``confirm`` is the tool's effective default
        (``ask`` or ``never``)."""
        ...


class ApproveAll:
    """``--yes``: every call runs."""

    def approve(self, call: ToolCall, arguments: dict[str, Any], confirm: str) -> Decision:
        return Decision(True, "approved by --yes")


class DenyUnlessNever:
    """No way to ask: run only tools whose default is ``never``; deny the rest, saying why."""

    def approve(self, call: ToolCall, arguments: dict[str, Any], confirm: str) -> Decision:
        if confirm == "never":
            return Decision(True, "allowed by the tool's default")
        return Decision(False, "no terminal to ask for approval; rerun with --yes or allow the "
                               "tool in config")
