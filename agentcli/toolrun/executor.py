"""Run one tool call: validate args -> approve -> run isolated with a timeout -> cap -> ToolResult.

``Executor.execute`` never raises (KeyboardInterrupt aside): unknown tools, arguments that are
not JSON or fail the schema, denials, exceptions, import failures and timeouts all become an
error result the model can read and correct.

Isolation (``isolation.py`` and ``toolhost.py`` have the details): plugin code never runs in
the agentcli process. Each call runs in a worker process under a supervisor: the supervisor is
in its own session (no controlling terminal, stdio on /dev/null, no descriptor of agentcli's;
on Linux a child subreaper), the worker imports the tool's module and calls it, under the
tool's timeout. When the call ends - normally, with an error, at the timeout or on Ctrl-C - the
supervisor kills and reaps everything the tool started, including processes that called
``setsid()`` or double-forked, before the call returns. On macOS only the worker's process
group is killed (no subreaper there). The module is imported afresh in every call.

Who forks them: the tool host, a small fresh Python interpreter that dies with agentcli;
`ask` and `chat` start it in the background before their first request when a plugin is
offered (``Executor.warm``), else the first call starts it. It forks each call's supervisor
and worker ahead of time, so a small tool's call costs a few milliseconds
(``bench/bench_tools.py``). A call made when no host was started yet (the first one of a run
that did not warm it), calls to a Tool whose ``load`` is a Python callable (tests, embedding
code), and every call when no host can start, are forked from agentcli itself: the same guarantees, at the cost of two forks of a
big process. Neither agentcli nor the host ever imports a plugin module (a built-in may
``preload`` agentcli's own dependencies into the host). Without ``fork`` (Windows) the call
runs in a daemon thread of this process and a timeout is reported but cannot stop it.

Calling convention for tool functions: ``fn(**arguments)``; when the function has a parameter
named ``context`` it also gets ``context=ToolContext(...)`` with the tool's options from config
(``tools.options.<name>``, checked against the manifest's ``options`` schema at load). Return a
string or a JSON-serialisable value; raise to fail (a ``ToolError`` sends just its message,
anything else ``tool 'NAME' failed: Type: message``).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import ToolError
from .approval import Approver
from .changes import Planner
from .host import files
from .host.isolation import ChildResult, run_isolated, run_threaded
from .host.limits import DEFAULT_MEMORY_MB, DEFAULT_PROCESSES
from ..messages import FileChange, FileSeen, ToolCall, ToolDefinition, ToolResult
from .host.job import (CallJob, FileEntry, ModuleEntry, ToolContext, cap_output,
                       describe_exception, job_to_wire)

if TYPE_CHECKING:
    from .host.client import HostPool
    from .sandbox import Sandbox

__all__ = ["DEFAULT_OUTPUT_CAP", "DEFAULT_TIMEOUT", "Executor", "Tool", "ToolContext",
           "ToolOutcome", "admit_call", "cap_output", "describe_exception", "make_validator",
           "validate_arguments"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_OUTPUT_CAP = 32_000  # characters sent back to the model
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass
class Tool:
    """A runnable tool: what the model sees (``definition``) plus how to run it.

    ``load`` returns the callable (it imports the plugin module): the executor calls it only
    inside the isolated worker process, so agentcli itself never runs plugin code. A manifest's
    ``load`` is an entry (``toolhost_job.FileEntry`` / ``ModuleEntry``), a value the tool host
    can be sent; any other callable makes agentcli fork the call itself.
    ``source`` is a short label for `tools list` (builtin, user, config, tools-dir, entry-point);
    ``path`` the manifest file (or entry point) it came from; ``options`` its config options
    (``confirm`` excluded: that one is agentcli's).
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
    preload: tuple[str, ...] = ()
    """Built-in tools only: agentcli's own dependencies (e.g. httpx) imported once by the tool
    host (by agentcli when it forks the call itself), so each call's worker inherits them
    instead of importing them again."""
    network: bool = False
    """The manifest's ``sandbox: {network: true}``: the sandbox leaves it the network."""
    writes: bool = False
    """``sandbox: {write: true}``: it may write the working folder (workspace-write mode)."""
    runs_commands: bool = False
    """``sandbox: {commands: true}`` (built-ins only): its worker is not confined, each command
    it runs is (``commands.spawn``); refused when no sandbox can run commands here."""
    command_arg: str | None = None
    """The argument holding a bash command: allow/deny rules on it are command-aware."""
    memory_mb: int = DEFAULT_MEMORY_MB
    processes: int = DEFAULT_PROCESSES
    files: str | None = None
    """Built-in tools only (manifest ``files:``): ``read`` - it reports which version of a file
    it showed the model; ``write`` - it changes files (``changes.Planner``)."""

    @property
    def name(self) -> str:
        return self.definition.name

    def function(self) -> Callable[..., Any]:
        """Import the plugin in *this* process: for tests of a tool's own logic and for the
        isolated worker; never called by agentcli's own process."""
        return self.load()


@dataclass(frozen=True)
class ToolOutcome:
    """What ``Executor.execute`` hands back: the result for the model, the approval verdict
    (None when the call never reached approval: unknown tool, bad arguments) and, for a call
    that changed a file (``edit``, ``write``), the change (what the file held before)."""

    result: ToolResult
    verdict: Any = None
    change: FileChange | None = None


class Executor:
    """Runs the calls of one agentcli run. ``hosts``: the tool hosts to use (tests share one
    pool); by default the Executor starts its own on the first call."""

    def __init__(self, tools: Mapping[str, Tool], approver: Approver, *,
                 hosts: HostPool | None = None, sandbox: Sandbox | None = None,
                 roots: Any = None) -> None:
        self.tools = dict(tools)
        self.approver = approver
        self._validators: dict[str, Any] = {}
        self._hosts = hosts
        self.sandbox = sandbox
        """The run's OS sandbox (``sandbox.py``) for plugins (tools from a manifest, which says
        what they need) and tools that run commands; None: no walls (embedding code, tests),
        and tools that run commands refuse to. A tool given as a Python function declares
        nothing and is not confined."""
        self.roots = roots
        """``file_read``'s ``roots`` option: those marked writable may be changed too."""

    def definitions(self) -> Sequence[ToolDefinition]:
        return [t.definition for t in self.tools.values()]

    @property
    def hosts(self) -> HostPool:
        if self._hosts is None:
            from .host.client import HostPool

            self._hosts = HostPool()
        return self._hosts

    def warm(self) -> None:
        """Start the tool host now, in the background, when a tool would run there (`ask` and
        `chat` call this before their first request): it boots while agentcli loads the
        provider and waits for the model, so the run's first call need not fork agentcli, nor
        the second wait for the host. Without it, the first call starts the host."""
        if hasattr(os, "fork") and any(isinstance(t.load, (FileEntry, ModuleEntry))
                                       for t in self.tools.values()):
            self.hosts.warm()

    def close(self) -> None:
        """Let the tool hosts go (they also exit on their own when agentcli does)."""
        if self._hosts is not None:
            self._hosts.close()

    def execute(self, call: ToolCall, seen: Mapping[str, str] | None = None) -> ToolOutcome:
        """``seen``: real path -> SHA-256 of the version of each file the model last read or
        wrote (a change to a file that holds something else now is refused)."""
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return error_outcome(call, f"unknown tool '{call.name}'; available tools: {known}")
        planner = None
        if tool.files == "write":
            try:
                cwd = os.getcwd()
            except OSError:
                cwd = ""  # run() says so
            if cwd:
                planner = Planner(tool.name, tool.options, cwd, self.writable(cwd), seen or {})
        admitted = admit_call(call, tool, self._validators, self.approver,
                              preview=planner.preview if planner is not None else None)
        if isinstance(admitted, ToolOutcome):
            return admitted
        args, verdict = admitted
        if planner is None:
            return ToolOutcome(self.run(tool, call, args), verdict)
        try:
            planner.change(args)
        except ToolError as e:
            return error_outcome(call, f"{e.message} (the tool was not run)", verdict)
        result = self.run(tool, call, args, expected=planner.expected())
        written = [(f.path, f.sha256) for f in result.files]
        change = None if result.is_error else planner.made(tool.name, call.id, written)
        return ToolOutcome(result, verdict, change)

    def writable(self, cwd: str) -> tuple[str, ...]:
        """The folders tools may change files in: the working folder and the ``file_read``
        roots marked writable (real paths)."""
        return tuple(files.resolve_roots(self.roots, cwd, writable=True))

    def run(self, tool: Tool, call: ToolCall, args: dict[str, Any],
            expected: Mapping[str, Any] | None = None) -> ToolResult:
        """Run an approved, validated call in the isolated worker; never raises
        (KeyboardInterrupt aside, after the worker and all it started are gone)."""
        def failed(why: str) -> ToolResult:
            return ToolResult(call.id, call.name, f"tool '{tool.name}' was not run: {why}",
                              is_error=True)

        cap = tool.output_cap
        try:
            cwd = os.getcwd()
        except OSError as e:  # the folder agentcli runs in was deleted meanwhile
            return failed(f"agentcli's current folder is gone ({e.strerror}); cd to a folder "
                          "that exists")
        declared = isinstance(tool.load, (FileEntry, ModuleEntry)) or tool.runs_commands
        policy, refusal = (None, None) if self.sandbox is None or not hasattr(os, "fork") \
            or not declared else self.sandbox.policy_for(tool, cwd)
        if refusal:
            return failed(refusal)
        bounds = {"memory_mb": tool.memory_mb, "processes": tool.processes} \
            if hasattr(os, "fork") else None  # applied in the worker, never in a thread here
        context = ToolContext(tool.name, tool.options, cwd, sandbox=policy, limits=bounds,
                              output_cap=cap, writable=self.writable(cwd),
                              expected=MappingProxyType(dict(expected or {})))
        job = CallJob(tool.load, dict(args), context, cap)
        limits = {"timeout": tool.timeout, "max_bytes": 8 * cap + 65_536}
        wire = job_to_wire(job) if hasattr(os, "fork") else None
        outcome = None
        if wire is not None:
            outcome = self.hosts.run({**wire, "preload": list(tool.preload)}, **limits)
        if outcome is None:  # a Python callable, or no tool host here: this process forks
            try:
                for module in tool.preload:
                    importlib.import_module(module)
            except Exception as e:  # noqa: BLE001 - a broken install is an error result
                return ToolResult(call.id, call.name, f"tool '{tool.name}' could not be "
                                  f"loaded: {describe_exception(e)}", is_error=True)
            if hasattr(os, "fork"):
                try:
                    outcome = run_isolated(job, **limits)
                except OSError as e:  # no process or pipe to be had (EAGAIN, EMFILE)
                    return failed(f"cannot start its process ({e.strerror or e})")
            else:  # pragma: no cover - Windows
                outcome = run_threaded(job, timeout=tool.timeout)
        return _result(tool, call, outcome)


def _result(tool: Tool, call: ToolCall, outcome: ChildResult) -> ToolResult:
    def err(text: str) -> ToolResult:
        return ToolResult(call.id, call.name, cap_output(text, tool.output_cap), is_error=True)

    if outcome.status == "done":
        value = outcome.value  # the worker's frame: a tool could have written its own there
        if not (isinstance(value, list) and len(value) in (2, 3)
                and all(isinstance(v, str) for v in value[:2])):
            return err(f"tool '{tool.name}' failed: the tool process sent an unreadable result")
        kind, text = value[:2]
        if kind == "ok":
            seen = _files(value[2]) if len(value) == 3 and tool.files else ()
            return ToolResult(call.id, call.name, text, files=seen)
        if kind == "tool_error":  # the plugin's own words, and nothing else
            return err(text)
        if kind == "load_error":
            return err(f"tool '{tool.name}' could not be loaded: {text}")
        return err(f"tool '{tool.name}' failed: {text}")
    if outcome.status == "timeout":
        return err(f"tool '{tool.name}' timed out after {tool.timeout:g} s and was stopped")
    if outcome.status == "toobig":
        return err(f"tool '{tool.name}' failed: the tool's output was too large to transfer")
    if outcome.status in ("failed", "lost"):  # lost: the tool host ended during the call
        return err(f"tool '{tool.name}' failed: {outcome.detail}")
    if outcome.status == "unstarted":  # the tool host could not preload
        return err(f"tool '{tool.name}' could not be loaded: {outcome.detail}")
    if outcome.status == "cancelled":
        return err(f"tool '{tool.name}' was stopped before it finished")
    return err(f"tool '{tool.name}' failed: the tool process ended without a result "
               f"({outcome.detail})")


def _files(value: Any) -> tuple[FileSeen, ...]:
    """The files a built-in tool reported (``WithFiles``), or none if it sent anything else."""
    if not isinstance(value, list) or not all(
            isinstance(f, list) and len(f) == 2 and all(isinstance(x, str) for x in f)
            for f in value):
        return ()
    return tuple(FileSeen(path, digest) for path, digest in value)


def validate_arguments(args: dict[str, Any], schema: Mapping[str, Any],
                       validator: Any = None) -> str | None:
    """None when ``args`` satisfy ``schema``, else a one-line description of the first problem.
    ``validator``: a prepared validator for ``schema`` (``make_validator``; the Executor keeps
    one per tool)."""
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
    """A validator for ``schema`` (``iter_errors``): agentcli's own for the common subset
    (``argcheck.py``: the same verdicts and messages, without jsonschema's import), else
    jsonschema's."""
    from .argcheck import compile_schema

    lite = compile_schema(schema)
    if lite is not None:
        return lite
    import jsonschema

    # an unknown $schema dialect: the latest draft, as jsonschema does today (without its
    # deprecation warning, which says it will raise one day)
    latest = jsonschema.validators.validator_for({})
    return jsonschema.validators.validator_for(schema, default=latest)(schema)


def error_outcome(call: ToolCall, message: str, verdict: Any = None) -> ToolOutcome:
    return ToolOutcome(ToolResult(call.id, call.name, message, is_error=True), verdict)


def admit_call(call: ToolCall, tool: Any, validators: dict[str, Any], approver: Approver, *,
               schema_owner: str = "tool's",
               describe: Callable[[BaseException], str] = describe_exception,
               preview: Callable[[dict[str, Any]], str] | None = None,
               ) -> tuple[dict[str, Any], Any] | ToolOutcome:
    """The steps every call passes before it runs, whoever runs it (plugins, MCP servers):
    arguments parsed as a JSON object, checked against the tool's schema (``validators`` caches
    the compiled schema per tool name), then approved. Returns ``(arguments, verdict)`` or the
    error outcome the model gets instead; never raises. ``preview``: what the call would do
    (a diff), shown when the user is asked; a ToolError from it (the call cannot be made) is
    the model's error result, and nobody is asked."""
    try:
        args = call.parsed_arguments()
    except ValueError as e:
        return error_outcome(call, f"{e}; the tool was not run. Send arguments as a JSON object.")
    schema = tool.definition.parameters
    try:
        validator = validators.get(tool.name)
        if validator is None:
            validator = validators[tool.name] = make_validator(schema)
        problem = validate_arguments(args, schema, validator)
    except Exception as e:  # noqa: BLE001 - a broken schema is the tool's fault, not a crash
        problem = f"the {schema_owner} schema could not be checked ({describe(e)})"
    if problem:
        return error_outcome(call, f"invalid arguments: {problem}; the tool was not run.")
    hints = getattr(tool, "hints", None)  # an MCP server's own words on its tool
    said = hints() if callable(hints) else ""
    note = f"the server says this tool is {said} (its claim: it approves nothing)" if said else ""
    extra: dict[str, Any] = {}
    if getattr(tool, "command_arg", None):
        extra["command_arg"] = tool.command_arg
    if preview is not None:
        extra["preview"] = lambda: preview(args)
    try:
        verdict = approver.approve(call, args, tool.confirm, note=note, **extra)
    except ToolError as e:  # the preview found the call cannot be made: nobody is asked
        return error_outcome(call, f"{e.message} (the tool was not run)")
    except Exception as e:  # noqa: BLE001 - never approve on a failure
        return error_outcome(call, f"not run: approval failed ({describe(e)})")
    if not verdict.approved:
        reason = verdict.reason or "denied by the user"
        return error_outcome(call, f"{reason} (the tool was not run)", verdict)
    return args, verdict
