"""`agentcli tools validate`: manifests, config options, and the module imported in isolation.

The import and the signature check run in the same isolated worker process as a tool call
(``isolation.run_isolated``, under the manifest's timeout), so validating a plugin never runs
its code inside agentcli either: an import that hangs, exits or prints is reported, not obeyed.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from .config import Settings
from .errors import ConfigError, PluginError
from .executor import Tool
from .isolation import run_isolated
from .plugins import (builtin_tools_dir, check_options, clash_message, find_manifests,
                      load_tools, manifest_files, tool_from_manifest)


def check_signature(fn: Callable[..., Any], schema: Mapping[str, Any], where: str) -> None:
    """The function accepts the schema's properties and needs nothing the schema may omit."""
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


@dataclass(frozen=True)
class _ImportCheck:
    """Runs in the isolated worker: import the module, find the function, check it."""

    load: Callable[[], Callable[..., Any]]
    schema: Mapping[str, Any]
    where: str

    def __call__(self) -> str:
        check_signature(self.load(), self.schema, self.where)
        return "ok"


def check_module(tool: Tool) -> str | None:
    """None when the tool's module imports and its function fits the schema; else the
    problem, one line. Never imports the plugin in this process."""
    where = tool.path or tool.name
    outcome = run_isolated(_ImportCheck(tool.load, tool.definition.parameters, where),
                           timeout=tool.timeout, max_bytes=65_536)
    if outcome.status == "done":
        return None
    if outcome.status == "failed":
        return outcome.detail
    if outcome.status == "timeout":
        return (f"{where}: importing the module took longer than the tool's timeout "
                f"({tool.timeout:g} s)")
    return f"{where}: the module ended its process while importing ({outcome.detail})"


def validate(settings: Settings, path: str | None, tools_dirs: Sequence[str],
             warn: Callable[[str], None]) -> Iterator[tuple[str, str | None]]:
    """(what was checked, problem or None) for PATH's manifests, or - without PATH - every manifest
    agentcli would load (built-ins, user folder, ``tools.dirs``, ``--tools-dir``, entry
    points). Options are checked against the config; name clashes are warnings."""
    file = str(settings.config_file) if settings.config_file else None
    if path is not None:
        builtin = builtin_tools_dir()
        home = builtin.resolve() if builtin else None
        entries = [("builtin" if p.resolve().parent == home else "validate", p, None)
                   for p in find_manifests(path)]
        loaded = load_tools(settings, extra_dirs=tools_dirs, warn=lambda line: None)
    else:
        entries = list(manifest_files(settings, tools_dirs, warn))
        loaded = {}
    seen: dict[str, Tool] = dict(loaded)
    for label, manifest, package in entries:
        try:
            tool = tool_from_manifest(Path(manifest), label, package, settings.tools.options,
                                      full_check=True)
            check_options(tool, file)
        except (PluginError, ConfigError) as e:
            yield str(manifest), e.message
            continue
        kept = seen.get(tool.name)
        if kept is not None and Path(kept.path or "").resolve() != Path(manifest).resolve():
            warn(clash_message(tool, kept) if path is None else
                 f"tool '{tool.name}' ({manifest}) has the name of {kept.path} "
                 f"({kept.source}), which agentcli loads first")
        seen.setdefault(tool.name, tool)
        yield f"{tool.name} ({manifest})", check_module(tool)
