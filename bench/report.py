"""Samples -> medians, the targets' verdicts, and bench/results.md (markdown tables).

All ratios compare medians taken in the same bench run (interleaved, shuffled), so machine noise
weighs on both sides alike. Wall time is what a user waits; CPU time is shown beside it because
it is steadier on a busy machine.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

from cases import AGENTCLI, FLOOR, ONE_STEP, TOOL_ORDER, Case, Plan, Skip, jsonl_variant
from measure import Sample


@dataclass(frozen=True)
class Stat:
    n: int
    wall: float
    lo: float
    hi: float
    cpu: float
    rss: float
    first: float | None
    errors: tuple[str, ...]
    killed_after: float | None = None  # every run overran its limit: the time is at least this


Results = dict[tuple[str, str, str], list[Sample]]


def stats(samples: list[Sample]) -> Stat:
    good = [s for s in samples if s.error is None]
    errors = tuple(s.error for s in samples if s.error is not None)
    if not good:
        overran = [s.wall for s in samples if (s.error or "").startswith("no exit within")]
        return Stat(0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"),
                    None, errors, min(overran) if overran else None)
    walls = [s.wall for s in good]
    firsts = [s.first for s in good if s.first is not None]
    return Stat(len(good), statistics.median(walls), min(walls), max(walls),
                statistics.median(s.cpu for s in good), max(s.rss for s in good),
                statistics.median(firsts) if firsts else None, errors)


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    limit: float
    unit: str  # "s", "ms", "x", "MiB", "n" (a count)
    at_most: bool = True
    detail: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None or self.value != self.value:
            return "n/a"
        ok = self.value <= self.limit if self.at_most else self.value >= self.limit
        return "PASS" if ok else "FAIL"

    def line(self) -> str:
        fmt = {"s": "{:.3f} s", "ms": "{:+.1f} ms", "x": "{:.2f}×", "MiB": "{:.1f} MiB",
               "n": "{:.0f}"}[self.unit]
        limit = fmt.format(self.limit).replace("+", "")
        value = "—" if self.verdict == "n/a" else fmt.format(self.value)
        sign = "≤" if self.at_most else "≥"
        return f"| {self.name} | {value} | {sign} {limit} | {self.verdict} | {self.detail} |"


def targets(st: dict[tuple[str, str, str], Stat], plan: Plan,
            imports: dict[str, list[str]]) -> list[Target]:
    def wall(*key: str) -> float | None:
        s = st.get(key)
        return s.wall if s and s.n else None

    def first(*key: str) -> float | None:
        s = st.get(key)
        return s.first if s and s.n else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def diff_ms(a: float | None, b: float | None) -> float | None:
        return (a - b) * 1000 if a is not None and b is not None else None

    small, big = plan.word_sizes()
    s1, s4 = plan.step_counts()
    one = ("oneshot", "openai, pipe")
    rss = st.get(("oneshot", "openai, pipe", AGENTCLI))
    per_step = {t: _slope(wall("chain", f"{s1} steps", t), wall("chain", f"{s4} steps", t),
                          s4 - s1) for t in (AGENTCLI, FLOOR)}
    sdk = sorted({m for mods in imports.values() for m in mods})
    sgpt_stat = st.get(("render", f"{small:,} words, terminal", "sgpt"))
    sgpt_killed = sgpt_stat.killed_after if sgpt_stat else None
    out = [
        Target("`--version`", wall("cold", "--version", AGENTCLI), 0.1, "s"),
        Target("`--help`", wall("cold", "--help", AGENTCLI), 0.15, "s"),
        Target("cold start imports no SDK (`--version`, `--help`, `tools list`)",
               float(len(sdk)) if imports else None, 0, "n",
               detail=("imported: " + ", ".join(sdk)) if sdk else "none imported"),
        Target("one-shot / SDK floor (openai, pipe)",
               ratio(wall(*one, AGENTCLI), wall(*one, FLOOR)), 1.05, "x"),
        Target("one-shot through Responses / SDK floor (openai responses, pipe)",
               ratio(wall("oneshot", "openai responses, pipe", AGENTCLI),
                     wall("oneshot", "openai responses, pipe", FLOOR)), 1.05, "x"),
        Target("one-shot / llm", ratio(wall(*one, AGENTCLI), wall(*one, "llm")), 0.8, "x"),
        Target("peak RSS, one-shot", rss.rss if rss and rss.n else None, 64, "MiB"),
        Target("tool chain: per step above the bare SDK loop",
               diff_ms(per_step[AGENTCLI], per_step[FLOOR]), 5, "ms",
               detail=f"slope between {s1} and {s4} steps"),
        Target(f"{s1}-step tool chain / the bare SDK loop",
               ratio(wall("chain", f"{s1} steps", AGENTCLI), wall("chain", f"{s1} steps", FLOOR)),
               1.0, "x", detail="what a run pays once, and its steps"),
        Target("a 1-step tool call over the one-shot with `--no-tools`",
               diff_ms(wall("chain", ONE_STEP, AGENTCLI), wall(*one, "agentcli --no-tools")), 60,
               "ms", detail="one call, then the answer (two requests)"),
        Target("offering tools: one-shot with tools / with `--no-tools`",
               diff_ms(wall(*one, AGENTCLI), wall(*one, "agentcli --no-tools")), 10, "ms",
               detail="no tool called"),
        Target("first word in a terminal after the same in a pipe",
               diff_ms(first("oneshot", "openai, terminal", AGENTCLI), first(*one, AGENTCLI)),
               10, "ms"),
        Target(f"{small:,} words: terminal / `ask` to a pipe",
               ratio(wall("render", f"{small:,} words, terminal", AGENTCLI),
                     wall("render", f"{small:,} words, pipe", AGENTCLI)), 1.5, "x"),
        Target(f"{small:,} words in a terminal: shell-gpt / agentcli",
               ratio(wall("render", f"{small:,} words, terminal", "sgpt") or sgpt_killed,
                     wall("render", f"{small:,} words, terminal", AGENTCLI)), 20, "x",
               at_most=False, detail=f"shell-gpt was stopped after {sgpt_killed:.0f} s: at "
                                     "least this" if sgpt_killed else ""),
    ]
    out.append(Target(f"{small:,} words to a pipe: `--jsonl` / plain",
                      ratio(wall("render", jsonl_variant(small), AGENTCLI),
                            wall("render", f"{small:,} words, pipe", AGENTCLI)), 1.05, "x",
                      detail="an event per text delta"))
    for where in ("terminal", "pipe"):
        out.append(Target(f"linear: {big:,} / {small:,} words, {where}",
                          ratio(wall("render", f"{big:,} words, {where}", AGENTCLI),
                                wall("render", f"{small:,} words, {where}", AGENTCLI)),
                          4.5, "x"))
    return out


def _slope(a: float | None, b: float | None, steps: int) -> float | None:
    return (b - a) / steps if a is not None and b is not None else None


def _fmt(s: Stat | None) -> str:
    if s is None:
        return ""
    if not s.n:
        return f"> {s.killed_after:.0f} s (stopped)" if s.killed_after else "failed"
    if s.n == 1:
        return f"{s.wall:.3f} s"
    return f"{s.wall:.3f} s ({s.lo:.3f}–{s.hi:.3f})"


def summary_table(st: dict[tuple[str, str, str], Stat], plan: Plan, tools: list[str]) -> str:
    """The headline numbers, one column per tool (wall medians; the README quotes it)."""
    small, big = plan.word_sizes()
    s1, s4 = plan.step_counts()
    rows: list[tuple[str, Callable[[str], str]]] = []

    def cell(*key: str) -> Callable[[str], str]:
        def get(tool: str) -> str:
            s = st.get((*key, tool))
            if s is None:
                return ""
            if not s.n:
                return f"> {s.killed_after:.0f} s" if s.killed_after else "failed"
            return f"{s.wall:.3f} s"
        return get

    def first(*key: str) -> Callable[[str], str]:
        def get(tool: str) -> str:
            s = st.get((*key, tool))
            return "" if s is None or s.first is None else f"{s.first:.3f} s"
        return get

    def rss(*key: str) -> Callable[[str], str]:
        def get(tool: str) -> str:
            s = st.get((*key, tool))
            return "" if s is None or not s.n else f"{s.rss:.0f} MiB"
        return get

    def slope(tool: str) -> str:
        a, b = st.get(("chain", f"{s1} steps", tool)), st.get(("chain", f"{s4} steps", tool))
        if not (a and b and a.n and b.n):
            return ""
        return f"{(b.wall - a.wall) / (s4 - s1) * 1000:.1f} ms"

    rows += [("`--version`", cell("cold", "--version")), ("`--help`", cell("cold", "--help")),
             ("one-shot, openai, pipe", cell("oneshot", "openai, pipe")),
             ("first word, one-shot, pipe", first("oneshot", "openai, pipe")),
             ("first word, one-shot, terminal", first("oneshot", "openai, terminal")),
             ("peak RSS, one-shot", rss("oneshot", "openai, pipe")),
             (f"{small:,} words, terminal", cell("render", f"{small:,} words, terminal")),
             (f"{small:,} words, pipe", cell("render", f"{small:,} words, pipe")),
             (f"{small:,} words, pipe, `--jsonl`", cell("render", jsonl_variant(small))),
             (f"{big:,} words, terminal", cell("render", f"{big:,} words, terminal")),
             ("1-step tool chain", cell("chain", ONE_STEP)),
             (f"{s1}-step tool chain", cell("chain", f"{s1} steps")),
             (f"{s4}-step tool chain", cell("chain", f"{s4} steps")),
             (f"per tool step ({s1}→{s4})", slope)]
    head = "| median wall time | " + " | ".join(tools) + " |"
    lines = [head, "|---" * (len(tools) + 1) + "|"]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(get(t) for t in tools) + " |")
    lines.append("")
    lines.append(f"{FLOOR}: the bare interpreter for `--version`; a minimal openai SDK script "
                 "for replies; a bare SDK loop for tool chains. Empty: not measured (see "
                 "Skipped).")
    return "\n".join(lines)


def detail_tables(st: dict[tuple[str, str, str], Stat], cases: list[Case]) -> str:
    order = {t: i for i, t in enumerate(TOOL_ORDER)}
    out = []
    for scenario in ("cold", "oneshot", "render", "chain"):
        keys = []
        for c in cases:
            if c.scenario == scenario and c.key not in keys:
                keys.append(c.key)
        if not keys:
            continue
        variants = list(dict.fromkeys(k[1] for k in keys))
        keys.sort(key=lambda k: (variants.index(k[1]), order.get(k[2], 99)))
        out.append(f"### {scenario}\n")
        out.append("| case | tool | wall: median (min–max) | CPU | peak RSS | first word "
                   "| runs |")
        out.append("|---|---|---|---|---|---|---|")
        for key in keys:
            s = st[key]
            first = f"{s.first:.3f} s" if s.first is not None else ""
            cpu = f"{s.cpu:.3f} s" if s.n else ""
            rss = f"{s.rss:.1f} MiB" if s.n else ""
            runs = f"{s.n}" + (f" ({len(s.errors)} failed)" if s.errors else "")
            out.append(f"| {key[1]} | {key[2]} | {_fmt(s)} | {cpu} | {rss} | {first} | {runs} |")
        out.append("")
    return "\n".join(out)


def skipped(skips: list[Skip], st: dict[tuple[str, str, str], Stat]) -> str:
    lines = [f"- {s.tool}, {s.scenario} {s.variant}: {s.reason}" for s in skips]
    for key, s in st.items():
        for e in dict.fromkeys(s.errors):
            lines.append(f"- {key[2]}, {key[0]} {key[1]}: a run failed: {e}")
    return "\n".join(lines) if lines else "- nothing"
