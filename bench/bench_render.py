"""Streaming markdown costs: `agentcli chat` rendering a long reply in a pseudo-terminal versus
`agentcli ask` printing the same reply as plain text to a pipe.

Both run the *installed* binary against the loopback fake provider (tests/fake_server.py, in
this process), which streams the reply word by word (one SSE chunk per word). Cost = CPU time
(user + system) of the agentcli process, from os.wait4; wall time is printed too. Each run
measures ask, an idle chat, chat 1x and chat 4x back to back; the verdict uses the median of
the per-run ratios (robust on a machine that other work keeps busy).

Pass criteria (issue 4):
  1. chat in a pty, 5,000 words  <=  1.5 x  ask to a pipe, 5,000 words
  2. chat in a pty, 20,000 words <=  4.5 x  chat in a pty, 5,000 words   (linear, not quadratic)

The second line of numbers ("turn only") subtracts the cost of an idle chat session (start,
/exit) to show what the rendering itself costs, without startup.

    python bench/bench_render.py [--runs 3] [--words 5000]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import random
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_server import FakeProviderServer, text  # noqa: E402

BIN = shutil.which("agentcli", path=str(Path(sys.executable).parent)) or shutil.which("agentcli")
MARKER = "END-OF-REPLY-MARKER"
COLS, ROWS = 100, 40

_WORDS = ("the a model streams tokens into terminal render markdown block paragraph list code "
          "fast linear time output user prompt history approval tool call result panel "
          "cursor screen width height wrap style color theme").split()


def make_reply(n_words: int, seed: int = 7) -> str:
    """A markdown reply of about ``n_words`` words: headings, paragraphs with inline markup
    and links, bullet and numbered lists, fenced python code."""
    rng = random.Random(seed)
    words = lambda k: " ".join(rng.choice(_WORDS) for _ in range(k))  # noqa: E731
    parts: list[str] = []
    count = 0
    section = 0
    while count < n_words:
        r = rng.random()
        if r < 0.08:
            section += 1
            parts.append(f"## Section {section}: {words(3)}")
            count += 5
        elif r < 0.25:
            items = [f"- {words(8)} with `inline_{i}` and **bold**" for i in range(4)]
            parts.append("\n".join(items))
            count += 4 * 12
        elif r < 0.32:
            items = [f"{i + 1}. {words(10)}" for i in range(3)]
            parts.append("\n".join(items))
            count += 3 * 11
        elif r < 0.42:
            body = "\n".join(f"def step_{i}(value):\n    return value * {i}  # {words(3)}"
                             for i in range(4))
            parts.append(f"```python\n{body}\n```")
            count += 4 * 9
        else:
            parts.append(f"{words(45)} *emphasis* and a [link](https://example.com/{section}) "
                         f"{words(10)}.")
            count += 60
    parts.append(f"{MARKER}.")
    return "\n\n".join(parts) + "\n"


def _env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "AGENTCLI_CONFIG", "NO_COLOR")}
    env.update(AGENTCLI_HOME=home, OPENAI_API_KEY="sk-bench", TERM="xterm-256color")
    return env


def _common(server: FakeProviderServer) -> list[str]:
    return ["-p", "openai", "--base-url", server.openai_base_url, "-m", "bench", "--no-tools"]


def run_ask(server: FakeProviderServer, reply: str, home: str) -> tuple[float, float]:
    """(cpu, wall) of `agentcli ask` printing the reply to a pipe."""
    server.script(text(reply))
    t0 = time.perf_counter()
    proc = subprocess.Popen([BIN, "ask", *_common(server), "go"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(home))
    out = bytearray()
    assert proc.stdout is not None
    while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
        out += chunk
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if MARKER.encode() not in out or proc.returncode != 0:
        raise SystemExit(f"ask failed (exit {proc.returncode}): "
                         f"{proc.stderr.read().decode()[-500:] if proc.stderr else ''}")
    return usage.ru_utime + usage.ru_stime, wall


class _Pty:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - child
            os.execvpe(args[0], args, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.buf = bytearray()

    def read_until(self, needle: bytes, start: int = 0, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while True:
            pos = self.buf.find(needle, start)
            if pos >= 0:
                return pos
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"timed out waiting for {needle!r}; last output: "
                                 f"{bytes(self.buf[-400:])!r}")
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if ready:
                try:
                    data = os.read(self.fd, 1 << 16)
                except OSError:
                    data = b""
                if not data:
                    raise SystemExit(f"chat ended early; last output: {bytes(self.buf[-400:])!r}")
                if b"\x1b[6n" in data:  # answer prompt-toolkit's cursor position request
                    os.write(self.fd, b"\x1b[1;1R")
                self.buf += data

    def drain_and_wait(self) -> tuple[float, int]:
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if ready and not os.read(self.fd, 1 << 16):
                    break
            except OSError:
                break
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)
        _, status, usage = os.wait4(self.pid, 0)
        os.close(self.fd)
        return usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def run_chat(server: FakeProviderServer, reply: str | None, home: str) -> tuple[float, float]:
    """(cpu, turn wall) of `agentcli chat` in a pty rendering one reply (None: start + /exit)."""
    p = _Pty([BIN, "chat", *_common(server)], _env(home))
    prompt = "›".encode()
    at = p.read_until(prompt)
    wall = 0.0
    if reply is not None:
        server.script(text(reply))
        t0 = time.perf_counter()
        os.write(p.fd, b"go\r")
        at = p.read_until(MARKER.encode(), at)
        at = p.read_until(prompt, at)
        wall = time.perf_counter() - t0
    os.write(p.fd, b"/exit\r")
    cpu, code = p.drain_and_wait()
    if code != 0:
        raise SystemExit(f"chat exited with {code}")
    return cpu, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--words", type=int, default=5000)
    args = ap.parse_args()
    if BIN is None:
        print("agentcli is not installed (pip install -e .)", file=sys.stderr)
        return 2
    small, big = make_reply(args.words), make_reply(4 * args.words)
    print(f"reply: {len(small.split()):,} words ({len(small):,} chars); "
          f"4x: {len(big.split()):,} words; runs: {args.runs} (median)")
    rows: list[tuple[tuple[float, float], ...]] = []
    with tempfile.TemporaryDirectory() as home, FakeProviderServer() as server:
        for _ in range(args.runs):  # interleaved, so a busy machine weighs on all alike
            rows.append((run_ask(server, small, home), run_chat(server, None, home),
                         run_chat(server, small, home), run_chat(server, big, home)))

    def med(i: int, j: int) -> float:
        return statistics.median(r[i][j] for r in rows)

    ask_cpu, ask_wall = med(0, 0), med(0, 1)
    idle_cpu = med(1, 0)
    chat_cpu, chat_wall = med(2, 0), med(2, 1)
    big_cpu, big_wall = med(3, 0), med(3, 1)

    print(f"ask  -> pipe, plain, {args.words:>6,} words: cpu {ask_cpu:6.2f} s   "
          f"wall {ask_wall:6.2f} s")
    print(f"chat -> pty, idle session (start, /exit): cpu {idle_cpu:6.2f} s")
    print(f"chat -> pty, markdown, {args.words:>5,} words: cpu {chat_cpu:6.2f} s   "
          f"turn wall {chat_wall:6.2f} s   turn only cpu {chat_cpu - idle_cpu:6.2f} s")
    print(f"chat -> pty, markdown, {4 * args.words:>5,} words: cpu {big_cpu:6.2f} s   "
          f"turn wall {big_wall:6.2f} s   turn only cpu {big_cpu - idle_cpu:6.2f} s")
    # ratios run by run (each run's four measurements ran back to back), then the median
    r1s = sorted(r[2][0] / r[0][0] for r in rows)
    r2s = sorted(r[3][0] / r[2][0] for r in rows)
    r1, r2 = statistics.median(r1s), statistics.median(r2s)
    r2_turn = (big_cpu - idle_cpu) / max(chat_cpu - idle_cpu, 1e-9)
    print(f"per-run ratios, chat/ask: {', '.join(f'{x:.2f}' for x in r1s)}; "
          f"4x/1x: {', '.join(f'{x:.2f}' for x in r2s)}")
    ok1, ok2 = r1 <= 1.5, r2 <= 4.5
    print(f"1. chat pty / ask pipe (median) = {r1:.2f}  (limit 1.50)  {'PASS' if ok1 else 'FAIL'}")
    print(f"2. chat 4x words / 1x (median)  = {r2:.2f}  (limit 4.50)  {'PASS' if ok2 else 'FAIL'}"
          f"   [turn only: {r2_turn:.2f}]")
    print("PASS" if ok1 and ok2 else "FAIL")
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
