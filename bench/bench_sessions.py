"""Session store and context-window targets (issue 9):

- writing a turn adds <= 2 ms (recorder: user message, assistant tool call, tool result, final
  reply, turn record; each message its own transaction);
- `agentcli sessions list` over 10,000 sessions <= 0.3 s wall (the installed binary);
- resuming a 1,000-turn session and trimming it to fit <= 0.2 s before the request is sent
  (open the store, load and repair the history, fit it to gpt-4o's 128k window with exact
  o200k_base counts - those kept with the conversation by the run before, as every chat turn
  keeps them, plus the new message - and to claude's 200k with the estimate; the resume of a
  conversation no run ever fitted, which builds the tokenizer, is shown for information);
- `--version` / `--help` import neither SDK, nor tiktoken, nor sqlite3.

Usage: python bench/bench_sessions.py [--turns-written N] [--sessions N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import agentcli_bin, median_run, median_run_cpu, verdict

from agentcli.agent.conversation import Conversation
from agentcli.messages import AgentDone, Message, TextPart, ToolCall, ToolResult, Usage
from agentcli.sessions.recorder import SessionRecorder
from agentcli.sessions.store import Header, new_id, open_store

PARAGRAPH = ("The quick brown fox jumps over the lazy dog while the compiler reports "
             "seventeen warnings about unused imports in module number {i}. ")


def turn_messages(i: int) -> list[tuple[Message, Usage | None]]:
    call = ToolCall(f"call_{i}", "file_read", json.dumps({"path": f"src/file_{i}.py"}))
    return [
        (Message.user(f"question {i}: " + PARAGRAPH.format(i=i) * 2), None),
        (Message("assistant", (TextPart("Let me read it."), call)), Usage.reported(1000, 20)),
        (Message("tool", (ToolResult(call.id, "file_read", PARAGRAPH.format(i=i) * 8),)), None),
        (Message("assistant", (TextPart(PARAGRAPH.format(i=i) * 4),)), Usage.reported(1200, 90)),
    ]


def bench_turn_writes(data: Path, turns: int) -> float:
    recorder = SessionRecorder(data, lambda line: sys.exit(f"warning: {line}"))
    conversation = Conversation(system="Be brief.")
    recorder.attach(conversation)  # as ask and chat do: the recorder renders its events
    times = []
    for i in range(turns):
        start = time.perf_counter()
        conversation.begin_turn("openai", "gpt-4o")
        for message, usage in turn_messages(i):
            conversation.append(message, usage=usage, stop_reason="end_turn" if usage else None)
        conversation.end_turn(AgentDone("end_turn", Usage.reported(2200, 110), 2))
        times.append(time.perf_counter() - start)
    recorder.close()
    return statistics.median(times) * 1000


def fill_sessions(data: Path, n: int) -> None:
    store = open_store(data, create=True)
    now = time.time()
    with store.write() as db:  # one transaction: seeding, not what is measured
        for i in range(n):
            sid = new_id()
            t = now - (n - i) * 60
            db.execute("INSERT INTO sessions (id, created, updated, provider, model, title, "
                       "turns, messages, input_tokens, output_tokens, requests) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (sid, t, t, "openai", "gpt-4o", f"question {i} about something", 3, 12,
                        3000, 300, 6))
    store.close()


RESUME = """
import sys, time
from pathlib import Path
from agentcli.config import ProviderProfile, Settings
from agentcli.agent.context import make_fitter
from agentcli.agent.conversation import Conversation
from agentcli.messages import AgentDone, Message, ToolDefinition, Usage
from agentcli.sessions.recorder import SessionRecorder
model, ptype, mode = sys.argv[2], sys.argv[3], sys.argv[4]
warm = mode == "warm"
tools = [ToolDefinition("file_read", "Read a file.",
                        {"type": "object", "properties": {"path": {"type": "string"}}})]
fitter_for = lambda: make_fitter(Settings(), ProviderProfile("p", ptype), model)
if warm:
    fitter_for().counter.count("load the tokenizer first")
start, cpu = time.perf_counter(), time.process_time()
recorder = SessionRecorder(Path(sys.argv[1]), print)
resumed = recorder.load(None)
conversation = Conversation.resumed(resumed)
recorder.attach(conversation, resumed)
fitter = fitter_for()
recorder.link(fitter)  # as ask/chat do: the counts kept with the conversation, if any
sent, _ = fitter([*resumed.history, Message.user("next")], tools, "Be brief.")
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
assert len(sent) < len(resumed.history), "the session should need trimming"
if mode == "save":  # a run's end: the counts it made are kept (what a chat's turn end does)
    conversation.end_turn(AgentDone("end_turn", Usage(), 1))
recorder.close()
counter = fitter.counter
print(elapsed, cpu, counter.label,
      "none" if not counter.exact else "built" if counter.loaded else "not-built")
"""


TOKENIZER = {"none": "no tokenizer", "built": "tokenizer used",
             "not-built": "tokenizer not needed"}


def bench_resume(data: Path, runs: int) -> dict[str, tuple[float, float, str]]:
    """Seconds from opening the store to the trimmed message list, in a fresh process each
    time, median of ``runs``; and whether the tokenizer was built. For gpt-4o (exact counts):
    first with no counts kept (a conversation never fitted before: the tokenizer is built),
    then, after one run that kept its counts (as every chat turn's end does), the resume as
    it normally is; and with the tokenizer built before the clock starts."""
    results = {}
    cases = [("gpt-4o", "openai", "cold", "no counts kept yet"),
             ("gpt-4o", "openai", "save", None),
             ("gpt-4o", "openai", "cold", "counts kept by the previous run"),
             ("gpt-4o", "openai", "warm", "tokenizer built before"),
             ("claude-sonnet-4-6", "anthropic", "cold", None)]
    for model, ptype, mode, note in cases:
        times, cpus, label, loaded = [], [], "", ""
        for _ in range(1 if mode == "save" else runs):
            out = subprocess.run([sys.executable, "-c", RESUME, str(data), model, ptype, mode],
                                 capture_output=True, text=True, check=True).stdout.split()
            times.append(float(out[0]))
            cpus.append(float(out[1]))
            label, loaded = " ".join(out[2:-1]), out[-1]
        if mode == "save":
            continue
        name = f"{model} ({label}{', ' + note if note else ''})"
        results[name] = (statistics.median(times), statistics.median(cpus), loaded)
    return results


def heavy_imports(args: list[str]) -> list[str]:
    code = ("import sys, json; sys.argv = ['agentcli', *%r]\n"
            "from agentcli.__main__ import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)" % (args,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr
    loaded = {m.split(".")[0] for m in json.loads(out.strip().splitlines()[-1])}
    return sorted(loaded & {"openai", "anthropic", "tiktoken", "sqlite3", "_sqlite3"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--turns-written", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--resume-turns", type=int, default=1000)
    ap.add_argument("-n", type=int, default=7, help="runs of `sessions list`")
    args = ap.parse_args()
    ok_all = True
    with tempfile.TemporaryDirectory() as tmp:
        writes = bench_turn_writes(Path(tmp) / "w", args.turns_written)
        ok = writes <= 2.0
        ok_all &= ok
        print(f"turn write (4 messages + turn record), median of {args.turns_written}: "
              f"{writes:.2f} ms  {verdict(ok)} (target <= 2 ms)")

        listing = Path(tmp) / "l"
        fill_sessions(listing, args.sessions)
        env = {**os.environ, "AGENTCLI_HOME": str(listing)}
        exe = agentcli_bin()
        bare, _ = median_run([sys.executable, "-c", "pass"], args.n, env=env)
        # the floor every typer subcommand pays (typer coerces parameters with pydantic)
        floor, _, floor_cpu = median_run_cpu([exe, "roles", "list"], args.n, env=env)
        print(f"floor: `agentcli roles list` (no config) {floor:.3f} s wall, {floor_cpu:.3f} s "
              f"CPU; bare python {bare:.3f} s")
        for extra in ([], ["--all"], ["--json", "--all"]):
            wall, peak, cpu = median_run_cpu([exe, "sessions", "list", *extra], args.n, env=env)
            targeted = not extra
            ok = wall <= 0.3 or not targeted
            ok_all &= ok
            print(f"sessions list {' '.join(extra):<12} over {args.sessions:,} sessions: "
                  f"{wall:.3f} s wall, {cpu:.3f} s CPU, peak {peak / 1024:.1f} MiB  "
                  f"{verdict(ok) + ' (target <= 0.3 s wall)' if targeted else '(information)'}")

        resume_dir = Path(tmp) / "r"
        seed = SessionRecorder(resume_dir, lambda line: sys.exit(f"warning: {line}"))
        store = seed.store()
        sid = new_id()
        for i in range(args.resume_turns):
            for message, usage in turn_messages(i):
                store.append(sid, message, turn=None, usage=usage, provider="openai",
                             model="gpt-4o", header=Header("openai", "gpt-4o", None, None)
                             if i == 0 else None)
        seed.close()
        size = (resume_dir / "sessions.db").stat().st_size
        for label, (seconds, cpu, loaded) in bench_resume(resume_dir, args.n).items():
            targeted = "no counts kept" not in label
            ok = seconds <= 0.2 or not targeted
            ok_all &= ok
            print(f"resume {args.resume_turns:,} turns ({size / 1e6:.1f} MB store) + trim, "
                  f"{label}: {seconds:.3f} s wall, {cpu:.3f} s CPU, "
                  f"{TOKENIZER[loaded]}  "
                  f"{verdict(ok) + ' (target <= 0.2 s)' if targeted else '(information)'}")

    for a in (["--version"], ["--help"], ["ask", "--help"], ["sessions", "--help"]):
        heavy = heavy_imports(a)
        ok_all &= not heavy
        print(f"agentcli {' '.join(a):<16} heavy imports: {', '.join(heavy) or 'none'}  "
              f"{verdict(not heavy)}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
