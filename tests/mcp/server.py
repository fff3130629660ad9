# A real MCP server written with the Python SDK (mcp==2.3.0), for tests/mcp.rs.
# Usage: python server.py            (stdio)
#        python server.py http PORT  (streamable HTTP on 127.0.0.1:PORT, path /mcp)
import sys

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("python-demo")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two numbers"""
    return a + b


@mcp.tool()
def fail(message: str) -> str:
    """Always fails"""
    raise ValueError(message)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        mcp.run()
