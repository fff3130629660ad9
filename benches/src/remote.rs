//! Remote agents over loopback TCP, against two floors measured in the same run: a raw
//! tokio TCP echo and a raw snow Noise echo (one frame in flight).
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --bin remote-bench
//! ```
//!
//! Both nodes run in this process on one tokio runtime with 2 workers; the link between
//! them is a real TCP connection through a real secure channel. ractor_cluster's rows
//! (`remote_ractor`) run the same workloads over its plaintext TCP link.

mod remote_ractor;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use troupe::prelude::*;
use troupe::secure::{Node, TrustPolicy};

const CALLS: usize = 20_000;
const CASTS: u64 = 1_000_000;
const CONNECTS: usize = 20;
const RUNS: usize = 3;

#[derive(Debug, Default)]
pub struct Counter {
    count: u64,
}

#[agent(remote)]
impl Counter {
    #[handle]
    fn add(&mut self, n: u64) {
        self.count += n;
    }
    #[handle]
    fn get(&self) -> u64 {
        self.count
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Raw tokio: an 8-byte length-prefixed echo over TCP; mean round trip in microseconds.
async fn tcp_echo() -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = [0u8; 10];
        while s.read_exact(&mut buf).await.is_ok() {
            if s.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.set_nodelay(true).unwrap();
    let mut buf = [0u8; 10];
    let start = Instant::now();
    for i in 0..CALLS as u64 {
        buf[..2].copy_from_slice(&8u16.to_be_bytes());
        buf[2..].copy_from_slice(&i.to_be_bytes());
        c.write_all(&buf).await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / CALLS as f64
}

const PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

async fn send_frame(s: &mut TcpStream, msg: &[u8]) {
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    s.write_all(&out).await.unwrap();
}

async fn recv_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut len = [0u8; 2];
    if s.read_exact(&mut len).await.is_err() {
        return false;
    }
    buf.resize(usize::from(u16::from_be_bytes(len)), 0);
    s.read_exact(buf).await.is_ok()
}

/// A bare snow XX handshake over a fresh TCP connection (client side); returns the
/// transport state and the time it took including the connect.
async fn snow_connect(addr: std::net::SocketAddr) -> (TcpStream, snow::TransportState, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let b = snow::Builder::new(PARAMS.parse().unwrap());
    let key = b.generate_keypair().unwrap();
    let mut hs = snow::Builder::new(PARAMS.parse().unwrap())
        .local_private_key(&key.private)
        .unwrap()
        .build_initiator()
        .unwrap();
    let (mut out, mut inb) = (vec![0u8; 65535], Vec::new());
    let n = hs.write_message(&[], &mut out).unwrap();
    send_frame(&mut s, &out[..n]).await;
    recv_frame(&mut s, &mut inb).await;
    hs.read_message(&inb, &mut out).unwrap();
    let n = hs.write_message(&[], &mut out).unwrap();
    send_frame(&mut s, &out[..n]).await;
    let took = start.elapsed();
    (s, hs.into_transport_mode().unwrap(), took)
}

/// A snow XX responder that echoes every transport message.
async fn snow_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                s.set_nodelay(true).unwrap();
                let b = snow::Builder::new(PARAMS.parse().unwrap());
                let key = b.generate_keypair().unwrap();
                let mut hs = snow::Builder::new(PARAMS.parse().unwrap())
                    .local_private_key(&key.private)
                    .unwrap()
                    .build_responder()
                    .unwrap();
                let (mut out, mut inb) = (vec![0u8; 65535], Vec::new());
                recv_frame(&mut s, &mut inb).await;
                hs.read_message(&inb, &mut out).unwrap();
                let n = hs.write_message(&[], &mut out).unwrap();
                send_frame(&mut s, &out[..n]).await;
                recv_frame(&mut s, &mut inb).await;
                hs.read_message(&inb, &mut out).unwrap();
                let mut t = hs.into_transport_mode().unwrap();
                let mut plain = vec![0u8; 65535];
                while recv_frame(&mut s, &mut inb).await {
                    let n = t.read_message(&inb, &mut plain).unwrap();
                    let m = t.write_message(&plain[..n], &mut out).unwrap();
                    send_frame(&mut s, &out[..m]).await;
                }
            });
        }
    });
    addr
}

/// Raw snow: 8-byte messages echoed through a Noise transport; mean round trip in us.
async fn snow_echo(addr: std::net::SocketAddr) -> f64 {
    let (mut s, mut t, _) = snow_connect(addr).await;
    let (mut out, mut inb, mut plain) = (vec![0u8; 65535], Vec::new(), vec![0u8; 65535]);
    let start = Instant::now();
    for i in 0..CALLS as u64 {
        let n = t.write_message(&i.to_be_bytes(), &mut out).unwrap();
        send_frame(&mut s, &out[..n]).await;
        recv_frame(&mut s, &mut inb).await;
        t.read_message(&inb, &mut plain).unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / CALLS as f64
}

struct Setup {
    server: Node,
    client: Node,
    counter: ActorRef<Counter>,
}

async fn setup(system: &System) -> Setup {
    let server = Node::builder()
        .trust(TrustPolicy::any())
        .start(system)
        .await
        .unwrap();
    let client = Node::builder()
        .trust(TrustPolicy::allow([server.identifier()]))
        .start(system)
        .await
        .unwrap();
    server
        .export("counter", &system.spawn(Counter::default()))
        .unwrap()
        .policy("true") // any node the trust policy lets in
        .unwrap();
    let counter = client.lookup::<Counter>("counter", server.addr()).await.unwrap();
    Setup {
        server,
        client,
        counter,
    }
}

async fn rcall(counter: &ActorRef<Counter>) -> f64 {
    let start = Instant::now();
    for _ in 0..CALLS {
        counter.get().await.unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / CALLS as f64
}

async fn rcall8(counter: &ActorRef<Counter>) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = counter.clone();
            tokio::spawn(async move {
                for _ in 0..CALLS / 8 {
                    c.get().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    CALLS as f64 / start.elapsed().as_secs_f64()
}

async fn rcast(counter: &ActorRef<Counter>) -> f64 {
    let before = counter.get().await.unwrap();
    let start = Instant::now();
    for _ in 0..CASTS {
        counter.add(1).cast().await.unwrap();
    }
    let after = counter.get().await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(after - before, CASTS, "every cast arrived");
    CASTS as f64 / secs
}

/// A new node: connect, handshake, look up, first call. Median, in milliseconds.
async fn connect(system: &System, server: &Node) -> f64 {
    let mut times = Vec::new();
    for _ in 0..CONNECTS {
        let start = Instant::now();
        let node = Node::builder()
            .trust(TrustPolicy::allow([server.identifier()]))
            .start(system)
            .await
            .unwrap();
        let counter = node.lookup::<Counter>("counter", server.addr()).await.unwrap();
        counter.get().await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
        node.shutdown().await;
    }
    median(times)
}

/// troupe's handshake alone (TCP connect included), median in milliseconds.
async fn troupe_handshake(server: &Node) -> f64 {
    let me = troupe::secure::Identity::generate();
    let mut times = Vec::new();
    for _ in 0..CONNECTS {
        let start = Instant::now();
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let ch = troupe::secure::SecureChannel::initiate(tcp, &me, TrustPolicy::allow([server.identifier()]))
            .await
            .unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
        drop(ch);
    }
    median(times)
}

async fn snow_handshake(addr: std::net::SocketAddr) -> f64 {
    let mut times = Vec::new();
    for _ in 0..CONNECTS {
        let (_s, _t, took) = snow_connect(addr).await;
        times.push(took.as_secs_f64() * 1e3);
    }
    median(times)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let system = System::new();
        let snow_addr = snow_server().await;
        let s = setup(&system).await;
        let rc = remote_ractor::setup().await;
        let mut rows: Vec<(&str, Vec<f64>)> = vec![
            ("raw tokio TCP echo, round trip (us)", vec![]),
            ("raw snow Noise echo, round trip (us)", vec![]),
            ("rcall: sequential remote calls, round trip (us)", vec![]),
            ("rcall8: 8 concurrent callers (calls/s)", vec![]),
            ("rcast: u64 casts then one call (msgs/s)", vec![]),
            ("bare snow XX handshake + TCP connect (ms)", vec![]),
            ("troupe handshake + TCP connect (ms)", vec![]),
            ("connect: new node to first call (ms)", vec![]),
            ("ractor_cluster rcall, round trip (us)", vec![]),
            ("ractor_cluster rcall8 (calls/s)", vec![]),
            ("ractor_cluster rcast (msgs/s)", vec![]),
            ("ractor_cluster connect (ms)", vec![]),
        ];
        for run in 0..RUNS {
            let values = [
                tcp_echo().await,
                snow_echo(snow_addr).await,
                rcall(&s.counter).await,
                rcall8(&s.counter).await,
                rcast(&s.counter).await,
                snow_handshake(snow_addr).await,
                troupe_handshake(&s.server).await,
                connect(&system, &s.server).await,
                remote_ractor::rcall(&rc.counter).await,
                remote_ractor::rcall8(&rc.counter).await,
                remote_ractor::rcast(&rc.counter).await,
                remote_ractor::connect(&rc).await,
            ];
            for (row, v) in rows.iter_mut().zip(values) {
                row.1.push(v);
            }
            eprintln!("run {}/{RUNS} done", run + 1);
        }
        println!("Medians of {RUNS} runs, 2 worker threads, both nodes in one process over loopback TCP.\n");
        println!("| measurement | median | runs |");
        println!("|---|---|---|");
        let mut medians = Vec::new();
        for (name, values) in &rows {
            let m = median(values.clone());
            medians.push(m);
            let all: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
            println!("| {name} | {m:.2} | {} |", all.join(", "));
        }
        println!();
        println!(
            "rcall / raw snow echo: {:.2}x (target <= 1.3x)",
            medians[2] / medians[1]
        );
        println!("rcast: {:.0} msgs/s (target >= 1,000,000)", medians[4]);
        println!("connect: {:.2} ms (target <= 5 ms)", medians[7]);
        println!(
            "troupe handshake / bare snow handshake: {:.2}x (target <= 1.2x)",
            medians[6] / medians[5]
        );
        println!(
            "troupe over ractor_cluster (plaintext TCP), >1 = troupe better: \
             rcall {:.2}x, rcall8 {:.2}x, rcast {:.2}x, connect {:.2}x",
            medians[8] / medians[2],
            medians[3] / medians[9],
            medians[4] / medians[10],
            medians[11] / medians[7]
        );
        remote_ractor::shutdown(rc).await;
        s.client.shutdown().await;
        s.server.shutdown().await;
    });
}
