"""The bench's provider: ``tests/fake_server.py`` (imported, not copied) answering from the prompt.

Every contender (agentcli, the bare SDK scripts, llm, shell-gpt, gptme) sends a prompt that
starts with a directive, and the reply is chosen from the request alone, so runs can be
interleaved in any order and a peer's extra requests (titles, nudges) get a harmless answer:

- ``bench:hi``          a short reply (one-shot round trip, time to first byte);
- ``bench:words=N``     a markdown reply of about N words, streamed one word per SSE chunk;
- ``bench:chain=N``     a ``calculator`` tool call (``{"expression": "K+1"}``, K = calls already
                        made in the request's history) until N calls were made, then a short text.

The directive is read from the first user message that *starts* with ``bench:``; a request
without one (gptme's title request, for example) gets a three-word title. When the request
offers a tool named ``complete`` (gptme's way to end a non-interactive session), every final
text reply also calls it, so gptme stops after the same work as the others.

Run by ``bench/run.py`` in its own process (so serving costs no time in the measuring process)::

    python bench/server.py            # prints "listening on http://127.0.0.1:PORT", serves
                                      # until its stdin closes
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_server import FakeProviderServer, Reply, serve, text, tool_calls  # noqa: E402

FIRST_WORD = "Firstword"
"""Every text reply starts with it: time to first byte is when it shows in the output."""
END_MARK = "Lastword"
"""Every text reply ends with it: a run whose output lacks it did not get the whole reply."""
TITLE = "Bench title here"

_DIRECTIVE = re.compile(r"bench:(hi|words=(\d+)|chain=(\d+))")
_WORDS = ("the a model streams tokens into terminal render markdown block paragraph list code "
          "fast linear time output user prompt history approval tool call result panel "
          "cursor screen width height wrap style color theme").split()


@lru_cache(maxsize=8)
def make_reply(n_words: int, seed: int = 7) -> str:
    """About ``n_words`` words of markdown as a model writes it: headings, paragraphs with
    inline markup and links, bullet and numbered lists, fenced python code."""
    rng = random.Random(seed)

    def words(k: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(k))

    parts = [f"{FIRST_WORD} of a long reply."]
    count, section = 4, 0
    while count < n_words:
        r = rng.random()
        if r < 0.08:
            section += 1
            parts.append(f"## Section {section}: {words(3)}")
            count += 5
        elif r < 0.25:
            parts.append("\n".join(f"- {words(8)} with `inline_{i}` and **bold**"
                                   for i in range(4)))
            count += 4 * 12
        elif r < 0.32:
            parts.append("\n".join(f"{i + 1}. {words(10)}" for i in range(3)))
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
    parts.append(f"{END_MARK}.")
    return "\n\n".join(parts) + "\n"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _calls_made(messages: list[dict[str, Any]]) -> int:
    """Tool calls the client already made: OpenAI ``tool_calls``, Anthropic ``tool_use``."""
    n = 0
    for m in messages:
        if m.get("role") != "assistant":
            continue
        n += len(m.get("tool_calls") or ())
        content = m.get("content")
        if isinstance(content, list):
            n += sum(1 for b in content if isinstance(b, dict) and b.get("type") == "tool_use")
    return n


def _offered(body: dict[str, Any]) -> set[str]:
    names = set()
    for t in body.get("tools") or ():
        if isinstance(t, dict):
            names.add((t.get("function") or {}).get("name") or t.get("name") or "")
    return names


def bench_reply(body: dict[str, Any]) -> Reply:
    """The reply for one request (see the module docstring)."""
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    directive = None
    for m in messages:
        if m.get("role") == "user":
            found = _DIRECTIVE.match(_text_of(m.get("content")).lstrip())
            if found:
                directive = found
                break
    ending: tuple[tuple[str, dict[str, Any]], ...] = ()
    if "complete" in _offered(body):
        ending = (("complete", {}),)
    if directive is None:
        return text(TITLE)
    if directive.group(2):
        reply = make_reply(int(directive.group(2)))
    elif directive.group(3):
        steps, made = int(directive.group(3)), _calls_made(messages)
        if made < steps:
            return tool_calls(("calculator", {"expression": f"{made}+1"}))
        reply = f"{FIRST_WORD}: the chain is done after {made} calls. {END_MARK}."
    else:
        reply = f"{FIRST_WORD} from the bench server: a short reply to a question. {END_MARK}."
    return tool_calls(*ending, text=reply) if ending else text(reply)


class BenchServer(FakeProviderServer):
    """The fake server with replies from ``bench_reply``; keeps only the last request (a run
    makes thousands; ``dump`` appends every body to a file, to see what a peer sends)."""

    dump: str | None = None

    def _next_reply(self, body: dict[str, Any]) -> Reply | None:
        return bench_reply(body)

    def _record(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.requests[:] = [request]
            if self.dump:
                with open(self.dump, "a", encoding="utf-8") as f:
                    f.write(json.dumps(request) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="The bench's fake provider (see the docstring).")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dump", help="append every request (JSON lines) to this file")
    args = ap.parse_args(argv)
    # peers and the bare SDK loop send an assistant's `content: null` back, as OpenAI accepts
    srv = BenchServer(port=args.port, reject_null_content=False)
    srv.dump = args.dump
    return serve(srv, sys.stdin.read)  # the harness closes our stdin (or dies): stop then


if __name__ == "__main__":
    sys.exit(main())
