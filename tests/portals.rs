//! Portals between nodes that are separate processes: a real HTTP server (Python's
//! `http.server`, which nobody here wrote) reached through an inlet on this process and
//! an outlet on a child node, and a node killed with SIGKILL in the middle of a stream.
//! Run with `cargo test --test portals`; the in-process portal tests (half-close, idle
//! timeouts, backpressure, 200 connections, access control) are in
//! `actor-secure/tests/portals.rs`.

#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

#[path = "support/process_tests.rs"]
mod process_tests;

#[path = "support/child_node.rs"]
mod child_node;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use troupe::prelude::*;
use troupe::secure::{Node, TrustPolicy};

use child_node::{start, Process};

/// The child: a node with one outlet, "web", to `TROUPE_TARGET`, that only the node
/// `TROUPE_TRUST` may use.
async fn child() {
    let trusted: Identifier = std::env::var("TROUPE_TRUST")
        .expect("TROUPE_TRUST")
        .parse()
        .expect("an identifier");
    let target = std::env::var("TROUPE_TARGET").expect("TROUPE_TARGET");
    let system = System::new();
    let node = Node::builder()
        .trust(TrustPolicy::any())
        .start(&system)
        .await
        .expect("node starts");
    node.outlet("web", target)
        .expect("outlet")
        .policy(format!(r#"subject.identifier = "{trusted}""#))
        .expect("policy");
    println!("NODE {} {}", node.addr(), node.identifier());
    // Serve until the parent closes our stdin (or kills us).
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await;
    node.shutdown().await;
}

/// Starts a child node whose outlet "web" reaches `target` for the node `trusts`.
fn child_node(trusts: &Identity, target: &str) -> (Process, std::net::SocketAddr) {
    start(&[
        ("TROUPE_TRUST", trusts.identifier().to_string()),
        ("TROUPE_TARGET", target.to_owned()),
    ])
}

/// Python's HTTP server on a free port, serving `dir`; its port.
fn http_server(dir: &std::path::Path) -> (Process, u16) {
    let mut process = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "0",
            "--directory",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs (the machine's CPython)");
    let stdout = process.stdout.take().expect("stdout");
    // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("Serving HTTP"))
        .expect("the server prints its port");
    let port = line
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("a port");
    (Process(process), port)
}

/// Bytes that differ everywhere, so a lost or swapped chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `GET path` over HTTP/1.0 through `addr`: status line and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect to the inlet");
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.expect("response");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, response[split + 4..].to_vec())
}

async fn a_real_http_server_through_a_portal() {
    let dir = std::env::temp_dir().join(format!("troupe-portal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let big = pattern(24 << 20);
    std::fs::write(dir.join("big.bin"), &big).expect("write the file");
    std::fs::write(dir.join("hello.txt"), b"hello through a portal\n").expect("write the file");
    let (_server, port) = http_server(&dir);

    let me = Identity::generate();
    let (_child, child_addr) = child_node(&me, &format!("127.0.0.1:{port}"));
    let system = System::new();
    let node = Node::builder()
        .identity(me)
        .trust(TrustPolicy::any())
        .start(&system)
        .await
        .expect("node starts");
    let inlet = node.inlet("127.0.0.1:0", child_addr, "web").await.expect("inlet");

    let (status, body) = get(inlet.addr(), "/hello.txt").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, b"hello through a portal\n");
    let (status, _) = get(inlet.addr(), "/missing").await;
    assert!(status.contains("404"), "{status}");

    // Several at once, and a large file byte for byte.
    let started = Instant::now();
    let (one, two, three) = tokio::join!(
        get(inlet.addr(), "/big.bin"),
        get(inlet.addr(), "/big.bin"),
        get(inlet.addr(), "/hello.txt"),
    );
    for (status, body) in [&one, &two] {
        assert!(status.contains("200"), "{status}");
        assert_eq!(body.len(), big.len());
        assert!(*body == big, "the file came through byte for byte");
    }
    assert_eq!(three.1, b"hello through a portal\n");
    eprintln!(
        "2 x 24 MiB over HTTP through the portal in {:?}",
        started.elapsed()
    );

    // Another node, which the outlet's policy does not name, gets nothing.
    let stranger = Node::builder()
        .trust(TrustPolicy::any())
        .start(&system)
        .await
        .expect("node starts");
    let e = stranger
        .connect_outlet(child_addr, "web")
        .await
        .expect_err("denied");
    assert!(matches!(e, troupe::secure::NodeError::Denied), "{e}");
    stranger.shutdown().await;
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn killing_the_outlet_node_mid_stream_closes_the_client_promptly() {
    // A service in this process that writes without end.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let service = listener.local_addr().expect("address");
    let served = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("the outlet connects");
        let chunk = vec![7u8; 64 * 1024];
        while tcp.write_all(&chunk).await.is_ok() {}
        Instant::now()
    });
    let me = Identity::generate();
    let (mut child, child_addr) = child_node(&me, &service.to_string());
    let system = System::new();
    let node = Node::builder()
        .identity(me)
        .trust(TrustPolicy::any())
        .start(&system)
        .await
        .expect("node starts");
    let inlet = node.inlet("127.0.0.1:0", child_addr, "web").await.expect("inlet");
    let mut client = TcpStream::connect(inlet.addr()).await.expect("connect");
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < 4 << 20 {
        let n = client.read(&mut buf).await.expect("read");
        assert!(n > 0, "the stream flows");
        got += n;
    }

    // SIGKILL: no goodbye from the node; its sockets reset.
    child.0.kill().expect("kill the child node");
    let killed = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the client's connection closes within 3 s of the kill");
    let service_closed = tokio::time::timeout(Duration::from_secs(3), served)
        .await
        .expect("the service's connection closes too")
        .expect("the service task");
    eprintln!(
        "after SIGKILL: the client saw the close in {:?}, the service in {:?}",
        closed - killed,
        service_closed.saturating_duration_since(killed)
    );
    node.shutdown().await;
}

fn main() {
    let tests: &[process_tests::Test] = &[
        ("a_real_http_server_through_a_portal", || {
            Box::pin(a_real_http_server_through_a_portal())
        }),
        (
            "killing_the_outlet_node_mid_stream_closes_the_client_promptly",
            || Box::pin(killing_the_outlet_node_mid_stream_closes_the_client_promptly()),
        ),
    ];
    process_tests::run("TROUPE_TEST_NODE", child(), tests, Duration::from_secs(60));
}
