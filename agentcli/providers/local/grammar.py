"""The llama.cpp grammar that finishes a started tool call, built so llama.cpp accepts it.

Once the local model opens ``<tool_call>``, the call is generated under a grammar made from the
tools' JSON Schemas (``{"name": <a tool>, "arguments": <its parameters>}``). llama.cpp refuses
some grammars: a ``maxLength`` of 2000 becomes 2000 nested repetition rules and the parser
stops with "exceeds sane defaults". llama-cpp-python 0.3.x no longer reports that: the sampler
is NULL and the process dies with SIGSEGV on the first constrained token. So:

- ``grammar_parameters`` drops what the grammar need not enforce: length and count bounds above
  ``BOUND_CAP`` and regex ``pattern`` (a partial converter, and its ``{m,n}`` hit the same
  limit). The executor checks every call against the full schema before the tool runs, so
  nothing is lost but earlier feedback to the model.
- ``build`` converts, then asks ``accepts`` (llama.cpp's own parser, run by the provider with
  the loaded vocabulary) whether the grammar is usable. When it is not, it weakens step by
  step — the offending tool's arguments to "a JSON object", then every tool's, then no grammar
  — and returns one line per weakening for the user: never silently unconstrained.

Nothing here loads a model; ``accepts`` and ``convert`` are injected.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ...messages import ToolDefinition
from .. import compat

BOUND_CAP = compat.BOUND_CAP
"""Length/count bounds up to this are kept in the grammar; larger ones are left to the executor.
llama.cpp accepted a single ``maxLength`` of 1000 and refused 1500 (measured on 0.3.36); bounds
multiply with nesting, so the cap keeps far below that."""

Accepts = Callable[[str], "str | None"]  # GBNF -> None when usable, else llama.cpp's reason
Convert = Callable[[str], str]  # JSON Schema text -> GBNF (llama-cpp-python's converter)


def grammar_parameters(schema: Any) -> Any:
    """A parameter schema as the grammar enforces it: big bounds and patterns removed (the
    walker is ``compat.without_big_bounds``, shared with what OpenAI-compatible servers get)."""
    return compat.without_big_bounds(schema, patterns=False)


def call_schema(tools: Sequence[ToolDefinition],
                parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON Schema of one call: ``{"name": <a tool>, "arguments": <that tool's parameters>}``
    (``parameters``: per tool name, what to use instead of the tool's own schema)."""
    variants = []
    for t in tools:
        params = (parameters or {}).get(t.name, t.parameters)
        if not isinstance(params, dict) or not params:
            params = {"type": "object"}
        variants.append({"type": "object",
                         "properties": {"name": {"const": t.name}, "arguments": params},
                         "required": ["name", "arguments"]})
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def loose_call_schema(tools: Sequence[ToolDefinition]) -> dict[str, Any]:
    """Names only: a real tool and an arguments object of any shape."""
    return {"type": "object",
            "properties": {"name": {"enum": [t.name for t in tools]},
                           "arguments": {"type": "object"}},
            "required": ["name", "arguments"]}


_CHAR_RULE = re.compile(r'^char ::= .*$', re.M)
STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'


def strict_strings(gbnf: str) -> str:
    """llama-cpp-python's schema converter lets raw newlines and control characters into JSON
    strings (seen: a string that swallowed ``</tool_call>`` and ran to max_tokens); use
    llama.cpp's own rule, which keeps strings valid JSON."""
    return _CHAR_RULE.sub(lambda _: STRICT_CHAR, gbnf)


@dataclass(frozen=True)
class Built:
    """The grammar to finish calls with (None: none could be built) and what the user must be
    told about how it is weaker than the tools' schemas (empty when it is not)."""

    gbnf: str | None
    warnings: tuple[str, ...] = ()


def one_line(reason: str) -> str:
    """A reason fit for a one-line warning: whitespace folded, at most 160 characters."""
    reason = " ".join(reason.split())
    return reason if len(reason) <= 160 else reason[:157] + "..."


def build(tools: Sequence[ToolDefinition], accepts: Accepts,
          convert: Convert | None = None) -> Built:
    """The strictest grammar for ``tools`` that ``accepts`` takes (see the module docstring)."""
    if convert is None:
        from llama_cpp.llama_grammar import json_schema_to_gbnf as convert

    def attempt(schema: dict[str, Any]) -> tuple[str | None, str | None]:
        try:
            gbnf = strict_strings(convert(json.dumps(schema)))
        except Exception as e:  # the converter asserts on schema features it lacks
            return None, f"the schema converter failed: {type(e).__name__}: {e}"
        reason = accepts(gbnf)
        return (gbnf, None) if reason is None else (None, reason)

    params = {t.name: grammar_parameters(t.parameters) for t in tools}
    gbnf, reason = attempt(call_schema(tools, params))
    if gbnf is not None:
        return Built(gbnf)
    warnings: list[str] = []
    for t in tools:  # find the tools whose own schema is the problem
        if len(tools) > 1:
            _, own = attempt(call_schema([t], params))
        else:
            own = reason
        if own is not None:
            params[t.name] = {"type": "object"}
            warnings.append(f"local model: tool '{t.name}' has parameters llama.cpp cannot "
                            f"constrain ({one_line(own)}); its calls are held to a JSON object "
                            "and checked against its schema before they run")
    if warnings:
        gbnf, reason = attempt(call_schema(tools, params))
        if gbnf is not None:
            return Built(gbnf, tuple(warnings))
    gbnf, loose_reason = attempt(loose_call_schema(tools))
    if gbnf is not None:
        return Built(gbnf, (f"local model: the tools' parameters together are too complex for "
                            f"a llama.cpp grammar ({one_line(reason or '')}); calls are held to a "
                            "real tool name and a JSON object, and checked against each schema "
                            "before they run",))
    return Built(None, (f"local model: no llama.cpp grammar can be built for these tools "
                        f"({one_line(loose_reason or '')}); a started tool call is generated "
                        "unconstrained and runs only if it is a well-formed call to a real "
                        "tool",))


def grammar_error(log: str) -> str:
    """llama.cpp's reason from its stderr, without the grammar it echoes after it."""
    for line in log.splitlines():
        if "error parsing grammar:" in line:
            return line.split("error parsing grammar:", 1)[1].strip()
    for line in log.splitlines():
        if line.strip():
            return line.strip()
    return "llama.cpp rejected the grammar"
