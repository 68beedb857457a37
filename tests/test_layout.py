"""The package layout's promises (DESIGN §2), checked on the source: every import counts,
function-level ones included.

- no import cycle between agentcli's modules;
- ``providers/`` imports neither ``ui/`` nor ``cli/``; ``ui/`` imports no provider SDK;
- ``toolrun/host/`` (imported by the tool-host interpreter) imports only the standard library,
  itself and ``agentcli.errors``;
- only ``cli/`` (and the entry point) imports ``cli/``;
- a package's ``__init__.py`` holds no code (importing a package costs nothing);
- no module imports another module's private (``_name``) attribute.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import agentcli

PKG = Path(agentcli.__file__).resolve().parent
SDKS = {"openai", "anthropic", "llama_cpp", "tiktoken"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement in the file."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            found.append((target, names))
            for n in names:  # `from . import x` where x is a module
                if f"{target}.{n}" in MODULES:
                    found.append((f"{target}.{n}", []))
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = set()
        for target, _ in _imports(name, path):
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and (MODULES[target].name != "__init__.py"
                                              or _has_code(MODULES[target])):
                edges.add(target)  # (an empty package __init__ cannot close a cycle)
        graph[name] = edges
    return graph


def test_no_import_cycle_at_any_level():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def _imports_of(prefix: str):
    for name, path in MODULES.items():
        if name == prefix or name.startswith(prefix + "."):
            for target, names in _imports(name, path):
                yield name, target, names


def test_providers_import_neither_ui_nor_cli():
    bad = [(m, t) for m, t, _ in _imports_of("agentcli.providers")
           if t.startswith(("agentcli.ui", "agentcli.cli"))]
    assert bad == []


def test_ui_imports_no_provider_sdk():
    bad = [(m, t) for m, t, _ in _imports_of("agentcli.ui") if t.split(".")[0] in SDKS]
    assert bad == []


def test_the_tool_host_package_imports_only_the_stdlib_itself_and_errors():
    bad = []
    for m, t, _ in _imports_of("agentcli.toolrun.host"):
        top = t.split(".")[0]
        if top == "agentcli":
            if not (t.startswith("agentcli.toolrun.host") or t == "agentcli.errors"
                    or t in ("agentcli", "agentcli.toolrun")):
                bad.append((m, t))
        elif top not in sys.stdlib_module_names and top != "__future__":
            bad.append((m, t))
    assert bad == []


def test_only_the_cli_package_imports_it():
    bad = [(m, t) for m, t, _ in _imports_of("agentcli")
           if t.startswith("agentcli.cli") and not m.startswith("agentcli.cli")
           and m != "agentcli.__main__"]
    assert bad == []


def _has_code(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring is not code
    return bool(body)


def test_package_inits_hold_no_code():
    full = [name for name, path in MODULES.items()
            if path.name == "__init__.py" and name != "agentcli" and _has_code(path)]
    assert full == []


def test_no_module_imports_another_modules_private_names():
    bad = [(m, t, n) for m, t, names in _imports_of("agentcli") for n in names
           if t.startswith("agentcli") and n.startswith("_") and not n.startswith("__")]
    assert bad == []
