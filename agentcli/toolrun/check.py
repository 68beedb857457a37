"""`agentcli tools validate`: manifests, config options, and the module imported in isolation.

The import and the signature check run in the same isolated worker process as a tool call (one
tool host for the whole command, ``toolhost.py``; under the manifest's timeout), so validating
a plugin never runs its code inside agentcli either: an import that hangs, exits or prints is
reported, not obeyed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from ..config import Settings
from ..errors import ConfigError, PluginError
from .executor import Tool
from .host.isolation import run_isolated
from .host.job import CheckJob, check_signature, job_to_wire
from .manifest import (builtin_tools_dir, check_options, clash_message, find_manifests,
                      load_tools, manifest_files, tool_from_manifest)

if TYPE_CHECKING:
    from .host.client import HostPool

__all__ = ["check_module", "check_signature", "validate"]


def check_module(tool: Tool, hosts: HostPool | None = None) -> str | None:
    """None when the tool's module imports and its function fits the schema; else the
    problem, one line. Never imports the plugin in this process."""
    where = tool.path or tool.name
    job = CheckJob(tool.load, tool.definition.parameters, where)
    wire = job_to_wire(job) if hosts is not None else None
    outcome = hosts.run(wire, timeout=tool.timeout, max_bytes=65_536) if wire else None
    if outcome is None:
        outcome = run_isolated(job, timeout=tool.timeout, max_bytes=65_536)
    if outcome.status == "done":
        return None
    if outcome.status in ("failed", "unstarted"):
        return outcome.detail
    if outcome.status == "timeout":
        return (f"{where}: importing the module took longer than the tool's timeout "
                f"({tool.timeout:g} s)")
    if outcome.status == "lost":
        return f"{where}: {outcome.detail}"
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
    from .host.client import HostPool

    hosts = HostPool()
    try:
        yield from _check_each(entries, settings, file, path, seen, warn, hosts)
    finally:
        hosts.close()


def _check_each(entries: list[tuple[str, Path, str | None]], settings: Settings,
                file: str | None, path: str | None, seen: dict[str, Tool],
                warn: Callable[[str], None], hosts: HostPool) -> Iterator[tuple[str, str | None]]:
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
        yield f"{tool.name} ({manifest})", check_module(tool, hosts)
