"""Roles: named system prompts from the config (``roles: {reviewer: "You review diffs..."}``),
used with ``--role NAME`` on ask/chat and ``/role NAME`` in the REPL; ``-s`` still overrides.
``agentcli roles list`` shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from ..cli.common import ConfigOpt, run_command
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


roles_app = typer.Typer(help="Named system prompts (roles) from the config file.",
                        rich_markup_mode=None, no_args_is_help=True)


@roles_app.command("list")
def roles_list(config: Optional[str] = ConfigOpt) -> None:
    """List the roles defined in the config file (use one with --role NAME)."""

    def body() -> int:
        from ..config import load_settings
        from ..ui.render import eprint, sanitize

        roles = load_settings(config).sessions.roles
        if not roles:
            eprint("no roles defined: add them to the config file, e.g.\n"
                   "  roles:\n    reviewer: \"You review diffs. Point out bugs first.\"\n"
                   "then: agentcli ask --role reviewer ...")
            return 0
        width = max(len(n) for n in roles)
        for name in sorted(roles):
            print(sanitize(f"{name:<{width}}  {first_line(roles[name])}"))
        return 0

    run_command(body)
