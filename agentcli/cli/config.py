"""`agentcli config path | show | init`."""

from __future__ import annotations

from typing import Any, Optional

import typer

from ..ui.render import eprint
from .common import ConfigOpt, run_command

config_app = typer.Typer(help="Show, locate or create the config file.",
                         rich_markup_mode=None, no_args_is_help=True)


@config_app.command("path")
def config_path_cmd(config: Optional[str] = ConfigOpt) -> None:
    """Print the config file path (and the config and data folders)."""

    def body() -> int:
        from ..config import config_path, default_dirs

        path, _ = config_path(config)
        cdir, ddir = default_dirs()
        print(path)
        eprint(f"config dir: {cdir}  (user tools: {cdir / 'tools'})")
        eprint(f"data dir:   {ddir}")
        if not path.exists():
            eprint("(the file does not exist yet: `agentcli config init` writes an example)")
        return 0

    run_command(body)

@config_app.command("show")
def config_show(config: Optional[str] = ConfigOpt) -> None:
    """Print the effective settings as YAML (keys redacted)."""

    def body() -> int:
        from ..config import load_settings, settings_as_dict
        import yaml

        settings = load_settings(config)
        shown = _redacted(settings_as_dict(settings))
        print(yaml.safe_dump(shown, sort_keys=False).rstrip())
        return 0

    run_command(body)

def _redacted(value: Any) -> Any:
    """Every string in ``value`` with URL passwords masked (base_url, MCP urls, ...)."""
    from ..errors import redact_url

    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


@config_app.command("init")
def config_init(config: Optional[str] = ConfigOpt,
                force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")
                ) -> None:
    """Write the commented example config to the config path."""

    def body() -> int:
        from ..config import config_path, write_example

        path, _ = config_path(config)
        write_example(path, force=force)
        print(path)
        eprint("wrote the example config; edit it to add providers and tool rules")
        return 0

    run_command(body)
