"""A resumable MCP server: sessions and SSE events live in a mcp-session-store
store, so a client that loses its connection — or whose server restarts —
resumes with `Last-Event-ID` and receives exactly the messages it missed.

    pip install ./bindings/python mcp uvicorn
    python examples/python/server.py --store sqlite://sessions.db --port 8000

The MCP endpoint is http://127.0.0.1:8000/mcp. The tool `countdown` sends one
progress notification every `interval` seconds.
"""

from __future__ import annotations

import argparse

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

from mcp_session_store.mcp import streamable_http_app

server = MCPServer("resumable-countdown")


@server.tool()
async def countdown(ctx: Context, steps: int = 10, interval: float = 0.2) -> str:
    """Count to `steps`, reporting progress at each step."""
    for i in range(1, steps + 1):
        await ctx.report_progress(i, total=steps, message=f"step {i}/{steps}")
        await anyio.sleep(interval)
    return f"counted to {steps}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--store", default="sqlite://sessions.db", help="store URL (default sqlite://sessions.db)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()

    # The two lines that make the server resumable:
    app = streamable_http_app(server, args.store, host=args.host)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
