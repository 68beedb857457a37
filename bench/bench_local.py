"""Measure the local provider: reply speed, tool-call speed and argument validity.

    python bench/bench_local.py [--model-path X.gguf] [--record DIR]

Three runs on the same prompts: (1) plain replies through ``stream()``; (2) the same tool prompts
through ``stream()`` with tools, counting how often the model calls a tool by itself; (3) forced
calls: the prompt is primed with ``<tool_call>`` and the body generated under the grammar (the
path every started call takes), and, for comparison, the same without the grammar. Arguments
are checked with jsonschema. ``--record`` saves the raw outputs for the parser tests.
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
from agentcli.messages import Message, TextDelta, ToolCallReady, ToolDefinition  # noqa: E402
from agentcli.providers import local_tools as lt  # noqa: E402
from agentcli.providers.local import LocalProvider  # noqa: E402

TOOLS = [
    ToolDefinition("calculator", "Evaluate an arithmetic expression and return the result.",
                   {"type": "object", "properties": {"expression": {
                       "type": "string", "description": "e.g. 2*(3+4)"}},
                    "required": ["expression"]}),
    ToolDefinition("file_read", "Read a UTF-8 text file inside the allowed folders.",
                   {"type": "object", "properties": {"path": {
                       "type": "string", "description": "File path"}}, "required": ["path"]}),
    ToolDefinition("web_fetch", "Fetch a web page over http(s) and return its text.",
                   {"type": "object", "properties": {"url": {"type": "string"}},
                    "required": ["url"]}),
]
PROMPTS = [
    ("What is 17*23? Use the calculator.", "calculator"),
    ("Compute (12+30)/7 with the calculator tool.", "calculator"),
    ("Read the file notes.txt", "file_read"),
    ("Show me the contents of README.md", "file_read"),
    ("Fetch https://example.com and summarise it.", "web_fetch"),
    ("What is the capital of France?", None),
]


def valid_args(name: str, arguments: str) -> bool:
    tool = next((t for t in TOOLS if t.name == name), None)
    if tool is None:
        return False
    try:
        jsonschema.validate(json.loads(arguments), tool.parameters)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-path")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--record", type=Path)
    a = ap.parse_args()
    profile = ProviderProfile(name="local", type="local", model_path=a.model_path,
                              max_tokens=a.max_tokens)
    t0 = time.perf_counter()
    p = LocalProvider(profile, Settings())
    p._load()
    print(f"model {p.model}: load {time.perf_counter() - t0:.2f}s, n_threads={p.n_threads}")
    recorded: list[dict] = []

    times, toks = [], []
    for prompt, _ in PROMPTS:
        t = time.perf_counter()
        evs = list(p.stream([Message.user(prompt)], []))
        times.append(time.perf_counter() - t)
        toks.append(evs[-1].usage.output_tokens)
    print(f"plain reply: median {statistics.median(times):.2f}s for <= {a.max_tokens} tokens, "
          f"{sum(toks) / sum(times):.0f} tokens/s")

    spontaneous = 0
    for prompt, expected in PROMPTS:
        t = time.perf_counter()
        evs = list(p.stream([Message.user(prompt)], TOOLS))
        calls = [e.call for e in evs if isinstance(e, ToolCallReady)]
        text = "".join(e.text for e in evs if isinstance(e, TextDelta))
        spontaneous += bool(calls)
        print(f"  with tools {time.perf_counter() - t:5.2f}s {prompt!r}: "
              f"{[(c.name, c.arguments) for c in calls] or text[:70]!r}")
        recorded.append({"source": "SmolLM2 stream() with tools", "prompt": prompt,
                         "raw": text if not calls else None})
    print(f"spontaneous tool calls: {spontaneous}/{len(PROMPTS)}")

    for use_grammar in (True, False):
        times, ok = [], 0
        for prompt, expected in PROMPTS:
            sysp = lt.system_prompt(None, TOOLS)
            tokens, budget = p._prompt([Message.user(prompt)], sysp)
            ctx = tokens + p._tokens(lt.OPEN_TAG + "\n")
            state = {"out": 0, "finish": "stop"}
            grammar = p._grammar(TOOLS) if use_grammar else None
            t = time.perf_counter()
            body = "".join(p._run(ctx, budget, state, grammar=grammar,
                                  stop=(lt.CLOSE_TAG,)))
            dt = time.perf_counter() - t
            times.append(dt)
            raw = f"{lt.OPEN_TAG}\n{body}" + (f"\n{lt.CLOSE_TAG}" if use_grammar else "")
            _, parsed = lt.parse_reply(raw, [t.name for t in TOOLS])
            good = bool(parsed) and all(valid_args(c.name, c.arguments) for c in parsed)
            right = bool(parsed) and parsed[0].name == expected
            ok += good
            print(f"  {'grammar' if use_grammar else 'free   '} {dt:5.2f}s valid={good!s:5} "
                  f"right_tool={right!s:5} {body.strip()[:90]!r}")
            recorded.append({"source": f"SmolLM2 primed with <tool_call>, "
                                       f"{'grammar' if use_grammar else 'no grammar'}",
                             "prompt": prompt, "raw": raw})
        print(f"forced call {'with' if use_grammar else 'without'} grammar: median "
              f"{statistics.median(times):.2f}s, max {max(times):.2f}s, "
              f"schema-valid {ok}/{len(PROMPTS)}")
    if a.record:
        a.record.mkdir(parents=True, exist_ok=True)
        out = a.record / "bench_raw.json"
        out.write_text(json.dumps([r for r in recorded if r["raw"]], indent=1) + "\n")
        print(f"recorded {out}")


if __name__ == "__main__":
    main()
