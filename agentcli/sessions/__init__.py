"""Conversations that last: the SQLite session store and everything built on it.

- ``config``: the settings this package adds (``save``, ``roles``, ``prices``,
  ``context_windows``), parsed apart from ``agentcli.config``; imports nothing heavy.
- ``codec``: provider-neutral messages <-> the JSON kept in the store (lossless, so a resumed
  history is sent byte for byte as it was), and the repair that closes dangling tool calls.
- ``store``: the file itself (WAL, one transaction per message, 0600, schema version).
- ``recorder``: a renderer of agent events that persists them; a store that fails never costs
  the user their reply, only a one-line warning.
- ``export``: markdown and JSON transcripts (``sessions show/export``, the REPL's ``/save``).

The commands are in ``cli/sessions.py``, the REPL's in ``ui/repl/session_commands.py``.

Only ``store`` imports ``sqlite3``, and only commands that save or read sessions import it:
``--version`` and ``--help`` never do.
"""
