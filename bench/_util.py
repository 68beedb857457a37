"""Shared helpers for the benchmark scripts: timing child processes and their peak memory."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def agentcli_bin() -> str:
    found = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
    if not found:
        sys.exit("agentcli is not installed in this environment (pip install .)")
    return found


def run_child(argv: list[str], *, env: dict | None = None, stdin: bytes = b"",
              stdout=subprocess.DEVNULL) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit code) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=stdout,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    proc.stdin.write(stdin)
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, proc.returncode


def median_run(argv: list[str], n: int, **kw) -> tuple[float, int]:
    walls, peaks = [], []
    for _ in range(n):
        wall, peak, code = run_child(argv, **kw)
        if code != 0:
            sys.exit(f"benchmark command failed with exit {code}: {' '.join(argv)}")
        walls.append(wall)
        peaks.append(peak)
    return statistics.median(walls), max(peaks)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
