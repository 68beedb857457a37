"""Measure the local provider: reply speed and tool calls, what turning off llama.cpp's weight
repacking costs, and what the model's own process costs per token.

    python bench/bench_local.py [--part quality|repack|boundary|all] [--model-path X.gguf]
                                [--threads N] [--rounds R] [--record DIR]

``--part repack``: prompt evaluation and generation speed with llama.cpp's weight repacking on
and off (``use_extra_bufts``), each in a fresh process, for the bundled Q4_1 model and two copies
of it re-quantized here with llama.cpp's own quantizer (Q4_0, Q8_0: types llama.cpp does repack
on x86), at 1 and 2 threads, rounds interleaved. Speeds are tokens per second of wall time and
of CPU time (the latter is steadier on a shared machine).

``--part boundary``: the model runs in its own process; what does each token cost to cross to
agentcli? (1) the real host protocol with a model that makes tokens for free (``FreeTokens``):
the host's CPU per token; (2) agentcli's CPU per token while the real model streams (it wakes
for each text frame); (3) the real model in-process (``Engine``) and through the provider,
alternating: generation time per token.

``--part quality`` (the default before these existed). The tools are the built-in ones, with
their real schemas (the calculator's ``maxLength: 2000`` made a grammar llama.cpp refused, which
crashed the process). Four parts:
(1) plain replies through ``stream()``: time to the first text, tokens/s after it;
(2) the same prompts with the tools offered (a ~700-token system prompt) and how often the model
calls a tool by itself; (3) building and checking the grammar for the tool set; (4) forced calls:
the prompt primed with ``<tool_call>`` and the body generated under the grammar (the path every
started call takes), and, for comparison, without it. Arguments are checked with jsonschema
against the full schemas. ``--record`` saves the raw outputs for the parser tests.

Wall times swing tenfold on a shared machine; the CPU time per token (``--threads 1``) does not,
so both are printed.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentcli.config import ProviderProfile, Settings  # noqa: E402
from agentcli.messages import Message, ResponseDone, TextDelta, TextPart, Usage  # noqa: E402
from agentcli.providers.local import grammar as lg  # noqa: E402
from agentcli.providers.local import tool_format as lt  # noqa: E402
from agentcli.providers.local.engine import Engine, Stopped  # noqa: E402
from agentcli.providers.local.files import captured_stderr  # noqa: E402
from agentcli.providers.local.host import ModelHost  # noqa: E402
from agentcli.providers.local.provider import LocalProvider, default_model_path  # noqa: E402

PROMPTS = [
    ("What is 17*23? Use the calculator.", "calculator"),
    ("Compute (12+30)/7 with the calculator tool.", "calculator"),
    ("Read the file notes.txt", "file_read"),
    ("Show me the contents of README.md", "file_read"),
    ("Fetch https://example.com and summarise it.", "web_fetch"),
    ("What is the capital of France?", None),
]
STORY = "Tell me a long story about a dragon and a knight."


def timed_stream(p, prompt: str, tools: list) -> tuple[float, float, ResponseDone]:
    """(seconds to the first text, seconds in total, the ResponseDone) of one request."""
    t = time.perf_counter()
    first = None
    done = None
    for ev in p.stream([Message.user(prompt)], tools):
        if isinstance(ev, TextDelta) and first is None:
            first = time.perf_counter() - t
        elif isinstance(ev, ResponseDone):
            done = ev
    total = time.perf_counter() - t
    assert done is not None
    return (first if first is not None else total), total, done


def provider(a: argparse.Namespace, **kw) -> LocalProvider:
    return LocalProvider(ProviderProfile(name="local", type="local", model_path=a.model_path,
                                         n_threads=a.threads, **kw), Settings(), warn=print)


# --- repacking on and off -----------------------------------------------------------------------

REPACK_CHILD = """
import json, sys, time
import llama_cpp
from agentcli.providers.local import repack
path, flag, threads, text = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
with repack.model_params(flag):
    llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
repack.check_loaded(llm, flag)
tokens = llm.tokenize(text.encode())[:512]
llm.reset()
w, c = time.perf_counter(), time.process_time()
llm.eval(tokens)  # prompt evaluation: one batch of 512 tokens
pw, pc = time.perf_counter() - w, time.process_time() - c
w, c = time.perf_counter(), time.process_time()
for t in tokens[:64]:  # generation: one token per decode, as when sampling
    llm.eval([t])
gw, gc = time.perf_counter() - w, time.process_time() - c
print(json.dumps([len(tokens) / pw, len(tokens) / pc, 64 / gw, 64 / gc]))
"""


def quantized_copies(folder: Path) -> list[Path]:
    """The bundled model, and Q4_0 and Q8_0 copies made from it by llama.cpp's quantizer."""
    import llama_cpp

    src = default_model_path()
    out = [src]
    for name, ftype in (("Q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0),
                        ("Q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)):
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype, params.allow_requantize, params.nthread = ftype, True, 2
        dest = folder / f"SmolLM2-135M-Instruct.{name}.gguf"
        with captured_stderr():  # the quantizer prints a line per tensor
            failed = llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), params)
        if failed:
            sys.exit(f"could not make {dest}")
        out.append(dest)
    return out


def part_repack(a: argparse.Namespace) -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()[:8000]
    results: dict[tuple[str, int, bool], list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = [Path(a.model_path)] if a.model_path else quantized_copies(Path(tmp))
        for _ in range(a.rounds):
            for threads in (1, 2):
                for model in models:
                    for flag in (True, False):
                        r = subprocess.run([sys.executable, "-c", REPACK_CHILD, str(model),
                                            "1" if flag else "0", str(threads), text],
                                           capture_output=True, text=True, check=True)
                        key = (model.name, threads, flag)
                        results.setdefault(key, []).append(json.loads(r.stdout))
    print(f"weight repacking, median of {a.rounds} fresh processes (tokens/s; wall | CPU):")
    print(f"{'model':36} thr  {'prompt on':>15} {'prompt off':>15} {'gen on':>13} "
          f"{'gen off':>13}  cost of off (CPU): prompt, gen")
    for name, threads in dict.fromkeys((k[0], k[1]) for k in results):
        on = [statistics.median(col) for col in zip(*results[(name, threads, True)])]
        off = [statistics.median(col) for col in zip(*results[(name, threads, False)])]
        print(f"{name:36} {threads:3}  {on[0]:6.0f} | {on[1]:6.0f} {off[0]:6.0f} | {off[1]:6.0f} "
              f"{on[2]:5.0f} | {on[3]:5.0f} {off[2]:5.0f} | {off[3]:5.0f}  "
              f"{100 * (1 - off[1] / on[1]):+5.1f}%, {100 * (1 - off[3] / on[3]):+5.1f}%")


# --- the process boundary -----------------------------------------------------------------------

class FreeTokens:
    """A model that makes its tokens for free, so the host's protocol is all that costs: the
    engine the bench's host runs (``BOOT_FREE``)."""

    def __init__(self, config, warn, should_stop) -> None:
        self.n, self.should_stop = config.max_tokens, should_stop

    def load(self):
        return self

    def n_ctx(self) -> int:
        return 0

    def repack_used(self) -> None:
        return None

    def stream(self, messages, tools, system):
        for i in range(self.n):
            yield TextDelta(" word")
            if self.should_stop():
                raise Stopped(i + 1)
        yield ResponseDone(Message("assistant", (TextPart(" word" * self.n),)), "end_turn",
                           Usage.reported(1, self.n))


BOOT_FREE = ("import sys, json\n"
             "sys.path[:] = json.loads(sys.argv[1])\n"
             "from bench_local import FreeTokens\n"
             "from agentcli.providers.local.host_main import main\n"
             "main(FreeTokens)\n")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def streamed(p, prompt: str) -> tuple[int, float, float, int]:
    """(tokens after the first piece of text, their wall seconds, agentcli's CPU seconds
    meanwhile, text events received)."""
    first = None
    events = 0
    tokens = 0
    for ev in p.stream([Message.user(prompt)], []):
        if isinstance(ev, TextDelta):
            events += 1
            if first is None:
                first = (time.perf_counter(), time.process_time())
        elif isinstance(ev, ResponseDone):
            tokens = ev.usage.output_tokens - 1
    return tokens, time.perf_counter() - first[0], time.process_time() - first[1], events


def part_boundary(a: argparse.Namespace) -> None:
    n = 50_000
    p = provider(a, max_tokens=n)
    p.host = ModelHost(p.config, boot=BOOT_FREE)
    streamed(p, "warm-up")
    hosts = []
    for _ in range(a.rounds):
        h0 = cpu_of(p.host.pid)
        tokens, _, _, _ = streamed(p, "x")
        hosts.append((cpu_of(p.host.pid) - h0) / tokens)
    p.close()
    host = statistics.median(hosts) * 1e6
    print(f"the model process's protocol work per token ({n:,} tokens made for free, median of "
          f"{a.rounds}): {host:.1f} us of CPU")

    real = provider(a, max_tokens=a.max_tokens, temperature=0.0)
    reader: list[float] = []  # agentcli's CPU per token while the real model streams
    for _ in range(a.rounds):  # before llama.cpp is loaded here: its threads would count
        tokens, _, cpu, events = streamed(real, STORY)
        reader.append(cpu / tokens)
    inproc = Engine(real.config, warn=print)
    inproc.load()
    rates: dict[str, list[float]] = {"in-process": [], "own process": []}
    for _ in range(a.rounds):
        for name, model in (("in-process", inproc), ("own process", real)):
            tokens, wall, _, _ = streamed(model, STORY)
            rates[name].append(wall / tokens)
    real.close()
    ms = {k: statistics.median(v) * 1000 for k, v in rates.items()}
    paced = statistics.median(reader) * 1e6
    print(f"agentcli's CPU per token while the real model streams: {paced:.1f} us ({events} "
          f"text frames for {tokens + 1} tokens)")
    print(f"real model, generation after the first token (median of {a.rounds}, "
          f"{a.max_tokens} tokens max): in-process {ms['in-process']:.2f} ms/token, in its own "
          f"process {ms['own process']:.2f} ms/token "
          f"({100 * (ms['own process'] / ms['in-process'] - 1):+.1f}%)")
    print(f"boundary cost: {(host + paced) / 1000 / ms['in-process'] * 100:.2f}% of a token's "
          "generation time even if the host's and agentcli's protocol CPU were spent serially "
          f"(the host's part alone: {host / 1000 / ms['in-process'] * 100:.2f}%)")


# --- reply speed and tool calls -----------------------------------------------------------------

def part_quality(a: argparse.Namespace) -> None:
    from agentcli.toolrun.manifest import load_tools

    warnings: list[str] = []
    t0 = time.perf_counter()
    p = provider(a, max_tokens=a.max_tokens)
    p._warn = warnings.append
    list(p.stream([Message.user("hi")], []))
    print(f"model {p.model}: started and loaded, first reply {time.perf_counter() - t0:.2f}s, "
          f"n_threads={p.n_threads}")
    engine = Engine(p.config, warn=warnings.append)  # in-process, for the grammar internals
    engine.load()
    tools = [t.definition for t in load_tools(Settings(), warn=warnings.append).values()]
    schemas = {t.name: t.parameters for t in tools}
    recorded: list[dict] = []

    import jsonschema

    def valid(name: str, arguments: str) -> bool:
        try:
            jsonschema.validate(json.loads(arguments), schemas[name])
        except (KeyError, ValueError, jsonschema.ValidationError):
            return False
        return True

    ttft, rates = [], []
    cpu, out = time.process_time(), 0
    for prompt, _ in PROMPTS:
        first, total, done = timed_stream(p, prompt, [])
        ttft.append(first)
        out += done.usage.output_tokens
        if done.usage.output_tokens > 1 and total > first:
            rates.append((done.usage.output_tokens - 1) / (total - first))
    cpu = time.process_time() - cpu
    print(f"plain reply: time to first token median {statistics.median(ttft) * 1000:.0f} ms "
          f"(prompt ~30 tokens, cache warm after the first), "
          f"{statistics.median(rates):.0f} tokens/s after it; agentcli's own CPU per token "
          f"{cpu / out * 1000:.2f} ms (the model computes in its own process)")

    t = time.perf_counter()
    built = lg.build(tools, engine._grammar_error)
    build_ms = (time.perf_counter() - t) * 1000
    print(f"grammar for {[t.name for t in tools]}: built and checked by llama.cpp in "
          f"{build_ms:.1f} ms, {len(built.gbnf or '')} bytes, weakened: {list(built.warnings)}")

    ttft, spontaneous = [], 0
    for prompt, expected in PROMPTS:
        first, total, done = timed_stream(p, prompt, tools)
        ttft.append(first)
        calls = done.message.tool_calls
        spontaneous += bool(calls)
        print(f"  with tools {total:5.2f}s (first token {first * 1000:4.0f} ms) {prompt!r}: "
              f"{[(c.name, c.arguments) for c in calls] or done.message.text[:60]!r}")
        recorded.append({"source": "SmolLM2 stream() with tools", "prompt": prompt,
                         "raw": done.message.text if not calls else None})
    print(f"with tools: time to first token median {statistics.median(ttft) * 1000:.0f} ms; "
          f"spontaneous tool calls {spontaneous}/{len(PROMPTS)}")

    names = [t.name for t in tools]
    for use_grammar in (True, False):
        times, toks, ok, cpu = [], 0, 0, 0.0
        for prompt, expected in PROMPTS:
            tokens, budget = engine._prompt([Message.user(prompt)], lt.system_prompt(None, tools))
            ctx = tokens + engine._tokens(lt.OPEN_TAG + "\n")
            state = {"out": 0, "finish": "stop"}
            grammar = engine._grammar(tools) if use_grammar else None
            t, c = time.perf_counter(), time.process_time()
            body = "".join(engine._run(ctx, budget, state, grammar=grammar,
                                  stop=() if use_grammar else (lt.CLOSE_TAG,)))
            times.append(time.perf_counter() - t)
            cpu += time.process_time() - c
            toks += state["out"]
            raw = f"{lt.OPEN_TAG}\n{body}\n{lt.CLOSE_TAG}"
            _, parsed = lt.parse_reply(raw, names)
            good = bool(parsed) and all(valid(c.name, c.arguments) for c in parsed)
            right = bool(parsed) and parsed[0].name == expected
            ok += good
            print(f"  {'grammar' if use_grammar else 'free   '} {times[-1]:5.2f}s "
                  f"{state['out']:3d} tok valid={good!s:5} right_tool={right!s:5} "
                  f"{body.strip()[:80]!r}")
            recorded.append({"source": f"SmolLM2 primed with <tool_call>, "
                                       f"{'grammar' if use_grammar else 'no grammar'}",
                             "prompt": prompt, "raw": raw})
        print(f"started call {'under the grammar' if use_grammar else 'without a grammar'}: "
              f"median {statistics.median(times):.2f}s, max {max(times):.2f}s, "
              f"{toks / sum(times):.0f} tokens/s, {cpu / toks * 1000:.1f} ms CPU per token, "
              f"schema-valid {ok}/{len(PROMPTS)}")
    if warnings:
        print(f"warnings: {warnings}")
    if a.record:
        a.record.mkdir(parents=True, exist_ok=True)
        out = a.record / "bench_raw.json"
        out.write_text(json.dumps([r for r in recorded if r["raw"]], indent=1) + "\n")
        print(f"recorded {out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("quality", "repack", "boundary", "all"), default="all")
    ap.add_argument("--model-path")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--record", type=Path)
    a = ap.parse_args()
    for part in ("repack", "boundary", "quality"):
        if a.part in (part, "all"):
            globals()[f"part_{part}"](a)
    print(f"CPU: {cpu_name()}; llama.cpp: {system_info()}")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            amx = "amx_int8" in Path("/proc/cpuinfo").read_text()
            return line.split(":", 1)[1].strip() + (" (AMX)" if amx else " (no AMX)")
    return "?"


def system_info() -> str:
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode().strip()


if __name__ == "__main__":
    main()
