"""`agentcli --version` / `--help` must not import openai, anthropic or tiktoken: <= 0.15 s wall.

Usage: python bench/bench_startup.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from _util import agentcli_bin, median_run, verdict

TARGET = 0.15
HEAVY = ("openai", "anthropic", "tiktoken", "llama_cpp", "prompt_toolkit", "jsonschema", "mcp",
         "ruamel")


def heavy_imports(args: list[str]) -> list[str]:
    code = ("import sys; sys.argv=['agentcli', *%r]\n"
            "from agentcli.__main__ import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)" % (args,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr
    loaded = set(out.split())
    return [m for m in HEAVY if m in loaded]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=15)
    n = ap.parse_args().n
    exe = agentcli_bin()
    env = {**os.environ, "AGENTCLI_HOME": os.environ.get("AGENTCLI_HOME", "/tmp/agentcli-bench")}
    bare, _ = median_run([sys.executable, "-c", "pass"], n, env=env)
    print(f"bare interpreter: {bare:.3f} s")
    ok_all = True
    # the target covers the top level; subcommands are shown for information (typer coerces
    # their parameters with pydantic, ~60 ms, but still imports no SDK)
    for args in (["--version"], ["--help"], ["ask", "--help"], ["tools", "list"]):
        wall, peak = median_run([exe, *args], n, env=env)
        heavy = heavy_imports(args)
        targeted = len(args) == 1
        ok = (wall <= TARGET or not targeted) and not heavy
        ok_all &= ok
        print(f"agentcli {' '.join(args):<12} {wall:.3f} s  peak {peak / 1024:.1f} MiB  "
              f"heavy imports: {', '.join(heavy) or 'none'}  {verdict(ok)}{f' (target <= {TARGET} s)' if targeted else ' (no SDK imports)'}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
