"""Where agentcli's time goes, beside the SDK floor doing the same work: a sampling profile.

    python bench/profiling.py [--runs 3] [--rate 200] [--steps 20]

Runs agentcli and the matching floor script (bench/floor_*.py) under py-spy (installed on first
use into the bench cache, beside the peers; it samples every thread of the unmodified process,
waits included, at little cost) against the bench server, and sorts the main thread's samples
into categories: imports by package, the SDK's request-parameter transform, waiting on the server,
tool calls, rendering, agentcli's own code... Prints, per case, milliseconds per category for
agentcli, for the floor, and the difference: the overhead, and where it is.

Cases: the one-shot round trip (to a pipe, and in a terminal, where markdown rendering starts),
and a tool step (the difference between a 4S- and an S-step chain, divided by 3S).

Then the garbage collector, which no sampling profile shows well (it runs inside whatever
allocates, and at exit with no Python frame): the one-shot run as installed, without the exit
freeze (agentcli/__main__.py), and with the collector off for the whole run (the most any
start-up GC tuning could save); CPU and wall medians of interleaved runs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import agentcli_exe, base_env, compile_bytecode  # noqa: E402
from measure import run  # noqa: E402
from peers import default_cache  # noqa: E402
from run import say, serve  # noqa: E402

# (category, test on one frame "function (file:line)"); the first rule any frame matches wins
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("SDK: request-parameter transform (_utils/_transform.py)", ("_utils/_transform.py",)),
    ("tool call: argument validation", ("(jsonschema/", "(referencing/",
                                        "agentcli/toolrun/argcheck.py", "make_validator (")),
    ("tool call: sandbox policy", ("agentcli/toolrun/sandbox.py",)),
    ("tool call: executor, tool host (fork, run, wait)", ("agentcli/toolrun/executor.py",
                                                         "agentcli/toolrun/host/")),
    ("sessions: the SQLite store", ("agentcli/sessions/",)),
    ("context window: token counts", ("agentcli/agent/context.py", "agentcli/agent/tokens.py",
                                      "(tiktoken")),
    ("waiting on the server (socket)", ("(socket.py:", "(ssl.py:", "(selectors.py:")),
    ("SDK: stream -> objects (_streaming, _models, pydantic)",
     ("openai/_streaming.py", "anthropic/_streaming.py", "openai/_models.py",
      "anthropic/_models.py", "(pydantic/", "(pydantic_core/")),
    ("HTTP client (httpx, httpcore, h11)", ("(httpx/", "(httpx2/", "(httpcore/", "(h11/")),
    ("SDK: client setup, request building", ("(openai/", "(anthropic/")),
    ("CLI parsing (typer, click)", ("(typer/", "(click/")),
    ("rendering (rich, markdown-it, pygments)",
     ("(rich/", "(markdown_it/", "(pygments/", "agentcli/ui/")),
    ("tools: manifests (yaml)", ("(yaml/", "agentcli/toolrun/manifest.py")),
    ("agentcli: own code", ("(agentcli/",)),
    ("interpreter exit", ("_shutdown (threading.py", "(atexit")),
]


def classify(frames: list[str]) -> str:
    """One main-thread sample (frames root first) -> its category."""
    if not frames:
        return "interpreter start/exit (no Python frame)"
    for f in frames[1:]:  # the root is the script itself
        if f.startswith("<module> (") and not f.startswith("<module> (agentcli/"):
            name = f[len("<module> ("):].split(":")[0]
            if "/" in name or name.endswith(".py"):
                top = name.split("/")[0].removesuffix(".py")
                if top not in ("<frozen importlib._bootstrap>",):
                    return f"import {top}"
    for category, needles in RULES:
        for f in frames:
            if any(n in f for n in needles):
                return category
    leaf = frames[-1]
    return "other: " + leaf.split("(")[-1].split("/")[0].split(":")[0]


def parse(raw: str) -> Counter[str]:
    """py-spy's raw output (``thread (tid)[: name];frame;...;frame count``) -> samples by
    category. The main thread's samples are the process's wall time; while it waits for the
    SDK import thread, that thread's samples say what the wait is made of."""
    rows: list[tuple[str, list[str], int]] = []
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        label, *frames = stack.split(";")
        rows.append((label.split(")")[0], frames, int(n)))
    roots = Counter(tid for tid, frames, n in rows if frames and frames[0].startswith("<module>"))
    if not roots:
        return Counter()
    main_tid = roots.most_common(1)[0][0]
    counts: Counter[str] = Counter()
    helper: Counter[str] = Counter()
    waiting = 0
    for tid, frames, n in rows:
        if tid == main_tid:
            if any("_import_on_fresh_stack" in f for f in frames):
                waiting += n
            else:
                counts[classify(frames)] += n
        elif any("_import_on_fresh_stack" in f for f in frames):
            helper[classify(frames[3:])] += n  # below Thread._bootstrap*, run
    # the waiting time, split the way the import thread spent it
    seen = sum(helper.values())
    for category, n in helper.items():
        counts[category] += round(n * waiting / seen) if seen > waiting else n
    if waiting > seen:
        counts["SDK import thread: start, stop"] += waiting - seen
    return counts


def py_spy(cache: Path) -> str:
    venv = cache / "tools"
    exe = venv / "bin" / "py-spy"
    if not exe.exists():
        say(f"installing py-spy into {venv} ...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "py-spy"], check=True)
    return str(exe)


def profile(spy: str, argv: list[str], env: dict[str, str], *, tty: bool, rate: int,
            runs: int, expect: bytes, cwd: str) -> tuple[Counter[str], int]:
    """Samples by category, summed over ``runs`` runs; and the sample total."""
    total: Counter[str] = Counter()
    for _ in range(runs):
        with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as f:
            out = f.name
        try:
            cmd = [spy, "record", "--idle", "--threads", "--nonblocking", "-r", str(rate),
                   "-f", "raw", "-o", out, "--", *argv]
            s = run(cmd, env, tty=tty, expect=expect, timeout=600, cwd=cwd)
            if s.error:
                raise SystemExit(f"profiled run failed: {s.error}")
            total += parse(Path(out).read_text())
        finally:
            os.unlink(out)
    return total, sum(total.values())


def table(title: str, ours: Counter[str], floor: Counter[str], scale: float,
          note: str = "") -> str:
    """Categories in milliseconds (``scale`` turns summed samples into ms per unit)."""
    cats = sorted(set(ours) | set(floor), key=lambda c: -(ours[c] - floor[c]))
    lines = [f"### {title}", "", note, "", "| category | agentcli ms | floor ms | extra ms |",
             "|---|---|---|---|"]
    for c in cats:
        a, b = ours[c] * scale, floor[c] * scale
        if abs(a) < 0.5 and abs(b) < 0.5:
            continue
        lines.append(f"| {c} | {a:.1f} | {b:.1f} | {a - b:+.1f} |")
    a, b = sum(ours.values()) * scale, sum(floor.values()) * scale
    lines.append(f"| **total** | **{a:.1f}** | **{b:.1f}** | **{a - b:+.1f}** |")
    return "\n".join(lines) + "\n"


GC_VARIANTS = {
    "as installed (exit freeze)": None,
    "without the exit freeze": "import sys; sys.argv[0] = 'agentcli'; "
                               "from agentcli.cli.app import main; main()",
    "collector off for the whole run": "import gc, sys; gc.disable(); sys.argv[0] = 'agentcli'; "
                                       "from agentcli.__main__ import main; main()",
}


def gc_table(exe: str, args: list[str], env: dict[str, str], cwd: str, runs: int) -> str:
    argvs = {k: ([sys.executable, exe, *args] if code is None
                 else [sys.executable, "-c", code, *args]) for k, code in GC_VARIANTS.items()}
    samples: dict[str, list] = {k: [] for k in argvs}
    for _ in range(runs):
        for k in random.sample(list(argvs), len(argvs)):
            s = run(argvs[k], env, tty=False, expect=b"Lastword", cwd=cwd)
            if s.error:
                raise SystemExit(f"{k}: {s.error}")
            samples[k].append(s)
    lines = ["### the garbage collector (one-shot, openai, to a pipe)", "",
             f"medians of {runs} interleaved runs", "", "| variant | CPU s | wall s |",
             "|---|---|---|"]
    for k, ss in samples.items():
        lines.append(f"| {k} | {statistics.median(x.cpu for x in ss):.3f} | "
                     f"{statistics.median(x.wall for x in ss):.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="profiled runs per case (summed)")
    ap.add_argument("--rate", type=int, default=200, help="samples per second")
    ap.add_argument("--steps", type=int, default=20, help="tool chain: S and 4S steps")
    ap.add_argument("--gc-runs", type=int, default=10, help="runs per GC variant (0: skip)")
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args(argv)
    spy = py_spy(args.cache or default_cache())
    compile_bytecode()
    exe, py = agentcli_exe(), sys.executable
    per_run = 1000 / args.rate / args.runs  # summed samples -> ms per run
    out = []
    with tempfile.TemporaryDirectory(prefix="agentcli-profile-") as tmp, serve() as url:
        home = Path(tmp)
        for d in ("work", "agentcli"):
            (home / d).mkdir()
        env, cwd = base_env(home, {}), str(home / "work")
        oa = ["ask", "-p", "openai", "--base-url", f"{url}/v1", "-m", "bench"]

        def prof(argv: list[str], tty: bool = False, expect: bytes = b"Lastword"):
            return profile(spy, argv, env, tty=tty, rate=args.rate, runs=args.runs,
                           expect=expect, cwd=cwd)[0]

        for label, tty in (("one-shot, openai, to a pipe", False),
                           ("one-shot, openai, in a terminal", True)):
            ours = prof([py, exe, *oa, "bench:hi"], tty)
            floor = prof([py, str(HERE / "floor_openai.py"), f"{url}/v1", "bench", "bench:hi"],
                         tty)
            out.append(table(label, ours, floor, per_run,
                             f"ms per run, {args.runs} runs at {args.rate} Hz; floor: "
                             "bench/floor_openai.py"))
        s1, s4 = args.steps, 4 * args.steps
        chain = {}
        for n in (s1, s4):
            done = f"done after {n} calls".encode()
            chain[n] = (prof([py, exe, "ask", "--yes", "--max-steps", str(n + 1), *oa[1:],
                              f"bench:chain={n}"], expect=done),
                        prof([py, str(HERE / "floor_chain.py"), f"{url}/v1", "bench",
                              f"bench:chain={n}"], expect=done))
        ours = chain[s4][0].copy()
        ours.subtract(chain[s1][0])
        floor = chain[s4][1].copy()
        floor.subtract(chain[s1][1])
        out.append(table("one tool step", ours, floor, per_run / (s4 - s1),
                         f"ms per step: ({s4}-step run - {s1}-step run) / {s4 - s1}; floor: "
                         "bench/floor_chain.py (a bare SDK loop, calculator answered in-process)"))
        for n in (s1, s4):
            out.append(table(f"the whole {n}-step chain", chain[n][0], chain[n][1], per_run,
                             "ms per run"))
        if args.gc_runs:
            out.append(gc_table(exe, [*oa, "bench:hi"], env, cwd, args.gc_runs))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
