"""MCP client sessions for a synchronous agentcli: one event loop in a background thread.

``McpHub`` owns that loop (an anyio blocking portal) and one long-lived task per server, which
spawns it (or opens its URL), runs the handshake, lists its tools and then holds the session
open until ``close``. All servers start at once; each has its own startup deadline, and one that
fails, hangs or crashes is reported with its log file while the others keep working.

Calls (``call``) are submitted from the main thread and waited on in short slices, so a Ctrl-C
lands at once: the call's task is cancelled, which makes the SDK send
``notifications/cancelled`` for the request, and the KeyboardInterrupt goes on to the agent.
The SDK's own logging goes to ``logs/mcp-client.log`` in the data dir, never to the terminal.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import threading
import time
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, AsyncIterator, Callable, Optional, Sequence

from ..errors import AgentCliError, redact_url
from .config import ServerSpec, log_dir, log_path
from .sdk import connect, load_sdk

MAX_TOOL_PAGES = 50
PROGRESS_POLL = 0.1  # seconds: how often a waiting call looks for news (and for Ctrl-C)
CANCEL_WAIT = 2.0  # seconds a Ctrl-C waits for the cancellation notice to go out
CLOSE_WAIT = 5.0
SPAWN_WAIT = 1.0  # seconds ``start`` waits for the server processes to be started


Progress = Callable[[float, Optional[float], Optional[str]], None]


class McpCallError(Exception):
    """A call that could not be made or did not finish (server gone, timeout, bad result)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass
class ServerState:
    spec: ServerSpec
    log: Path
    status: str = "starting"  # starting | ready | failed | stopped
    error: str | None = None
    tools: list[Any] = field(default_factory=list)
    client: Any = None
    exit_code: int | None = None
    """Set when the server exited by itself."""
    problem: str | None = None
    """What the transport saw go wrong (e.g. an oversized message)."""
    started_in: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    """Set when the server is ready or has failed to start."""
    spawned: threading.Event = field(default_factory=threading.Event)
    """Set once its process was started (or could not be; at once for a URL server)."""
    stop: Any = None  # anyio.Event, made in the loop


def _leaf(e: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups from task groups."""
    while getattr(e, "exceptions", None):
        e = e.exceptions[0]  # type: ignore[attr-defined]
    return e


def describe_error(e: BaseException) -> str:
    e = _leaf(e)
    if isinstance(e, AgentCliError):
        return e.message
    if isinstance(e, McpCallError):
        return str(e)
    text = redact_url(str(e).strip().splitlines()[0]) if str(e).strip() else ""
    if type(e).__name__ == "MCPError" and text:
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class McpHub:
    """The MCP servers of one run. ``start`` returns at once; ``wait`` blocks until every server
    is ready or has failed; ``close`` stops them all (idempotent, bounded)."""

    def __init__(self, specs: Sequence[ServerSpec], data_dir: Path,
                 client_name: str = "agentcli") -> None:
        self.data_dir = data_dir
        self.servers = {s.name: ServerState(s, log_path(data_dir, s.name)) for s in specs}
        self._client_name = client_name
        self._stack = ExitStack()
        self._portal: Any = None
        self._tasks: list[concurrent.futures.Future[Any]] = []
        self._logs: list[IO[Any]] = []
        self._log_handler: logging.Handler | None = None
        self._closed = False
        self._sdk: Any = None
        self._sdk_error: BaseException | None = None
        self._sdk_loaded: Any = None

    # -- lifecycle

    def start(self) -> McpHub:
        from anyio.from_thread import start_blocking_portal

        self._quiet_sdk_logging()
        self._portal = self._stack.enter_context(start_blocking_portal(name="agentcli-mcp"))
        self._sdk_loaded = self._portal.call(_new_event)
        for st in self.servers.values():
            self._tasks.append(self._portal.start_task_soon(self._run_server, st))
        for st in self.servers.values():  # no other thread of ours competes for the GIL meanwhile
            st.spawned.wait(SPAWN_WAIT)
        self._tasks.append(self._portal.start_task_soon(self._load_sdk))
        return self

    def wait(self) -> None:
        """Until every server is ready or failed (each within its own startup timeout)."""
        for st in self.servers.values():
            while not st.done.wait(0.1):
                pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._portal is not None:
            try:
                for st in self.servers.values():
                    if st.stop is not None:
                        self._portal.call(st.stop.set)
                concurrent.futures.wait(self._tasks, timeout=CLOSE_WAIT)
                self._portal.call(self._portal.stop, True)
            except RuntimeError:  # the portal already stopped
                pass
        self._stack.close()
        for f in self._logs:
            try:
                f.close()
            except OSError:
                pass
        if self._log_handler is not None:
            logging.getLogger("mcp").removeHandler(self._log_handler)
            self._log_handler.close()

    def __enter__(self) -> McpHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _quiet_sdk_logging(self) -> None:
        """The SDK logs protocol trouble with tracebacks; they belong in a file, not on the
        terminal (Python's last-resort handler would print them)."""
        sdk = logging.getLogger("mcp")
        try:
            log_dir(self.data_dir).mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = logging.FileHandler(log_dir(self.data_dir) /
                                                           "mcp-client.log", encoding="utf-8")
        except OSError:
            handler = logging.NullHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        sdk.addHandler(handler)
        sdk.propagate = False
        self._log_handler = handler

    # -- the SDK, imported once in a worker thread (importing it from two threads at once can
    # -- end in Python's import-lock deadlock detection)

    async def _load_sdk(self) -> None:
        import anyio

        try:
            http = any(st.spec.url for st in self.servers.values())
            self._sdk = await anyio.to_thread.run_sync(load_sdk, http)
        except Exception as e:  # noqa: BLE001 - every server reports it
            self._sdk_error = e
        finally:
            self._sdk_loaded.set()

    async def sdk(self) -> Any:
        """The SDK's names (after the servers were spawned: they start while it loads)."""
        await self._sdk_loaded.wait()
        if self._sdk is None:
            why = describe_error(self._sdk_error) if self._sdk_error else "cancelled"
            raise McpCallError(f"the MCP SDK failed to load: {why}")
        return self._sdk

    # -- one server (runs in the loop thread)

    async def _run_server(self, st: ServerState) -> None:
        import anyio

        st.stop = anyio.Event()
        spec = st.spec
        began = time.perf_counter()
        scope = anyio.CancelScope(deadline=anyio.current_time() + spec.startup_timeout)
        try:
            with scope:
                async with self._connect(st) as client:
                    tools = await self._list_tools(client)
                    scope.deadline = math.inf
                    st.client, st.tools = client, tools
                    st.started_in = time.perf_counter() - began
                    st.status = "ready"
                    st.done.set()
                    await st.stop.wait()
            if st.status == "starting":
                st.status, st.error = "failed", (st.problem or f"did not start within "
                                                 f"{spec.startup_timeout:g} s")
        except Exception as e:  # noqa: BLE001 - a server's failure is reported, never raised
            if st.status == "starting":
                st.status, st.error = "failed", _startup_error(st, e, self._sdk)
        finally:
            if st.status == "failed":
                _note(st, f"failed: {st.error}")
            if st.status == "ready":
                st.status = "stopped"
            st.client = None
            st.spawned.set()
            st.done.set()

    @asynccontextmanager
    async def _connect(self, st: ServerState) -> AsyncIterator[Any]:
        spec = st.spec.resolved()
        async with AsyncExitStack() as stack:
            if spec.url:
                st.spawned.set()
                sdk = await self.sdk()
                http = await stack.enter_async_context(sdk.http_client(
                    headers=dict(spec.headers) or None,
                    timeout=sdk.httpx.Timeout(30.0, read=spec.timeout + 30.0)))
                transport: Any = sdk.streamable_http_client(spec.url, http_client=http)
            else:
                from .stdio import child_env, open_log, spawn, stdio_transport, stop

                errlog = open_log(st.log)
                self._logs.append(errlog)
                env = child_env(spec.env)
                if spec.cwd and not os.path.isdir(spec.cwd):
                    raise McpCallError(f"its cwd {spec.cwd} is not a folder")
                try:
                    process = await spawn(spec.command or "", spec.args, env, spec.cwd, errlog)
                except OSError as e:
                    raise McpCallError(f"cannot run {spec.command}: "
                                       f"{e.strerror or e}") from e
                finally:
                    st.spawned.set()
                try:
                    sdk = await self.sdk()
                except BaseException:  # a timeout while the SDK loads: the process must go
                    import anyio

                    with anyio.CancelScope(shield=True):
                        await stop(process)
                    raise
                transport = stdio_transport(process, errlog,
                                            lambda text: setattr(st, "problem", text),
                                            lambda code: setattr(st, "exit_code", code))
            info = sdk.Implementation(name=self._client_name, version=_version())
            yield await stack.enter_async_context(connect(sdk, transport, info))

    async def _list_tools(self, client: Any) -> list[Any]:
        tools: list[Any] = []
        cursor = None
        for _ in range(MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    # -- calls (from the main thread)

    def call(self, server: str, tool: str, arguments: dict[str, Any],
             on_progress: Progress | None = None) -> Any:
        """The server's CallToolResult. McpCallError when the server is not running, the call
        timed out or failed in transport; KeyboardInterrupt after cancelling it.

        ``on_progress(progress, total, message)``: the call asks the server for progress (a
        progress token) and hears the latest of it here, in the calling thread, at most every
        ``PROGRESS_POLL`` seconds (updates in between are coalesced)."""
        st = self.servers[server]
        if st.status != "ready" or st.client is None or self._portal is None:
            raise McpCallError(f"MCP server '{server}' is not running"
                               + (f" ({st.error})" if st.error else ""))
        finished = threading.Event()
        latest: list[Any] = [None]  # written in the loop thread, read here
        try:
            future = self._portal.start_task_soon(self._call, st, tool, arguments, finished,
                                                  latest if on_progress else None)
        except RuntimeError as e:
            raise McpCallError(f"MCP server '{server}' is not running") from e
        told = None
        try:
            while True:
                try:
                    return future.result(timeout=PROGRESS_POLL)
                except concurrent.futures.TimeoutError:
                    now = latest[0]
                    if on_progress is not None and now is not None and now is not told:
                        told = now
                        on_progress(*now)
        except KeyboardInterrupt:
            future.cancel()  # the SDK sends notifications/cancelled for the request
            finished.wait(CANCEL_WAIT)
            raise
        except concurrent.futures.CancelledError as e:
            raise McpCallError("the call was cancelled") from e

    async def _call(self, st: ServerState, tool: str, arguments: dict[str, Any],
                    finished: threading.Event, latest: list[Any] | None) -> Any:
        import anyio

        MCPError, CONNECTION_CLOSED = self._sdk.MCPError, self._sdk.CONNECTION_CLOSED  # noqa: N806
        timeout = st.spec.timeout
        progress_callback = None
        if latest is not None:
            async def progress_callback(progress: float, total: float | None,
                                        message: str | None) -> None:
                latest[0] = (progress, total, message)  # a new tuple: the caller sees a change
        try:
            with anyio.fail_after(timeout):
                return await st.client.call_tool(tool, arguments,
                                                 progress_callback=progress_callback)
        except TimeoutError as e:
            raise McpCallError(f"no answer within {timeout:g} s; the call was cancelled (raise "
                               f"mcp_servers.{st.spec.name}.timeout for slower tools)",
                               timed_out=True) from e
        except MCPError as e:
            if e.code == CONNECTION_CLOSED:
                st.status, st.error = "failed", st.problem or (
                    f"exited during a call (exit code {st.exit_code})"
                    if st.exit_code is not None else "stopped during a call")
                raise McpCallError(f"MCP server '{st.spec.name}' {st.error} "
                                   f"(log: {st.log})") from e
            raise McpCallError(f"the server refused the call: {describe_error(e)}") from e
        except Exception as e:  # noqa: BLE001 - e.g. a result that fails its output schema
            raise McpCallError(f"the call failed: {describe_error(e)}") from e
        finally:
            finished.set()


def _startup_error(st: ServerState, e: BaseException, sdk: Any) -> str:
    """Why a server did not start, in the user's terms (not "Connection closed")."""
    if st.problem:
        return st.problem
    if st.exit_code is not None:
        return f"exited during start-up (exit code {st.exit_code})"
    leaf = _leaf(e)
    if sdk is not None and st.spec.url and isinstance(leaf, sdk.httpx.TransportError):
        return f"cannot connect to {redact_url(st.spec.url)}: {leaf}"
    if sdk is not None and isinstance(leaf, sdk.MCPError):
        return f"the handshake failed: {describe_error(leaf)}"
    return describe_error(e)


def _note(st: ServerState, text: str) -> None:
    """Append a line to the server's log (so the log a warning names always exists)."""
    try:
        st.log.parent.mkdir(parents=True, exist_ok=True)
        with open(st.log, "a", encoding="utf-8") as f:
            f.write(f"[agentcli] {text}\n")
    except OSError:
        pass


def _new_event() -> Any:
    import anyio

    return anyio.Event()


def _version() -> str:
    from .. import __version__

    return __version__


def start_hub(specs: Sequence[ServerSpec], data_dir: Path) -> McpHub | None:
    """A started hub for the enabled servers in ``specs`` (None when there are none)."""
    enabled = [s for s in specs if not s.disabled]
    if not enabled:
        return None
    return McpHub(enabled, data_dir).start()
