//! Why an MCP call failed.

use std::fmt;
use std::time::Duration;

/// Why a call to an MCP server failed, or why an MCP client or server could not start.
///
/// Errors are values, never panics: a misbehaving server (a malformed reply, a crash
/// mid-call, a tool that never answers) gives one of these.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum McpError {
    /// The server answered with a JSON-RPC error (e.g. `-32601` unknown method,
    /// `-32602` invalid params: an unknown tool or arguments that do not fit its schema).
    Server {
        /// The JSON-RPC error code.
        code: i32,
        /// The server's message.
        message: String,
    },
    /// The tool ran and reported a failure (`isError: true`); its content, as text.
    Tool {
        /// The text blocks of the tool's answer, joined by newlines.
        content: String,
    },
    /// The connection to the server is closed: its process exited, its stream ended, or
    /// it sent something that is not MCP. A supervised [`McpClient`](super::McpClient)
    /// crashes and is restarted with a new connection.
    TransportClosed,
    /// The server did not answer within the client's call timeout (the request was
    /// cancelled on the server).
    Timeout(Duration),
    /// The server's process could not be started, or the server could not be reached.
    Spawn(String),
    /// The MCP handshake (`initialize`) failed.
    Handshake(String),
    /// The arguments of a tool call are not a JSON object.
    InvalidArguments(String),
    /// Anything else the MCP library reported (an unexpected reply, a transport error).
    Protocol(String),
    /// Serving tools: the same tool name was given twice.
    DuplicateTool(String),
}

impl fmt::Display for McpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McpError::Server { code, message } => {
                write!(f, "the MCP server answered error {code}: {message}")
            }
            McpError::Tool { content } => write!(f, "the tool failed: {content}"),
            McpError::TransportClosed => f.write_str("the connection to the MCP server is closed"),
            McpError::Timeout(d) => write!(f, "the MCP server did not answer within {d:?}"),
            McpError::Spawn(m) => write!(f, "cannot start the MCP server: {m}"),
            McpError::Handshake(m) => write!(f, "the MCP handshake failed: {m}"),
            McpError::InvalidArguments(m) => write!(f, "invalid tool arguments: {m}"),
            McpError::Protocol(m) => write!(f, "MCP protocol error: {m}"),
            McpError::DuplicateTool(name) => write!(f, "the tool `{name}` is served twice"),
        }
    }
}

impl std::error::Error for McpError {}

impl From<rmcp::ServiceError> for McpError {
    fn from(e: rmcp::ServiceError) -> Self {
        match e {
            rmcp::ServiceError::McpError(data) => McpError::Server {
                code: data.code.0,
                message: data.message.into_owned(),
            },
            rmcp::ServiceError::TransportClosed => McpError::TransportClosed,
            rmcp::ServiceError::Timeout { timeout } => McpError::Timeout(timeout),
            // A request cancelled because the service loop stopped: the connection is gone.
            rmcp::ServiceError::Cancelled { .. } => McpError::TransportClosed,
            // The request never left: the server's end is gone (a broken pipe), as
            // when it is killed; a supervised client then restarts, and the call may
            // be made again.
            rmcp::ServiceError::TransportSend(_) => McpError::TransportClosed,
            other => McpError::Protocol(other.to_string()),
        }
    }
}
