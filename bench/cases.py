"""What is measured: every (scenario, variant, tool) case, as a command line and environment.

Scenarios (bench/README.md says why each exists):

- ``cold``    ``--version``, ``--help``, ``tools list``; floor: the bare interpreter;
- ``oneshot`` one short streamed reply (openai to a pipe and in a terminal, openai through the
              Responses API and anthropic to a pipe); floor: a minimal script making the same
              SDK call (bench/floor_*.py);
- ``render``  a long markdown reply (N and 4N words) in a terminal and to a pipe, and N words
              to a pipe as ``--jsonl`` events;
- ``chain``   S and 4S tool calls in a row, every call approved (``--yes``); floor: a bare SDK
              loop making the same calls (bench/floor_chain.py); and agentcli making 1 call.

Every tool runs with HOME pointing at the bench's own folder (no user configuration leaks in),
in an empty working folder, against the same server.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from peers import Peer
from server import END_MARK, FIRST_WORD

HERE = Path(__file__).resolve().parent
AGENTCLI = "agentcli"
FLOOR = "SDK floor"
SCENARIOS = ("cold", "oneshot", "render", "chain")
TOOL_ORDER = (AGENTCLI, "agentcli --no-tools", FLOOR, "llm", "sgpt", "gptme")
ONE_STEP = "1 step"
"""One tool call, then the answer: against the one-shot with ``--no-tools``, what a call adds."""
QUADRATIC = ("parses and renders the whole reply again on every chunk (quadratic, to a pipe "
             "too): measured on the {:,}-word terminal case only, to keep the run short")


@dataclass(frozen=True)
class Case:
    scenario: str
    variant: str
    tool: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(hash=False, compare=False)
    tty: bool = False
    marker: bytes | None = None
    expect: bytes | None = None
    timeout: float = 300.0

    @property
    def key(self) -> tuple[str, str, str]:
        return self.scenario, self.variant, self.tool


@dataclass(frozen=True)
class Skip:
    scenario: str
    variant: str
    tool: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """The sizes of one bench run."""

    words: int = 5000
    steps: int = 20
    timeout: float = 900.0

    def word_sizes(self) -> tuple[int, int]:
        return self.words, 4 * self.words

    def step_counts(self) -> tuple[int, int]:
        return self.steps, 4 * self.steps


def jsonl_variant(words: int) -> str:
    return f"{words:,} words, pipe, --jsonl"


def base_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    """A clean environment: no user keys, config or colour preferences."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")
           if k in os.environ}
    env.update(HOME=str(home), TERM="xterm-256color", COLUMNS="100", LINES="40",
               AGENTCLI_HOME=str(home / "agentcli"), OPENAI_API_KEY="sk-bench",
               ANTHROPIC_API_KEY="sk-bench", TIKTOKEN_CACHE_DIR=str(home / "tiktoken"),
               PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def agentcli_exe() -> str:
    exe = Path(sys.executable).parent / "agentcli"
    if not exe.exists():
        raise SystemExit(f"agentcli is not installed beside {sys.executable} "
                         "(pip install -e . in this virtualenv)")
    return str(exe)


def compile_bytecode() -> str:
    """Compile agentcli's modules and its built-in tools to bytecode, as pip does when it
    installs the wheel. An editable install compiles them at its first run, unless
    ``PYTHONDONTWRITEBYTECODE`` is set (the bench sets it for every run it makes, so peers
    write nothing): then every run would compile agentcli from source (~20-40 ms more) and
    every tool call its module. Returns what was compiled (a line for the results)."""
    spec = importlib.util.find_spec("agentcli")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"agentcli is not importable by {sys.executable}")
    pkg = Path(list(spec.submodule_search_locations)[0])
    folders = [pkg] + [d for d in (pkg / "_builtin_tools", pkg.parent / "tools") if d.is_dir()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *map(str, folders)],
                   stdout=subprocess.DEVNULL, check=True)
    return ", ".join(str(d) for d in folders)


def build(plan: Plan, url: str, home: Path, peers: list[Peer],
          scenarios: tuple[str, ...]) -> tuple[list[Case], list[Skip]]:
    env = base_env(home, {})
    peer_env = base_env(home, _peer_vars(home, url))
    exe = agentcli_exe()
    py = sys.executable
    oa = ["-p", "openai", "--base-url", f"{url}/v1", "-m", "bench"]
    an = ["-p", "anthropic", "--base-url", url, "-m", "bench"]
    reply = dict(marker=FIRST_WORD.encode(), expect=END_MARK.encode())
    cases: list[Case] = []
    skips: list[Skip] = []
    by_name = {p.key: p for p in peers}

    def add(scenario: str, variant: str, tool: str, argv: list[str], *, e=None, **kw) -> None:
        cases.append(Case(scenario, variant, tool, tuple(argv), e or env,
                          timeout=plan.timeout, **kw))

    def peer(scenario: str, variant: str, key: str, argv_tail: list[str], *,
             exe: str | None = None, **kw) -> None:
        p = by_name.get(key)
        if p is None:
            return
        if p.skipped:
            skips.append(Skip(scenario, variant, key, p.skipped))
            return
        program = str(Path(p.exe).with_name(exe)) if exe else p.exe
        add(scenario, variant, key, [program, *argv_tail], e=peer_env, **kw)

    def skip(scenario: str, variant: str, key: str, reason: str) -> None:
        if key in by_name and not by_name[key].skipped:
            skips.append(Skip(scenario, variant, key, reason))

    if "cold" in scenarios:
        add("cold", "--version", FLOOR, [py, "-c", "pass"])
        for args in (["--version"], ["--help"], ["tools", "list"]):
            add("cold", " ".join(args), AGENTCLI, [exe, *args])
            for key in ("llm", "sgpt", "gptme"):
                if args == ["tools", "list"] and key == "sgpt":
                    skip("cold", "tools list", key, "has no command that lists its functions")
                    continue
                # `gptme tools list` runs gptme-util, looked up on PATH: name it directly
                util = "gptme-util" if key == "gptme" and args == ["tools", "list"] else None
                peer("cold", " ".join(args), key, list(args), exe=util)

    if "oneshot" in scenarios:
        hi = "bench:hi"
        for variant, tty in (("openai, pipe", False), ("openai, terminal", True)):
            add("oneshot", variant, AGENTCLI, [exe, "ask", *oa, hi], tty=tty, **reply)
            add("oneshot", variant, FLOOR, [py, str(HERE / "floor_openai.py"), f"{url}/v1",
                                            "bench", hi], tty=tty, **reply)
        add("oneshot", "openai, pipe", "agentcli --no-tools",
            [exe, "ask", "--no-tools", *oa, hi], **reply)
        peer("oneshot", "openai, pipe", "llm", ["-m", "bench", hi], **reply)
        peer("oneshot", "openai, pipe", "sgpt", ["--no-cache", hi], **reply)
        peer("oneshot", "openai, pipe", "gptme", ["-n", "-m", "local/bench", hi], **reply)
        add("oneshot", "openai responses, pipe", AGENTCLI,
            [exe, "ask", "--api", "responses", *oa, hi], **reply)
        add("oneshot", "openai responses, pipe", FLOOR,
            [py, str(HERE / "floor_responses.py"), f"{url}/v1", "bench", hi], **reply)
        for key in ("llm", "sgpt", "gptme"):
            skip("oneshot", "openai responses, pipe", key, "set up on Chat Completions only")
        add("oneshot", "anthropic, pipe", AGENTCLI, [exe, "ask", *an, hi], **reply)
        add("oneshot", "anthropic, pipe", FLOOR, [py, str(HERE / "floor_anthropic.py"), url,
                                                  "bench", hi], **reply)
        for key in ("llm", "sgpt", "gptme"):
            skip("oneshot", "anthropic, pipe", key, "set up on the OpenAI wire format only")

    if "render" in scenarios:
        small, big = plan.word_sizes()
        for n in (small, big):
            prompt = f"bench:words={n}"
            for where, tty in (("terminal", True), ("pipe", False)):
                variant = f"{n:,} words, {where}"
                add("render", variant, AGENTCLI, [exe, "ask", *oa, prompt], tty=tty, **reply)
                add("render", variant, FLOOR, [py, str(HERE / "floor_openai.py"), f"{url}/v1",
                                               "bench", prompt], tty=tty, **reply)
                peer("render", variant, "llm", ["-m", "bench", prompt], tty=tty, **reply)
                peer("render", variant, "gptme", ["-n", "-m", "local/bench", prompt], tty=tty,
                     **reply)
                if n == small and tty:
                    peer("render", variant, "sgpt", ["--no-cache", prompt], tty=tty, **reply)
                else:
                    skip("render", variant, "sgpt", QUADRATIC.format(small))
        # the same reply as an event stream: one JSON object per text delta (issue 18)
        add("render", jsonl_variant(small), AGENTCLI, [exe, "ask", "--jsonl", *oa,
                                                       f"bench:words={small}"], **reply)

    if "chain" in scenarios:
        one = dict(marker=FIRST_WORD.encode(), expect=b"done after 1 calls")
        add("chain", ONE_STEP, AGENTCLI, [exe, "ask", "--yes", "--max-steps", "2", *oa,
                                          "bench:chain=1"], **one)
        for n in plan.step_counts():
            prompt, variant = f"bench:chain={n}", f"{n} steps"
            done = dict(marker=FIRST_WORD.encode(), expect=f"done after {n} calls".encode())
            add("chain", variant, AGENTCLI,
                [exe, "ask", "--yes", "--max-steps", str(n + 1), *oa, prompt], **done)
            add("chain", variant, FLOOR, [py, str(HERE / "floor_chain.py"), f"{url}/v1",
                                          "bench", prompt], **done)
            peer("chain", variant, "llm", ["-m", "bench", "--functions",
                                           str(home / "llm" / "calculator.py"),
                                           "--cl", "0", prompt], **done)
            peer("chain", variant, "sgpt", ["--no-cache", prompt], **done)
            peer("chain", variant, "gptme", ["-n", "-m", "local/bench", "-t",
                                             f"+{home / 'gptme_calculator.py'}", prompt], **done)
    return cases, skips


def _peer_vars(home: Path, url: str) -> dict[str, str]:
    from peers import prepare_home

    return prepare_home(home, url)
