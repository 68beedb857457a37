"""A stdio transport for MCP servers that a hostile server cannot hang or exhaust.

Why not the SDK's ``stdio_client``: it buffers a line without bound (and re-joins the buffer on
every chunk, so a 100 MB line costs quadratic time). Here a message is capped at
``MAX_MESSAGE_BYTES``: past it the server is stopped and its calls fail. A line that is not
JSON-RPC (a banner some servers print) is noted in the server's log and skipped. The process is
spawned before the SDK is imported (``spawn``), so the server starts while the SDK loads; it runs
in its own session (a Ctrl-C on the terminal does not reach it) with stderr in its log file, and
on Linux under a subreaper (``reaper.py``), so a daemon it double-forks is ended with it.
Shutdown: stdin closed, a short grace period, then the whole process group is terminated (and
killed) so nothing it started outlives agentcli.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, AsyncIterator, Awaitable, Callable

import anyio
from anyio.abc import Process

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_LOG_BYTES = 1_000_000
EXIT_GRACE = 1.0  # seconds for a server to exit by itself once its stdin is closed
KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL to its process group
_CHUNK = 65_536


class MessageTooLarge(Exception):
    pass


@dataclass(frozen=True)
class Oversized:
    """A line longer than the cap: only its start is kept (to find a request's id); the rest
    of it was skipped unread into memory."""

    head: bytes


HEAD_BYTES = 65_536


async def split_lines(receive: Callable[[], Awaitable[bytes]], max_bytes: int
                      ) -> AsyncIterator[bytes | Oversized]:
    """The non-blank lines of a byte stream, each at most ``max_bytes``; a longer one is
    yielded once as ``Oversized`` and the rest of it is dropped as it arrives, so memory stays
    near ``max_bytes`` whatever the peer sends. Ends at EOF (``receive`` raising
    ``anyio.EndOfStream``)."""
    buf = bytearray()
    skipping = False
    while True:
        try:
            chunk = await receive()
        except anyio.EndOfStream:
            return
        if skipping:
            nl = chunk.find(b"\n")
            if nl == -1:
                continue
            chunk, skipping = chunk[nl + 1:], False
        scan = len(buf)
        buf += chunk
        while (nl := buf.find(b"\n", scan)) != -1:
            if nl > max_bytes:
                yield Oversized(bytes(buf[:HEAD_BYTES]))
            elif buf[:nl].strip():
                yield bytes(buf[:nl])
            del buf[:nl + 1]
            scan = 0
        if len(buf) > max_bytes:
            yield Oversized(bytes(buf[:HEAD_BYTES]))
            buf.clear()
            skipping = True


INHERITED_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR")


def child_env(extra: dict[str, str] | Any) -> dict[str, str]:
    """The server's environment: a few basics (the SDK's choice, plus locale and TMPDIR) and its
    own ``env``. API keys in agentcli's environment are not passed on unless named there."""
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update(extra)
    return env


def open_log(path: Path) -> IO[Any]:
    """The server's log, appended to; one over ``MAX_LOG_BYTES`` is moved to ``.1`` first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            path.replace(path.with_suffix(path.suffix + ".1"))
    except OSError:
        pass
    f = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by the hub
    f.write(f"\n[agentcli] --- {time.strftime('%Y-%m-%d %H:%M:%S')} starting ---\n")
    f.flush()
    return f


async def spawn(command: str, args: tuple[str, ...], env: dict[str, str], cwd: str | None,
                errlog: IO[Any]) -> Process:
    """Start the server (on Linux under its subreaper, ``reaper.py``: the process returned is
    the reaper's, and it ends when the server does); OSError when the command cannot be run."""
    from . import reaper

    argv = [command, *args]
    if reaper.supported():
        check_command(command, env, cwd)  # the reaper's exec would fail where nobody sees it
        argv = reaper.command_line(argv, env)
    return await anyio.open_process(argv, env=env, cwd=cwd, stderr=errlog,
                                    start_new_session=True)


def check_command(command: str, env: dict[str, str], cwd: str | None) -> None:
    """OSError (as exec would raise it) when ``command`` is no runnable file."""
    import errno
    import shutil

    if os.sep in command:
        path = os.path.join(cwd or os.getcwd(), command)
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command)
        if not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), command)
    elif shutil.which(command, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command)


def _note(errlog: IO[Any], text: str) -> None:
    with suppress(OSError, ValueError):
        errlog.write(f"[agentcli] {text}\n")
        errlog.flush()


@asynccontextmanager
async def stdio_transport(process: Process, errlog: IO[Any], on_problem: Any = None,
                          on_exit: Any = None, max_bytes: int = MAX_MESSAGE_BYTES
                          ) -> AsyncIterator[tuple[Any, Any]]:
    """(read stream, write stream) of ``SessionMessage`` for an already spawned server;
    ``on_problem(text)`` hears why the transport gave up on the server, ``on_exit(code)`` that
    it exited by itself (before agentcli stopped it)."""
    stopping = False
    reported = False

    async def exited() -> bool:
        """Whether the server has exited by itself (told to ``on_exit`` once)."""
        nonlocal reported
        with anyio.move_on_after(0.5):
            while process.returncode is None:
                await anyio.sleep(0.01)
        if process.returncode is None or stopping:
            return False
        if not reported:
            reported = True
            _note(errlog, f"the server exited (code {process.returncode})")
            if on_exit is not None:
                on_exit(process.returncode)
        return True
    import mcp_types
    from mcp.shared.message import SessionMessage

    read_writer, read_stream = anyio.create_memory_object_stream[Any](0)
    write_stream, write_reader = anyio.create_memory_object_stream[Any](0)

    async def reader() -> None:
        assert process.stdout is not None
        stdout = process.stdout
        async with read_writer:
            try:
                async for line in split_lines(lambda: stdout.receive(_CHUNK), max_bytes):
                    if isinstance(line, Oversized):
                        raise MessageTooLarge
                    try:
                        message = mcp_types.jsonrpc_message_adapter.validate_json(
                            line, by_name=False)
                    except ValueError:
                        _note(errlog, "ignored a stdout line that is not a JSON-RPC message: "
                              + line[:200].decode("utf-8", "replace"))
                        continue
                    await read_writer.send(SessionMessage(message))
                await exited()  # EOF: most likely it exited; say so before the session ends
            except MessageTooLarge:
                problem = f"sent a message larger than {max_bytes:,} bytes and was stopped"
                _note(errlog, "the server " + problem)
                if on_problem is not None:
                    on_problem(problem)
                with suppress(OSError, ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                pass

    async def writer() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for item in write_reader:
                    data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send((data + "\n").encode("utf-8"))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await exited()  # a broken pipe: most likely it exited; say so before the end
            await read_writer.aclose()  # the session sees the end instead of waiting forever

    async def watcher() -> None:
        """A server that dies while a child of its own keeps stdout open never sends EOF: its
        exit alone must end the session, or a call would wait for its timeout."""
        while process.returncode is None:
            await anyio.sleep(0.05)
        if await exited():
            await anyio.sleep(0.2)  # let the reader deliver what was already written
            await read_writer.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        tg.start_soon(watcher)
        try:
            yield read_stream, write_stream
        finally:
            stopping = True
            with anyio.CancelScope(shield=True):
                await write_stream.aclose()
                await stop(process)
            tg.cancel_scope.cancel()


async def _end_group(pgid: int) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``KILL_GRACE``. (Not the SDK's
    helper: this may run while the SDK is being imported in another thread.)"""
    def signal_group(sig: int) -> bool:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False  # the group is gone
        except PermissionError:
            pass
        return True

    if not signal_group(signal.SIGTERM):
        return
    with anyio.move_on_after(KILL_GRACE):
        while signal_group(0):
            await anyio.sleep(0.01)
        return
    signal_group(signal.SIGKILL)


async def stop(process: Process) -> None:
    """Close stdin, wait ``EXIT_GRACE``, then SIGTERM/SIGKILL the process group. Bounded."""
    with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        if process.stdin is not None:
            await process.stdin.aclose()
    with anyio.move_on_after(EXIT_GRACE):
        while process.returncode is None:
            await anyio.sleep(0.01)
    # the leader may be gone with children left in its group: signal the group either way
    await _end_group(process.pid)
    with anyio.move_on_after(KILL_GRACE), suppress(OSError, anyio.BrokenResourceError,
                                                   anyio.ClosedResourceError):
        await process.aclose()  # closes the pipes' transports too (else a warning at exit)
