"""The standalone benchmarks (bench_*.py), run one after another, their reports written into
bench/results.md under "Other benchmarks" (``run.py`` keeps that part when it rewrites the file).

Each script measures one piece against its own target (caching, the sandbox, attachments, MCP,
sessions, edits, tool calls, hostile servers, huge tool arguments) and exits 1 when a target is
missed; this script runs them with their defaults, keeps what each printed and its verdict, and
exits 1 when any missed.

    python bench/side.py                     # every script but bench_local (needs a model)
    python bench/side.py --only cache,sandbox
    python bench/side.py --out -             # print, write nothing
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import compile_bytecode  # noqa: E402

HERE = Path(__file__).resolve().parent
BEGIN = "<!-- side.py: begin -->"
END = "<!-- side.py: end -->"
SCRIPTS = {  # name: (what it measures, extra arguments)
    "cache": ("prompt caching on a 20-step Anthropic tool chain (issue 16)", []),
    "sandbox": ("the OS sandbox's cost per call (issue 17)", []),
    "attach": ("a 10 MB attachment against its base64 time (issue 18)", []),
    "mcp": ("MCP servers' start-up and a call's cost (issues 11, 15)", []),
    "tools": ("a tool call's cost and a tool step end to end", []),
    "edits": ("editing files: planning, diffs, whole calls (issue 17)", []),
    "sessions": ("the session store and the context window", []),
    "tool_args": ("15 MB tool-call arguments: peak memory", []),
    "hostile": ("hostile servers: 300 MB lines and bodies, a drip", []),
}


def run_one(name: str, extra: list[str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py"), *extra],
                          capture_output=True, text=True, cwd=HERE.parent)
    text = (proc.stdout + ("\n" + proc.stderr if proc.returncode and proc.stderr else ""))
    return proc.returncode, text.strip(), time.perf_counter() - start


def block(results: list[tuple[str, int, str, float]], commit: str) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [BEGIN, "## Other benchmarks", "",
             f"Written by `python bench/side.py` on {when}, at commit {commit}, on the machine "
             "above; each script's own report, verbatim. A script exits 1 when one of its "
             "targets is missed.", "",
             "| script | measures | verdict | took |", "|---|---|---|---|"]
    for name, code, _, took in results:
        verdict = {0: "PASS"}.get(code, "FAIL" if code == 1 else f"error (exit {code})")
        lines.append(f"| `bench_{name}.py` | {SCRIPTS[name][0]} | {verdict} | {took:.0f} s |")
    for name, code, text, _ in results:
        lines += ["", f"### bench_{name}.py", "", "```", text, "```"]
    lines.append(END)
    return "\n".join(lines)


def splice(old: str, new_block: str) -> str:
    """``old`` with its side block replaced by ``new_block`` (appended when it has none)."""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        return head + new_block + rest.split(END, 1)[1]
    return old.rstrip("\n") + "\n\n" + new_block + "\n"


def kept_block(path: Path) -> str:
    """The side block of an existing results file ('' when none): run.py writes it back."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    if BEGIN not in text or END not in text:
        return ""
    return BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help=f"comma-separated subset of {', '.join(SCRIPTS)}")
    ap.add_argument("--out", default=str(HERE / "results.md"),
                    help="results file (default: bench/results.md; '-' to print only)")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        ap.error(f"unknown script(s): {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")
    # as a wheel install has it (PYTHONDONTWRITEBYTECODE would leave every run compiling
    # agentcli from source): see cases.compile_bytecode
    compile_bytecode()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip() or "unknown"
    results = []
    for name in names:
        print(f"[side] bench_{name}.py ...", file=sys.stderr, flush=True)
        code, text, took = run_one(name, SCRIPTS[name][1])
        print(f"[side] bench_{name}.py: exit {code} after {took:.0f} s", file=sys.stderr)
        results.append((name, code, text, took))
    text = block(results, commit)
    if args.out == "-":
        print(text)
    else:
        path = Path(args.out)
        old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
        path.write_text(splice(old, text), encoding="utf-8")
        print(f"[side] written to {path}", file=sys.stderr)
    return 0 if all(code == 0 for _, code, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
