//! `call_tool` through troupe's `McpClient` against the same call made with rmcp
//! directly, against the same kind of server (issue 12's target: within 1.2x).
//!
//! Two servers:
//! - `stdio`: the npm reference server `server-everything`, tool `echo`, one child
//!   process per client (install it with `bash .ci/mcp-peers` from the repository root);
//! - `duplex`: an in-process rmcp server with an `echo` tool over `tokio::io::duplex`,
//!   which leaves only the clients' own costs.
//!
//! Both clients' servers run in the same process setup (stderr discarded). Each run
//! makes `--calls` sequential calls per client after a warm-up, in 20 blocks that
//! alternate between the clients; the table gives the median over `--runs` of the mean
//! microseconds per call.
//!
//! ```sh
//! cargo run --release --manifest-path benches/Cargo.toml --features mcp --bin mcp-bench -- --runs 5 --calls 2000
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::ServiceExt;
use serde_json::json;
use troupe::mcp::McpClient;
use troupe::prelude::*;

/// A minimal rmcp server with one tool, `echo`, answering `Echo: <message>`.
#[derive(Clone)]
struct EchoServer;

impl ServerHandler for EchoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, rmcp::ErrorData> {
        let mut schema = JsonObject::new();
        schema.insert("type".into(), json!("object"));
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "echo", "Echoes", schema,
        )]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, rmcp::ErrorData> {
        let message = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or("");
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("Echo: {message}"))]).into())
    }
}

fn echo_args() -> JsonObject {
    let mut args = JsonObject::new();
    args.insert("message".into(), json!("hi"));
    args
}

/// Mean µs per call of `calls` sequential calls through rmcp directly.
async fn direct_run(peer: &rmcp::service::Peer<rmcp::service::RoleClient>, calls: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        let out = peer
            .call_tool(CallToolRequestParams::new("echo").with_arguments(echo_args()))
            .await
            .expect("direct call");
        assert!(out.is_error != Some(true));
    }
    start.elapsed().as_secs_f64() * 1e6 / calls as f64
}

/// Mean µs per call of `calls` sequential calls through the `McpClient` agent.
async fn agent_run(client: &ActorRef<McpClient>, calls: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        let out = client
            .call_tool("echo", json!({"message": "hi"}))
            .await
            .expect("agent alive")
            .expect("agent call");
        assert_eq!(out.text(), "Echo: hi");
    }
    start.elapsed().as_secs_f64() * 1e6 / calls as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Row {
    server: &'static str,
    direct: Vec<f64>,
    agent: Vec<f64>,
}

async fn bench(
    server: &'static str,
    direct: &rmcp::service::Peer<rmcp::service::RoleClient>,
    agent: &ActorRef<McpClient>,
    runs: usize,
    calls: usize,
) -> Row {
    // Warm up both paths (the node server's JIT, allocator, caches).
    direct_run(direct, calls / 5 + 1).await;
    agent_run(agent, calls / 5 + 1).await;
    let mut row = Row {
        server,
        direct: Vec::new(),
        agent: Vec::new(),
    };
    // Each run alternates blocks of calls between the two clients, so that the machine's
    // drift (other processes on its 2 cores) falls on both alike.
    const BLOCKS: usize = 20;
    let per_block = (calls / BLOCKS).max(1);
    for run in 0..runs {
        let (mut d, mut a) = (0.0, 0.0);
        for block in 0..BLOCKS {
            if (run + block) % 2 == 0 {
                d += direct_run(direct, per_block).await;
                a += agent_run(agent, per_block).await;
            } else {
                a += agent_run(agent, per_block).await;
                d += direct_run(direct, per_block).await;
            }
        }
        row.direct.push(d / BLOCKS as f64);
        row.agent.push(a / BLOCKS as f64);
    }
    row
}

fn everything_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/mcp-peers/node/node_modules/.bin/mcp-server-everything")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut runs = 5;
    let mut calls = 2000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--calls" => calls = args.next().and_then(|v| v.parse().ok()).expect("--calls N"),
            other => panic!("unknown argument {other}; expected --runs N --calls N"),
        }
    }
    let system = System::new();
    let mut rows = Vec::new();

    // In-process rmcp server over duplex streams: one server per client.
    {
        let (c1, s1) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move { EchoServer.serve(s1).await.expect("server").waiting().await });
        let direct = ().serve(c1).await.expect("direct handshake");
        let (c2, s2) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move { EchoServer.serve(s2).await.expect("server").waiting().await });
        let agent = system.spawn(McpClient::stream(c2));
        rows.push(
            bench(
                "duplex (in-process rmcp server)",
                direct.peer(),
                &agent,
                runs,
                calls,
            )
            .await,
        );
        let _ = direct.cancel().await;
        agent.stop_gracefully();
        agent.stopped().await;
    }

    // server-everything over stdio: one process per client.
    let everything = everything_path();
    if everything.exists() {
        let cmd = {
            let mut c = tokio::process::Command::new("node");
            c.arg(&everything)
                .arg("stdio")
                .stderr(std::process::Stdio::null());
            c
        };
        let (child, _) = rmcp::transport::TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start server-everything");
        let direct = ().serve(child).await.expect("direct handshake");
        let agent = system.spawn(
            McpClient::stdio("node", [everything.as_os_str().to_owned(), "stdio".into()])
                .expect("node on PATH")
                .quiet(),
        );
        rows.push(
            bench(
                "stdio (server-everything echo)",
                direct.peer(),
                &agent,
                runs,
                calls,
            )
            .await,
        );
        let _ = direct.cancel().await;
    } else {
        eprintln!(
            "skipping the stdio row: {} is missing (run `bash .ci/mcp-peers` from the repository root)",
            everything.display()
        );
    }
    tokio::time::timeout(Duration::from_secs(20), system.shutdown())
        .await
        .ok();

    println!(
        "call_tool(\"echo\"), sequential, {calls} calls x {runs} runs; median of per-run mean µs/call\n"
    );
    println!("| server | rmcp directly | troupe McpClient | ratio |");
    println!("|---|---|---|---|");
    for row in rows {
        let d = median(row.direct.clone());
        let a = median(row.agent.clone());
        println!("| {} | {d:.1} µs | {a:.1} µs | {:.2}x |", row.server, a / d);
        eprintln!(
            "  {} raw: direct {:?} agent {:?}",
            row.server,
            fmt(&row.direct),
            fmt(&row.agent)
        );
    }
}

fn fmt(v: &[f64]) -> Vec<String> {
    v.iter().map(|x| format!("{x:.1}")).collect()
}
