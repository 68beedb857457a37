"""agentcli: a terminal agent for any provider, with safe plugin tools."""

__version__ = "0.1.0"
