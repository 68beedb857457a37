"""The stdio transport of `agentcli mcp serve`: bounded, and every request gets an answer.

Why not the SDK's ``stdio_server``: it reads a line without bound (a 150 MB line cost 650 MiB)
and drops a message that is not valid JSON-RPC without a word, so a host waits forever for the
answer to a request with ``params: "x"`` or without a ``method``. Here:

- a message is at most ``MAX_MESSAGE_BYTES`` (16 MiB, the cap the client applies to servers):
  a longer line is skipped as it arrives (never held whole) and answered with -32600 Invalid
  Request, carrying its id when the id comes before the bulk of the line, else ``null``;
- a line that is not JSON is answered -32700 Parse error (id ``null``); a request whose
  ``params`` are not an object -32602 Invalid params; a message that is no request (no
  ``method``, a wrong ``jsonrpc``, an id that is neither a string nor a number) -32600, with
  its id when it has a usable one. Notifications are never answered (JSON-RPC 2.0).

While serving, fd 0 reads ``/dev/null`` and fd 1 writes to stderr (the protocol uses private
duplicates), so nothing a tool or library prints can corrupt the wire; both are restored after.
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager, suppress
from typing import Any, AsyncIterator, Callable

import anyio

from .stdio import MAX_MESSAGE_BYTES, Oversized, split_lines

_CHUNK = 65_536
DRAIN_WAIT = 2.0  # seconds the answers already given get to reach the host at the end


def leading_id(head: bytes) -> str | int | None:
    """The ``id`` of a JSON-RPC object whose start is ``head``, when it can be read before the
    first member that is cut off; else None."""
    text = head.decode("utf-8", "replace")
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    i = skip(0)
    if not text.startswith("{", i):
        return None
    i += 1
    try:
        while True:
            key, i = decoder.raw_decode(text, skip(i))
            i = skip(i)
            if not isinstance(key, str) or not text.startswith(":", i):
                return None
            value, i = decoder.raw_decode(text, skip(i + 1))
            if key == "id":
                return value if _usable_id(value) else None
            i = skip(i)
            if not text.startswith(",", i):
                return None
            i += 1
    except ValueError:  # a member cut off by the head's end, or not JSON
        return None


def _usable_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def check_line(line: bytes, types: Any) -> tuple[Any, Any]:
    """(the message to serve, or None; the error reply to send, or None)."""
    try:
        message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValueError:
        return None, _reply_to_invalid(line, types)
    if isinstance(message, types.JSONRPCNotification) and b'"id"' in line:
        obj = json.loads(line)  # validated above: JSON, an object
        if "id" in obj:  # e.g. "id": true, read as a notification: a request with a bad id
            return None, _error(types, None, types.INVALID_REQUEST,
                                "Invalid Request: the id must be a string or a number")
    return message, None


def _reply_to_invalid(line: bytes, types: Any) -> Any:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return _error(types, None, types.PARSE_ERROR, "Parse error: the message is not JSON")
    if not isinstance(obj, dict):
        return _error(types, None, types.INVALID_REQUEST,
                      "Invalid Request: a message must be a JSON object (batches are not "
                      "supported)")
    rid = obj.get("id") if _usable_id(obj.get("id")) else None
    method = obj.get("method")
    if "method" not in obj and ("result" in obj or "error" in obj):
        return None  # a malformed answer to a request of ours: nobody waits for a reply
    if obj.get("jsonrpc") != "2.0":
        why = 'jsonrpc must be "2.0"'
    elif not isinstance(method, str):
        why = "a request needs a method (a string)" if method is None else \
            "the method must be a string"
    elif "id" not in obj:
        return None  # a notification with bad params: notifications are never answered
    elif rid is None:
        why = "the id must be a string or a number"
    else:
        return _error(types, rid, types.INVALID_PARAMS,
                      f"Invalid params for {method}: params must be an object"
                      if not isinstance(obj.get("params"), (dict, type(None)))
                      else f"Invalid params for {method}")
    return _error(types, rid, types.INVALID_REQUEST, f"Invalid Request: {why}")


def _error(types: Any, rid: str | int | None, code: int, message: str) -> Any:
    return types.JSONRPCError(jsonrpc="2.0", id=rid, error=types.ErrorData(code=code,
                                                                           message=message))


def _claim_stdio() -> tuple[int, int, Callable[[], None]]:
    """(wire in, wire out, restore): private duplicates of fds 0 and 1; fd 0 then reads
    /dev/null and fd 1 writes to stderr until ``restore``."""
    wire_in, wire_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)

    def restore() -> None:
        with suppress(OSError):
            os.dup2(wire_in, 0)
            os.dup2(wire_out, 1)

    return wire_in, wire_out, restore


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@asynccontextmanager
async def server_streams(warn: Callable[[str], None],
                         max_bytes: int = MAX_MESSAGE_BYTES) -> AsyncIterator[tuple[Any, Any]]:
    """(read stream, write stream) of ``SessionMessage`` over this process's stdin/stdout."""
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    wire_in, wire_out, restore = _claim_stdio()
    read_writer, read_stream = anyio.create_memory_object_stream[Any](0)
    write_stream, write_reader = anyio.create_memory_object_stream[Any](0)
    replies = write_stream.clone()

    async def receive() -> bytes:
        data = await anyio.to_thread.run_sync(os.read, wire_in, _CHUNK, abandon_on_cancel=True)
        if not data:
            raise anyio.EndOfStream
        return data

    async def reader() -> None:
        async with read_writer, replies:
            with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                async for line in split_lines(receive, max_bytes):
                    if isinstance(line, Oversized):
                        rid = leading_id(line.head)
                        warn(f"mcp serve: skipped a message larger than {max_bytes:,} bytes "
                             f"(id {json.dumps(rid)})")
                        reply = _error(types, rid, types.INVALID_REQUEST,
                                       f"Invalid Request: the message is larger than "
                                       f"{max_bytes:,} bytes")
                        message = None
                    else:
                        message, reply = check_line(line, types)
                    if message is not None:
                        await read_writer.send(SessionMessage(message))
                    if reply is not None:
                        await replies.send(SessionMessage(reply))

    async def writer() -> None:
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async with write_reader:
                async for item in write_reader:
                    data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await anyio.to_thread.run_sync(_write_all, wire_out,
                                                   (data + "\n").encode("utf-8"))

    written = anyio.Event()

    async def writer_then_done() -> None:
        try:
            await writer()
        finally:
            written.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer_then_done)
            try:
                yield read_stream, write_stream
            finally:
                await write_stream.aclose()  # the answers already given still go out
                with anyio.move_on_after(DRAIN_WAIT):
                    await written.wait()
                tg.cancel_scope.cancel()
    finally:
        restore()
