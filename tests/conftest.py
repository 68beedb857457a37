"""Shared fixtures: a fresh fake provider server, and a sealed environment for every test.

Every test runs with AGENTCLI_HOME in a temporary folder, without the provider environment
variables of whoever runs the suite, and unable to open a network connection anywhere but
loopback (an accidental real request raises RuntimeError instead of reaching the internet).
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `from fake_server import ...` in any test

from fake_server import FakeProviderServer  # noqa: E402

# A run started in the background of a non-interactive shell (`pytest &`, some CI runners)
# inherits SIGINT ignored, and so would every agentcli it starts (Python keeps an ignored SIGINT
# ignored): the Ctrl-C tests need what a terminal gives, so the default handler comes back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SCRUBBED_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL",
                "AGENTCLI_CONFIG", "AGENTCLI_PROVIDER")


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths and the like
        return True
    host = str(address[0]).split("%", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an unresolved host name: not loopback


@pytest.fixture(autouse=True)
def _sealed_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "agentcli_home"
    home.mkdir()
    monkeypatch.setenv("AGENTCLI_HOME", str(home))
    for name in SCRUBBED_ENV:
        monkeypatch.delenv(name, raising=False)

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(address: Any) -> None:
        if not _is_loopback(address):
            raise RuntimeError(f"test tried to reach the network: {address!r} "
                               "(tests may only connect to loopback)")

    def connect(self: socket.socket, address: Any) -> None:
        guard(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def fake_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server
