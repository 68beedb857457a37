"""One-shot round trip against a loopback server: `agentcli ask` vs a minimal script making the
same streamed SDK call. Target: agentcli <= 1.1x the minimal script, peak memory <= 64 MiB.

Usage: python bench/bench_roundtrip.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import sys

from _util import agentcli_bin, median_run, verdict
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
    ap.add_argument("-n", type=int, default=9)
    n = ap.parse_args().n
    exe = agentcli_bin()
    with FakeProviderServer(echo=True) as srv:  # every request gets an answer
        env = {**os.environ, "AGENTCLI_HOME": "/tmp/agentcli-bench", "NO_COLOR": "1"}
        for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AGENTCLI_CONFIG"):
            env.pop(k, None)
        base = srv.openai_base_url
        # warm both (pyc caches)
        median_run([sys.executable, "-c", MINIMAL, base], 1, env=env)
        median_run([exe, "ask", "--no-tools", "-p", "openai", "--base-url", base, "-m", "m", "hi"], 1, env=env)
        sdk, sdk_peak = median_run([sys.executable, "-c", MINIMAL, base], n, env=env)
        ours, peak = median_run([exe, "ask", "--no-tools", "-p", "openai", "--base-url", base,
                                 "-m", "m", "hi"], n, env=env)
        ours_tools, peak_tools = median_run([exe, "ask", "-p", "openai", "--base-url", base,
                                             "-m", "m", "hi"], n, env=env)
    ratio = max(ours, ours_tools) / sdk  # the default run advertises the built-in tools
    print(f"minimal SDK script : {sdk:.3f} s  peak {sdk_peak / 1024:.1f} MiB")
    print(f"agentcli ask       : {ours:.3f} s  peak {peak / 1024:.1f} MiB  (--no-tools)")
    print(f"agentcli ask+tools : {ours_tools:.3f} s  peak {peak_tools / 1024:.1f} MiB  (built-in tools advertised)")
    ok_ratio = ratio <= RATIO
    ok_mem = max(peak, peak_tools) / 1024 <= MEMORY_MIB
    print(f"ratio {ours / sdk:.2f}x without tools, {ours_tools / sdk:.2f}x with tools "
          f"(target <= {RATIO}x): {verdict(ok_ratio)}; peak memory target <= {MEMORY_MIB} MiB: {verdict(ok_mem)}")
    return 0 if ok_ratio and ok_mem else 1


if __name__ == "__main__":
    sys.exit(main())
