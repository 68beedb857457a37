"""The forked side of ``isolation.py``: the supervisor (C) and the worker (W) processes.

Nothing here runs in agentcli's own process except the imports: ``supervise`` is called right
after ``fork`` and never returns. ``isolation.py``'s docstring describes the whole design.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from typing import Any, Callable, NoReturn

from .frames import JOB_FD, RESULT_FD, STATUS_FD, write_frame
from .limits import release

try:
    import fcntl  # here, not at the call: importing it in every supervisor cost ~2 ms a call
except ImportError:  # pragma: no cover - Windows, where nothing here runs
    fcntl = None  # type: ignore[assignment]

PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_MAX_ROUNDS = 10_000  # kill-and-reap rounds in C (each round ends one generation)


def signal_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def supervise(job: Callable[[], Any], result_w: int, status_w: int, parent: int,
              prctl: Callable[..., int] | None,
              job_r: int | None = None) -> NoReturn:  # pragma: no cover - in C
    """C's whole life. ``job_r``: a pipe W reads its job from (a worker forked ahead of its job;
    it sits on fd ``JOB_FD`` in W and is closed in C)."""
    code = 0
    try:
        os.setsid()  # no controlling terminal; out of the terminal's process group
        if prctl is not None:
            prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # agentcli died before the death signal was armed
            os._exit(1)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGCHLD})
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # never SIG_IGN: we wait for children
        except (ValueError, OSError):
            pass
        _quiet_descriptors(result_w, status_w, job_r)
        gc.freeze()  # objects from agentcli are never collected (and finalised) in the tree
        wpid = os.fork()
        if wpid == 0:
            _work(job, prctl)
        os.close(RESULT_FD)  # only W and what it starts hold it now
        if job_r is not None:
            os.close(JOB_FD)
        worker = _wait_worker(wpid)
        kill_tree(wpid)
        try:
            write_frame(STATUS_FD, b"S", json.dumps({"worker": worker}).encode())
        finally:
            release(wpid)  # the tree is gone: its pids cgroup and temp folder, after answering
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child
        code = 1
    finally:
        os._exit(code)


def _quiet_descriptors(result_w: int, status_w: int, job_r: int | None) -> None:
    """fds 0-2 on /dev/null, the result pipe on fd 3, the status pipe on fd 4, the job pipe (if
    any) on fd 5 (all closed on exec), every other inherited descriptor closed."""
    kept = [result_w, status_w] + ([] if job_r is None else [job_r])
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in kept]  # out of the way
    for fd, target in zip(high, (RESULT_FD, STATUS_FD, JOB_FD)):
        os.dup2(fd, target, inheritable=False)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        limit = os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        limit = 65_536
    last = RESULT_FD + len(kept) - 1
    os.closerange(last + 1, max(limit, last + 2))


def _wait_worker(wpid: int) -> str:
    """Until W exits (left unreaped, so its process group id stays taken) or SIGTERM comes."""
    while True:
        info = os.waitid(os.P_PID, wpid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None and info.si_pid == wpid:
            if info.si_code == os.CLD_EXITED:
                return f"exit code {info.si_status}"
            return f"killed by signal {info.si_status}"
        if signal.sigwait({signal.SIGTERM, signal.SIGCHLD}) == signal.SIGTERM:
            return "stopped"


def kill_tree(wpid: int) -> None:
    """SIGKILL W's process group, then every child of ours, round by round (a killed process's
    children are re-parented to us, the subreaper), reaping as we go."""
    try:
        os.killpg(wpid, signal.SIGKILL)
    except OSError:
        pass
    me = os.getpid()
    for _ in range(_MAX_ROUNDS):
        kids = children(me)
        if kids is None:  # no /proc: reap what has ended and stop there
            reap(wpid)
            try:
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                pass
            return
        if not kids:
            return
        for kid in kids:
            signal_quietly(kid, signal.SIGKILL)
        for kid in kids:
            reap(kid)


def children(pid: int) -> list[int] | None:
    """Our children (zombies included), from /proc; None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    kids = []
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if len(fields) > 1 and int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _work(job: Callable[[], Any],
          prctl: Callable[..., int] | None) -> NoReturn:  # pragma: no cover - runs in W
    code = 0
    try:
        os.close(STATUS_FD)  # the tool can never write the supervisor's status
        if prctl is not None:  # should C ever die first, W goes with it
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        os.setpgid(0, 0)
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGALRM", "SIGCHLD", "SIGUSR1",
                     "SIGUSR2", "SIGWINCH"):
            try:
                signal.signal(getattr(signal, name), signal.SIG_DFL)
            except (AttributeError, ValueError, OSError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        quiet = open(os.devnull, "r+", encoding="utf-8")  # noqa: SIM115
        sys.stdin = sys.stdout = sys.stderr = quiet  # Python-level streams may be proxies
        sys.__stdin__ = sys.__stdout__ = sys.__stderr__ = quiet
        try:
            tag, data = b"R", json.dumps(job(), ensure_ascii=False, default=str)
        except BaseException as e:  # noqa: BLE001 - failures are data
            from .job import describe_exception

            tag, data = b"X", describe_exception(e)
        write_frame(RESULT_FD, tag, data.encode("utf-8", "replace"))
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)


