"""The settings conversations add to the config file, checked here so ``agentcli.config`` only
names them: ``save``, ``roles``, ``prices``, ``context_windows`` (and a profile's
``context_window``, which ``config`` parses with the rest of the profile)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import ConfigError

SCHEMA: dict[str, Any] = {"save": bool, "roles": dict, "prices": dict, "context_windows": dict}
"""Top-level keys, in ``agentcli.config._SCHEMA``'s terms."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens, as providers publish them. ``cache_read``: input read
    from the prompt cache, ``cache_write``: input written to it (unset: the input price)."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def as_dict(self) -> dict[str, float]:
        out = {"input": self.input, "output": self.output}
        if self.cache_read is not None:
            out["cache_read"] = self.cache_read
        if self.cache_write is not None:
            out["cache_write"] = self.cache_write
        return out


@dataclass(frozen=True)
class SessionSettings:
    save: bool = True
    roles: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    prices: Mapping[str, Price] = field(default_factory=lambda: _EMPTY)
    context_windows: Mapping[str, int] = field(default_factory=lambda: _EMPTY)

    def price(self, model: str | None) -> Price | None:
        return _lookup(self.prices, model)

    def window(self, model: str | None) -> int | None:
        return _lookup(self.context_windows, model)

    def as_dict(self) -> dict[str, Any]:
        return {"save": self.save, "roles": dict(self.roles),
                "prices": {k: v.as_dict() for k, v in self.prices.items()},
                "context_windows": dict(self.context_windows)}


def _lookup(table: Mapping[str, Any], model: str | None) -> Any:
    """An exact model name first, then the longest matching glob (``gpt-4.1*``)."""
    if not model:
        return None
    if model in table:
        return table[model]
    globs = sorted((k for k in table if any(c in k for c in "*?[")), key=len, reverse=True)
    for pattern in globs:
        if fnmatchcase(model, pattern):
            return table[pattern]
    return None


_PRICE_KEYS = {"input", "output", "cache_read", "cache_write"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse(data: Mapping[str, Any], file: str | None) -> SessionSettings:
    """The already type-checked top level -> SessionSettings (the nested values checked here)."""
    roles: dict[str, str] = {}
    for name, prompt in (data.get("roles") or {}).items():
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError("a role is a non-empty system prompt (text)", file=file,
                              key=f"roles.{name}")
        roles[str(name)] = prompt
    prices: dict[str, Price] = {}
    for model, entry in (data.get("prices") or {}).items():
        key = f"prices.{model}"
        if not isinstance(entry, dict) or not {"input", "output"} <= set(entry) or \
                not set(entry) <= _PRICE_KEYS:
            raise ConfigError("expected {input: N, output: N} and optionally cache_read: N, "
                              "cache_write: N (US dollars per million tokens)",
                              file=file, key=key)
        for side in entry:
            if not _number(entry[side]) or entry[side] < 0:
                raise ConfigError("expected a number of dollars, 0 or more", file=file,
                                  key=f"{key}.{side}")
        optional = {k: float(entry[k]) for k in ("cache_read", "cache_write") if k in entry}
        prices[str(model)] = Price(float(entry["input"]), float(entry["output"]), **optional)
    windows: dict[str, int] = {}
    for model, size in (data.get("context_windows") or {}).items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 256:
            raise ConfigError("expected a number of tokens (256 or more)", file=file,
                              key=f"context_windows.{model}")
        windows[str(model)] = size
    save = data.get("save")
    return SessionSettings(save=True if save is None else bool(save),
                           roles=MappingProxyType(roles), prices=MappingProxyType(prices),
                           context_windows=MappingProxyType(windows))
