"""Parsed tool manifests, kept by content, so a run need not import yaml to read them again.

``<data dir>/cache/manifests.json`` maps a digest of (agentcli's version, the manifest's exact
text) to what ``yaml.safe_load`` made of that text, plus whether its schemas passed the
JSON-Schema meta-check. A manifest is always read from its file and checked field by field
(``check_manifest``) at every start; only the YAML parse (and the import of yaml, ~8 ms) and a
meta-check that already passed for the very same text are skipped. A changed byte is a new
digest: parsed again. Only data that JSON holds exactly is kept (a YAML date, or a mapping with
non-string keys, is parsed every time). The file is rewritten, atomically and mode 0600, when
it lacks an entry or holds stale ones; a cache that cannot be read or written is no error, and
nothing is written for a run that saves nothing (``--no-save``, ``save: false``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

FILE = "manifests.json"


class ManifestCache:
    """The manifests of one load: ``get`` before parsing, ``put`` after, ``save`` at the end."""

    def __init__(self, data_dir: Path, *, write: bool = True) -> None:
        from .. import __version__

        self.path = Path(data_dir) / "cache" / FILE
        self.write = write
        self._version = __version__
        self._stored = self._read()
        self._used: dict[str, dict[str, Any]] = {}

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self._version}\0{text}".encode()).hexdigest()

    def get(self, text: str, *, schema_checked: bool) -> dict[str, Any] | None:
        """The parsed manifest for ``text``, or None (parse it). With ``schema_checked``, only an
        entry whose schemas passed the meta-check will do."""
        key = self.key(text)
        entry = self._stored.get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), dict) or \
                (schema_checked and entry.get("schema_checked") is not True):
            return None
        self._used[key] = entry
        return entry["data"]

    def put(self, text: str, data: dict[str, Any], *, schema_checked: bool) -> None:
        """Keep a manifest that parsed and passed every check."""
        if plain(data):
            self._used[self.key(text)] = {"data": data, "schema_checked": schema_checked}

    def save(self) -> None:
        """Write the entries this load used, when they differ from the file's."""
        if not self.write or self._used == self._stored:
            return
        tmp = self.path.with_name(f".{FILE}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._used, f, ensure_ascii=False)
            os.replace(tmp, self.path)
        except (OSError, ValueError):
            try:
                tmp.unlink()
            except OSError:
                pass

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}


def plain(value: Any) -> bool:
    """Whether JSON holds ``value`` exactly (what comes back is equal, and of the same types)."""
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    return False
