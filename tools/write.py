"""write: create a text file, or replace all of one, inside the writable folders.

Options (config ``tools.options.write``): ``max_bytes``, the largest file written or replaced
(default 1 MiB). The rules (real paths, no symbolic links, text only, atomic writes) are in
``agentcli/toolrun/host/files.py``, shared with the approval's diff and /undo.
"""

from __future__ import annotations

from typing import Any

from agentcli.toolrun.host.files import run_tool


def run(path: str, content: str, context: Any = None) -> Any:
    return run_tool("write", {"path": path, "content": content}, context)
