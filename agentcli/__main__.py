"""Entry point of the `agentcli` script and `python -m agentcli`.

`--version` is answered here, before typer (and everything else) is imported.

On the way out, every object alive is frozen out of the garbage collector: the interpreter's
exit collections would otherwise traverse the ~90,000 objects the SDKs, typer and rich create
(about 0.2 s of CPU here: bench/README.md, "exit"), memory the OS takes back anyway. Objects freed
by reference count are still finalised and atexit handlers still run.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from . import __version__

        print(f"agentcli {__version__}")
        return
    from .cli import main as cli_main

    try:
        cli_main()
    finally:
        import gc

        gc.freeze()


if __name__ == "__main__":
    main()
