"""What the tests of the local model's own process share: a provider factory (the ``make``
fixture: providers closed after the test) and a prompt that makes SmolLM2 write on."""

from __future__ import annotations

import pytest

from agentcli.config import ProviderProfile, Settings

STORY = "Tell me a long story about a dragon and a knight."


@pytest.fixture(name="make")
def make_fixture():
    from agentcli.providers.local.provider import LocalProvider

    made = []

    def make(**kw):
        warnings: list[str] = []
        kw.setdefault("n_threads", 1)
        p = LocalProvider(ProviderProfile(name="local", type="local", **kw), Settings(),
                          warn=warnings.append)
        p.warnings = warnings
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
