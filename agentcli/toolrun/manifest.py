"""Tool plugins: YAML manifests -> ``Tool`` objects; the Python module is imported in each call.

A tool is ``NAME.yaml`` plus a module beside it::

    name: word_count                 # [A-Za-z][A-Za-z0-9_-]*, at most 64 characters
    description: Count words.        # what the model reads
    entrypoint: word_count:run       # <module file beside the YAML>:<function>
    confirm: ask                     # ask (default) | never
    timeout: 10                      # seconds, default 30, at most 3600
    output_cap: 20000                # characters sent back, default 32000
    parameters: {type: object, properties: {text: {type: string}}, required: [text]}
    options:                         # JSON Schema of tools.options.word_count in config
      type: object
      properties: {ignore_case: {type: boolean}}
    annotations:                     # what MCP hosts are told (`mcp serve`); approves nothing
      {title: Count words, read_only: true, destructive: false, idempotent: true,
       open_world: false}
    sandbox: {network: true}         # what it needs from the OS sandbox (default: nothing):
                                     #   network, write (the working folder), commands
                                     #   (built-ins only: it confines the commands it runs)
    limits: {memory_mb: 2048, processes: 64}   # per call (these are the defaults)
    command_arg: command             # an argument holding a bash command (rules parse it)

Sources, in order (the first one loaded wins a name clash, with a warning naming both):
built-ins (``tools/`` of the checkout / ``agentcli/_builtin_tools`` in the wheel), the user's
tools folder (``<config dir>/tools``), ``tools.dirs`` from config (relative to the config file),
``--tools-dir`` folders, then the entry-point group ``agentcli.tools``: each entry point names a
package (``mytools = "mytools_pkg"``) whose folder holds manifests; their entrypoint module is
imported as ``mytools_pkg.<module>``. A ``tools/`` folder in the current project is never read
unless named. Only manifests are read at startup (``yaml.safe_load``); a broken manifest is a
warning naming the file and field, and every other tool still loads. Plugin modules are never
imported here: a Tool's ``load`` is an entry (``toolhost_job.FileEntry`` / ``ModuleEntry``), a
plain value that can be sent to the tool host, and only the isolated worker of a call imports
the module.

Config options (``tools.options.<tool>``) are checked at load against the manifest's ``options``
schema (unknown keys are errors unless the schema sets ``additionalProperties``; a manifest
without ``options`` takes none): a ``ConfigError`` naming the config file and the key, exit 2.
``confirm`` (any tool) is agentcli's own option, checked with the config file itself.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..config import Settings
from ..errors import ConfigError, PluginError
from .executor import DEFAULT_OUTPUT_CAP, DEFAULT_TIMEOUT, Tool, make_validator
from ..messages import ToolDefinition
from .host.job import Entry, FileEntry, ModuleEntry
from .host.limits import DEFAULT_MEMORY_MB, DEFAULT_PROCESSES
from .manifest_cache import ManifestCache

ENTRY_POINT_GROUP = "agentcli.tools"
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
ENTRYPOINT_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):([A-Za-z_][A-Za-z0-9_]*)$")
MANIFEST_KEYS = {"name", "description", "entrypoint", "confirm", "timeout", "output_cap",
                 "parameters", "options", "preload", "annotations", "sandbox", "limits",
                 "command_arg", "files"}
ANNOTATION_KEYS = ("title", "read_only", "destructive", "idempotent", "open_world")
"""A manifest's ``annotations``: a title and four yes/no hints, sent to MCP hosts as the MCP
tool annotations (``readOnlyHint``, ...). They describe the tool; they never approve a call."""
SANDBOX_KEYS = ("network", "write", "commands")
LIMIT_RANGES = {"memory_mb": (64, 1_048_576), "processes": (1, 100_000)}
FILES_VALUES = ("read", "write")
"""``files:`` (built-ins only): the tool reports which version of a file it showed the model
(``read``), or changes files (``write``: agentcli shows the diff for approval, checks the file
did not change since the model saw it, and keeps the old content for /undo)."""
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
GENERIC_OPTIONS = ("confirm",)  # agentcli's own, for any tool; not passed to the tool
MAX_TIMEOUT = 3600
MAX_OUTPUT_CAP = 1_000_000
MAX_MANIFEST_BYTES = 256_000


def _stderr_warn(message: str) -> None:
    from ..ui.render import warn

    warn(message)


def builtin_tools_dir() -> Path | None:
    """``agentcli/_builtin_tools`` in an installed wheel, ``<repo>/tools`` in a checkout."""
    import agentcli

    pkg = Path(agentcli.__file__).resolve().parent
    shipped = pkg / "_builtin_tools"
    if shipped.is_dir():
        return shipped
    repo = pkg.parent
    if (repo / "pyproject.toml").is_file() and (repo / "tools").is_dir():
        return repo / "tools"
    return None


# --- manifests ----------------------------------------------------------------------------------

def parse_manifest(path: Path, text: str | None = None, *, builtin: bool = False,
                   cache: ManifestCache | None = None) -> dict[str, Any]:
    """Read and check one manifest; PluginError names the file and the field.

    ``builtin``: our own shipped manifests skip the JSON-Schema meta-check (importing jsonschema
    costs ~60 ms on every start; tests/test_plugins.py checks the built-ins fully instead).
    ``cache``: what the same text parsed to before (``manifest_cache.py``): the YAML parse, and a
    meta-check it passed, are skipped; every other check runs."""
    where = str(path)
    if text is None:
        try:
            if path.stat().st_size > MAX_MANIFEST_BYTES:
                raise PluginError(f"{where}: manifest is larger than {MAX_MANIFEST_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise PluginError(f"{where}: cannot read manifest: {e}") from e
    if cache is not None:
        known = cache.get(text, schema_checked=not builtin)
        if known is not None:
            return check_manifest(known, where, check_schema=False)
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PluginError(f"{where}: invalid YAML{at}: {problem}") from e
    if not isinstance(data, dict):
        raise PluginError(f"{where}: a manifest must be a mapping, got {type(data).__name__}")
    checked = check_manifest(data, where, check_schema=not builtin)
    if cache is not None:
        cache.put(text, data, schema_checked=not builtin)
    return checked


def check_manifest(data: dict[str, Any], where: str, *, check_schema: bool = True
                   ) -> dict[str, Any]:
    def bad(field: str, message: str) -> PluginError:
        return PluginError(f"{where}: field '{field}': {message}")

    for key in data:
        if key not in MANIFEST_KEYS:
            raise bad(str(key), f"unknown field (known: {', '.join(sorted(MANIFEST_KEYS))})")
    for key in ("name", "description", "entrypoint", "parameters"):
        if data.get(key) is None:
            raise bad(key, "missing (required)")
    name = data["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise bad("name", f"{name!r} must be letters, digits, _ or -, start with a letter, "
                          "at most 64 characters")
    if not isinstance(data["description"], str) or not data["description"].strip():
        raise bad("description", "must be a non-empty string")
    entry = data["entrypoint"]
    if not isinstance(entry, str) or not ENTRYPOINT_RE.match(entry):
        raise bad("entrypoint", f"{entry!r} must be 'module:function' (a module file beside "
                                "the manifest, without .py)")
    confirm = data.get("confirm", "ask")
    if confirm not in ("ask", "never"):
        raise bad("confirm", f"{confirm!r} must be 'ask' or 'never'")
    timeout = data.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0 < timeout <= MAX_TIMEOUT:
        raise bad("timeout", f"{timeout!r} must be a number of seconds in (0, {MAX_TIMEOUT}]")
    cap = data.get("output_cap", DEFAULT_OUTPUT_CAP)
    if isinstance(cap, bool) or not isinstance(cap, int) or not 100 <= cap <= MAX_OUTPUT_CAP:
        raise bad("output_cap", f"{cap!r} must be an integer in [100, {MAX_OUTPUT_CAP}]")
    for key in ("parameters", "options"):
        schema = data.get(key)
        if key == "options" and schema is None:
            continue
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise bad(key, "must be a JSON Schema object with 'type: object'")
        if check_schema:
            import jsonschema

            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as e:
                path = "/".join(str(p) for p in e.path)
                raise bad(key + (f"/{path}" if path else ""),
                          f"not a valid JSON Schema: {e.message}") from e
    props = data["parameters"].get("properties") or {}
    if isinstance(props, dict) and "context" in props:
        raise bad("parameters/properties/context", "'context' is reserved for the tool context")
    preload = data.get("preload", [])
    if not isinstance(preload, list) or not all(isinstance(m, str) and MODULE_RE.match(m)
                                                for m in preload):
        raise bad("preload", "must be a list of module names")
    _check_annotations(data.get("annotations"), bad)
    _check_sandbox_keys(data, bad, props)
    if data.get("files") is not None and data["files"] not in FILES_VALUES:
        raise bad("files", f"{data['files']!r} must be one of {', '.join(FILES_VALUES)}")
    option_props = (data.get("options") or {}).get("properties") or {}
    for generic in GENERIC_OPTIONS:
        if isinstance(option_props, dict) and generic in option_props:
            raise bad(f"options/properties/{generic}", f"'{generic}' is agentcli's own option "
                      "(any tool has it); do not declare it")
    return {**data, "confirm": confirm, "timeout": float(timeout), "output_cap": cap}


def _check_annotations(value: Any, bad: Callable[[str, str], PluginError]) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise bad("annotations", f"must be a mapping of {', '.join(ANNOTATION_KEYS)}")
    for key, item in value.items():
        if key not in ANNOTATION_KEYS:
            raise bad(f"annotations/{key}", f"unknown (known: {', '.join(ANNOTATION_KEYS)})")
        if key == "title" and (not isinstance(item, str) or not item.strip()):
            raise bad("annotations/title", "must be a non-empty string")
        if key != "title" and not isinstance(item, bool):
            raise bad(f"annotations/{key}", "must be true or false")


def _check_sandbox_keys(data: dict[str, Any], bad: Callable[[str, str], PluginError],
                        props: Any) -> None:
    sandbox = data.get("sandbox", {})
    if not isinstance(sandbox, dict):
        raise bad("sandbox", f"must be a mapping of {', '.join(SANDBOX_KEYS)} to true/false")
    for key, value in sandbox.items():
        if key not in SANDBOX_KEYS or not isinstance(value, bool):
            raise bad(f"sandbox/{key}", f"unknown key or not true/false (known: "
                                        f"{', '.join(SANDBOX_KEYS)})")
    limits = data.get("limits", {})
    if not isinstance(limits, dict):
        raise bad("limits", "must be a mapping (memory_mb, processes)")
    for key, value in limits.items():
        low, high = LIMIT_RANGES.get(key, (0, -1))
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise bad(f"limits/{key}", f"{value!r} must be an integer in [{low}, {high}] "
                                       f"(known: {', '.join(LIMIT_RANGES)})")
    arg = data.get("command_arg")
    if arg is not None and not (isinstance(arg, str) and isinstance(props, dict)
                                and isinstance(props.get(arg), dict)
                                and props[arg].get("type") == "string"):
        raise bad("command_arg", f"{arg!r} must name a string property of 'parameters'")


def tool_from_manifest(path: Path, source: str, package: str | None = None,
                       all_options: Mapping[str, Mapping[str, Any]] | None = None, *,
                       full_check: bool = False, cache: ManifestCache | None = None) -> Tool:
    """A Tool for one manifest file (module not imported). ``package``: entry-point packages;
    ``all_options``: ``tools.options`` from config (the tool gets its own entry);
    ``full_check``: meta-check the schemas of built-ins too (`tools validate`)."""
    data = parse_manifest(path, builtin=source == "builtin" and not full_check, cache=cache)
    options = (all_options or {}).get(data["name"])
    module, function = data["entrypoint"].split(":")
    where = str(path)
    if package:
        beside = path.parent / module
        if not (beside.with_suffix(".py").is_file() or (beside / "__init__.py").is_file()):
            raise PluginError(f"{where}: field 'entrypoint': module {package}.{module} not "
                              "found beside the manifest")
        load: Entry = ModuleEntry(f"{package}.{module}", function, where)
    else:
        module_file = path.parent / f"{module}.py"
        if not module_file.is_file():
            raise PluginError(f"{where}: field 'entrypoint': module file {module_file} not found")
        load = FileEntry(str(module_file), function, where)
    if data.get("preload") and source != "builtin":
        raise PluginError(f"{where}: field 'preload': only agentcli's built-in tools may preload "
                          "modules (a plugin's code never runs inside agentcli)")
    sandbox, limits = data.get("sandbox") or {}, data.get("limits") or {}
    if sandbox.get("commands") and source != "builtin":
        raise PluginError(f"{where}: field 'sandbox/commands': only agentcli's built-in tools "
                          "may run unconfined and confine their commands themselves")
    if data.get("files") and source != "builtin":
        raise PluginError(f"{where}: field 'files': only agentcli's built-in tools may declare "
                          "it (what it reports decides what /undo writes)")
    options = dict(options or {})
    confirm = options.pop("confirm", None) or data["confirm"]  # checked with the config file
    return Tool(
        definition=ToolDefinition(data["name"], data["description"].strip(), data["parameters"]),
        load=load, confirm=confirm, timeout=data["timeout"], output_cap=data["output_cap"],
        source=source, path=where, options=MappingProxyType(options),
        manifest=MappingProxyType(data), preload=tuple(data.get("preload") or ()),
        network=bool(sandbox.get("network")), writes=bool(sandbox.get("write")),
        runs_commands=bool(sandbox.get("commands")), command_arg=data.get("command_arg"),
        memory_mb=limits.get("memory_mb", DEFAULT_MEMORY_MB),
        processes=limits.get("processes", DEFAULT_PROCESSES),
        files=data.get("files"),
    )


def check_options(tool: Tool, config_file: str | None) -> None:
    """The tool's config options against its manifest's ``options`` schema; a ConfigError names
    the config file and the key (``tools.options.web_fetch.allow_private``)."""
    if not tool.options:
        return  # nothing configured: nothing to check
    prefix = f"tools.options.{tool.name}"
    hint = f"see the options of `agentcli tools show {tool.name}`"
    schema = dict(tool.manifest.get("options") or {"type": "object", "properties": {}})
    declared = schema.get("properties") or {}
    if "additionalProperties" not in schema and "patternProperties" not in schema:
        for key in tool.options:
            if key not in declared:
                known = ", ".join(sorted(declared)) or "none besides confirm"
                raise ConfigError(f"unknown option '{key}' for tool {tool.name} (its options: "
                                  f"{known})", file=config_file, key=f"{prefix}.{key}", hint=hint)
    try:
        validator = make_validator(schema)
        errors = sorted(validator.iter_errors(dict(tool.options)),
                        key=lambda e: list(map(str, e.path)))
    except Exception as e:  # noqa: BLE001 - e.g. a $ref to nothing: the manifest's fault
        raise PluginError(f"{tool.path}: field 'options': the schema cannot check the "
                          f"configured options ({type(e).__name__}: {e})",
                          hint="fix the tool's manifest, or remove its tools.options") from e
    if errors:
        e = errors[0]
        key = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.path)
        raise ConfigError(f"invalid option: {e.message}", file=config_file, key=key, hint=hint)


def manifests_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))


# --- all sources ----------------------------------------------------------------------------------

def _sources(settings: Settings, extra_dirs: Sequence[str],
             warn: Callable[[str], None]) -> list[tuple[str, Path, str | None]]:
    """(source label, folder, package) in load order."""
    found: list[tuple[str, Path, str | None]] = []
    builtin = builtin_tools_dir()
    if builtin is not None:
        found.append(("builtin", builtin, None))
    user_dir = settings.user_tools_dir
    if user_dir.is_dir():
        found.append(("user", user_dir, None))
    base = settings.config_file.parent if settings.config_file else Path.cwd()
    for label, dirs, rel in (("config", settings.tools.dirs, base),
                             ("tools-dir", extra_dirs, Path.cwd())):
        for d in dirs:
            folder = Path(d).expanduser()
            folder = folder if folder.is_absolute() else rel / folder
            if folder.is_dir():
                found.append((label, folder, None))
            else:
                warn(f"tools folder {folder} ({label}) does not exist or is not a folder")
    seen: set[str] = set()
    unique = []
    for label, folder, package in found:  # a folder named twice is read once
        key = str(folder.resolve())
        if key not in seen:
            seen.add(key)
            unique.append((label, folder, package))
    found = unique
    for ep in _entry_points():
        value = ep.value.split(":")[0].strip()
        label = f"entry-point:{ep.name}"
        try:
            locations = _package_folders(value)
        except (ImportError, ValueError, OSError) as e:
            warn(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}): {e}")
            continue
        if not locations:
            warn(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}): not a package "
                 "with tool manifests")
            continue
        for loc in locations:
            found.append((label, Path(loc), value))
    return found


def _package_folders(name: str) -> list[str] | None:
    """Where package ``name`` lives, found without importing it or its parents
    (``importlib.util.find_spec("a.b")`` would run ``a/__init__.py`` in agentcli)."""
    from importlib.machinery import PathFinder

    path: list[str] | None = None
    parts = name.split(".")
    for i in range(len(parts)):
        spec = PathFinder.find_spec(".".join(parts[: i + 1]), path)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = list(spec.submodule_search_locations)
    return path


def _entry_points() -> list[Any]:
    try:
        return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # noqa: BLE001 - a broken distribution must not stop startup
        return []


def manifest_files(settings: Settings, extra_dirs: Sequence[str] = (),
                   warn: Callable[[str], None] = _stderr_warn
                   ) -> Iterator[tuple[str, Path, str | None]]:
    """(source label, manifest file, package) of every source, in load order."""
    for label, folder, package in _sources(settings, extra_dirs, warn):
        try:
            paths = manifests_in(folder)
        except OSError as e:
            warn(f"cannot read tools folder {folder}: {e}")
            continue
        for path in paths:
            yield label, path, package


def load_tools(settings: Settings, extra_dirs: Sequence[str] = (),
               warn: Callable[[str], None] = _stderr_warn, *,
               write_cache: bool = True) -> dict[str, Tool]:
    """Every tool from every source, manifests only; a broken manifest is a warning, a bad
    option in the config a ConfigError. The parsed manifests are cached in the data folder
    (``manifest_cache.py``) unless ``write_cache`` is off or the config says ``save: false``."""
    tools: dict[str, Tool] = {}
    options = settings.tools.options
    cache = ManifestCache(settings.data_dir, write=write_cache and settings.sessions.save)
    for label, path, package in manifest_files(settings, extra_dirs, warn):
        try:
            tool = tool_from_manifest(path, label, package, options, cache=cache)
        except PluginError as e:
            warn(f"skipped tool: {e.message}")
            continue
        if tool.name in tools:
            warn(clash_message(tool, tools[tool.name]))
            continue
        tools[tool.name] = tool
    cache.save()
    file = str(settings.config_file) if settings.config_file else None
    for name in options:
        if name not in tools:
            warn(f"tools.options.{name} in {file}: no tool named '{name}' is loaded; "
                 "its options are not used")
    for tool in tools.values():
        check_options(tool, file)
    return tools


def clash_message(tool: Tool, kept: Tool) -> str:
    return (f"tool '{tool.name}' from {tool.path} ({tool.source}) clashes with {kept.path} "
            f"({kept.source}); keeping the {kept.source} one")


def find_manifests(path: str) -> list[Path]:
    """`tools validate PATH`: a manifest file, or every manifest in a folder."""
    p = Path(path).expanduser()
    if p.is_dir():
        found = manifests_in(p)
        if not found:
            raise PluginError(f"{p}: no *.yaml manifests in this folder")
        return found
    if not p.is_file():
        raise PluginError(f"{p}: no such manifest file or folder")
    return [p]
