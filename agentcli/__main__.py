"""Entry point of the `agentcli` script and `python -m agentcli`.

`--version` is answered here, before typer (and everything else) is imported.

While starting, the cyclic garbage collector runs rarely (a high generation-0 threshold): the
imports of typer, rich and the SDKs create ~90,000 long-lived objects, and the default threshold
re-walks them dozens of times (bench/README.md). Once an SDK is imported
(``providers.base.settle_gc``) they are frozen out of the collector and the default thresholds
come back; commands that import no SDK keep the high threshold, which only delays collection.

On the way out, every object alive is frozen out of the garbage collector: the interpreter's
exit collections would otherwise traverse the ~90,000 objects the SDKs, typer and rich create
(about 0.2 s of CPU here: bench/README.md, "exit"), memory the OS takes back anyway. Objects freed
by reference count are still finalised and atexit handlers still run.
"""

from __future__ import annotations

import sys

from . import STARTUP_GC_THRESHOLD


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from . import __version__

        print(f"agentcli {__version__}")
        return
    import gc

    gc.set_threshold(*STARTUP_GC_THRESHOLD)
    try:
        from .cli.app import main as cli_main

        cli_main()
    except KeyboardInterrupt:  # Ctrl-C while starting, before a command's body runs
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
