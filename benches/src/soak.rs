//! Secure-channel soak test: one responder (a separate process) under 200 hostile
//! connections of every kind the hardening work defends against, while an honest client
//! keeps making handshakes and exchanging messages. By default attackers and the honest
//! client all connect from 127.0.0.1, so the per-source bounds do not separate them (the
//! worst case); `--attack-from 127.0.0.2` gives the attackers an address of their own.
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml --bin secure-soak -- --secs 120 [--attack-from 127.0.0.2]
//! ```
//!
//! Reports the honest client's success rate, its handshake latency before and under
//! attack (median and 99th percentile), and the responder's peak resident memory
//! (`VmHWM`) against its configured budget. Not part of CI: it takes minutes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::TcpStream;
use troupe::secure::{
    ChannelConfig, ChannelLimits, Identity, ListenerConfig, SecureChannel, SecureListener, TrustPolicy,
};

/// The responder's bounds: what its memory must stay within.
const MAX_CHANNELS: usize = 1024;
const MEMORY_BUDGET: usize = 64 * 1024 * 1024;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if arg("--role").as_deref() == Some("server") {
        runtime.block_on(server());
    } else {
        let secs = arg("--secs").and_then(|s| s.parse().ok()).unwrap_or(120u64);
        let from = arg("--attack-from")
            .and_then(|a| a.parse().ok())
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        runtime.block_on(driver(Duration::from_secs(secs), from));
    }
}

/// The responder: an echo server that trusts anyone with a key (the worst case: hostile
/// peers can authenticate). Prints its address and identifier, then serves until killed.
async fn server() {
    let identity = Arc::new(Identity::generate());
    let channel = ChannelConfig::default().limits(ChannelLimits::new(MAX_CHANNELS, MEMORY_BUDGET));
    let config = ListenerConfig::default().channel(channel);
    let mut listener = SecureListener::bind_with("127.0.0.1:0", identity.clone(), TrustPolicy::any(), config)
        .await
        .expect("bind");
    println!("{} {}", listener.local_addr(), identity.identifier());
    while let Ok((mut ch, _)) = listener.accept().await {
        tokio::spawn(async move {
            while let Ok(msg) = ch.recv().await {
                if ch.send(&msg).await.is_err() {
                    break;
                }
            }
        });
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn driver(duration: Duration, attack_from: std::net::Ipv4Addr) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = tokio::process::Command::new(exe)
        .args(["--role", "server"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the responder");
    let pid = child.id().expect("responder pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next_line().await.expect("read").expect("responder address");
    let mut parts = first.split_whitespace();
    let addr: SocketAddr = parts.next().and_then(|a| a.parse().ok()).expect("address");
    let server_id = parts.next().and_then(|i| i.parse().ok()).expect("identifier");
    let trust = TrustPolicy::allow([server_id]);
    println!(
        "responder pid {pid} at {addr}; budget {MAX_CHANNELS} channels, {} MiB",
        MEMORY_BUDGET >> 20
    );

    let client = Arc::new(Identity::generate());
    let quiet = duration / 4;
    println!("phase 1: honest client alone for {quiet:?}");
    let alone = honest(addr, &client, &trust, quiet).await;
    let rss_alone = rss_kib(pid);

    println!("phase 2: 200 hostile connections from {attack_from} plus the honest client for {duration:?}");
    let stop = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    let kinds: [(&str, usize); 6] = [
        ("silent, reopened every 10 s", 50),
        ("handshake dripped 1 byte/s", 30),
        ("partial 900 KB message, then stall", 40),
        ("half frame, then stall", 30),
        ("sends 64 KiB messages, never reads", 30),
        ("idle after the handshake", 20),
    ];
    for (kind, (_, n)) in kinds.iter().enumerate() {
        for _ in 0..*n {
            let (stop, trust) = (stop.clone(), trust.clone());
            attackers.push(tokio::spawn(async move {
                attack(kind, attack_from, addr, trust, stop).await
            }));
        }
    }
    let mut peak_sampled = 0u64;
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while stop.load(Ordering::Relaxed) == 0 {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            peak
        })
    };
    let attacked = honest(addr, &client, &trust, duration).await;
    stop.store(1, Ordering::Relaxed);
    for a in attackers {
        a.abort();
    }
    if let Ok(p) = sampler.await {
        peak_sampled = p;
    }
    let peak = peak_rss_kib(pid);
    let _ = child.kill().await;

    println!();
    println!("| | alone | under attack |");
    println!("|---|---|---|");
    println!(
        "| honest sessions ok | {}/{} ({:.1}%) | {}/{} ({:.1}%) |",
        alone.ok,
        alone.tried,
        alone.rate(),
        attacked.ok,
        attacked.tried,
        attacked.rate()
    );
    println!(
        "| handshake median | {:.2} ms | {:.2} ms |",
        alone.percentile(0.5),
        attacked.percentile(0.5)
    );
    println!(
        "| handshake p99 | {:.2} ms | {:.2} ms |",
        alone.percentile(0.99),
        attacked.percentile(0.99)
    );
    println!(
        "| responder RSS | {} KiB | peak {} KiB (sampled {} KiB) |",
        rss_alone.unwrap_or(0),
        peak.unwrap_or(0),
        peak_sampled
    );
    let mut failures = std::collections::BTreeMap::new();
    for e in &attacked.errors {
        *failures.entry(e.as_str()).or_insert(0usize) += 1;
    }
    if !failures.is_empty() {
        println!("\nhonest failures under attack: {failures:?}");
    }
}

#[derive(Default)]
struct Honest {
    tried: usize,
    ok: usize,
    handshakes_ms: Vec<f64>,
    errors: Vec<String>,
}

impl Honest {
    fn rate(&self) -> f64 {
        100.0 * self.ok as f64 / self.tried.max(1) as f64
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.handshakes_ms.clone();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

/// Sessions back to back for `duration`: connect, handshake, 10 echoed messages, close.
async fn honest(addr: SocketAddr, me: &Identity, trust: &TrustPolicy, duration: Duration) -> Honest {
    let mut stats = Honest::default();
    let end = Instant::now() + duration;
    while Instant::now() < end {
        stats.tried += 1;
        let session = async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let start = Instant::now();
            let mut ch = SecureChannel::initiate(tcp, me, trust.clone()).await?;
            let took = start.elapsed();
            for i in 0..10u32 {
                let msg = i.to_be_bytes().repeat(64);
                ch.send(&msg).await?;
                if ch.recv().await?[..] != msg[..] {
                    return Err("echo differs".into());
                }
            }
            ch.close().await?;
            Ok::<_, Box<dyn std::error::Error>>(took)
        };
        match tokio::time::timeout(Duration::from_secs(15), session).await {
            Ok(Ok(took)) => {
                stats.ok += 1;
                stats.handshakes_ms.push(took.as_secs_f64() * 1e3);
            }
            Ok(Err(e)) => stats.errors.push(e.to_string()),
            Err(_) => stats.errors.push("session timed out".into()),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stats
}

/// A stream whose writes stop for good after `budget` bytes: the peer sees part of a
/// message or frame, then nothing.
struct Stall {
    inner: TcpStream,
    budget: usize,
}

impl AsyncRead for Stall {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stall {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.budget == 0 {
            return Poll::Pending;
        }
        let n = buf.len().min(self.budget);
        let done = Pin::new(&mut self.inner).poll_write(cx, &buf[..n]);
        if let Poll::Ready(Ok(written)) = &done {
            self.budget -= written;
        }
        done
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.budget == 0 {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One hostile connection of `kind`, repeated until the soak ends.
async fn attack(
    kind: usize,
    from: std::net::Ipv4Addr,
    addr: SocketAddr,
    trust: TrustPolicy,
    stop: Arc<AtomicUsize>,
) {
    let me = Identity::generate();
    let connect = || async move {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((from, 0)))?;
        socket.connect(addr).await
    };
    while stop.load(Ordering::Relaxed) == 0 {
        let Ok(mut tcp) = connect().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        match kind {
            // Silent: say nothing, reopen every 10 s.
            0 => tokio::time::sleep(Duration::from_secs(10)).await,
            // Drip a first handshake message one byte per second.
            1 => {
                for b in [0u8, 32].into_iter().chain(std::iter::repeat(7)) {
                    if tcp.write_all(&[b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            // Authenticate, then send most of a large message and stall.
            2 | 3 => {
                let budget = if kind == 2 { 600_000 } else { 200_000 + 1_001 };
                let stalled = Stall { inner: tcp, budget };
                if let Ok(mut ch) = SecureChannel::initiate(stalled, &me, trust.clone()).await {
                    let msg = vec![0u8; 900_000];
                    let _ = tokio::time::timeout(Duration::from_secs(300), ch.send(&msg)).await;
                }
            }
            // Authenticate, send forever, never read the echoes.
            4 => {
                if let Ok(mut ch) = SecureChannel::initiate(tcp, &me, trust.clone()).await {
                    let msg = vec![1u8; 64 * 1024];
                    while ch.send(&msg).await.is_ok() {}
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
            // Authenticate, then hold the channel without a word.
            _ => {
                if let Ok(ch) = SecureChannel::initiate(tcp, &me, trust.clone()).await {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    drop(ch);
                }
            }
        }
    }
}
