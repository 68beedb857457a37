"""The client half of the official `mcp` SDK, imported without its server half.

Any ``import mcp...`` first runs the package's ``__init__``, which re-exports the server side
too (``MCPServer``, its resources and prompts, the stdio and HTTP servers with starlette,
sse-starlette and uvicorn); so does ``mcp.client``'s, through ``mcp.client.client.Client``,
which imports the server for its in-process transport. agentcli talks to servers over pipes or
HTTP and needs none of it: measured (bench/bench_mcp.py's "SDK import" line), the client half
costs about half the CPU of ``from mcp.client.client import Client``, in a start-up where every
process competes for the same cores (the servers are booting meanwhile).

``client_only_import`` registers the two packages without running their ``__init__`` (when
nothing imported them yet): their submodules import as usual, and the first use of a name that
an ``__init__`` defines (``from mcp import Client`` elsewhere in the process) runs it then.
``connect`` is what ``Client(transport, mode="legacy", cache=None, client_info=...)`` does, from
the SDK parts it is made of: a ``ClientSession`` over a ``JSONRPCDispatcher``, the initialize
handshake, ``list_tools`` pages, and ``call_tool`` with the SDK's input-required driver.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from contextlib import AsyncExitStack, asynccontextmanager
from types import ModuleType, SimpleNamespace
from typing import Any, AsyncIterator, Callable

LIGHT_PACKAGES = ("mcp", "mcp.client")


def client_only_import() -> None:
    """Register ``LIGHT_PACKAGES`` uninitialised (those not imported yet; see the module doc)."""
    for name in LIGHT_PACKAGES:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return  # not an installed package: the real import says what is wrong
        module = importlib.util.module_from_spec(spec)
        module.__getattr__ = _rest_of_package(module, spec)  # type: ignore[attr-defined]
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)


def _rest_of_package(module: ModuleType, spec: Any) -> Callable[[str], Any]:
    """The package's ``__getattr__`` (PEP 562): a submodule's name is left to the import
    system; any other name runs the package's real ``__init__`` once, then is looked up."""
    lock = threading.Lock()

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module protocol's name
        if not name.startswith("__") and importlib.util.find_spec(
                f"{module.__name__}.{name}") is not None:
            raise AttributeError(name)  # `from mcp.client import session`: import it
        with lock:
            if module.__dict__.pop("__getattr__", None) is not None:
                spec.loader.exec_module(module)
        try:
            return module.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}") from None

    return __getattr__


def load_sdk(http: bool = False) -> SimpleNamespace:
    """Every SDK name the hub uses; the Streamable HTTP transport's (httpx2 and all) only with
    ``http`` (a URL server is configured). The client half is made of SDK modules that are not
    its documented API (``ClientSession`` over ``JSONRPCDispatcher``, the input-required
    driver): an SDK release that moves them gets the SDK's own ``Client`` instead (``connect``
    uses it), slower to import but the same protocol."""
    try:
        sdk = _client_half()
    except (ImportError, AttributeError):
        from mcp.client.client import Client

        sdk = _common_names()
        sdk.Client = Client
    if http:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        sdk.httpx, sdk.http_client = httpx2, create_mcp_http_client
        sdk.streamable_http_client = streamable_http_client
    return sdk


def _common_names() -> SimpleNamespace:
    import mcp_types
    from mcp.shared.exceptions import MCPError
    from mcp.shared.message import SessionMessage  # noqa: F401 - for the stdio transport

    return SimpleNamespace(types=mcp_types, Implementation=mcp_types.Implementation,
                           MCPError=MCPError, CONNECTION_CLOSED=mcp_types.CONNECTION_CLOSED,
                           Client=None)


def _client_half() -> SimpleNamespace:
    client_only_import()
    from mcp.client._input_required import DEFAULT_INPUT_REQUIRED_MAX_ROUNDS, \
        run_input_required_driver
    from mcp.client.session import ClientRequestContext, ClientSession
    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

    sdk = _common_names()
    sdk.__dict__.update(ClientSession=ClientSession, JSONRPCDispatcher=JSONRPCDispatcher,
                        ClientRequestContext=ClientRequestContext,
                        drive_input_required=run_input_required_driver,
                        max_input_rounds=DEFAULT_INPUT_REQUIRED_MAX_ROUNDS)
    return sdk


class Session:
    """The connected session of one server: the part of ``mcp.Client``'s API agentcli uses,
    doing what ``Client`` does with ``mode="legacy"``, no cache and no extensions."""

    def __init__(self, sdk: SimpleNamespace, session: Any) -> None:
        self._sdk = sdk
        self.session = session

    async def list_tools(self, *, cursor: str | None = None) -> Any:
        return await self.session.list_tools(
            params=self._sdk.types.PaginatedRequestParams(cursor=cursor, _meta=None))

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None, *,
                        progress_callback: Any = None) -> Any:
        """The tool's ``CallToolResult``; an ``InputRequiredResult`` goes through the SDK's
        driver as in ``Client.call_tool`` (the HEADER_MISMATCH re-list there is for 2026-07-28
        connections only, which the initialize handshake never negotiates)."""
        session, sdk = self.session, self._sdk

        async def send(responses: Any, state: str | None) -> Any:
            return await session.call_tool(name, arguments, progress_callback=progress_callback,
                                           input_responses=responses, request_state=state,
                                           allow_input_required=True)

        first = await send(None, None)
        if not isinstance(first, sdk.types.InputRequiredResult):
            return first

        async def dispatch(key: str, request: Any) -> Any:
            meta = request.params.meta if request.params else None
            ctx = sdk.ClientRequestContext(session=session, request_id=key, meta=meta)
            return await session.dispatch_input_request(ctx, request)

        return await sdk.drive_input_required(first, dispatch=dispatch, retry=send,
                                              max_rounds=sdk.max_input_rounds)


@asynccontextmanager
async def connect(sdk: SimpleNamespace, transport: Any, client_info: Any
                  ) -> AsyncIterator[Session]:
    """The initialized session over ``transport`` (an async context manager of the read and
    write streams), closed with it."""
    if sdk.Client is not None:  # the SDK's own client (load_sdk)
        async with sdk.Client(transport, mode="legacy", cache=None,
                              client_info=client_info) as client:
            yield client
        return
    async with AsyncExitStack() as stack:
        read_stream, write_stream = await stack.enter_async_context(transport)
        session = sdk.ClientSession(dispatcher=sdk.JSONRPCDispatcher(read_stream, write_stream),
                                    client_info=client_info)
        await stack.enter_async_context(session)
        await session.initialize()
        yield Session(sdk, session)
