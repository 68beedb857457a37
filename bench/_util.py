"""Shared helpers of the standalone benchmark scripts (bench_sessions, bench_mcp, bench_hostile,
bench_tools): timing child processes. ``run.py`` (the peers comparison) measures with measure.py
instead, which reads a program's own peak RSS from /proc; ``ru_maxrss`` here also counts the
small harness process the child was forked from, so treat its peaks as upper bounds."""

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
              stdout=subprocess.DEVNULL) -> tuple[float, int, int, float]:
    """(wall seconds, peak RSS in KiB, exit code, CPU seconds) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=stdout,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    proc.stdin.write(stdin)
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, proc.returncode, usage.ru_utime + usage.ru_stime


def median_run(argv: list[str], n: int, **kw) -> tuple[float, int]:
    wall, peak, _ = median_run_cpu(argv, n, **kw)
    return wall, peak


def median_run_cpu(argv: list[str], n: int, **kw) -> tuple[float, int, float]:
    """Median wall seconds, peak RSS (KiB) and median CPU seconds over ``n`` runs."""
    walls, peaks, cpus = [], [], []
    for _ in range(n):
        wall, peak, code, cpu = run_child(argv, **kw)
        if code != 0:
            sys.exit(f"benchmark command failed with exit {code}: {' '.join(argv)}")
        walls.append(wall)
        peaks.append(peak)
        cpus.append(cpu)
    return statistics.median(walls), max(peaks), statistics.median(cpus)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
