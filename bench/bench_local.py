"""Measure the local provider: time to first token, tokens/s, grammar checks, started calls.

    python bench/bench_local.py [--model-path X.gguf] [--threads N] [--record DIR]

The tools are the built-in ones, with their real schemas (the calculator's ``maxLength: 2000``
made a grammar llama.cpp refused, which crashed the process). Four parts:
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
import statistics
import sys
import time
from pathlib import Path

import jsonschema

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentcli.config import ProviderProfile, Settings  # noqa: E402
from agentcli.messages import Message, ResponseDone, TextDelta  # noqa: E402
from agentcli.toolrun.manifest import load_tools  # noqa: E402
from agentcli.providers.local import grammar as lg  # noqa: E402
from agentcli.providers.local import tool_format as lt  # noqa: E402
from agentcli.providers.local.provider import LocalProvider  # noqa: E402

PROMPTS = [
    ("What is 17*23? Use the calculator.", "calculator"),
    ("Compute (12+30)/7 with the calculator tool.", "calculator"),
    ("Read the file notes.txt", "file_read"),
    ("Show me the contents of README.md", "file_read"),
    ("Fetch https://example.com and summarise it.", "web_fetch"),
    ("What is the capital of France?", None),
]


def timed_stream(p: LocalProvider, prompt: str, tools: list) -> tuple[float, float, ResponseDone]:
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-path")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--record", type=Path)
    a = ap.parse_args()
    profile = ProviderProfile(name="local", type="local", model_path=a.model_path,
                              max_tokens=a.max_tokens, n_threads=a.threads)
    warnings: list[str] = []
    t0 = time.perf_counter()
    p = LocalProvider(profile, Settings(), warn=warnings.append)
    p._load()
    print(f"model {p.model}: load {time.perf_counter() - t0:.2f}s, n_threads={p.n_threads}")
    tools = [t.definition for t in load_tools(Settings(), warn=warnings.append).values()]
    schemas = {t.name: t.parameters for t in tools}
    recorded: list[dict] = []

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
          f"{statistics.median(rates):.0f} tokens/s after it; {cpu / out * 1000:.1f} ms CPU "
          "per token")

    t = time.perf_counter()
    built = lg.build(tools, p._grammar_error)
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
            tokens, budget = p._prompt([Message.user(prompt)], lt.system_prompt(None, tools))
            ctx = tokens + p._tokens(lt.OPEN_TAG + "\n")
            state = {"out": 0, "finish": "stop"}
            grammar = p._grammar(tools) if use_grammar else None
            t, c = time.perf_counter(), time.process_time()
            body = "".join(p._run(ctx, budget, state, grammar=grammar,
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


if __name__ == "__main__":
    main()
