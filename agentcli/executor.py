"""Run one tool call: validate args -> approve -> run with a timeout -> cap output -> ToolResult.

``Executor.execute`` never raises (KeyboardInterrupt aside): unknown tools, arguments that are
not JSON or fail the schema, denials, exceptions and timeouts all become an error result the
model can read and correct.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .approval import Approver
from .messages import ToolCall, ToolDefinition, ToolResult

DEFAULT_TIMEOUT = 30.0
DEFAULT_OUTPUT_CAP = 32_000  # characters sent back to the model


@dataclass
class Tool:
    """A runnable tool: what the model sees (``definition``) plus how to run it.

    ``load`` returns the callable; it is called once, on first use, so startup imports nothing.
    """

    definition: ToolDefinition
    load: Callable[[], Callable[..., Any]]
    confirm: str = "ask"
    timeout: float = DEFAULT_TIMEOUT
    output_cap: int = DEFAULT_OUTPUT_CAP
    source: str = "builtin"
    _fn: Callable[..., Any] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.definition.name

    def function(self) -> Callable[..., Any]:
        if self._fn is None:
            self._fn = self.load()
        return self._fn


def cap_output(text: str, cap: int) -> str:
    """Keep head and tail of an over-long output with a note of what was cut."""
    if len(text) <= cap:
        return text
    head = cap * 2 // 3
    tail = cap - head
    cut = len(text) - head - tail
    return (f"{text[:head]}\n\n[... {cut} characters cut: output was {len(text)} characters, "
            f"the cap is {cap} ...]\n\n{text[-tail:]}")


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, default=str)
    except (TypeError, ValueError):
        return repr(value)


class Executor:
    def __init__(self, tools: Mapping[str, Tool], approver: Approver) -> None:
        self.tools = dict(tools)
        self.approver = approver

    def definitions(self) -> Sequence[ToolDefinition]:
        return [t.definition for t in self.tools.values()]

    def execute(self, call: ToolCall) -> ToolResult:
        def error(msg: str) -> ToolResult:
            return ToolResult(call.id, call.name, msg, is_error=True)

        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return error(f"unknown tool '{call.name}'; available tools: {known}")
        try:
            args = call.parsed_arguments()
        except ValueError as e:
            return error(f"{e}; the tool was not run. Send arguments as a JSON object.")
        problem = validate_arguments(args, tool.definition.parameters)
        if problem:
            return error(f"invalid arguments: {problem}; the tool was not run.")
        decision = self.approver.approve(call, args, tool.confirm)
        if not decision.approved:
            return error(f"denied by the user: {decision.reason or 'no reason given'}")
        return self._run(tool, call, args)

    def _run(self, tool: Tool, call: ToolCall, args: dict[str, Any]) -> ToolResult:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = tool.function()(**args)
            except BaseException as e:  # noqa: BLE001 - tool failures are data
                box["error"] = e

        worker = threading.Thread(target=target, name=f"tool-{tool.name}", daemon=True)
        worker.start()
        worker.join(tool.timeout)
        if worker.is_alive():
            return ToolResult(call.id, call.name,
                              f"tool '{tool.name}' timed out after {tool.timeout:g} s and was "
                              "stopped", is_error=True)
        if "error" in box:
            e = box["error"]
            return ToolResult(call.id, call.name, f"tool '{tool.name}' failed: "
                              f"{type(e).__name__}: {e}", is_error=True)
        return ToolResult(call.id, call.name, cap_output(to_text(box.get("value")), tool.output_cap))


def validate_arguments(args: dict[str, Any], schema: Mapping[str, Any]) -> str | None:
    """None when ``args`` satisfy ``schema``, else a one-line description of the first problem."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(args), key=lambda e: list(e.path))
    if not errors:
        return None
    e = errors[0]
    where = "/".join(str(p) for p in e.path)
    return f"{where}: {e.message}" if where else e.message
