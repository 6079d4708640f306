"""A real MCP Python SDK 2.x client against Bulwark (test/interop-python.test.ts runs it).

Usage:
  python_client.py --mode MODE --file PATH --denied PATH (--http URL | --stdio -- COMMAND ARGS...)

MODE is the SDK's own `Client(mode=...)`: `legacy` (the 2025-11-25 `initialize` handshake),
`auto` (the SDK default: probe `server/discover` at 2026-07-28, fall back to `initialize` on
anything that is not positive modern evidence) or `2026-07-28` (adopt that version without a
probe: the SDK adopts a result it makes up; this script then sends `server/discover` itself so
the server has to answer it).

Prints one JSON object on stdout: what was negotiated, the tool names, one allowed call and one
denied call as the SDK parsed them. The test asserts on it; this script decides nothing.
Environment: PYTHON_CLIENT_BEARER, when set, is sent as `Authorization: Bearer` over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import httpx2
import mcp_types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def result_json(result: Any) -> dict[str, Any]:
    """The parts of a CallToolResult the test looks at, as plain JSON."""
    return {
        "is_error": bool(result.is_error),
        "structured": result.structured_content,
        "meta": result.meta,
        "text": [c.text for c in result.content if getattr(c, "type", None) == "text"],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.http:
        bearer = os.environ.get("PYTHON_CLIENT_BEARER")
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
        server: Any = streamable_http_client(args.http, http_client=httpx2.AsyncClient(headers=headers, timeout=30))
    else:
        command, *rest = args.command
        # The whole environment the test gave us, so the server child sees the same one.
        server = StdioServerParameters(command=command, args=rest, env=dict(os.environ))
    out: dict[str, Any] = {"mode": args.mode}
    async with Client(server, mode=args.mode, read_timeout_seconds=30) as client:
        session = client.session
        out["protocol_version"] = client.protocol_version
        out["handshake"] = "discover" if session.discover_result is not None else "initialize"
        if args.mode not in ("legacy", "auto"):
            # A version pin adopts a result the SDK made up (no wire traffic; `discover()` would
            # return that one): send `server/discover` itself so the server has to answer it.
            raw = await session.send_discover(args.mode)
            discovered = mcp_types.DiscoverResult.model_validate(raw)
            out["supported_versions"] = list(discovered.supported_versions)
            out["server_name"] = ((raw.get("_meta") or {}).get("io.modelcontextprotocol/serverInfo") or {}).get("name")
        else:
            if session.discover_result is not None:
                out["supported_versions"] = list(session.discover_result.supported_versions)
            info = client.server_info
            out["server_name"] = info.name if info is not None else None
        listed = await client.list_tools()
        out["tools"] = sorted(t.name for t in listed.tools)
        out["read_file"] = result_json(await client.call_tool("read_file", {"path": args.file}))
        out["denied"] = result_json(await client.call_tool("read_file", {"path": args.denied}))
    return out


def leaves(exc: BaseException) -> list[BaseException]:
    """The innermost exceptions of (possibly nested) anyio exception groups: the real causes."""
    nested = getattr(exc, "exceptions", None)
    if not nested:
        return [exc]
    return [leaf for e in nested for leaf in leaves(e)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--denied", required=True)
    parser.add_argument("--http")
    parser.add_argument("--stdio", action="store_true")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args()
    if bool(args.http) == bool(args.stdio) or (args.stdio and not args.command):
        parser.error("give exactly one of --http URL or --stdio -- COMMAND ARGS...")
    try:
        out = asyncio.run(run(args))
    except BaseException as exc:  # noqa: BLE001 - report any failure as JSON for the test to show
        print(json.dumps({"error": [f"{type(e).__name__}: {e}" for e in leaves(exc)]}))
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
