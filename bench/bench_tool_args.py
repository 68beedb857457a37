"""Huge tool-call arguments against `agentcli ask`: peak memory when the model sends one call
whose arguments are 15 MB (streamed and not, OpenAI and Anthropic wire formats). The call is
refused (its arguments fail the calculator's schema) and the next request cannot fit gpt-4o's
window, so the run ends with exit 2; what is measured is what it costs to get there.
Target: peak <= 256 MiB (v0.2: 360 MiB streamed).

Usage: python bench/bench_tool_args.py [--size BYTES]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _util import agentcli_bin, verdict
from bench_hostile import run
from fake_server import FakeProviderServer, tool_calls

MEMORY_MIB = 256


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=15_000_000)
    args = ap.parse_args()
    home = Path("/tmp/agentcli-bench-tool-args")
    home.mkdir(exist_ok=True)
    env = {**os.environ, "AGENTCLI_HOME": str(home), "NO_COLOR": "1",
           "OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "sk-bench"}
    for k in ("AGENTCLI_CONFIG", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        env.pop(k, None)
    exe = [agentcli_bin()]
    ok = True
    with FakeProviderServer() as srv:
        for provider, model in (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-6")):
            base = srv.openai_base_url if provider == "openai" else srv.anthropic_base_url
            for label, extra in (("streamed", []), ("--no-stream", ["--no-stream"])):
                srv.script(tool_calls(("calculator", {"expression": "1" * args.size})))
                wall, peak, code = run([*exe, "ask", "-y", "--no-save", "-p", provider,
                                        "--base-url", base, "-m", model, *extra, "go"], env)
                good = peak <= MEMORY_MIB and code is not None
                ok &= good
                print(f"{args.size / 1e6:.0f} MB arguments, {provider:<9} {label:<11} "
                      f"peak {peak:6.1f} MiB  wall {wall:5.2f} s  exit {code}  {verdict(good)}")
    print(f"target: peak <= {MEMORY_MIB} MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
