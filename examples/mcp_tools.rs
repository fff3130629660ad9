//! MCP both ways: agents call the tools of a real MCP server, and serve their own
//! handlers as MCP tools.
//!
//! Needs Node and the reference server `server-everything`, installed once with:
//!
//! ```text
//! npm install --prefix target/mcp-peers/node @modelcontextprotocol/server-everything@2026.8.31
//! ```
//!
//! (or `bash .ci/mcp-peers`, which also installs the Python SDK the tests use). Then:
//!
//! ```text
//! cargo run --features mcp --example mcp_tools
//! ```
//!
//! With `--serve-stdio` it only serves the calculator's handlers as MCP tools over stdin
//! and stdout, which is how an AI assistant (or any MCP client) runs a local server:
//! `cargo run --features mcp --example mcp_tools -- --serve-stdio`.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use troupe::mcp::{McpClient, McpError, McpServer};
use troupe::prelude::*;

// ANCHOR: calculator
/// An agent whose handlers marked `#[handle(tool)]` can be served as MCP tools.
#[derive(Debug, Default)]
pub struct Calculator;

#[agent]
impl Calculator {
    /// Adds two numbers.
    #[handle(tool)]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    /// Divides `a` by `b`.
    #[handle(tool)]
    fn divide(&self, a: f64, b: f64) -> Result<f64, String> {
        if b == 0.0 {
            return Err("division by zero".into());
        }
        Ok(a / b)
    }
}
// ANCHOR_END: calculator

// ANCHOR: researcher
/// An agent that uses an MCP server's tools through an `McpClient` reference.
#[derive(Debug)]
pub struct Researcher {
    tools: ActorRef<McpClient>,
}

#[agent]
impl Researcher {
    #[handle]
    async fn sum(&self, a: i64, b: i64) -> Result<String, String> {
        let out = self
            .tools
            .call_tool("get-sum", json!({ "a": a, "b": b }))
            .await
            .map_err(|e| e.to_string())? // the McpClient agent could not answer
            .map_err(|e| e.to_string())?; // the MCP server or the tool failed
        Ok(out.text())
    }
}
// ANCHOR_END: researcher

/// Where `server-everything` is installed, if it is.
fn find_everything() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        manifest.join("target/mcp-peers/node/node_modules/.bin/mcp-server-everything"),
        PathBuf::from("node_modules/.bin/mcp-server-everything"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--serve-stdio") {
        return serve_stdio().await;
    }
    let Some(everything) = find_everything() else {
        eprintln!(
            "This example needs the MCP reference server. Install it with:\n\n    \
             npm install --prefix target/mcp-peers/node @modelcontextprotocol/server-everything@2026.8.31\n\n\
             (from the repository's root; it needs Node 18 or later)."
        );
        return ExitCode::from(2);
    };
    match run(everything).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(everything: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let system = System::new();

    // ANCHOR: client
    // An agent that wraps one MCP server, started as a child process over stdio.
    let client = McpClient::stdio("node", [everything.as_os_str(), "stdio".as_ref()])?;
    // Under a supervisor: if the server dies, the agent crashes and is restarted
    // with a new server process, under the same reference.
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("everything", move || client.clone()))
        .spawn(&system);
    let tools = sup.child::<McpClient>("everything")?;

    let listed = tools.list_tools().await??;
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    println!(
        "server-everything has {} tools, among them: {}",
        names.len(),
        names[..3].join(", ")
    );
    let out = tools.call_tool("echo", json!({ "message": "hi" })).await??;
    println!("echo said: {}", out.text());
    // ANCHOR_END: client

    // ANCHOR: agents
    let researcher = system.spawn(Researcher { tools: tools.clone() });
    println!(
        "the researcher agent asked get-sum: {}",
        researcher.sum(2, 3).await??
    );
    // ANCHOR_END: agents

    // ANCHOR: restart
    let pid = tools.server_pid().await?.ok_or("no server process")?;
    std::process::Command::new("kill").arg(pid.to_string()).status()?;
    println!("killed the server process {pid}");
    let out = loop {
        // Calls made while the agent restarts wait for the new instance; a call that
        // was on its way to the dead server fails with TransportClosed.
        match tools
            .call_tool("echo", json!({ "message": "still there?" }))
            .await?
        {
            Err(McpError::TransportClosed) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            other => break other?,
        }
    };
    let new_pid = tools.server_pid().await?.ok_or("no server process")?;
    println!(
        "restarted with server process {new_pid}; echo said: {}",
        out.text()
    );
    // ANCHOR_END: restart

    // ANCHOR: serve
    // The other way: serve the calculator's tool handlers to MCP clients over HTTP.
    let calculator = system.spawn(Calculator);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let served = McpServer::new()
        .name("calculator")
        .agent(&calculator)
        .serve_http(listener)
        .await?;
    println!("serving the calculator's tools at {}", served.url());
    // ANCHOR_END: serve

    // Any MCP client can call them now; here, troupe's own.
    let remote = system.spawn(McpClient::http(served.url())?);
    let out = remote.call_tool("add", json!({ "a": 40, "b": 2 })).await??;
    println!("add over MCP gave: {}", out.text());
    match remote.call_tool("divide", json!({ "a": 1, "b": 0 })).await? {
        Err(McpError::Tool { content }) => println!("divide by zero is a tool error: {content}"),
        other => println!("unexpected: {other:?}"),
    }

    served.shutdown().await;
    system.shutdown().await; // stops (and reaps) the server process too
    println!("done");
    Ok(())
}

/// `--serve-stdio`: serve the calculator's tools over stdin and stdout until the client
/// closes stdin. Nothing else may print to stdout here.
async fn serve_stdio() -> ExitCode {
    // ANCHOR: serve_stdio
    let system = System::new();
    let calculator = system.spawn(Calculator);
    let served = McpServer::new()
        .name("calculator")
        .agent(&calculator)
        .serve_stdio()
        .await;
    system.shutdown().await;
    // ANCHOR_END: serve_stdio
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
