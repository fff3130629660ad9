//! Agents' handlers served as MCP tools (`#[handle(tool)]` + `troupe::mcp::McpServer`):
//! to troupe's own `McpClient` over an in-memory stream, and to the Python SDK's client
//! (a real MCP client nobody here wrote) over streamable HTTP and stdio.

#![cfg(feature = "mcp")]

#[path = "support/mcp_peers.rs"]
mod peers;

use std::time::Duration;

use serde_json::{json, Value};
use troupe::mcp::{McpClient, McpError, McpServer, ToolAgent};
use troupe::prelude::*;

/// A calculator whose `add` and `divide` are MCP tools.
#[derive(Debug, Default)]
pub struct Calculator {
    calls: u64,
}

#[agent]
impl Calculator {
    /// Adds two numbers.
    #[handle(tool)]
    fn add(&mut self, a: i64, b: i64) -> i64 {
        self.calls += 1;
        a + b
    }

    /// Divides `a` by `b`.
    #[handle(tool)]
    fn divide(&mut self, a: f64, b: f64) -> Result<f64, String> {
        self.calls += 1;
        if b == 0.0 {
            Err("division by zero".into())
        } else {
            Ok(a / b)
        }
    }

    /// Not a tool: handlers are served only when marked.
    #[handle]
    fn calls(&self) -> u64 {
        self.calls
    }
}

#[test]
fn tool_handlers_have_json_schemas_from_their_argument_types_and_their_docs() {
    let tools = Calculator::tools();
    let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["add", "divide"]);
    assert_eq!(tools[0].description(), "Adds two numbers.");
    let schema = tools[0].input_schema();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["a"]["type"], "integer");
    assert_eq!(schema["properties"]["b"]["type"], "integer");
    assert_eq!(schema["required"], json!(["a", "b"]));
    assert_eq!(tools[1].input_schema()["properties"]["a"]["type"], "number");
}

#[tokio::test]
async fn a_troupe_client_calls_troupe_served_tools_over_a_stream() {
    let system = System::new();
    let calculator = system.spawn(Calculator::default());
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let server = McpServer::new().name("calc").agent(&calculator);
    tokio::spawn(server.serve_stream(theirs));
    let client = system.spawn(McpClient::stream(ours).timeout(Duration::from_secs(10)));

    let tools = client.list_tools().await.unwrap().unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(
        client.server_name().await.unwrap().as_deref(),
        Some(concat!("calc ", env!("CARGO_PKG_VERSION")))
    );

    let out = client
        .call_tool("add", json!({"a": 2, "b": 3}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.text(), "5");
    assert_eq!(out.structured, Some(json!({"result": 5})));
    // The call went through the agent.
    assert_eq!(calculator.calls().await.unwrap(), 1);

    // A handler's Err is a tool error; bad arguments and unknown tools are JSON-RPC errors.
    let err = client
        .call_tool("divide", json!({"a": 1, "b": 0}))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err,
        McpError::Tool {
            content: "division by zero".into()
        }
    );
    let err = client
        .call_tool("add", json!({"a": "two"}))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, McpError::Server { code: -32602, .. }), "{err:?}");
    let err = client.call_tool("calls", json!({})).await.unwrap().unwrap_err();
    assert!(matches!(err, McpError::Server { code: -32602, .. }), "{err:?}");

    // A stopped agent: the tool fails, the server goes on.
    calculator.stop_gracefully();
    calculator.stopped().await;
    let err = client
        .call_tool("add", json!({"a": 1, "b": 1}))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, McpError::Tool { .. }), "{err:?}");
    system.shutdown().await;
}

#[tokio::test]
async fn a_tool_served_twice_or_missing_is_refused_before_serving() {
    let system = System::new();
    let calculator = system.spawn(Calculator::default());
    let (_ours, theirs) = tokio::io::duplex(1024);
    let err = McpServer::new()
        .agent(&calculator)
        .tool("add", &calculator)
        .serve_stream(theirs)
        .await;
    assert_eq!(err, Err(McpError::DuplicateTool("add".into())));
    let (_ours, theirs) = tokio::io::duplex(1024);
    let err = McpServer::new()
        .tool("calls", &calculator)
        .serve_stream(theirs)
        .await;
    assert!(matches!(err, Err(McpError::Spawn(m)) if m.contains("calls")));
    // Choosing one handler serves only that one.
    assert_eq!(McpServer::new().tool("divide", &calculator).tools().len(), 1);
    system.shutdown().await;
}

/// Runs the Python SDK's client (`tests/mcp/client.py`) with `args`; its JSON lines.
async fn python_client(args: &[&str]) -> Vec<Value> {
    let script = peers::root().join("tests/mcp/client.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&peers::peers().python)
            .arg(script)
            .args(args)
            .current_dir(peers::root())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client did not finish within 120 s")
    .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn check_python_transcript(lines: &[Value]) {
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["tools"], json!(["add", "divide"]));
    assert_eq!(lines[0]["schemas"]["add"]["properties"]["a"]["type"], "integer");
    assert_eq!(
        lines[1],
        json!({"add": "5", "error": false, "structured": {"result": 5}})
    );
    assert_eq!(lines[2], json!({"divide": "division by zero", "error": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_calls_troupe_tools_over_http() {
    peers::peers();
    let system = System::new();
    let calculator = system.spawn(Calculator::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = McpServer::new()
        .agent(&calculator)
        .serve_http(listener)
        .await
        .unwrap();
    let url = served.url();
    let lines = python_client(&["http", &url]).await;
    check_python_transcript(&lines);
    assert_eq!(calculator.calls().await.unwrap(), 2);
    served.shutdown().await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_calls_troupe_tools_over_stdio() {
    peers::peers();
    // The client starts the example in its serving mode, as an AI assistant would.
    let cargo = env!("CARGO");
    let lines = python_client(&[
        "stdio",
        cargo,
        "run",
        "--quiet",
        "--features",
        "mcp",
        "--example",
        "mcp_tools",
        "--",
        "--serve-stdio",
    ])
    .await;
    check_python_transcript(&lines);
}
