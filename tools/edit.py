"""edit: replace the exact text ``old`` with ``new`` in a text file inside the writable folders.

``old`` must occur exactly once unless ``replace_all``. Options (config ``tools.options.edit``):
``max_bytes``, the largest file edited (default 1 MiB). The rules (real paths, no symbolic
links, text only, atomic writes) are in ``agentcli/toolrun/host/files.py``, shared with the
approval's diff and /undo.
"""

from __future__ import annotations

from typing import Any

from agentcli.toolrun.host.files import run_tool


def run(path: str, old: str, new: str, replace_all: bool = False, context: Any = None) -> Any:
    return run_tool("edit", {"path": path, "old": old, "new": new,
                             "replace_all": replace_all}, context)
