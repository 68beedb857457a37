"""Prompt caching on a long Anthropic tool chain: how much of each request's input is read from
the cache.

`agentcli ask -y` (the installed binary, all built-in tools offered) runs a chain of STEPS tool
calls and a final answer against the loopback fake server (``tests/fake_server.py``), whose
Anthropic side keeps a deterministic prompt cache (``tests/fake_anthropic.py``): a token per 4
characters, breakpoints written and read by prefix with the API's 20-block lookback, and the
real 1,024-token minimum of a cacheable prefix (Sonnet). The conversation is what caching is for:
a project-instructions system prompt of about 2,000 tokens, and each step reads a 2 KB file
(file_read), so the history grows by some 600 tokens a step. The same chain runs twice: with
caching (the default: breakpoints on the tools, the system prompt and the newest messages) and
with ``cache: false``. Each request's usage comes from the session store
(``sessions export --format json``).

Target (issue 16): with caching, at least 80% of the input tokens after the first step are
cache reads. Also reported: the input tokens paid at full price, and what the input would cost
at Claude Sonnet's list prices (input $3/M, cache write $3.75/M, cache read $0.30/M).

    python bench/bench_cache.py [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import agentcli_bin, verdict

from fake_server import FakeProviderServer, text, tool_calls

MODEL = "claude-sonnet-4-6"
TARGET = 0.80
PRICE = {"input": 3.0, "cache_write": 3.75, "cache_read": 0.30}  # USD per million tokens
INSTRUCTIONS = ("## Project rules\n" + "".join(
    f"- Rule {n}: keep functions short, name things for what they do, test behaviour a user "
    "would notice, and never print a key.\n" for n in range(70)))


def run_chain(workdir: Path, steps: int, cache: bool) -> list[dict]:
    """Per-request usage of one chain (from the session store)."""
    home = workdir / f"home-{cache}"
    home.mkdir()
    with FakeProviderServer() as server:
        server.anthropic.min_cache_tokens = 1024
        server.script(*[tool_calls(("file_read", {"path": "notes.txt"})) for _ in range(steps)],
                      text("All read."))
        config = workdir / f"config-{cache}.yaml"
        config.write_text(f"providers:\n  claude:\n    type: anthropic\n    model: {MODEL}\n"
                          f"    base_url: {server.anthropic_base_url}\n"
                          f"    cache: {'true' if cache else 'false'}\n")
        env = {**os.environ, "AGENTCLI_HOME": str(home), "ANTHROPIC_API_KEY": "sk-bench",
               "NO_COLOR": "1"}
        exe = agentcli_bin()
        ask = subprocess.run([exe, "ask", "--config", str(config), "-p", "claude", "-y",
                              "-s", INSTRUCTIONS, "--max-steps", str(steps + 1), "--json",
                              "read notes.txt again and again"],
                             cwd=workdir, env=env, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=600)
        if ask.returncode != 0:
            sys.exit(f"agentcli ask failed ({ask.returncode}): {ask.stderr}")
        session = json.loads(ask.stdout)["session"]
    export = subprocess.run([exe, "sessions", "export", session, "--format", "json"],
                            env=env, capture_output=True, text=True, check=True)
    messages = json.loads(export.stdout)["messages"]
    return [m["usage"] for m in messages if m["role"] == "assistant"]


def summary(usages: list[dict]) -> dict:
    later = usages[1:]
    total_in = sum(u["input_tokens"] for u in later)
    read = sum(u["cached_input_tokens"] for u in later)
    written = sum(u["cache_write_tokens"] for u in usages)
    full = sum(u["input_tokens"] - u["cached_input_tokens"] - u["cache_write_tokens"]
               for u in usages)
    cost = (full * PRICE["input"] + written * PRICE["cache_write"]
            + sum(u["cached_input_tokens"] for u in usages) * PRICE["cache_read"]) / 1e6
    return {"requests": len(usages), "input": sum(u["input_tokens"] for u in usages),
            "later_input": total_in, "later_read": read,
            "share": read / total_in if total_in else 0.0, "written": written,
            "full_price": full, "cost": cost}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="tool calls in the chain (default 20)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentcli-bench-cache-") as tmp:
        workdir = Path(tmp)
        (workdir / "notes.txt").write_text("".join(f"note {n}: the build passed, the cache "
                                                   "held, the chain went on.\n"
                                                   for n in range(40)))
        cached = run_chain(workdir, args.steps, cache=True)
        plain = run_chain(workdir, args.steps, cache=False)
    print(f"Anthropic tool chain: {args.steps} tool steps + the answer, {MODEL}, fake server\n")
    print("request  input  cache read  cache write  share read")
    for n, u in enumerate(cached, 1):
        share = u["cached_input_tokens"] / u["input_tokens"] if u["input_tokens"] else 0
        print(f"{n:>7}  {u['input_tokens']:>5}  {u['cached_input_tokens']:>10}  "
              f"{u['cache_write_tokens']:>11}  {share:>9.0%}")
    on, off = summary(cached), summary(plain)
    print()
    for name, s in (("cache on (default)", on), ("cache: false", off)):
        print(f"{name:<19} input {s['input']:>6,} tokens; after step 1: {s['later_read']:,} of "
              f"{s['later_input']:,} read from the cache ({s['share']:.1%}); written "
              f"{s['written']:,}; full price {s['full_price']:,}; input cost ${s['cost']:.4f}")
    ok = on["share"] >= TARGET
    print(f"\ntarget: >= {TARGET:.0%} of the input after the first step read from the cache: "
          f"{on['share']:.1%} {verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
