//! Runs `examples/mcp_tools.rs` through `cargo run` against the real `server-everything`
//! and checks that it tells the whole story and exits by itself.

#![cfg(feature = "mcp")]

#[path = "support/mcp_peers.rs"]
mod peers;

use std::process::{Command, Stdio};

#[test]
fn the_mcp_example_calls_tools_survives_a_killed_server_and_serves_its_own() {
    peers::peers();
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--features", "mcp", "--example", "mcp_tools"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the example failed ({}); it said:\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = [
        "server-everything has ",
        "echo said: Echo: hi",
        "the researcher agent asked get-sum: The sum of 2 and 3 is 5.",
        "killed the server process ",
        "restarted with server process ",
        "echo said: Echo: still there?",
        "serving the calculator's tools at http://127.0.0.1:",
        "add over MCP gave: 42",
        "divide by zero is a tool error: division by zero",
        "done",
    ];
    let mut rest = &stdout[..];
    for line in expected {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("the example did not say {line:?} (in order); it said:\n{stdout}"));
        rest = &rest[at + line.len()..];
    }
}
