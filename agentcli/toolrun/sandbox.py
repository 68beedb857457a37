"""agentcli's side of the OS sandbox: the mode of a run, and each call's policy.

``Sandbox`` is made once per run from the config (``sandbox:``) and ``--sandbox``. For each
call, ``policy_for`` turns the mode and what the tool's manifest says it needs
(``sandbox: {network, write, commands}``) into a ``confine.Policy`` the worker enforces:

- ``read-only``: read everything but the hidden folders; write only a private temp folder.
- ``workspace-write`` (the default): the same, and a tool that writes (``write: true``) may also
  write the working folder and the ``file_read`` roots marked ``writable: true``.
- both: no network unless the tool says ``network: true``; hidden are agentcli's data and
  config folders (the user's tool folder stays readable) and the secrets in the home folder
  (``confine.HOME_SECRETS``).
- ``off``: no walls (said once on stderr when the run starts). Limits still apply.

What the machine offers is detected once per run, when the first call needs it
(``commands.detect``). A tool that runs commands (``commands: true``: the shell) is refused in
a sandboxed mode when neither bubblewrap nor Landlock is there, with the line saying what to
install. Other plugins run where Landlock is missing with the walls that remain (network and
limits), said once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .host.commands import Support, detect
from .host.confine import Policy, hidden_paths
from .host.landlock import inside

OFF_NOTICE = ("sandbox off: tools run with your full permissions (every file, the network, "
              "your keys)")


@dataclass
class Sandbox:
    """The sandbox of one run (mutable only in what it caches: the detected support and the
    notices already said)."""

    mode: str
    hide: tuple[str, ...] = ()
    """agentcli's own folders to hide (data, config), besides the home folder's secrets."""
    expose: tuple[str, ...] = ()
    """Folders readable even inside a hidden one (the user's tools folder)."""
    roots: tuple[Any, ...] = ()
    """file_read's ``roots`` option as configured (strings, or ``{path, writable}``)."""
    secret_env: tuple[str, ...] = ()
    warn: Callable[[str], None] | None = None
    userns: bool = True
    """False: never a user namespace (tests force the walls used where there is none)."""
    support: Support | None = None
    """What the machine offers; None: detected when a call first needs it."""
    _detected: dict[bool, Support] = field(default_factory=dict)
    _said: set[str] = field(default_factory=set)

    def _support(self, commands: bool) -> Support:
        if self.support is not None:
            return self.support
        if commands not in self._detected:  # bubblewrap is only tried for commands
            self._detected[commands] = detect(probe_bwrap=commands)
        return self._detected[commands]

    def _say(self, text: str) -> None:
        if text not in self._said and self.warn is not None:
            self._said.add(text)
            self.warn(text)

    def policy_for(self, tool: Any, cwd: str) -> tuple[dict[str, Any] | None, str | None]:
        """(the policy as wire data, or None for no walls; why the call is refused, or None).
        ``tool``: an ``executor.Tool`` (its sandbox needs and its module's folder)."""
        if self.mode == "off":
            return Policy("off", cwd, secret_env=self.secret_env).to_wire(), None
        support = self._support(tool.runs_commands)
        if tool.runs_commands:
            refusal = support.command_refusal()
            if refusal:
                return None, refusal
        elif not support.landlock:
            self._say(f"sandbox: {_missing(support)}, so plugin tools run without "
                      "walls (the limits still apply)")
            return None, None
        home = os.path.expanduser("~")
        read, writable = self._roots(cwd)
        write: tuple[str, ...] = ()
        if self.mode == "workspace-write" and tool.writes:
            write = tuple(dict.fromkeys([os.path.realpath(cwd), *writable]))
        own = [os.path.dirname(p) for p in (getattr(tool.load, "file", None),) if p]
        work = os.path.realpath(cwd)
        hide = tuple(h for h in hidden_paths(home, self.hide)  # where the user works wins
                     if not any(inside(p, h) for p in (work, *write)))
        policy = Policy(self.mode, work, write=write,
                        read=tuple(dict.fromkeys([*read, *self.expose, *own])),
                        hide=hide, network=tool.network,
                        bwrap=support.bwrap if tool.runs_commands else None,
                        secret_env=self.secret_env, confine_self=not tool.runs_commands,
                        userns=self.userns)
        return policy.to_wire(), None

    def _roots(self, cwd: str) -> tuple[list[str], list[str]]:
        """file_read's roots (real paths), and those marked writable."""
        read, write = [], []
        for item in self.roots:
            path, writable = (item, False) if isinstance(item, str) else (
                str(item.get("path", "")), bool(item.get("writable")))
            if not path:
                continue
            real = os.path.realpath(os.path.join(cwd, os.path.expanduser(path)))
            read.append(real)
            if writable:
                write.append(real)
        return read, write


def _missing(support: Support) -> str:
    if support.platform != "linux":
        return f"there is no sandbox on {support.platform} yet"
    return "this kernel has no Landlock (Linux 5.13+)"


def from_settings(settings: Any, warn: Callable[[str], None] | None = None) -> Sandbox:
    """The run's sandbox (``settings.sandbox``: the config's, or --sandbox); says "sandbox off"
    once, when it is."""
    chosen = settings.sandbox
    if chosen == "off" and warn is not None:
        warn(OFF_NOTICE)
    options: Mapping[str, Any] = settings.tools.options.get("file_read") or {}
    roots = options.get("roots") or ()
    roots = (roots,) if isinstance(roots, str) else tuple(roots)
    config_dir, data_dir = Path(settings.config_dir), Path(settings.data_dir)
    return Sandbox(chosen, hide=(str(data_dir), str(config_dir)),
                   expose=(os.path.realpath(settings.user_tools_dir),), roots=roots,
                   secret_env=tuple(_key_envs(settings)), warn=warn)


def _key_envs(settings: Any) -> Sequence[str]:
    from ..config import DEFAULT_KEY_ENV

    names = {n for n in DEFAULT_KEY_ENV.values() if n}
    names.update(p.key_env() for p in settings.providers.values() if p.key_env())
    return sorted(names)
