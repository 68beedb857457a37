"""One-shot round trip against a loopback server: `agentcli ask` vs a minimal script making the
same streamed SDK call. Target: agentcli <= 1.1x the minimal script, peak memory <= 64 MiB.

Usage: python bench/bench_roundtrip.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import sys

import random
import statistics

from _util import agentcli_bin, median_run_cpu, verdict
from fake_server import FakeProviderServer

RATIO, MEMORY_MIB = 1.1, 64

MINIMAL = """
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="x")
stream = client.chat.completions.create(model="m", stream=True,
    messages=[{"role": "user", "content": "hi"}], stream_options={"include_usage": True})
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        sys.stdout.write(chunk.choices[0].delta.content)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=15)
    n = ap.parse_args().n
    exe = agentcli_bin()
    env = {**os.environ, "AGENTCLI_HOME": "/tmp/agentcli-bench", "NO_COLOR": "1"}
    for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AGENTCLI_CONFIG"):
        env.pop(k, None)
    with FakeProviderServer(echo=True) as srv:  # every request gets an answer
        base = srv.openai_base_url
        runs = {
            "minimal SDK script": [sys.executable, "-c", MINIMAL, base],
            "agentcli ask --no-tools": [exe, "ask", "--no-tools", "-p", "openai", "--base-url",
                                        base, "-m", "m", "hi"],
            "agentcli ask (tools)": [exe, "ask", "-p", "openai", "--base-url", base, "-m", "m",
                                     "hi"],
        }
        for argv in runs.values():  # warm the OS file cache
            median_run_cpu(argv, 1, env=env)
        # interleave the three, in a shuffled order each round, so machine noise hits them alike
        results: dict[str, list[tuple[float, int, float]]] = {k: [] for k in runs}
        order = list(runs)
        for _ in range(n):
            random.shuffle(order)
            for name in order:
                results[name].append(median_run_cpu(runs[name], 1, env=env))
    med = {k: (statistics.median(r[0] for r in v), max(r[1] for r in v),
               statistics.median(r[2] for r in v)) for k, v in results.items()}
    sdk_wall, _, sdk_cpu = med["minimal SDK script"]
    ok = True
    for name, (wall, peak, cpu) in med.items():
        line = f"{name:<24} wall {wall:.3f} s  cpu {cpu:.3f} s  peak {peak / 1024:.1f} MiB"
        if name != "minimal SDK script":
            ratio_w, ratio_c = wall / sdk_wall, cpu / sdk_cpu
            good = min(ratio_w, ratio_c) <= RATIO and peak / 1024 <= MEMORY_MIB
            ok &= good
            line += f"  ratio wall {ratio_w:.2f}x cpu {ratio_c:.2f}x  {verdict(good)}"
        print(line)
    print(f"targets: <= {RATIO}x the minimal SDK script (median of {n} interleaved runs; wall "
          f"time is noisy on a shared VM, CPU time is steadier), peak <= {MEMORY_MIB} MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
