"""Tool-step overhead: what one tool call costs agentcli, measured through ``Executor.execute``.

Each call runs in an isolated process tree (agentcli/isolation.py): two forks, the plugin
module imported in the worker, everything killed and reaped before the call returns. The parent
imports the openai SDK and makes a client first, so it is as big as a real `agentcli ask`.
Reported: median and p90 milliseconds per call for a no-op plugin, the calculator, file_read of
a small file and web_fetch of a small text page from a loopback server (SSRF guard off for it,
as in the tests), next to the cost of one bare fork + exit + wait of this same process.

Target: a no-op tool call costs at most 50 ms median (the bound the unit test that this bench
replaces used to assert). For context the ratio to one bare fork + exit + wait of the same
process is printed: isolation is two forks, two exits (one of which the call does not wait
for) and four hand-offs between processes, so on a loaded 2-core VM it costs ~3.5-4.5x a bare
fork where the one-fork design without isolation cost ~1x (2026-11, load ~4: no-op 27 ms vs
8 ms before; web_fetch, with httpx preloaded, 54-56 ms vs 17-28 ms before).

    python bench/bench_tools.py [-n 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MS = 50.0


class _Text(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"plain text\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=60)
    n = ap.parse_args().n
    home = tempfile.mkdtemp(prefix="agentcli-bench-tools-")
    os.environ["AGENTCLI_HOME"] = home
    import openai

    openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9/v1")  # as in `ask`: httpx loaded

    from agentcli.approval import PolicyApprover
    from agentcli.config import ToolSettings, load_settings
    from agentcli.executor import Executor
    from agentcli.messages import ToolCall
    from agentcli.plugins import load_tools

    plugin = Path(home) / "plugins"
    plugin.mkdir()
    (plugin / "noop.yaml").write_text("name: noop\ndescription: nothing\nentrypoint: noop:run\n"
                                      "confirm: never\nparameters: {type: object}\n")
    (plugin / "noop.py").write_text("def run():\n    return 'ok'\n")
    (Path(home) / "small.txt").write_text("hello\n" * 10)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Text)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"

    settings = load_settings()
    settings = replace(settings, tools=ToolSettings(
        options={"web_fetch": {"allow_private": True},
                 "file_read": {"roots": [home]}}))
    tools = load_tools(settings, extra_dirs=[str(plugin)], warn=lambda line: None)
    ex = Executor(tools, PolicyApprover(yes=True))
    cases = [("noop", {}), ("calculator", {"expression": "37*91"}),
             ("file_read", {"path": str(Path(home) / "small.txt")}), ("web_fetch", {"url": url})]
    forks = []
    for _ in range(n):
        t = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        forks.append(time.perf_counter() - t)
    print(f"{n} calls each; one bare fork + exit + wait of this process: "
          f"{statistics.median(forks) * 1000:.1f} ms median")
    ok = True
    for name, args in cases:
        call = ToolCall("b", name, json.dumps(args))
        first = time.perf_counter()
        result = ex.execute(call).result
        first = time.perf_counter() - first
        if result.is_error:
            print(f"{name}: error {result.content}")
            return 1
        times = []
        for _ in range(n):
            t = time.perf_counter()
            ex.execute(call)
            times.append(time.perf_counter() - t)
        med = statistics.median(times) * 1000
        p90 = sorted(times)[int(len(times) * 0.9) - 1] * 1000
        line = f"{name:<11} median {med:6.1f} ms  p90 {p90:6.1f} ms  first {first * 1000:6.1f} ms"
        if name == "noop":
            ratio = med / (statistics.median(forks) * 1000)
            ok = med <= TARGET_MS
            verdict = "PASS" if ok else "FAIL"
            line += f"  {ratio:.1f}x a fork  {verdict} (target <= {TARGET_MS:g} ms)"
        print(line)
    httpd.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
