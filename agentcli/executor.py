"""Run one tool call: validate args -> approve -> run with a timeout -> cap output -> ToolResult.

``Executor.execute`` never raises (KeyboardInterrupt aside): unknown tools, arguments that are
not JSON or fail the schema, denials, exceptions and timeouts all become an error result the
model can read and correct.

Isolation: on POSIX each call runs in a forked child process (its own process group, stdin/stdout/
stderr pointed at /dev/null), so a hung tool is really stopped (SIGKILL to the group, grandchildren
included) and a tool that prints cannot garble the terminal. The tool module is imported in the
parent on first use, so the child starts warm (a call costs about 6 ms here, most of it the fork
of a ~90 MB process). Where ``fork`` does not exist, the call runs in a daemon thread and a
timeout is reported but cannot stop it.

Calling convention for tool functions: ``fn(**arguments)``; when the function has a parameter
named ``context`` it also gets ``context=ToolContext(...)`` with the tool's per-tool options from
config (``tools.options.<name>``). Return a string or a JSON-serialisable value; raise to fail (an
``AgentCliError``/``ToolError`` shows just its message, anything else ``Type: message``).
"""

from __future__ import annotations

import inspect
import json
import os
import select
import signal
import struct
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from .approval import Approver
from .messages import ToolCall, ToolDefinition, ToolResult

DEFAULT_TIMEOUT = 30.0
DEFAULT_OUTPUT_CAP = 32_000  # characters sent back to the model
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ToolContext:
    """What a tool function may receive as ``context=``: its config options, read-only."""

    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    cwd: str = field(default_factory=os.getcwd)


@dataclass
class Tool:
    """A runnable tool: what the model sees (``definition``) plus how to run it.

    ``load`` returns the callable; it is called once, on first use, so startup imports nothing.
    ``source`` is a short label for `tools list` (builtin, user, config, tools-dir, entry-point);
    ``path`` the manifest file (or entry point) it came from; ``options`` its config options.
    """

    definition: ToolDefinition
    load: Callable[[], Callable[..., Any]]
    confirm: str = "ask"
    timeout: float = DEFAULT_TIMEOUT
    output_cap: int = DEFAULT_OUTPUT_CAP
    source: str = "builtin"
    path: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    manifest: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    _fn: Callable[..., Any] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.definition.name

    def function(self) -> Callable[..., Any]:
        if self._fn is None:
            self._fn = self.load()
        return self._fn

    def wants_context(self) -> bool:
        try:
            return "context" in inspect.signature(self.function()).parameters
        except (TypeError, ValueError):
            return False


@dataclass(frozen=True)
class ToolOutcome:
    """What ``Executor.execute`` hands back: the result for the model, and the approval verdict
    (None when the call never reached approval: unknown tool, bad arguments)."""

    result: ToolResult
    verdict: Any = None


def cap_output(text: str, cap: int) -> str:
    """Keep head and tail of an over-long output with a note of what was cut."""
    if len(text) <= cap:
        return text
    head = cap * 2 // 3
    tail = cap - head
    cut = len(text) - head - tail
    return (f"{text[:head]}\n\n[... {cut} characters cut: output was {len(text)} characters, "
            f"the cap is {cap} ...]\n\n{text[-tail:] if tail else ''}")


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, default=str)
    except (TypeError, ValueError):
        return repr(value)


def describe_exception(e: BaseException) -> str:
    from .errors import AgentCliError, ToolError

    if isinstance(e, (AgentCliError, ToolError)):
        return e.message
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class Executor:
    def __init__(self, tools: Mapping[str, Tool], approver: Approver) -> None:
        self.tools = dict(tools)
        self.approver = approver
        self._validators: dict[str, Any] = {}

    def definitions(self) -> Sequence[ToolDefinition]:
        return [t.definition for t in self.tools.values()]

    def execute(self, call: ToolCall) -> ToolOutcome:
        def error(msg: str, verdict: Any = None) -> ToolOutcome:
            return ToolOutcome(ToolResult(call.id, call.name, msg, is_error=True), verdict)

        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return error(f"unknown tool '{call.name}'; available tools: {known}")
        try:
            args = call.parsed_arguments()
        except ValueError as e:
            return error(f"{e}; the tool was not run. Send arguments as a JSON object.")
        try:
            validator = self._validators.get(tool.name)
            if validator is None:
                validator = self._validators[tool.name] = make_validator(tool.definition.parameters)
            problem = validate_arguments(args, tool.definition.parameters, validator)
        except Exception as e:  # noqa: BLE001 - a broken schema is the tool's fault, not a crash
            problem = f"the tool's schema could not be checked ({describe_exception(e)})"
        if problem:
            return error(f"invalid arguments: {problem}; the tool was not run.")
        try:
            decision = self.approver.approve(call, args, tool.confirm)
        except Exception as e:  # noqa: BLE001 - never approve on a failure
            return error(f"not run: approval failed ({describe_exception(e)})")
        if not decision.approved:
            reason = decision.reason or "denied by the user"
            return error(f"{reason} (the tool was not run)", decision)
        return ToolOutcome(self.run(tool, call, args), decision)

    def run(self, tool: Tool, call: ToolCall, args: dict[str, Any]) -> ToolResult:
        """Run an approved, validated call; never raises (KeyboardInterrupt aside)."""
        try:
            fn = tool.function()
            kwargs = dict(args)
            if tool.wants_context():
                if "context" in kwargs:
                    raise ValueError("the argument name 'context' is reserved")
                kwargs["context"] = ToolContext(tool.name, tool.options)
        except Exception as e:  # noqa: BLE001 - import errors etc. are data
            return ToolResult(call.id, call.name, f"tool '{tool.name}' could not be loaded: "
                              f"{describe_exception(e)}", is_error=True)
        runner = run_forked if hasattr(os, "fork") else run_threaded
        status, text = runner(fn, kwargs, tool.timeout, tool.output_cap)
        if status == "ok":
            return ToolResult(call.id, call.name, text)
        if status == "timeout":
            text = f"tool '{tool.name}' timed out after {tool.timeout:g} s and was stopped"
        elif status == "error":
            text = f"tool '{tool.name}' failed: {text}"
        return ToolResult(call.id, call.name, cap_output(text, tool.output_cap), is_error=True)


# --- running a function with a hard timeout -----------------------------------------------------

def _child(fn: Callable[..., Any], kwargs: dict[str, Any], cap: int, w: int) -> None:
    """In the forked child: never returns."""
    code = 0
    try:
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        except ValueError:  # not the main thread of the interpreter
            pass
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        # Python-level streams may be proxies (prompt_toolkit, pytest): replace them too
        quiet = open(os.devnull, "r+", encoding="utf-8")  # noqa: SIM115
        sys.stdin = sys.stdout = sys.stderr = quiet
        sys.__stdin__ = sys.__stdout__ = sys.__stderr__ = quiet
        try:
            payload = ["ok", cap_output(to_text(fn(**kwargs)), cap)]
        except BaseException as e:  # noqa: BLE001 - tool failures are data
            payload = ["error", cap_output(describe_exception(e), cap)]
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8", "replace")
        data = struct.pack(">Q", len(data)) + data
        view = memoryview(data)
        while view:
            n = os.write(w, view)
            view = view[n:]
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


def _kill_group(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass


def run_forked(fn: Callable[..., Any], kwargs: dict[str, Any], timeout: float,
               cap: int) -> tuple[str, str]:
    """Run ``fn(**kwargs)`` in a forked child; ("ok"|"error"|"timeout"|"crash", text)."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        _child(fn, kwargs, cap, w)
    os.close(w)
    try:
        os.setpgid(pid, pid)  # also here, so killpg works even before the child ran
    except OSError:
        pass
    limit = 8 * cap + 65_536 + 8
    buf = bytearray()
    deadline = time.monotonic() + timeout
    status = "crash"
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                status = "timeout"
                break
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = os.read(r, 65_536)
            if not chunk:
                break
            buf += chunk
            if len(buf) >= 8 and len(buf) >= 8 + struct.unpack(">Q", buf[:8])[0]:
                status = "done"
                break
            if len(buf) > limit:
                status = "toobig"
                break
    except BaseException:
        _kill_group(pid)
        _reap(pid)
        os.close(r)
        raise
    os.close(r)
    if status != "done":
        _kill_group(pid)
    exit_info = _reap(pid)
    if status == "timeout":
        return "timeout", ""
    if status == "toobig":
        return "error", "the tool's output was too large to transfer"
    if status == "crash":
        return "error", f"the tool process ended without a result ({exit_info})"
    try:
        kind, text = json.loads(bytes(buf[8:]).decode("utf-8", "replace"))
    except (ValueError, TypeError):
        return "error", "the tool process sent an unreadable result"
    return ("ok" if kind == "ok" else "error"), str(text)


def _reap(pid: int) -> str:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "already reaped"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else "unknown status"


def run_threaded(fn: Callable[..., Any], kwargs: dict[str, Any], timeout: float,
                 cap: int) -> tuple[str, str]:
    """Fallback without fork: a timeout is reported but the thread keeps running."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(**kwargs)
        except BaseException as e:  # noqa: BLE001 - tool failures are data
            box["error"] = e

    worker = threading.Thread(target=target, name="agentcli-tool", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return "timeout", ""
    if "error" in box:
        return "error", cap_output(describe_exception(box["error"]), cap)
    return "ok", cap_output(to_text(box.get("value")), cap)


def validate_arguments(args: dict[str, Any], schema: Mapping[str, Any],
                       validator: Any = None) -> str | None:
    """None when ``args`` satisfy ``schema``, else a one-line description of the first problem.
    ``validator``: a prepared jsonschema validator for ``schema`` (the Executor keeps one per
    tool)."""
    if validator is None:
        validator = make_validator(schema)
    errors = sorted(validator.iter_errors(args), key=lambda e: [str(p) for p in e.path])
    if not errors:
        return None
    e = errors[0]
    where = "/".join(str(p) for p in e.path)
    message = e.message if len(e.message) <= 300 else e.message[:300] + "…"
    return f"{where}: {message}" if where else message


def make_validator(schema: Mapping[str, Any]) -> Any:
    import jsonschema

    return jsonschema.validators.validator_for(schema)(schema)
