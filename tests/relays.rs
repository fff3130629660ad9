//! Relays with every node in its own process: a relay, a node that registers a name
//! there (it dials out; nothing dials it), and this process as the client. The relay is
//! killed with SIGKILL and started again at its address; the registered node registers
//! again by itself and the route works again. The in-process relay tests (a recording
//! relay, a tampering relay, policies) are in `actor-secure/tests/relays.rs`.

#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

#[path = "support/process_tests.rs"]
mod process_tests;

#[path = "support/child_node.rs"]
mod child_node;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use troupe::prelude::*;
use troupe::secure::{Node, Route, TrustPolicy};

use child_node::{start, Process};

#[derive(Default)]
pub struct Counter {
    count: u64,
}

#[agent(remote)]
impl Counter {
    #[handle]
    fn add(&mut self, n: u64) -> u64 {
        self.count += n;
        self.count
    }
    /// The node the call came from, as the end-to-end channel authenticated it.
    #[handle]
    fn who(&self, ctx: &mut Context<Self>) -> Option<String> {
        ctx.caller().map(|c| c.node().to_string())
    }
}

/// A child: the relay (`TROUPE_ROLE=relay`, at `TROUPE_LISTEN`, with the identity from
/// the seed byte `TROUPE_SEED`), or the registered node (`TROUPE_ROLE=edge`, which
/// registers as "edge-1" at `TROUPE_RELAY`, exports a `Counter` and an outlet "echo"
/// to `TROUPE_TARGET`).
async fn child() {
    let role = std::env::var("TROUPE_ROLE").expect("TROUPE_ROLE");
    let system = System::new();
    let node = if role == "relay" {
        let seed: u8 = std::env::var("TROUPE_SEED")
            .expect("seed")
            .parse()
            .expect("a byte");
        let node = Node::builder()
            .identity(Identity::from_seed(&[seed; 32]))
            .trust(TrustPolicy::any())
            .listen(std::env::var("TROUPE_LISTEN").expect("TROUPE_LISTEN"))
            .start(&system)
            .await
            .expect("the relay starts");
        node.serve_relay()
            .register_policy("true")
            .expect("policy")
            .route_policy("true")
            .expect("policy");
        node
    } else {
        let node = Node::builder()
            .trust(TrustPolicy::any())
            .start(&system)
            .await
            .expect("the node starts");
        node.export("counter", &system.spawn(Counter::default()))
            .expect("export")
            .policy("true")
            .expect("policy");
        node.outlet("echo", std::env::var("TROUPE_TARGET").expect("TROUPE_TARGET"))
            .expect("outlet")
            .policy("true")
            .expect("policy");
        let relay = std::env::var("TROUPE_RELAY").expect("TROUPE_RELAY");
        node.register_at(relay.as_str(), "edge-1")
            .await
            .expect("registered at the relay");
        node
    };
    println!("NODE {} {}", node.addr(), node.identifier());
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

fn relay(listen: &str) -> (Process, std::net::SocketAddr) {
    start(&[
        ("TROUPE_ROLE", "relay".into()),
        ("TROUPE_SEED", "9".into()),
        ("TROUPE_LISTEN", listen.into()),
    ])
}

async fn through_a_relay_in_another_process_and_back_after_it_is_killed() {
    // An echo service for the portal through the relay.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let service = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let (mut relay_process, relay_addr) = relay("127.0.0.1:0");
    let (_edge, _) = start(&[
        ("TROUPE_ROLE", "edge".into()),
        ("TROUPE_RELAY", relay_addr.to_string()),
        ("TROUPE_TARGET", service.to_string()),
    ]);
    let system = System::new();
    let client = Node::builder()
        .trust(TrustPolicy::any())
        .reconnect_within(Duration::ZERO)
        .start(&system)
        .await
        .expect("node starts");
    let route = Route::relay(relay_addr, "edge-1");
    let counter = client
        .lookup_via::<Counter>("counter", &route)
        .await
        .expect("lookup through the relay");
    assert_eq!(counter.add(2).await, Ok(2));
    assert_eq!(counter.who().await, Ok(Some(client.identifier().to_string())));
    let mut echo = client.connect_outlet_via(&route, "echo").await.expect("portal");
    echo.write_all(b"through the relay").await.expect("write");
    let mut back = [0u8; 17];
    echo.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"through the relay");

    // SIGKILL the relay: calls fail at once, the portal connection closes.
    relay_process.0.kill().expect("kill the relay");
    let killed = Instant::now();
    let failed = counter.add(1).timeout(Duration::from_secs(5)).await;
    assert!(failed.is_err(), "a call through a dead relay fails");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), echo.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the portal connection closes");
    eprintln!(
        "the call failed {:?} after the kill: {failed:?}",
        killed.elapsed()
    );
    drop(relay_process);

    // The relay comes back at its address; the node registers again by itself.
    let (_relay_again, addr) = relay(&relay_addr.to_string());
    assert_eq!(addr, relay_addr);
    let deadline = Instant::now() + Duration::from_secs(15);
    let counter = loop {
        match client.lookup_via::<Counter>("counter", &route).await {
            Ok(counter) => break counter,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the route did not come back: {e}"),
        }
    };
    eprintln!("the route was back {:?} after the kill", killed.elapsed());
    assert_eq!(counter.add(1).await, Ok(3), "the same agent, with its state");
    client.shutdown().await;
}

fn main() {
    let tests: &[process_tests::Test] = &[(
        "through_a_relay_in_another_process_and_back_after_it_is_killed",
        || Box::pin(through_a_relay_in_another_process_and_back_after_it_is_killed()),
    )];
    process_tests::run("TROUPE_TEST_NODE", child(), tests, Duration::from_secs(60));
}
