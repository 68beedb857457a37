"""The benchmark scripts work: `python bench/run.py --quick` runs every scenario against the
fake server and writes a results table with a verdict for each of agentcli's targets (the
timings themselves are not judged here), and the bench server answers each kind of prompt the
way every contender relies on."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_server", ROOT / "bench" / "server.py")
bench_server = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(bench_server)  # type: ignore[union-attr]
END_MARK, FIRST_WORD, TITLE = bench_server.END_MARK, bench_server.FIRST_WORD, bench_server.TITLE
bench_reply, make_reply = bench_server.bench_reply, bench_server.make_reply


@pytest.mark.pty
def test_quick_bench_runs_every_scenario_and_writes_the_table(tmp_path):
    out = tmp_path / "results.md"
    side = ("<!-- side.py: begin -->\n## Other benchmarks\n\nbench_cache.py: 93.2% read"
            "\n<!-- side.py: end -->")
    out.write_text(f"# old results\n\n{side}\n")  # bench/side.py's part survives a rerun
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC"))}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=600, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    text = out.read_text()
    assert "Quick mode" in text and "# old results" not in text
    assert text.rstrip().endswith(side)
    for heading in ("### cold", "### oneshot", "### render", "### chain"):
        assert heading in text
    assert "failed" not in text.split("## Skipped")[0]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()
            if line.startswith("| ")}
    for target in ("`--version`", "`--help`", "one-shot / SDK floor (openai, pipe)",
                   "one-shot through Responses / SDK floor (openai responses, pipe)",
                   "peak RSS, one-shot", "tool chain: per step above the bare SDK loop",
                   "first word in a terminal after the same in a pipe",
                   "500 words: terminal / `ask` to a pipe", "linear: 2,000 / 500 words, pipe",
                   "3-step tool chain / the bare SDK loop",
                   "a 1-step tool call over the one-shot with `--no-tools`",
                   "offering tools: one-shot with tools / with `--no-tools`",
                   "500 words to a pipe: `--jsonl` / plain"):
        assert target in rows, target
        assert ("PASS" in rows[target]) or ("FAIL" in rows[target]), rows[target]
    assert "cold start imports no SDK" in text and "none imported" in text
    assert "one-shot / llm" in rows and "n/a" in rows["one-shot / llm"]  # no peers in quick


def _openai_chain(calls: int) -> list[dict]:
    messages: list[dict] = [{"role": "system", "content": "be brief"},
                            {"role": "user", "content": "bench:chain=3"}]
    for i in range(calls):
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function",
             "function": {"name": "calculator", "arguments": "{}"}}]})
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": str(i + 1)})
    return messages


def test_chain_prompt_calls_the_calculator_until_the_count_then_answers():
    for made in range(3):
        reply = bench_reply({"messages": _openai_chain(made)})
        assert reply.calls == (("calculator", {"expression": f"{made}+1"}),)
    final = bench_reply({"messages": _openai_chain(3)})
    assert not final.calls and "done after 3 calls" in final.text


def test_chain_counts_anthropic_tool_use_blocks_too():
    messages = [{"role": "user", "content": [{"type": "text", "text": "bench:chain=1"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name":
                                                   "calculator", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                              "content": "1"}]}]
    assert "done after 1 calls" in bench_reply({"messages": messages}).text


def test_a_request_without_a_directive_gets_a_title_and_gptme_is_told_to_complete():
    assert bench_reply({"messages": [{"role": "user", "content": "Create a title for: "
                                      "bench:words=5000"}]}).text == TITLE
    reply = bench_reply({"messages": [{"role": "user", "content": "bench:hi"}],
                         "tools": [{"type": "function", "function": {"name": "complete"}}]})
    assert reply.calls == (("complete", {}),) and reply.text.startswith(FIRST_WORD)


def test_long_reply_has_the_asked_size_and_its_markers():
    text = make_reply(5000)
    assert 4800 <= len(text.split()) <= 5300
    assert text.startswith(FIRST_WORD) and text.rstrip().endswith(END_MARK + ".")
    assert "```python" in text and "## Section" in text and "- " in text


def test_side_bench_report_replaces_its_own_part_and_keeps_the_rest(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_side", ROOT / "bench" / "side.py")
    side = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(side)  # type: ignore[union-attr]
    first = side.block([("cache", 0, "reads 93.2%", 12.0), ("attach", 1, "2.0x base64", 9.0)],
                       "abc1234")
    assert "| `bench_cache.py` |" in first and "| PASS |" in first and "| FAIL |" in first
    once = side.splice("# Benchmark results\n\n## Targets\nrows\n", first)
    second = side.block([("cache", 0, "reads 94.0%", 12.0)], "def5678")
    twice = side.splice(once, second)
    assert twice.startswith("# Benchmark results\n\n## Targets\nrows\n")
    assert "94.0%" in twice and "93.2%" not in twice and twice.count("Other benchmarks") == 1
    path = tmp_path / "r.md"
    path.write_text(twice)
    assert side.kept_block(path) == second


def test_session_bench_runs_against_the_current_recorder(tmp_path):
    # bench/side.py runs it; it drives the conversation and the recorder the way ask does
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_sessions.py"),
                           "--turns-written", "3", "--sessions", "30", "--resume-turns", "400",
                           "-n", "1"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "turn write (4 messages + turn record)" in proc.stdout, proc.stdout
    assert "resume 400 turns" in proc.stdout, proc.stdout
