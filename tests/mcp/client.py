# A real MCP client written with the Python SDK (mcp==2.3.0), for tests/mcp_server.rs:
# connects to troupe-served tools, lists them, calls them, and prints one JSON line per
# step on stdout.
# Usage: python client.py http URL
#        python client.py stdio COMMAND [ARGS...]
import asyncio
import json
import sys

from mcp import Client, StdioServerParameters


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def main():
    if sys.argv[1] == "http":
        server = sys.argv[2]
    else:
        server = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:])
    async with Client(server) as client:
        tools = await client.list_tools()
        print(json.dumps({"tools": sorted(t.name for t in tools.tools),
                          "schemas": {t.name: t.input_schema for t in tools.tools}}), flush=True)
        result = await client.call_tool("add", {"a": 2, "b": 3})
        print(json.dumps({"add": text_of(result), "error": bool(result.is_error),
                          "structured": result.structured_content}), flush=True)
        result = await client.call_tool("divide", {"a": 1, "b": 0})
        print(json.dumps({"divide": text_of(result), "error": bool(result.is_error)}), flush=True)


asyncio.run(main())
