"""`agentcli models [-p PROFILE] [--refresh] [--json]`: the models the profile's server offers.

The list comes from the server (``GET /v1/models``) and is kept in the data folder for a day;
``--refresh`` asks again. Exit codes: 0 ok; 1 the server failed or refused; 2 a bad profile or
flag (the local provider has no list); 130 Ctrl-C.
"""

from __future__ import annotations

import time
from typing import Optional

import typer

from .common import BaseUrlOpt, ConfigOpt, ProviderOpt, run_command

EPILOG = """\b
Examples:
  agentcli models                          the default profile's server
  agentcli models -p anthropic --json      one JSON object, models under "models"
  agentcli models --base-url http://localhost:11434/v1     what an Ollama server has
  agentcli models --refresh                ask the server again (the list is kept a day)
"""


def models_command(
    provider: Optional[str] = ProviderOpt, base_url: Optional[str] = BaseUrlOpt,
    refresh: bool = typer.Option(False, "--refresh",
                                 help="Ask the server again instead of using the list kept "
                                      "from the last day."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    config: Optional[str] = ConfigOpt,
) -> None:
    """List the models the provider's server offers."""

    def body() -> int:
        from ..providers.models import list_models
        from ..runtime import RunOptions, load, resolve
        from ..ui.render import eprint, sanitize

        opts = RunOptions(config=config, provider=provider, base_url=base_url)
        settings = load(opts)
        profile = resolve(settings, opts, notice=eprint)
        found = list_models(settings, profile, refresh=refresh)
        if json_out:
            from ..ui.json_output import json_text

            print(json_text({
                "provider": profile.name, "type": profile.type, "base_url": found.base_url,
                "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                            time.gmtime(found.fetched_at)),
                "cached": found.cached,
                "models": [{"id": m.id, "name": m.name or None, "created": m.created or None,
                            "owned_by": m.owned_by or None} for m in found.models]}))
            return 0
        age = _age(time.time() - found.fetched_at)
        eprint(sanitize(f"{profile.name} · {found.base_url} · {len(found.models)} model"
                        f"{'s' if len(found.models) != 1 else ''}"
                        + (f" (listed {age} ago; --refresh asks again)" if found.cached else "")))
        width = max((len(m.id) for m in found.models), default=0)
        for m in found.models:
            extra = "  ".join(x for x in (m.name if m.name != m.id else "", m.created,
                                          m.owned_by) if x)
            print(sanitize(f"{m.id:<{width}}  {extra}".rstrip() if extra else m.id))
        return 0

    run_command(body)


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, int(seconds))} s"
    if seconds < 5400:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds // 3600)} h"


def register(app: typer.Typer) -> None:
    app.command("models", epilog=EPILOG)(models_command)
