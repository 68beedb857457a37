"""`agentcli roles list`: the named system prompts of the config file."""

from __future__ import annotations

from typing import Optional

import typer

from ..agent.roles import first_line
from .common import ConfigOpt, run_command

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
