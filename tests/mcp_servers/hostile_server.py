"""A hand-written stdio "MCP server" that misbehaves on purpose (no SDK: it must be able to
break the protocol).

    python hostile_server.py MODE
      exit       exits at once (fails to start)
      silent     reads requests, never answers (hangs in initialize)
      garbage    prints junk lines between correct answers (still works)
      huge       answers initialize, then tools/list with a 40 MB line
      only-junk  answers nothing but junk
"""

from __future__ import annotations

import json
import sys
import time


def send(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


TOOL = {"name": "ping", "description": "Answers pong.",
        "inputSchema": {"type": "object", "properties": {}}}


def main() -> None:
    mode = sys.argv[1]
    if mode == "exit":
        print("hostile: exiting at once", file=sys.stderr)
        sys.exit(1)
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "id" not in msg:
            continue
        if mode == "silent":
            continue
        if mode == "only-junk":
            sys.stdout.write("this is not json\n{\"half\": \n")
            sys.stdout.flush()
            continue
        method, rid = msg.get("method"), msg["id"]
        if mode == "garbage":
            sys.stdout.write("Server running on stdio!\n{not json}\n\n")
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": msg["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "hostile", "version": "0"}}})
        elif method == "tools/list":
            if mode == "huge":
                sys.stdout.write('{"jsonrpc": "2.0", "id": %d, "result": {"tools": [], "x": "'
                                 % rid)
                chunk = "y" * 1_000_000
                for _ in range(40):
                    sys.stdout.write(chunk)
                sys.stdout.flush()
                time.sleep(60)
                return
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [TOOL]}})
        elif method == "tools/call":
            send({"jsonrpc": "2.0", "id": rid,
                  "result": {"content": [{"type": "text", "text": "pong"}]}})
        else:
            send({"jsonrpc": "2.0", "id": rid,
                  "error": {"code": -32601, "message": "method not found"}})


if __name__ == "__main__":
    main()
