//! `troupe::mcp::McpClient` against real MCP servers nobody here wrote (the npm
//! `server-everything` over stdio and HTTP, a Python `mcp` server), under a supervisor,
//! and over in-memory streams for the error paths.

#![cfg(feature = "mcp")]

#[path = "support/mcp_peers.rs"]
mod peers;

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use troupe::mcp::{McpClient, McpError};
use troupe::prelude::*;

use peers::{eventually, free_port, peers, process_alive, process_exists, wait_for_port};

fn everything_stdio() -> McpClient {
    McpClient::stdio(
        "node",
        [peers().everything.as_os_str().to_owned(), "stdio".into()],
    )
    .expect("node is on PATH")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_echo_and_get_sum_of_server_everything_over_stdio() {
    let system = System::new();
    let everything = system.spawn(everything_stdio());

    let tools = everything.list_tools().await.unwrap().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"echo") && names.contains(&"get-sum"),
        "tools: {names:?}"
    );
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(echo.input_schema["properties"]["message"]["type"], "string");

    let out = everything
        .call_tool("echo", json!({"message": "hi"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.text(), "Echo: hi");
    let out = everything
        .call_tool("get-sum", json!({"a": 2, "b": 3}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.text(), "The sum of 2 and 3 is 5.");

    // Errors are values: an unknown tool, and arguments that are not an object.
    let err = everything
        .call_tool("no-such-tool", json!({}))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, McpError::Server { .. } | McpError::Tool { .. }),
        "unknown tool gave {err:?}"
    );
    let err = everything
        .call_tool("echo", json!([1, 2]))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, McpError::InvalidArguments(_)), "{err:?}");
    assert!(everything.server_name().await.unwrap().is_some());

    let pid = everything.server_pid().await.unwrap().expect("a child process");
    assert!(process_alive(pid));
    system.shutdown().await;
    assert!(
        !process_exists(pid),
        "server process {pid} left behind after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_server_everything_over_streamable_http() {
    let port = free_port();
    let mut server = std::process::Command::new("node")
        .arg(&peers().everything)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start server-everything over HTTP");
    let ok = wait_for_port(port, 30).await;
    let result = async {
        assert!(ok, "server-everything did not listen on port {port}");
        let system = System::new();
        let everything = system.spawn(McpClient::http(format!("http://127.0.0.1:{port}/mcp")).unwrap());
        let out = everything
            .call_tool("echo", json!({"message": "over http"}))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.text(), "Echo: over http");
        let out = everything
            .call_tool("get-sum", json!({"a": 20, "b": 22}))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.text(), "The sum of 20 and 22 is 42.");
        system.shutdown().await;
    };
    let outcome = tokio::time::timeout(Duration::from_secs(60), result).await;
    let _ = server.kill();
    let _ = server.wait();
    outcome.expect("the HTTP test did not finish within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_a_python_mcp_server() {
    let script = peers::root().join("tests/mcp/server.py");
    let system = System::new();
    let py = system.spawn(McpClient::stdio(&peers().python, [script]).unwrap());
    let tools = py.list_tools().await.unwrap().unwrap();
    let add = tools.iter().find(|t| t.name == "add").expect("the add tool");
    assert_eq!(add.description.as_deref(), Some("Add two numbers"));
    let out = py
        .call_tool("add", json!({"a": 2, "b": 3}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.text(), "5");
    assert_eq!(out.structured, Some(json!({"result": 5})));
    // A tool that raises is a tool error (the Python SDK says which tool, not why).
    let err = py
        .call_tool("fail", json!({"message": "boom"}))
        .await
        .unwrap()
        .unwrap_err();
    match err {
        McpError::Tool { content } => assert!(content.contains("fail"), "{content}"),
        other => panic!("expected a tool error, got {other:?}"),
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_client_gets_a_new_server_process_when_its_server_dies() {
    let system = System::new();
    let client = everything_stdio();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("everything", move || client.clone()))
        .spawn(&system);
    let everything = sup.child::<McpClient>("everything").unwrap();
    let first = everything.server_pid().await.unwrap().expect("a child process");
    assert_eq!(
        everything
            .call_tool("echo", json!({"message": "one"}))
            .await
            .unwrap()
            .unwrap()
            .text(),
        "Echo: one"
    );

    // Kill the server process from outside, as a crash would.
    let status = std::process::Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // The agent crashes, is restarted with a new process, and the next call works.
    let mut second = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(pid)) = everything.server_pid().await {
            if pid != first {
                second = Some(pid);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = second.expect("the agent was not restarted with a new server process");
    assert_eq!(
        everything
            .call_tool("echo", json!({"message": "two"}))
            .await
            .unwrap()
            .unwrap()
            .text(),
        "Echo: two"
    );
    assert!(sup.restarts() >= 1);
    // The dead process was reaped: no zombie left.
    assert!(
        eventually(10, || !process_exists(first)).await,
        "process {first} left as a zombie"
    );

    system.shutdown().await;
    assert!(
        !process_exists(second),
        "server process {second} left behind after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomers_program_ends_and_leaves_no_server_process() {
    // Spawn, call, drop the reference, shut down: nothing hangs, nothing is left.
    let system = System::new();
    let everything = system.spawn(everything_stdio());
    let out = everything
        .call_tool("echo", json!({"message": "hi"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.text(), "Echo: hi");
    let pid = everything.server_pid().await.unwrap().unwrap();
    drop(everything);
    tokio::time::timeout(Duration::from_secs(15), system.shutdown())
        .await
        .expect("shutdown hung");
    assert!(!process_exists(pid), "server process {pid} left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_client_stops_and_reaps_its_server() {
    let system = System::new();
    let everything = system.spawn(everything_stdio());
    let pid = everything.server_pid().await.unwrap().unwrap();
    assert!(everything.stop_gracefully());
    tokio::time::timeout(Duration::from_secs(15), everything.stopped())
        .await
        .expect("stop hung");
    assert!(
        !process_exists(pid),
        "server process {pid} left behind after stop"
    );
    system.shutdown().await;
}

#[test]
fn a_missing_program_is_a_spawn_error() {
    let err = McpClient::stdio("no-such-mcp-server-program", ["x"]).unwrap_err();
    assert!(matches!(err, McpError::Spawn(_)), "{err:?}");
    assert!(err.to_string().contains("no-such-mcp-server-program"), "{err}");
    assert!(matches!(McpClient::http("ftp://x"), Err(McpError::Spawn(_))));
}

// ---- Hermetic error paths: a scripted server on the other end of a duplex stream. ----

/// What the scripted server does with a `tools/call`.
#[derive(Clone, Copy)]
enum OnCall {
    /// Answers it properly.
    Answer,
    /// Closes the stream without answering (the server dies mid-call).
    Die,
    /// Answers with a line that is not JSON-RPC.
    Garbage,
    /// Never answers.
    Ignore,
}

/// A minimal MCP server over `stream`: answers `initialize` and `tools/list`, and does
/// `on_call` with each `tools/call`.
async fn scripted_server(stream: tokio::io::DuplexStream, on_call: OnCall) {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let msg: serde_json::Value = serde_json::from_str(&line).expect("the client sends JSON");
        let id = msg.get("id").cloned();
        let answer = match msg["method"].as_str() {
            Some("initialize") => json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "scripted", "version": "1.0"}
            }}),
            Some("tools/list") => json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
                {"name": "echo", "inputSchema": {"type": "object"}}
            ]}}),
            Some("tools/call") => match on_call {
                OnCall::Answer => json!({"jsonrpc": "2.0", "id": id, "result": {
                    "content": [{"type": "text", "text": "ok"}]
                }}),
                OnCall::Die => return,
                OnCall::Garbage => {
                    let _ = write.write_all(b"{\"jsonrpc\": \"2.0\", \"id\": oops\n").await;
                    let _ = write.write_all(b"this is not json at all\n").await;
                    continue;
                }
                OnCall::Ignore => continue,
            },
            _ => continue, // notifications, cancellations
        };
        let mut text = answer.to_string();
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn scripted(on_call: OnCall) -> McpClient {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(scripted_server(theirs, on_call));
    McpClient::stream(ours)
}

#[tokio::test]
async fn a_scripted_server_answers_over_a_duplex_stream() {
    let system = System::new();
    let client = system.spawn(scripted(OnCall::Answer));
    assert_eq!(client.list_tools().await.unwrap().unwrap()[0].name, "echo");
    assert_eq!(
        client.call_tool("echo", json!({})).await.unwrap().unwrap().text(),
        "ok"
    );
    assert_eq!(
        client.server_name().await.unwrap().as_deref(),
        Some("scripted 1.0")
    );
    system.shutdown().await;
}

#[tokio::test]
async fn a_server_dying_mid_call_gives_transport_closed_and_crashes_the_agent() {
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let client = system.spawn(scripted(OnCall::Die));
    let err = tokio::time::timeout(Duration::from_secs(10), client.call_tool("echo", json!({})))
        .await
        .expect("the call hung on a dead server")
        .unwrap()
        .unwrap_err();
    assert_eq!(err, McpError::TransportClosed);
    // The agent noticed and stopped (a crash: under a supervisor it would restart).
    tokio::time::timeout(Duration::from_secs(10), client.stopped())
        .await
        .expect("the agent lives on");
    system.shutdown().await;
}

#[tokio::test]
async fn malformed_json_rpc_is_dropped_and_the_call_times_out() {
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let client = system.spawn(scripted(OnCall::Garbage).timeout(Duration::from_millis(500)));
    let err = tokio::time::timeout(Duration::from_secs(10), client.call_tool("echo", json!({})))
        .await
        .expect("the call hung on malformed JSON-RPC");
    let err = match err {
        Ok(result) => result.unwrap_err(),
        Err(call_error) => panic!("the call itself failed: {call_error:?}"),
    };
    // rmcp drops lines that are not JSON-RPC; the call ends at its timeout, never hangs,
    // and the connection still works.
    assert_eq!(err, McpError::Timeout(Duration::from_millis(500)));
    assert_eq!(client.list_tools().await.unwrap().unwrap().len(), 1);
    system.shutdown().await;
}

#[tokio::test]
async fn a_tool_that_never_answers_times_out() {
    let system = System::new();
    let client = system.spawn(scripted(OnCall::Ignore).timeout(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    let err = client.call_tool("echo", json!({})).await.unwrap().unwrap_err();
    assert_eq!(err, McpError::Timeout(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection is still usable: listing works.
    assert_eq!(client.list_tools().await.unwrap().unwrap().len(), 1);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_leaves_no_server_process() {
    // A killed agent does not run on_stop: dropping its connection still ends the server.
    let system = System::new();
    let everything = system.spawn(everything_stdio());
    let pid = everything.server_pid().await.unwrap().unwrap();
    assert!(everything.kill());
    assert!(
        eventually(15, || !process_exists(pid)).await,
        "server process {pid} left behind after kill"
    );
    system.shutdown().await;
}

#[tokio::test]
async fn a_failed_handshake_stops_the_agent_with_an_error() {
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    // A "server" that hangs up at once.
    let (ours, theirs) = tokio::io::duplex(1024);
    drop(theirs);
    let client = system.spawn(McpClient::stream(ours));
    let err = client.list_tools().await.unwrap_err();
    assert_eq!(err, CallError::Stopped);
    assert!(!client.is_alive());
    system.shutdown().await;
}
