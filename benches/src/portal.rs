//! Portal throughput against a direct loopback TCP copy, and a remote call through a
//! relay against a direct one (issue 12).
//!
//! A sink service reads and discards; a client writes 256 MiB to it in 64 KiB chunks,
//! either directly or through an inlet on one node and an outlet on another (both nodes
//! in this process, on one runtime of 2 workers, like every row here). The time runs
//! until the sink has read the last byte. Rounds alternate between the two so that the
//! machine's noise falls on both; the medians are printed.
//!
//! The relay rows time 2,000 sequential calls of a `u64` getter from one node to
//! another, directly and through a third node acting as a relay (its own secure
//! channel between the end nodes runs inside the relay's links), alternating too.
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --bin portal-bench [-- ROUNDS]
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use troupe::prelude::*;
use troupe::secure::{Node, TrustPolicy};

/// The agent the relay rows call.
#[derive(Default)]
pub struct Counter {
    count: u64,
}

#[agent(remote)]
impl Counter {
    #[handle]
    fn get(&self) -> u64 {
        self.count
    }
}

const CALLS: usize = 2_000;

/// Sequential calls: microseconds per round trip.
async fn calls(counter: &ActorRef<Counter>) -> f64 {
    let started = Instant::now();
    for _ in 0..CALLS {
        counter.get().await.expect("call");
    }
    started.elapsed().as_secs_f64() * 1e6 / CALLS as f64
}

const TOTAL: usize = 256 << 20;
const CHUNK: usize = 64 * 1024;

/// A service that reads everything and, at end of file, answers with one byte.
async fn sink() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; CHUNK];
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = tcp.write_all(&[1]).await;
            });
        }
    });
    addr
}

/// Writes `TOTAL` bytes to `addr` in 64 KiB chunks, half-closes, waits for the sink's
/// byte: the elapsed time.
async fn copy(addr: SocketAddr) -> Duration {
    let chunk = vec![0x5au8; CHUNK];
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let started = Instant::now();
    let mut sent = 0;
    while sent < TOTAL {
        tcp.write_all(&chunk).await.expect("write");
        sent += CHUNK;
    }
    tcp.shutdown().await.expect("half-close");
    let mut done = [0u8; 1];
    tcp.read_exact(&mut done).await.expect("the sink read everything");
    started.elapsed()
}

/// The floor every portal byte pays: one ChaCha20-Poly1305 seal and one open of 64 KiB
/// records, on one core (MiB/s of data through both).
fn aead_floor() -> f64 {
    use chacha20poly1305::aead::AeadInPlace;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
    let aead = ChaCha20Poly1305::new(&[7u8; 32].into());
    let mut buf = vec![0x5au8; CHUNK];
    let started = Instant::now();
    for i in 0..(TOTAL / CHUNK) as u64 {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&i.to_le_bytes());
        let nonce = Nonce::from(nonce);
        let tag = aead
            .encrypt_in_place_detached(&nonce, b"", &mut buf)
            .expect("seal");
        aead.decrypt_in_place_detached(&nonce, b"", &mut buf, &tag)
            .expect("open");
    }
    (TOTAL >> 20) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let system = System::new();
        let service = sink().await;
        let (ia, ib) = (
            troupe::secure::Identity::generate(),
            troupe::secure::Identity::generate(),
        );
        let (ida, idb) = (ia.identifier(), ib.identifier());
        let a = Node::builder()
            .identity(ia)
            .trust(TrustPolicy::allow([idb]))
            .start(&system)
            .await
            .expect("node a");
        let b = Node::builder()
            .identity(ib)
            .trust(TrustPolicy::allow([ida]))
            .start(&system)
            .await
            .expect("node b");
        a.outlet("sink", service.to_string())
            .expect("outlet")
            .policy("true")
            .expect("policy");
        let inlet = b.inlet("127.0.0.1:0", a.addr(), "sink").await.expect("inlet");
        // Warm up both paths (and the link).
        copy(service).await;
        copy(inlet.addr()).await;
        let (mut direct, mut portal, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        let mib = (TOTAL >> 20) as f64;
        for round in 0..rounds {
            let d = copy(service).await.as_secs_f64();
            let p = copy(inlet.addr()).await.as_secs_f64();
            println!(
                "round {round}: direct {:.0} MiB/s, portal {:.0} MiB/s",
                mib / d,
                mib / p
            );
            direct.push(mib / d);
            portal.push(mib / p);
            floor.push(aead_floor());
        }
        let (d, p, f) = (median(direct), median(portal), median(floor));
        println!();
        println!("| path | MiB/s (median of {rounds}) |");
        println!("|---|---|");
        println!("| direct loopback TCP, 64 KiB writes | {d:.0} |");
        println!("| through an inlet and an outlet (encrypted link) | {p:.0} |");
        println!("| portal / direct | {:.0}% (target >= 70%) |", 100.0 * p / d);
        println!("| ChaCha20-Poly1305 seal + open of 64 KiB records, one core | {f:.0} |");
        println!("| portal / that floor | {:.0}% |", 100.0 * p / f);

        // A node behind a relay, called directly and through the relay.
        let relay = Node::builder()
            .trust(TrustPolicy::any())
            .start(&system)
            .await
            .expect("relay");
        relay
            .serve_relay()
            .register_policy("true")
            .expect("policy")
            .route_policy("true")
            .expect("policy");
        let edge = Node::builder()
            .trust(TrustPolicy::any())
            .start(&system)
            .await
            .expect("edge");
        edge.export("counter", &system.spawn(Counter::default()))
            .expect("export")
            .policy("true")
            .expect("policy");
        let route = edge
            .register_at(relay.addr(), "edge")
            .await
            .expect("register")
            .route();
        let direct_client = Node::builder()
            .trust(TrustPolicy::any())
            .start(&system)
            .await
            .expect("client");
        let relayed_client = Node::builder()
            .trust(TrustPolicy::any())
            .start(&system)
            .await
            .expect("client");
        let direct = direct_client
            .lookup::<Counter>("counter", edge.addr())
            .await
            .expect("lookup");
        let relayed = relayed_client
            .lookup_via::<Counter>("counter", &route)
            .await
            .expect("lookup via the relay");
        calls(&direct).await;
        calls(&relayed).await;
        let (mut d_us, mut r_us) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let d = calls(&direct).await;
            let r = calls(&relayed).await;
            println!("round {round}: direct call {d:.1} us, through the relay {r:.1} us");
            d_us.push(d);
            r_us.push(r);
        }
        let (d, r) = (median(d_us), median(r_us));
        println!();
        println!("| remote call, round trip | us (median of {rounds}) |");
        println!("|---|---|");
        println!("| direct | {d:.1} |");
        println!("| through one relay | {r:.1} |");
        println!("| relay / direct | {:.2}x (target <= 2x) |", r / d);
        for node in [relayed_client, direct_client, edge, relay] {
            node.shutdown().await;
        }
        b.shutdown().await;
        a.shutdown().await;
    });
}
