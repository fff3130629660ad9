//! The real MCP peers the MCP tests talk to, installed by `.ci/mcp-peers` (pinned
//! versions, under `target/mcp-peers`). A test that needs them runs the script when they
//! are missing, and fails with its output when it cannot install them: never a skip.

#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the peers are.
pub(crate) struct Peers {
    /// `node_modules/.bin/mcp-server-everything` (run it with `node`).
    pub(crate) everything: PathBuf,
    /// The venv's Python, with `mcp==2.3.0`.
    pub(crate) python: PathBuf,
}

pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The peers, installed on first use (the script is idempotent and takes a lock, so
/// parallel test binaries do not install twice).
pub(crate) fn peers() -> &'static Peers {
    static PEERS: OnceLock<Peers> = OnceLock::new();
    PEERS.get_or_init(|| {
        let dir = root().join("target/mcp-peers");
        let peers = Peers {
            everything: dir.join("node/node_modules/.bin/mcp-server-everything"),
            python: dir.join("venv/bin/python"),
        };
        let stamps = [
            dir.join("node/.installed-2026.8.31"),
            dir.join("venv/.installed-mcp-2.3.0"),
        ];
        if !stamps.iter().all(|s| s.exists()) {
            let out = Command::new("bash")
                .arg(root().join(".ci/mcp-peers"))
                .output()
                .expect("cannot run bash .ci/mcp-peers");
            assert!(
                out.status.success(),
                "installing the MCP test peers failed (bash .ci/mcp-peers needs node, npm, python3 \
                 and the npm and PyPI registries):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            peers.everything.exists(),
            "{} is missing after .ci/mcp-peers",
            peers.everything.display()
        );
        assert!(
            peers.python.exists(),
            "{} is missing after .ci/mcp-peers",
            peers.python.display()
        );
        peers
    })
}

/// A port free on 127.0.0.1 right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// True while a process with this pid exists and is not a zombie.
pub(crate) fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: `pid (comm) S ...`.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// True while a process with this pid exists in any state, zombies included.
pub(crate) fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits up to `secs` for `cond`.
pub(crate) async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    cond()
}

/// Waits until something listens on 127.0.0.1:`port`.
pub(crate) async fn wait_for_port(port: u16, secs: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}
