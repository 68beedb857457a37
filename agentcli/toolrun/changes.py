"""The change an ``edit``/``write`` call would make, worked out by agentcli before it runs.

For a built-in tool whose manifest says ``files: write``, the executor plans the call itself,
with the rules the tool applies in its worker (``host/files.py``: the same roots, real-path
checks, size cap and text-only rule; no plugin code runs in agentcli). The plan is made once,
after the deny rules and before the user is asked, and gives:

- the unified diff the approval shows (``ui/diff_view.py``: bounded, inert);
- the refusal of a file that changed on disk since the model last read or wrote it (``seen``:
  real path -> SHA-256 of the version the model knows, from the conversation's tool results);
- what the file held, which the tool checks again before it writes (``ToolContext.expected``:
  nothing is written if the file changed while the user was deciding), and which becomes the
  checkpoint ``/undo`` restores.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import ToolError
from ..messages import FileChange
from .host import files


class Planner:
    """One call's planned change; ``preview`` (for the approval) and ``change`` plan it once."""

    def __init__(self, tool: str, options: Mapping[str, Any], cwd: str,
                 writable: Sequence[str], seen: Mapping[str, str]) -> None:
        self.tool = tool
        self.max_bytes = int(options.get("max_bytes", files.DEFAULT_MAX_BYTES))
        self.cwd = cwd
        self.writable = list(writable)
        self.seen = seen
        self._planned: files.Change | None = None
        self.previewed = False
        """The diff was shown to the user at an approval prompt."""

    def change(self, args: Mapping[str, Any]) -> files.Change:
        """The planned change; ToolError (the model's to read) when it cannot be made."""
        if self._planned is None:
            change = files.plan(self.tool, args, self.cwd, self.writable, self.max_bytes)
            known = self.seen.get(change.target.real)
            if known is not None and known != change.before.sha256:
                gone = "" if change.before.exists else " (it no longer exists)"
                raise ToolError(f"'{change.target.shown}' changed on disk since you last read "
                                f"or wrote it{gone}; nothing was changed. Read it again with "
                                "file_read, then redo the change")
            self._planned = change
        return self._planned

    def preview(self, args: Mapping[str, Any]) -> str:
        """The diff the approval shows."""
        from ..ui.diff_view import diff, shown_path

        change = self.change(args)
        self.previewed = True
        shown = shown_path(change.target.real, self.cwd)
        text = diff(change.before.text, change.after, shown).text
        return text or f"(no change: '{change.target.shown}' already holds this text)"

    def expected(self) -> dict[str, str | None]:
        change = self._planned
        return {} if change is None else {change.target.real: change.before.sha256}

    def made(self, tool: str, call_id: str, written: Sequence[tuple[str, str]]
             ) -> FileChange | None:
        """The checkpoint of the change, once the tool reported writing exactly the planned
        text (None otherwise)."""
        change = self._planned
        if change is None:
            return None
        want = (change.target.real, files.sha256(change.after.encode("utf-8")))
        if want not in [tuple(w) for w in written]:
            return None
        return FileChange(change.target.real, change.before.text, change.after, tool, call_id)

