"""Resource limits of a tool call's worker and everything it starts, and its private temp folder.

- **memory**: ``RLIMIT_DATA`` (heap and private writable mappings: what a program allocates; a
  reservation that is never written, as JIT runtimes make, does not count). A Python tool that
  goes past it gets a MemoryError, which the model reads as "out of memory"; a program the
  shell runs gets its allocations refused (Python: MemoryError, C: ENOMEM).
- **processes**: for a user other than root, ``RLIMIT_NPROC`` set to the number of tasks the
  user has now plus the limit (the kernel counts a user's tasks everywhere, and never limits
  root this way); for root, a pids cgroup of its own (``pids.max``) when the cgroup file system
  is writable. A fork bomb then ends at the limit (fork fails with EAGAIN) and the call ends at
  its timeout, its whole tree killed by the supervisor.
- no core dumps (``RLIMIT_CORE`` 0).

The private temp folder is ``<temp>/agentcli-<uid>/<pid>`` (the parent made 0700 and owned by
the user, checked): the sandbox lets a tool write there and nowhere else outside the
workspace. The worker makes it before its job comes; the supervisor removes it after killing
the tree (``release``); a folder left by a worker that died is swept by the next one.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from typing import Any, Mapping

DEFAULT_MEMORY_MB = 2048
DEFAULT_PROCESSES = 64
_CGROUP_V1 = "/sys/fs/cgroup/pids"
_CGROUP_V2 = "/sys/fs/cgroup"
_PREFIX = "agentcli-tool-"


@dataclass(frozen=True)
class Limits:
    memory_mb: int = DEFAULT_MEMORY_MB
    processes: int = DEFAULT_PROCESSES

    def to_wire(self) -> dict[str, int]:
        return {"memory_mb": self.memory_mb, "processes": self.processes}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any] | None) -> Limits | None:
        if not data:
            return None
        return cls(int(data["memory_mb"]), int(data["processes"]))

    def out_of_memory(self) -> str:
        return (f"out of memory: the tool used more than its limit of {self.memory_mb} MiB "
                "(the manifest's limits.memory_mb raises it)")


@dataclass(frozen=True)
class Ahead:
    """What a worker prepares before its job comes (off the call's clock): the user's task
    count, or (root) the pids cgroup it already joined; and its private temp folder (making
    one costs milliseconds on some disks)."""

    tasks: int | None = None
    group: str | None = None


def prepare() -> Ahead:
    try:
        _fresh_tmp()
    except OSError:
        pass  # made (or refused, with the reason) again when the call needs it
    if os.geteuid() == 0:
        return Ahead(group=_join_pids_cgroup())
    return Ahead(tasks=task_count())


def apply(limits: Limits, ahead: Ahead | None = None) -> list[str]:
    """Set the limits on this process (inherited by what it starts). ``ahead``: ``prepare``'s
    work if done already. Returns what could not be limited (notes, never fatal)."""
    import resource

    ahead = prepare() if ahead is None else ahead
    notes: list[str] = []
    _set(resource, resource.RLIMIT_CORE, 0)
    _set(resource, resource.RLIMIT_DATA, limits.memory_mb * 1024 * 1024)
    if os.geteuid() == 0:
        try:
            if ahead.group is None:
                raise OSError
            with open(os.path.join(ahead.group, "pids.max"), "w") as f:
                f.write(str(limits.processes))
        except OSError:
            notes.append("no process limit: running as root without a writable pids cgroup")
    elif hasattr(resource, "RLIMIT_NPROC"):
        _set(resource, resource.RLIMIT_NPROC, (ahead.tasks or 0) + limits.processes)
    return notes


def _set(resource: Any, which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY and hard < value:
        value = hard
    resource.setrlimit(which, (value, value))


def task_count(uid: int | None = None) -> int:
    """The tasks (threads included, as RLIMIT_NPROC counts them) of ``uid`` on this machine."""
    uid = os.getuid() if uid is None else uid
    count = 0
    try:
        entries = os.scandir("/proc")
    except OSError:
        return 0
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def _pids_roots() -> list[str]:
    roots = []
    if os.path.exists(os.path.join(_CGROUP_V1, "tasks")):
        roots.append(_CGROUP_V1)
    try:
        with open(os.path.join(_CGROUP_V2, "cgroup.subtree_control")) as f:
            if "pids" in f.read().split():
                roots.append(_CGROUP_V2)
    except OSError:
        pass
    return roots


def process_limit_possible() -> bool:
    """Whether ``apply`` can limit processes here (root needs a writable pids cgroup)."""
    if os.geteuid() != 0:
        return True
    return any(os.access(root, os.W_OK) for root in _pids_roots())


def _join_pids_cgroup() -> str | None:
    """Move this process into a new pids cgroup of its own; its path, or None."""
    for root in _pids_roots():
        _sweep(root)
        group = os.path.join(root, f"{_PREFIX}{os.getpid()}")
        try:
            try:
                os.mkdir(group, 0o755)
            except FileExistsError:
                pass
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write("0")
            return group
        except OSError:
            _rmdir(group)
    return None


def _sweep(root: str) -> None:
    """Remove the groups of workers that died without their supervisor's cleanup."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        pid = name[len(_PREFIX):]
        if name.startswith(_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            _rmdir(os.path.join(root, name))


def release(pid: int) -> None:
    """After the call's tree is gone: remove the worker's cgroup and private temp folder."""
    if os.geteuid() == 0:
        for root in (_CGROUP_V1, _CGROUP_V2):
            _rmdir(os.path.join(root, f"{_PREFIX}{pid}"))
    base = _tmp_base(create=False)
    if base is not None:
        shutil.rmtree(os.path.join(base, str(pid)), ignore_errors=True)


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


# --- the private temp folder ------------------------------------------------------------------

def _tmp_base(create: bool) -> str | None:
    """``<temp>/agentcli-<uid>``, a real folder owned by us and private (None when unsafe)."""
    base = os.path.join(tempfile.gettempdir(), f"agentcli-{os.getuid()}")
    if create:
        try:
            os.mkdir(base, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
    try:
        st = os.lstat(base)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return base


def private_tmp() -> str:
    """This process's empty folder for temporary files, made by ``prepare`` or now (OSError
    when it cannot be). The supervisor removes it after the call."""
    base = _tmp_base(create=False)
    path = os.path.join(base, str(os.getpid())) if base else ""
    if path and os.path.isdir(path) and not os.path.islink(path):
        return path
    return _fresh_tmp()


def _fresh_tmp() -> str:
    base = _tmp_base(create=True)
    if base is None:
        raise OSError(f"the temp folder {tempfile.gettempdir()}/agentcli-{os.getuid()} is not "
                      "a private folder of this user")
    for name in os.listdir(base):  # what workers that died left behind
        if name.isdigit() and not _alive(int(name)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    path = os.path.join(base, str(os.getpid()))
    shutil.rmtree(path, ignore_errors=True)
    os.mkdir(path, 0o700)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
