"""agentcli beside llm, shell-gpt and gptme, against one loopback fake provider.

    python bench/run.py              # everything, 5 interleaved shuffled rounds, peers installed
                                     # on first use; writes bench/results.md
    python bench/run.py --quick      # every scenario once, small sizes, no peers (a smoke test)

See bench/README.md for the scenarios, the peers and how to read the results.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peers as peer_mod  # noqa: E402
import report  # noqa: E402
from cases import (AGENTCLI, FLOOR, SCENARIOS, TOOL_ORDER, Case, Plan, Skip, build,  # noqa: E402
                   compile_bytecode)
from measure import Sample, run  # noqa: E402
from side import kept_block  # noqa: E402

SDKS = ("openai", "anthropic", "tiktoken", "llama_cpp", "mcp")
NOTABLE = ("yaml", "rich", "markdown_it", "pygments", "prompt_toolkit", "pydantic", "jsonschema",
           "httpx", "sqlite3")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="every scenario once, small sizes, no peers, no warm-up; writes no "
                         "results file unless --out is given")
    ap.add_argument("--runs", type=int, default=5, help="measured rounds (default 5)")
    ap.add_argument("--peers", default="llm,sgpt,gptme",
                    help="comma-separated peers to measure, or 'none' (default: all three)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    ap.add_argument("--words", type=int, default=5000, help="render: N and 4N words")
    ap.add_argument("--steps", type=int, default=20, help="tool chain: S and 4S steps")
    ap.add_argument("--timeout", type=float, default=900, help="one run's limit, seconds")
    ap.add_argument("--slow", type=float, default=60,
                    help="a peer's case whose warm-up run took longer (seconds) is measured "
                         "by that run alone (default 60)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="where the peers' virtualenvs live (default: $AGENTCLI_BENCH_CACHE or "
                         "~/.cache/agentcli-bench)")
    ap.add_argument("--out", default=None,
                    help="results file (default: bench/results.md; '-' for none)")
    args = ap.parse_args(argv)

    scenarios = tuple(s for s in args.scenarios.split(",") if s)
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario: {', '.join(sorted(unknown))}")
    if args.quick:
        plan, runs, wanted = Plan(words=500, steps=3, timeout=120), 1, []
    else:
        plan, runs = Plan(args.words, args.steps, args.timeout), max(1, args.runs)
        wanted = [] if args.peers == "none" else [p for p in args.peers.split(",") if p]
    bad = [p for p in wanted if p not in peer_mod.SPECS]
    if bad:
        ap.error(f"unknown peer: {', '.join(bad)} (known: {', '.join(peer_mod.SPECS)})")
    out = args.out if args.out is not None else (None if args.quick else
                                                  str(HERE / "results.md"))

    # a TERM (or Ctrl-C) unwinds normally: the server stops and the temporary home is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cache = args.cache or peer_mod.default_cache()
    peers = [peer_mod.install(p, cache, log=say) for p in wanted]
    compiled = compile_bytecode()
    started = time.time()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="agentcli-bench-") as tmp, serve() as url:
        home = Path(tmp)
        for d in ("work", "agentcli"):
            (home / d).mkdir()
        for p in peers:
            if p.key == "gptme" and not p.skipped:
                if not peer_mod.seed_tiktoken(p, home / "tiktoken"):
                    p.notes.append("tiktoken encodings not seeded: token counts approximated")
        cases, skips = build(plan, url, home, peers, scenarios)
        if any(p.notes for p in peers):
            for c in cases:
                c.env.setdefault("GPTME_TIKTOKEN_TIMEOUT", "0")
        imports, notable = check_imports(cases) if "cold" in scenarios else ({}, {})
        results: report.Results = {c.key: [] for c in cases}
        measured = cases
        if not args.quick:
            say(f"warm-up: {len(cases)} cases once (not counted, except slow peers)")
            cases, skips, slow = warm_up(cases, skips, home, args.slow)
            results = {c.key: [] for c in cases}
            for case, sample in slow.items():
                results[case.key].append(sample)
                took = (f"was stopped after {sample.wall:.0f} s" if sample.error
                        else f"took {sample.wall:.0f} s")
                skips.append(Skip(case.scenario, case.variant, case.tool,
                                  f"measured once: its warm-up run {took} (over --slow "
                                  f"{args.slow:g} s), so it is not repeated"))
            measured = [c for c in cases if c not in slow]
        for r in range(runs):
            order = measured[:]
            random.shuffle(order)
            t0 = time.perf_counter()
            for case in order:
                sample = run(list(case.argv), case.env, tty=case.tty, marker=case.marker,
                             expect=case.expect, timeout=case.timeout, cwd=str(home / "work"))
                results[case.key].append(sample)
                if sample.error:
                    say(f"  FAILED {case.tool}, {case.scenario} {case.variant}: {sample.error}")
            say(f"round {r + 1}/{runs}: {len(order)} runs in {time.perf_counter() - t0:.0f} s")
    load_end = os.getloadavg()

    st = {k: report.stats(v) for k, v in results.items()}
    tools = [t for t in TOOL_ORDER if any(k[2] == t for k in st)]
    tgts = report.targets(st, plan, imports)
    text = render(st, cases, skips, tgts, imports, notable, plan, runs, peers, tools,
                  (started, load_start, load_end), args.quick, compiled)
    print(text)
    if out and out != "-":
        side = kept_block(Path(out))  # bench/side.py's reports stay
        Path(out).write_text(text + "\n" + (f"\n{side}\n" if side else ""), encoding="utf-8")
        say(f"written to {out}")
    ours = [k for k, s in st.items() if s.errors and k[2] in (AGENTCLI, FLOOR,
                                                             "agentcli --no-tools")]
    return 1 if ours else 0


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def serve() -> Iterator[str]:
    """bench/server.py in its own process (serving costs the measuring process nothing)."""
    proc = subprocess.Popen([sys.executable, str(HERE / "server.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        found = re.search(r"http://\S+", line)
        if not found:
            raise SystemExit(f"the bench server did not start: {line!r}")
        yield found.group()
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def warm_up(cases: list[Case], skips: list[Skip], home: Path, slow_limit: float
            ) -> tuple[list[Case], list[Skip], dict[Case, Sample]]:
    """Run each case once (file caches, first-run setup of the peers); a peer's case that fails
    here is skipped with the error as the reason. agentcli's and the floor's are kept (their
    failures are reported, and fail the bench). A peer's case slower than ``slow_limit`` is
    measured by this run alone (shell-gpt renders 5,000 words in minutes)."""
    kept = []
    slow: dict[Case, Sample] = {}
    order = cases[:]
    random.shuffle(order)
    for case in order:
        s = run(list(case.argv), case.env, tty=case.tty, marker=case.marker, expect=case.expect,
                timeout=case.timeout, cwd=str(home / "work"))
        if s.error and case.tool in peer_mod.SPECS and not s.error.startswith("no exit"):
            say(f"  skipping {case.tool}, {case.scenario} {case.variant}: {s.error}")
            skips.append(Skip(case.scenario, case.variant, case.tool, f"failed: {s.error}"))
            continue
        kept.append(case)
        if s.wall > 30:
            say(f"  {case.tool}, {case.scenario} {case.variant}: {s.wall:.0f} s")
        if case.tool in peer_mod.SPECS and (s.wall > slow_limit or s.error):
            slow[case] = s
    return [c for c in cases if c in kept], skips, slow


def check_imports(cases: list[Case]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Top-level packages each agentcli cold-start command imports (``-X importtime``'s
    report): (the SDKs among them, the other notable ones), by command."""
    sdks: dict[str, list[str]] = {}
    notable: dict[str, list[str]] = {}
    for c in cases:
        if c.scenario != "cold" or c.tool != AGENTCLI:
            continue
        env = {**c.env, "PYTHONPROFILEIMPORTTIME": "1"}
        err = subprocess.run(list(c.argv), env=env, capture_output=True, text=True,
                             cwd=env["HOME"]).stderr
        mods = {m.group(1).split(".")[0]
                for m in re.finditer(r"^import time:.*\|\s*(\S+)\s*$", err, re.M)}
        sdks[c.variant] = sorted(m for m in mods if m in SDKS)
        notable[c.variant] = sorted(m for m in mods if m in NOTABLE)
    return sdks, notable


def versions(peers: list[peer_mod.Peer]) -> list[str]:
    out = []
    for dist in ("agentcli", "openai", "anthropic", "httpx", "rich", "markdown-it-py", "typer"):
        try:
            out.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    for p in peers:
        out.append(f"{p.spec.name} {p.version or '(not installed)'}")
    return out


def machine(load: tuple[float, tuple, tuple]) -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else n
    started, a, b = load
    return [f"date: {datetime.fromtimestamp(started, timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"CPU: {cpu}; {n} CPUs ({usable} usable)",
            f"OS: {platform.platform()}; Python {platform.python_version()}",
            f"load average (1 min) at start {a[0]:.2f}, at end {b[0]:.2f}"]


def render(st, cases, skips, tgts, imports, notable, plan: Plan, runs: int, peers, tools, load,
           quick: bool, compiled: str = "") -> str:
    busy = max(load[1][0], load[2][0]) > 0.5 * (os.cpu_count() or 1)
    lines = ["# Benchmark results", "",
             "Written by `python bench/run.py` (bench/README.md says what each case does). "
             f"{runs} interleaved, shuffled round(s) after a warm-up; medians, min–max in "
             "brackets.", "", f"Options: {' '.join(sys.argv[1:]) or '(defaults)'}.", ""]
    if quick:
        lines += ["**Quick mode: one run, small sizes, no peers — a smoke test, not a "
                  "measurement.**", ""]
    if busy:
        lines += ["**The machine was busy during this run (load average above half the CPU "
                  "count): the numbers are noisy. Rerun on a quiet machine.**", ""]
    lines += ["## Machine", ""] + [f"- {x}" for x in machine(load)]
    lines += [f"- versions: {', '.join(versions(peers))}"]
    if compiled:
        lines += [f"- bytecode compiled first, as a wheel install has it: {compiled}"]
    lines += [f"- note: {p.spec.name}: {n}" for p in peers for n in p.notes]
    lines += ["", "## Summary", "", report.summary_table(st, plan, tools), "",
              "## Targets", "", "| target | measured | limit | verdict | note |",
              "|---|---|---|---|---|"]
    lines += [t.line() for t in tgts]
    lines += ["", "## All cases", "", report.detail_tables(st, cases)]
    if imports:
        lines += ["Cold-start imports (`-X importtime`). SDKs: " + "; ".join(
            f"`{k}`: {', '.join(v) or 'none'}" for k, v in imports.items()) +
            ". Others of note: " + "; ".join(
            f"`{k}`: {', '.join(v) or 'none'}" for k, v in notable.items()) + ".", ""]
    lines += ["## Skipped, and measured once", "", report.skipped(skips, st)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
