"""agentcli: a terminal agent for any provider, with safe plugin tools."""

__version__ = "0.3.0"

STARTUP_GC_THRESHOLD = (100_000, 50, 100)
"""The collector's thresholds while agentcli starts (``__main__``); ``providers.base.settle_gc``
restores the defaults once the SDK is imported."""
