"""A hostile server against `agentcli ask`: peak memory for a single 300 MB SSE line (streamed)
and a 300 MB JSON body (--no-stream), and wall time against a server that drips one byte every
0.5 s forever (request_timeout 3 s). Targets: peak <= 128 MiB, the drip stopped within 1 s of
the deadline (after the time a plain reply takes), exit 1 each time (v0.1: 1.29 GB peak; the
drip ran until killed).

Usage: python bench/bench_hostile.py [--size BYTES] [--code DIR]
  --code DIR: run the agentcli package found in DIR (e.g. an unpacked older commit) instead of
  the installed one, to measure before/after with the same server and the same Python.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _util import agentcli_bin, verdict
from fake_server import FakeProviderServer, drip, huge, text

MEMORY_MIB, DEADLINE, SLACK, KILL_AFTER = 128, 3.0, 1.0, 60.0


def run(argv: list[str], env: dict) -> tuple[float, float, int | None]:
    """(wall s, peak RSS MiB, exit code or None when it had to be killed) of one child."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=env["AGENTCLI_HOME"],
                            start_new_session=True)
    code: int | None = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.perf_counter() - start > KILL_AFTER:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    proc.returncode = code if code is not None else -9
    return time.perf_counter() - start, usage.ru_maxrss / 1024, code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=300_000_000)
    ap.add_argument("--code", help="a folder holding the agentcli package to run instead")
    args = ap.parse_args()
    home = Path("/tmp/agentcli-bench-hostile")
    home.mkdir(exist_ok=True)
    config = home / "config.yaml"
    config.write_text(f"max_retries: 0\nrequest_timeout: {DEADLINE}\nidle_timeout: 30\n")
    env = {**os.environ, "AGENTCLI_HOME": str(home), "NO_COLOR": "1"}
    for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AGENTCLI_CONFIG", "OPENAI_BASE_URL"):
        env.pop(k, None)
    if args.code:
        env["PYTHONPATH"] = str(Path(args.code).resolve())
        exe = [sys.executable, "-m", "agentcli"]
    else:
        exe = [agentcli_bin()]
    ok = True
    with FakeProviderServer() as srv:
        base = ["ask", "--no-tools", "--config", str(config), "--base-url", srv.openai_base_url,
                "-m", "m"]
        for label, extra in (("one SSE line", []), ("one JSON body", ["--no-stream"])):
            srv.script(huge(args.size, after_text="head "))
            wall, peak, code = run([*exe, *base, *extra, "hi"], env)
            good = peak <= MEMORY_MIB and code == 1
            ok &= good
            print(f"{args.size / 1e6:.0f} MB {label:<14} peak {peak:7.1f} MiB  wall {wall:5.2f} s"
                  f"  exit {code}  {verdict(good)}")
        srv.script(text("plain"))
        plain, _, _ = run([*exe, *base, "hi"], env)  # start-up and one short reply
        srv.script(drip("so far ", interval=0.5))
        wall, peak, code = run([*exe, *base, "hi"], env)
        good = code == 1 and wall <= plain + DEADLINE + SLACK
        ok &= good
        shown = f"{wall:5.2f} s" if code is not None else f"> {KILL_AFTER:.0f} s (killed)"
        print(f"drip, 1 byte / 0.5 s     wall {shown}  exit {code}  (request_timeout "
              f"{DEADLINE:g} s; a plain reply takes {plain:.2f} s)  {verdict(good)}")
    print(f"targets: peak <= {MEMORY_MIB} MiB and exit 1 for a huge reply; the drip stopped "
          f"within {SLACK:g} s after request_timeout, exit 1")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
