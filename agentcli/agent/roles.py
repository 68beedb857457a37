"""Roles: named system prompts from the config (``roles: {reviewer: "You review diffs..."}``),
used with ``--role NAME`` on ask/chat and ``/role NAME`` in the REPL; ``-s`` still overrides.
``agentcli roles list`` (``cli/roles.py``) shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from ..config import Settings


def role_prompt(settings: Settings, name: str) -> str:
    roles = settings.sessions.roles
    if name in roles:
        return roles[name]
    known = ", ".join(sorted(roles))
    raise UsageError(f"unknown role '{name}'",
                     hint=f"roles: {known} (see `agentcli roles list`)" if known else
                     "no roles are defined: add `roles: {NAME: \"system prompt\"}` to the "
                     "config file (see config.example.yaml)")


def first_line(text: str, width: int = 72) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"
