//! MCP, both ways: agents that call the tools of MCP servers, and agents' handlers served
//! as MCP tools (feature `mcp`, off by default).
//!
//! - [`McpClient`] is an agent that wraps one MCP server, started as a child process over
//!   stdio or reached over streamable HTTP. Any agent can list and call its tools, and a
//!   supervisor restarts it (with a new server process) when the server dies.
//! - [`McpServer`] serves chosen handlers of chosen agents as MCP tools, over stdio or
//!   streamable HTTP, with JSON Schemas generated from their argument types: mark the
//!   handlers `#[handle(tool)]` and add the agent with [`McpServer::agent`].
//!
//! Built on [`rmcp`], the official Rust SDK, pinned to 3.11. The types here are
//! troupe's own, so rmcp's frequent API changes stay behind this module.

mod client;
mod error;
mod server;

use serde_json::Value;

pub use client::{McpCall, McpClient, McpClientRef, McpReply, McpStream, Msg as McpMsg};
pub use error::McpError;
#[doc(hidden)]
pub use server::{tool_arguments, unknown_tool, ToolReturn, ViaResult, ViaSerialize};
pub use server::{McpServer, ServeHandle, ToolAgent, ToolCallError, ToolFuture, ToolSpec};

/// A tool as a server describes it in `tools/list`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolInfo {
    /// The tool's name, as given to [`McpClientRef::call_tool`].
    pub name: String,
    /// What the tool does, for a model to read.
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    pub input_schema: Value,
}

impl ToolInfo {
    fn from_rmcp(tool: rmcp::model::Tool) -> Self {
        ToolInfo {
            name: tool.name.into_owned(),
            description: tool.description.map(|d| d.into_owned()),
            input_schema: Value::Object((*tool.input_schema).clone()),
        }
    }
}

/// What a tool answered: content blocks (text, images, ...) and, from servers that give
/// one, a structured value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolOutput {
    /// The content blocks as JSON (`{"type": "text", "text": "..."}`, ...).
    pub content: Vec<Value>,
    /// The structured result (`structuredContent`), if the server gave one.
    pub structured: Option<Value>,
}

impl ToolOutput {
    /// The text blocks of the answer, joined by newlines.
    pub fn text(&self) -> String {
        text_of(&self.content)
    }

    fn from_rmcp(result: rmcp::model::CallToolResult) -> Result<Self, McpError> {
        let content: Vec<Value> = result
            .content
            .iter()
            .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
            .collect();
        if result.is_error == Some(true) {
            return Err(McpError::Tool {
                content: text_of(&content),
            });
        }
        Ok(ToolOutput {
            content,
            structured: result.structured_content,
        })
    }
}

fn text_of(content: &[Value]) -> String {
    content
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}
