"""What runs in a tool's worker process: find the plugin's function, call it, make the result.

This module is imported by agentcli and by the tool host (``toolhost_main.py``), so it imports
only the standard library (and ``agentcli.errors``, itself stdlib-only). Nothing here imports
plugin code when merely loaded: an entry point (``FileEntry``, ``ModuleEntry``) is a plain value
saying where the function is; calling it imports the module, and only the isolated worker of a
call does that. Being plain values, entries and jobs cross to the tool host as JSON
(``job_to_wire`` / ``job_from_wire``); a ``Tool`` whose ``load`` is any other callable cannot,
and runs in a worker forked from agentcli itself (``isolation.run_isolated``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Union

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ToolContext:
    """What a tool function may receive as ``context=``: its config options, read-only; the
    call's sandbox policy and limits as plain data (``confine.Policy`` / ``limits.Limits``
    wire form; None: none given), and the tool's output cap.

    ``writable``: the real paths of the folders a tool may change files in (the working folder
    and the ``file_read`` roots marked writable; empty: the working folder). ``expected``: for
    a built-in tool that changes files, what agentcli saw of each file when the change was
    approved (real path -> SHA-256, None: it did not exist): the tool writes nothing if the file
    holds something else by then."""

    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    cwd: str = field(default_factory=os.getcwd)
    sandbox: Mapping[str, Any] | None = None
    limits: Mapping[str, Any] | None = None
    output_cap: int = 0
    writable: tuple[str, ...] = ()
    expected: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


class WithFiles(str):
    """A built-in tool's text result that also names the files it showed the model or wrote:
    (real path, SHA-256 of the whole file) pairs. It is a ``str`` (the text), so a caller that
    wants only the text has it. agentcli keeps the files only from tools whose manifest declares
    ``files`` (built-ins); they tell it which version of a file the model last saw."""

    files: tuple[tuple[str, str], ...]

    def __new__(cls, text: str, files: Any = ()) -> WithFiles:
        value = super().__new__(cls, text)
        value.files = tuple((str(p), str(h)) for p, h in files)
        return value


def describe_exception(e: BaseException) -> str:
    """Our own errors (AgentCliError, the plugin API's ToolError) read as just their message,
    anything else as ``Type: message``."""
    from ...errors import AgentCliError, ToolError

    if isinstance(e, (AgentCliError, ToolError)):
        return e.message
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


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


# --- entry points: where a tool's function is ------------------------------------------------

@dataclass(frozen=True)
class FileEntry:
    """``module:function`` with the module file beside the manifest; calling it imports the file
    under a name unique to its path (``agentcli_tool_<stem>_<digest>``)."""

    file: str
    function: str
    where: str  # the manifest, for messages

    def __call__(self) -> Callable[..., Any]:
        from ...errors import PluginError

        digest = hashlib.sha1(self.file.encode()).hexdigest()[:10]
        mod_name = f"agentcli_tool_{os.path.splitext(os.path.basename(self.file))[0]}_{digest}"
        module = sys.modules.get(mod_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(mod_name, self.file)
            if spec is None or spec.loader is None:
                raise PluginError(f"{self.where}: cannot import {self.file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException as e:
                sys.modules.pop(mod_name, None)
                raise PluginError(f"{self.where}: module {self.file} failed to import: "
                                  f"{type(e).__name__}: {e}") from e
        return _function(module, self.function, self.where)


@dataclass(frozen=True)
class ModuleEntry:
    """``package.module:function`` of a tool package (the ``agentcli.tools`` entry points)."""

    module: str
    function: str
    where: str

    def __call__(self) -> Callable[..., Any]:
        from ...errors import PluginError

        try:
            module = importlib.import_module(self.module)
        except BaseException as e:
            raise PluginError(f"{self.where}: module {self.module} failed to import: "
                              f"{type(e).__name__}: {e}") from e
        return _function(module, self.function, self.where)


Entry = Union[FileEntry, ModuleEntry]


def _function(module: Any, function: str, where: str) -> Callable[..., Any]:
    from ...errors import PluginError

    fn = getattr(module, function, None)
    if not callable(fn):
        raise PluginError(f"{where}: field 'entrypoint': the module has no function "
                          f"'{function}'")
    return fn


# --- jobs: what one worker does -----------------------------------------------------------------

@dataclass(frozen=True)
class CallJob:
    """One call: import, call, make the result text (capped here, in the worker, so a huge
    result is never copied through a pipe). Returns ``[kind, text]``, kind ``ok``, ``error``
    (the tool raised), ``tool_error`` (it raised the plugin API's ``ToolError``: the text is
    the whole message for the model) or ``load_error`` (the import failed)."""

    load: Callable[[], Callable[..., Any]]
    args: dict[str, Any]
    context: ToolContext
    cap: int
    ahead: Any = None
    """``limits.prepare()``'s work, when the worker did it before its job came."""
    walls: Any = None
    """``confine.prepare()``'s ruleset, when the worker built one before its job came."""

    def __call__(self) -> list[str]:
        """Only ever called in a worker process: the limits and the sandbox are applied to the
        process that runs it (before the plugin module is imported)."""
        from .limits import Limits

        limits = Limits.from_wire(self.context.limits)
        try:  # its temp folder: removed by the supervisor
            _enter(self.context, limits, self.ahead, self.walls)
        except OSError as e:
            return ["error", f"the tool was not run: the sandbox could not be set up: {e}"]
        try:
            return self._run()
        except MemoryError:
            return ["error", (limits.out_of_memory() if limits else "out of memory")]

    def _run(self) -> list[str]:
        try:
            fn = self.load()
        except MemoryError:
            raise
        except BaseException as e:  # noqa: BLE001 - import failures are data
            return ["load_error", cap_output(describe_exception(e), self.cap)]
        kwargs = dict(self.args)
        try:
            if _wants_context(fn):
                if "context" in kwargs:
                    raise ValueError("the argument name 'context' is reserved")
                kwargs["context"] = self.context
            value = fn(**kwargs)
        except MemoryError:
            raise
        except BaseException as e:  # noqa: BLE001 - tool failures are data
            from ...errors import ToolError

            kind = "tool_error" if isinstance(e, ToolError) else "error"
            return [kind, cap_output(describe_exception(e), self.cap)]
        if isinstance(value, WithFiles):
            return ["ok", cap_output(str(value), self.cap), [list(f) for f in value.files]]
        return ["ok", cap_output(to_text(value), self.cap)]


def _enter(context: ToolContext, limits: Any, ahead: Any, walls: Any = None) -> str | None:
    """Apply the call's limits, then its sandbox when the worker confines itself (``walls``: a
    ruleset built ahead, used only if it is this policy's); returns the private temp folder it
    may write (None without a sandbox)."""
    from .confine import Policy, confine_self
    from .limits import apply, private_tmp

    policy = Policy.from_wire(context.sandbox)
    confined = policy is not None and policy.mode != "off" and policy.confine_self
    if walls is not None and not confined:
        walls.close()
    if limits is not None:
        apply(limits, ahead)
    if policy is None or not confined:
        return None
    tmp = private_tmp()
    confine_self(policy, tmp, walls)
    import tempfile

    tempfile.tempdir = None  # a plugin's tempfile uses the new TMPDIR
    return tmp


@dataclass(frozen=True)
class CheckJob:
    """`tools validate`: import the module, find the function, check it fits the schema
    (raises PluginError, which the worker reports as the job's failure)."""

    load: Callable[[], Callable[..., Any]]
    schema: Mapping[str, Any]
    where: str

    def __call__(self) -> str:
        check_signature(self.load(), self.schema, self.where)
        return "ok"


def _wants_context(fn: Callable[..., Any]) -> bool:
    try:
        return "context" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def check_signature(fn: Callable[..., Any], schema: Mapping[str, Any], where: str) -> None:
    """The function accepts the schema's properties and needs nothing the schema may omit."""
    from ...errors import PluginError

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    name = getattr(fn, "__name__", "the function")
    props = set((schema.get("properties") or {}).keys())
    required = set(schema.get("required") or ())
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for prop in sorted(props):
        if prop not in params and not var_kw:
            raise PluginError(f"{where}: field 'parameters': property '{prop}' is not a "
                              f"parameter of {name}()")
    for pname, p in params.items():
        if pname == "context" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.default is p.empty and pname not in required:
            raise PluginError(f"{where}: field 'parameters': {name}() needs '{pname}' "
                              "but the schema does not list it under 'required'")


# --- jobs as JSON, for the tool host ------------------------------------------------------------

def job_to_wire(job: CallJob | CheckJob) -> dict[str, Any] | None:
    """The job as a JSON-ready dict, or None when its ``load`` is not an entry (a Python
    callable cannot cross to another interpreter). Option values JSON cannot hold (a YAML
    date) arrive as their ``str``."""
    entry = job.load
    if isinstance(entry, FileEntry):
        where: dict[str, Any] = {"file": entry.file}
    elif isinstance(entry, ModuleEntry):
        where = {"module": entry.module}
    else:
        return None
    where.update(function=entry.function, where=entry.where)
    if isinstance(job, CheckJob):
        return {"kind": "check", "entry": where, "schema": job.schema, "where": job.where}
    ctx = job.context
    return {"kind": "call", "entry": where, "args": job.args, "cap": job.cap,
            "context": {"name": ctx.name, "options": dict(ctx.options), "cwd": ctx.cwd,
                        "sandbox": ctx.sandbox, "limits": ctx.limits,
                        "output_cap": ctx.output_cap, "writable": list(ctx.writable),
                        "expected": dict(ctx.expected)}}


@dataclass(frozen=True)
class WireJob:
    """The job of a worker forked before its call (the tool host's spare): read its JSON from
    ``JOB_FD``, take agentcli's folder (and environment and ``sys.path`` when they came along),
    then run it. EOF instead of a job: the spare was discarded, it just exits. ``expect``: the
    sandbox policy (wire form) of the host's last call, whose Landlock ruleset the worker builds
    while it waits (the next call of a run most often has the same one)."""

    expect: Any = None

    def __call__(self) -> Any:
        from .frames import JOB_FD, read_frame
        from .limits import prepare, private_tmp

        ahead = prepare()  # before the job comes: off the call's clock
        walls = None
        if self.expect:
            from .confine import prepare as build_walls

            try:
                walls = build_walls(self.expect, private_tmp())
            except OSError:
                walls = None  # the call makes its temp folder, or says why it cannot
        frame = read_frame(JOB_FD)
        os.close(JOB_FD)
        if frame is None:
            os._exit(0)
        data = json.loads(frame[1])
        if "env" in data:
            os.environ.clear()
            os.environ.update(data["env"])
        if "path" in data:
            sys.path[:] = data["path"]
        os.chdir(data["cwd"])
        job = job_from_wire(data, ahead, walls)
        if walls is not None and isinstance(job, CheckJob):
            walls.close()
        return job()


def job_from_wire(data: Mapping[str, Any], ahead: Any = None,
                  walls: Any = None) -> CallJob | CheckJob:
    """The inverse of ``job_to_wire``, in the tool host (no plugin code is imported here)."""
    spec = data["entry"]
    entry: Entry = (FileEntry(spec["file"], spec["function"], spec["where"]) if "file" in spec
                    else ModuleEntry(spec["module"], spec["function"], spec["where"]))
    if data["kind"] == "check":
        return CheckJob(entry, data["schema"], data["where"])
    ctx = data["context"]
    context = ToolContext(ctx["name"], MappingProxyType(dict(ctx["options"])), ctx["cwd"],
                          sandbox=ctx.get("sandbox"), limits=ctx.get("limits"),
                          output_cap=int(ctx.get("output_cap") or 0),
                          writable=tuple(ctx.get("writable") or ()),
                          expected=MappingProxyType(dict(ctx.get("expected") or {})))
    return CallJob(entry, dict(data["args"]), context, int(data["cap"]), ahead, walls)
