"""Entry point of the `agentcli` script and `python -m agentcli`.

`--version` is answered here, before typer (and everything else) is imported.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from . import __version__

        print(f"agentcli {__version__}")
        return
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
