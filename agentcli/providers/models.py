"""What a server offers: ``GET /v1/models`` in OpenAI's shape (one list) and Anthropic's (pages
with ``has_more``/``first_id``/``last_id``), through the official SDKs with the same key rules and
transport bounds as a model request; and the list's cache in the data folder.

The cache is one JSON file per profile and base URL under ``<data dir>/models/``, used for a day
(``MAX_AGE``). It holds model ids, names and dates only: never a key. A file that is not exactly
what ``save`` writes (hand-edited, truncated, another base URL) is ignored and the list fetched
again. Reading it (``cached``) needs only the standard library: the REPL's ``/model`` completion
reads it on every keystroke.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ProviderError, UsageError

MAX_AGE = 24 * 3600.0
MAX_PAGES = 50  # Anthropic pages of 1,000: a server that says "more" forever is stopped here
_VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str = ""
    """Anthropic's ``display_name``."""
    created: str = ""
    """ISO date (OpenAI's ``created`` timestamp, Anthropic's ``created_at``)."""
    owned_by: str = ""


@dataclass(frozen=True)
class ModelList:
    models: tuple[ModelInfo, ...]
    base_url: str
    fetched_at: float
    cached: bool = False


def base_url_of(profile: Any) -> str:
    from .base import OPENAI_HOST

    default = f"https://{OPENAI_HOST}/v1" if profile.type == "openai" else \
        "https://api.anthropic.com"
    return (profile.base_url or default).rstrip("/")


def cache_file(data_dir: Path, profile: Any) -> Path:
    digest = hashlib.sha256(f"{profile.type}\n{base_url_of(profile)}".encode()).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", profile.name)[:40]
    return Path(data_dir) / "models" / f"{name}-{digest}.json"


# --- the cache --------------------------------------------------------------------------------

def cached(data_dir: Path, profile: Any, max_age: float | None = MAX_AGE,
           now: float | None = None) -> ModelList | None:
    """The cached list, if there is a valid one younger than ``max_age`` (None: any age)."""
    now = time.time() if now is None else now
    try:
        data = json.loads(cache_file(data_dir, profile).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    try:
        if data["version"] != _VERSION or data["base_url"] != base_url_of(profile):
            return None
        fetched = float(data["fetched_at"])
        models = tuple(_info(m) for m in data["models"])
    except (KeyError, TypeError, ValueError):
        return None
    if fetched > now + 60 or (max_age is not None and now - fetched > max_age):
        return None
    return ModelList(models, base_url_of(profile), fetched, cached=True)


def _info(entry: Any) -> ModelInfo:
    if not isinstance(entry, dict) or set(entry) - {"id", "name", "created", "owned_by"}:
        raise ValueError("not a model entry")
    values = {k: entry.get(k, "") for k in ("id", "name", "created", "owned_by")}
    if not all(isinstance(v, str) for v in values.values()) or not values["id"]:
        raise ValueError("not a model entry")
    return ModelInfo(**values)


def save(data_dir: Path, profile: Any, found: ModelList) -> None:
    """Write the list (atomically, 0600); a folder that cannot be written is no error."""
    path = cache_file(data_dir, profile)
    data = {"version": _VERSION, "profile": profile.name, "type": profile.type,
            "base_url": found.base_url, "fetched_at": found.fetched_at,
            "models": [{"id": m.id, "name": m.name, "created": m.created,
                        "owned_by": m.owned_by} for m in found.models]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


def list_models(settings: Any, profile: Any, *, refresh: bool = False) -> ModelList:
    """The cached list when fresh (and not ``refresh``), else fetched and cached."""
    if not refresh:
        found = cached(settings.data_dir, profile)
        if found is not None:
            return found
    found = fetch(settings, profile)
    save(settings.data_dir, profile, found)
    return found


# --- the request ------------------------------------------------------------------------------

def fetch(settings: Any, profile: Any) -> ModelList:
    """``GET /v1/models`` from the profile's server (every page), bounded like a model request."""
    if profile.type not in ("openai", "anthropic"):
        raise UsageError(f"the {profile.type} provider has no server to ask for a model list",
                         hint="it runs the one model file it is given (model_path); list a "
                              "server's models with -p openai, -p anthropic or --base-url")
    from dataclasses import replace

    from .base import create_provider

    adapter = create_provider(replace(profile, api="auto"), settings)  # any API lists them
    adapter.budget.start()  # the whole listing, every page, within request_timeout
    try:
        models = _anthropic(adapter) if profile.type == "anthropic" else _openai(adapter)
    except ProviderError as e:
        raise _no_list(adapter, e) from e
    return ModelList(tuple(models), base_url_of(profile), time.time())


def _page(adapter: Any, **params: Any) -> Any:
    page, http = adapter._raw(adapter.client.models.with_raw_response.list, params)
    if not isinstance(getattr(page, "data", None), list):
        raise adapter.errors.wrong_shape(http, "a model list")
    return page


def _openai(adapter: Any) -> list[ModelInfo]:
    out = []
    for m in _page(adapter).data:
        created = getattr(m, "created", None)
        out.append(ModelInfo(_text(getattr(m, "id", None)), "",
                             time.strftime("%Y-%m-%d", time.gmtime(created))
                             if isinstance(created, (int, float)) and created > 0 else "",
                             _text(getattr(m, "owned_by", None))))
    return [m for m in out if m.id]


def _anthropic(adapter: Any) -> list[ModelInfo]:
    out: list[ModelInfo] = []
    after: str | None = None
    for _ in range(MAX_PAGES):
        page = _page(adapter, limit=1000, **({"after_id": after} if after else {}))
        for m in page.data:
            created = getattr(m, "created_at", None)
            day = created.date().isoformat() if hasattr(created, "date") else _text(created)[:10]
            out.append(ModelInfo(_text(getattr(m, "id", None)),
                                 _text(getattr(m, "display_name", None)), day))
        last = getattr(page, "last_id", None)
        if not getattr(page, "has_more", False) or not isinstance(last, str) or last == after:
            break
        after = last
    return [m for m in out if m.id]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _no_list(adapter: Any, err: ProviderError) -> ProviderError:
    from ._common import refusal_of

    refusal = refusal_of(err)
    if refusal is None or refusal.status not in (404, 405):
        return err
    path = "/models" if adapter.profile.type == "openai" else "/v1/models"
    return ProviderError(f"{adapter.errors.base_url}{path} does not exist: this server offers "
                         "no model list", hint="check the base_url (an OpenAI-compatible server's "
                                               "usually ends in /v1)")
