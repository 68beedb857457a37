"""The provider profile one run uses: flags, environment and config file, in the precedence
written in ``config``'s docstring (and the README's "Configuration").

Kept apart from ``config`` (which reads and checks the file): this is the part that decides,
per run, which server is talked to and where its key may go.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from ..config import (BASE_URL_HINT, DEFAULT_BASE_URL_ENV, DEFAULT_MODELS, PROVIDER_TYPES,
                     ProviderProfile, Settings, base_url_problem)
from ..errors import UsageError


def local_available() -> bool:
    """The local extra is usable: llama.cpp bindings and the bundled model (no import of either)."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return False
    from .local.files import default_model_path  # stdlib only: no llama_cpp import

    return default_model_path() is not None


NO_PROVIDER_HINT = (
    "set one up in any of three ways: export OPENAI_API_KEY=... (or ANTHROPIC_API_KEY=...); "
    "pass --provider/--base-url (e.g. --provider openai --base-url http://localhost:11434/v1 for "
    "Ollama); or add a profile to the config file (`agentcli config init`, then edit it); "
    "for an offline model: pip install 'agentcli[local]'"
)


def resolve_profile(settings: Settings, provider: str | None = None, model: str | None = None,
                    base_url: str | None = None, notice: Any = None) -> ProviderProfile:
    """Pick the provider profile for this run (precedence: ``config``'s docstring).

    ``notice`` (a callable taking one line) is told when a default was chosen implicitly.
    """
    if base_url is not None:
        problem = base_url_problem(base_url)
        if problem:
            raise UsageError(f"--base-url {problem}", hint=f"pass {BASE_URL_HINT}")
    name = provider or settings.default_provider
    if provider is None and base_url:  # --base-url alone: an OpenAI-compatible server
        default = settings.providers.get(name or "")
        if name != "openai" and (default is None or default.type != "openai"):
            if name and notice:
                notice(f"--base-url without -p: using an OpenAI-compatible server, not the "
                       f"default profile '{name}'")
            name = "openai"
    if name is None:
        if os.environ.get("OPENAI_API_KEY"):
            name = "openai"
        elif os.environ.get("ANTHROPIC_API_KEY"):
            name = "anthropic"
        elif os.environ.get("OPENAI_BASE_URL"):
            name = "openai"
        elif os.environ.get("ANTHROPIC_BASE_URL"):
            name = "anthropic"
        elif local_available():
            name = "local"
            if notice:
                notice("no provider configured and no API key set: using the local model "
                       "(--provider local)")
        else:
            raise UsageError("no provider is set up", hint=NO_PROVIDER_HINT)
    if name in settings.providers:
        profile = settings.providers[name]
    elif name in PROVIDER_TYPES:
        profile = ProviderProfile(name=name, type=name)
    else:
        known = ", ".join([*settings.providers, *PROVIDER_TYPES])
        raise UsageError(f"unknown provider '{name}'", hint=f"use one of: {known}")
    env_base = DEFAULT_BASE_URL_ENV.get(profile.type)
    changes: dict[str, Any] = {}
    if base_url:
        changes.update(base_url=base_url, base_url_source="flag")
    elif not profile.base_url and env_base and os.environ.get(env_base):
        problem = base_url_problem(os.environ[env_base])
        if problem:
            raise UsageError(f"{env_base} {problem}", hint=f"set it to {BASE_URL_HINT}, or unset it")
        changes.update(base_url=os.environ[env_base], base_url_source="env")
    if model:
        changes["model"] = model
    elif not profile.model and DEFAULT_MODELS.get(profile.type):
        changes["model"] = DEFAULT_MODELS[profile.type]
    return replace(profile, **changes) if changes else profile
