"""The subreaper between agentcli and a stdio MCP server (Linux): nothing the server starts
outlives it, a daemon that double-forked into a session of its own (``setsid``) included.

agentcli starts ``sys.executable -I -c BOOT ...`` (``command_line``) in a session of its own,
with the server's pipes and log as fds 0-2. This small interpreter (standard library and
``toolrun.host.supervisor`` only) makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``:
orphans of the server's tree are re-parented to it, not to init) with SIGTERM as its
parent-death signal, spawns the server (``posix_spawnp``: its own process group, default
signals) and waits. It ends the tree, exactly as the tool supervisor does (``kill_tree``:
SIGKILL to the server's group, then every process re-parented here, generation by generation),
when:

- the server exits by itself: the reaper then exits with the server's code (128+N for signal N);
- agentcli stops it (SIGTERM to the reaper's group, after closing the server's stdin) or dies
  (the parent-death signal, or its parent pid changing): the server gets SIGTERM and
  ``STOP_GRACE`` seconds to exit, well inside agentcli's own grace before SIGKILL.

Elsewhere than Linux there is no subreaper: agentcli then starts the server directly (its
process group is ended at exit, a ``setsid`` daemon can outlive it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any, NoReturn

from ..toolrun.host.supervisor import PR_SET_PDEATHSIG, kill_tree, reap

PR_SET_CHILD_SUBREAPER = 36
STOP_GRACE = 0.5  # seconds the server gets after SIGTERM (agentcli waits 1 s before SIGKILL)
BOOT = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
        "from agentcli.mcp.reaper import main; main(sys.argv[2:])")
_WATCHED = {signal.SIGTERM, signal.SIGCHLD, signal.SIGINT, signal.SIGHUP}


def supported() -> bool:
    return sys.platform.startswith("linux") and bool(sys.executable)


def command_line(argv: list[str], env: dict[str, str]) -> list[str]:
    """The reaper's command line for the server ``argv`` (run with ``env`` as its
    environment): Python's locale coercion would add LC_CTYPE to a server that had none."""
    drop_lc_ctype = "1" if "LC_CTYPE" not in env else "0"
    return [sys.executable, "-I", "-c", BOOT, json.dumps(sys.path), str(os.getpid()),
            drop_lc_ctype, *argv]


def main(argv: list[str]) -> NoReturn:  # pragma: no cover - runs in the reaper process
    code = 1
    try:
        parent, drop_lc_ctype, command = int(argv[0]), argv[1] == "1", argv[2:]
        _become_subreaper()
        if os.getppid() != parent:  # agentcli died before the death signal was armed
            os._exit(1)
        if drop_lc_ctype:
            os.environ.pop("LC_CTYPE", None)
        signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
        try:
            pid = os.posix_spawnp(command[0], command, dict(os.environ), setpgroup=0,
                                  setsigmask=set(), setsigdef=[*_WATCHED, signal.SIGPIPE,
                                                               signal.SIGXFSZ])
        except OSError as e:
            sys.stderr.write(f"[agentcli] cannot run {command[0]}: {e.strerror or e}\n")
            sys.stderr.flush()
            os._exit(127)
        null = os.open(os.devnull, os.O_RDWR)  # the pipes are the server's alone now
        os.dup2(null, 0)
        os.dup2(null, 1)
        code = _wait(pid, parent)
        kill_tree(pid)
    except BaseException:  # noqa: BLE001 - nothing may escape
        pass
    finally:
        os._exit(code)


def _become_subreaper() -> None:
    try:
        import ctypes

        prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _wait(pid: int, parent: int) -> int:  # pragma: no cover - runs in the reaper process
    """The server's exit code (left unreaped, so its process group id stays taken for
    ``kill_tree``); orphans that end meanwhile are reaped as they go."""
    stopping_since: float | None = None
    while True:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None and info.si_pid == pid:
            return info.si_status if info.si_code == os.CLD_EXITED else 128 + info.si_status
        _reap_orphans(pid)
        if stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE:
            return 128 + signal.SIGTERM
        got = signal.sigtimedwait(_WATCHED, 0.1 if stopping_since is not None else 1.0)
        stop = (got is not None and got.si_signo != signal.SIGCHLD) or os.getppid() != parent
        if stop and stopping_since is None:
            stopping_since = time.monotonic()
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass


def _reap_orphans(server: int) -> None:  # pragma: no cover - runs in the reaper process
    """Reap ended processes re-parented here (never the server: its status is wanted)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid in (0, server):
            return
        reap(info.si_pid)
