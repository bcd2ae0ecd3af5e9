"""The MCP server of `litellm-impl demo --with-proxy` (the `mcp` Python SDK, streamable HTTP).

Usage: mcp_demo_server.py --port PORT [--host HOST]. Serves two tools at
http://HOST:PORT/mcp and a liveness probe at /healthz. Every call that reaches a tool
prints one line starting with "MCP server:" (the demo shows these lines), so a reader
sees which calls the gateway let through.
"""

import argparse
import json

from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import PlainTextResponse

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--host", default="127.0.0.1")
options = parser.parse_args()

server = MCPServer("aigateway-demo-tools")


def record(tool: str, arguments: dict) -> None:
    print(f"MCP server: tools/call {tool} {json.dumps(arguments, sort_keys=True)}", flush=True)


@server.tool()
def echo(text: str) -> str:
    """Answers with the text it was given."""
    record("echo", {"text": text})
    return f"echo: {text}"


@server.tool()
def delete_everything(confirm: bool) -> str:
    """The kind of tool a route hides with toolFilter.deny (this one deletes nothing)."""
    record("delete_everything", {"confirm": confirm})
    return "this demo tool deletes nothing, but the route should not have let you call it"


@server.custom_route("/healthz", methods=["GET"])
async def healthz(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


server.run("streamable-http", host=options.host, port=options.port)
