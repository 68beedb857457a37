"""Huge tool-call arguments cost bounded memory: a model that sends a call whose arguments are
15 MB used to take `agentcli ask` to 360 MiB of RSS before the context check refused the next
request. The peak is read by the process itself (``VmHWM`` in /proc/self/status, at exit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_server import tool_calls

LIMIT_MIB = 256
WRAPPER = """
import atexit, os, runpy, sys

def peak():
    with open("/proc/self/status") as f:
        hwm = [line for line in f if line.startswith("VmHWM:")][0]
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(hwm.split()[1])

atexit.register(peak)
sys.argv = ["agentcli", *sys.argv[1:]]
runpy.run_module("agentcli", run_name="__main__")
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "no-stream"])
def test_15_mb_of_tool_arguments_stay_under_256_mib(fake_server, tmp_path, stream):
    peak_file = tmp_path / "peak"
    fake_server.script(tool_calls(("calculator", {"expression": "1" * 15_000_000})))
    r = subprocess.run([sys.executable, "-c", WRAPPER, "ask", "-y", "--no-save",
                        "-p", "openai", "--base-url", fake_server.openai_base_url,
                        "-m", "gpt-4o", *([] if stream else ["--no-stream"]), "go"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env={**os.environ, "OPENAI_API_KEY": "sk-test", "PEAK_FILE": str(peak_file),
                            "NO_COLOR": "1"})
    assert r.returncode != 0 and "do not fit gpt-4o's context window" in r.stderr, r.stderr
    peak_mib = int(peak_file.read_text()) / 1024
    assert peak_mib < LIMIT_MIB, f"peak RSS {peak_mib:.0f} MiB"
