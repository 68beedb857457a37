"""What editing files costs: agentcli's own share (planning a change and its diff, in agentcli's
process, before approval) and whole calls through the executor and the tool host.

Part 1, in this process: ``files.plan`` of an edit (read, check, replace) on a 50-line file and
on a 1 MB file; the diff the approval shows for a one-line change in 1 MB and for a rewrite of
all of it (bounded: only the changed middle is compared, at most 4,000 lines of it).
Part 2, per call through ``Executor.execute`` with the tool host up, interleaved call by call:
the calculator (a reference), file_read of a small file (it now also hashes the file it read),
edit of a small and of a 1 MB file (plan, diff-free with --yes, write, fsync, rename), write of
a new 1 MB file.

Measured 2026-11 on the shared 2-core VM while three test suites ran (load ~4): see the final
report of the edits branch; rerun on a quiet machine for figures to compare.

    python bench/bench_edits.py [-n 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def median_ms(fn, n: int) -> float:
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def texts() -> tuple[str, str]:
    small = "".join(f"line {i}\n" for i in range(50))
    big = "".join(f"line {i} of a file of about one megabyte\n" for i in range(26_000))
    return small, big[:1_000_000]


def in_process(work: Path, n: int) -> dict[str, float]:
    from agentcli.toolrun.host import files
    from agentcli.ui.diff_view import diff

    small, big = texts()
    (work / "s.txt").write_text(small)
    (work / "b.txt").write_text(big)
    roots, cap = [str(work)], files.DEFAULT_MAX_BYTES
    edit_small = {"path": "s.txt", "old": "line 25\n", "new": "LINE 25\n"}
    edit_big = {"path": "b.txt", "old": "line 13000 of", "new": "LINE 13000 of"}
    rewrite = big.replace("line", "LINE")
    return {
        "plan edit, 50 lines": median_ms(
            lambda i: files.plan("edit", edit_small, str(work), roots, cap), n),
        "plan edit, 1 MB": median_ms(
            lambda i: files.plan("edit", edit_big, str(work), roots, cap), n),
        "diff, 1 line of 1 MB": median_ms(
            lambda i: diff(big, big.replace("line 13000 of", "X"), "b.txt"), n),
        "diff, all of 1 MB rewritten": median_ms(lambda i: diff(big, rewrite, "b.txt"), n),
    }


def per_call(work: Path, n: int) -> dict[str, float]:
    from agentcli.config import load_settings
    from agentcli.messages import ToolCall
    from agentcli.toolrun.approval import PolicyApprover
    from agentcli.toolrun.executor import Executor
    from agentcli.toolrun.manifest import load_tools

    small, big = texts()
    (work / "s.txt").write_text(small)
    (work / "b.txt").write_text(big)
    executor = Executor(load_tools(load_settings(), warn=lambda line: None),
                        PolicyApprover(yes=True))
    executor.hosts.warm(wait=10)

    def call(name: str, **args: object) -> None:
        result = executor.execute(ToolCall("c", name, json.dumps(args))).result
        assert not result.is_error, result.content

    def flip(path: str, a: str, b: str):
        return lambda i: call("edit", path=path, old=a if i % 2 == 0 else b,
                              new=b if i % 2 == 0 else a)

    cases = {
        "calculator (reference)": lambda i: call("calculator", expression="1+1"),
        "file_read, 50 lines": lambda i: call("file_read", path="s.txt"),
        "edit, 50 lines": flip("s.txt", "line 25\n", "LINE 25\n"),
        "edit, 1 MB": flip("b.txt", "line 13000 of", "LINE 13000 of"),
        "write, new 1 MB file": lambda i: call("write", path=f"new{i}.txt", content=big),
    }
    for fn in cases.values():  # the first call of each forks agentcli, or preloads: warm up
        fn(0)
        fn(1)  # (an edit and its reverse: the file is as it was)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(n):  # interleaved, so a busy moment costs every case alike
        for name, fn in cases.items():
            start = time.perf_counter()
            fn(i)
            times[name].append((time.perf_counter() - start) * 1000)
    executor.close()
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("AGENTCLI_HOME", str(Path(tmp) / "home"))
        work = Path(tmp) / "work"
        work.mkdir()
        os.chdir(work)
        for title, rows in (("in agentcli's process", in_process(work, args.n)),
                            ("per call (tool host)", per_call(work, args.n))):
            print(title)
            for name, ms in rows.items():
                print(f"  {name:30s} {ms:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
