//! Secure channel benchmark: handshake time, 64 KiB throughput against the raw
//! ChaCha20-Poly1305 rate measured in the same run, and 128-byte messages per second.
//!
//! ```text
//! cargo run --release -p actor-secure --example channel_bench
//! ```
//!
//! Prints the median of several runs of each measurement.

use std::time::{Duration, Instant};

use actor_secure::{Identity, SecureChannel, TrustPolicy};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

const RUNS: usize = 5;
const BIG: usize = 64 * 1024;
const SMALL: usize = 128;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Raw AEAD: encrypt then decrypt 64 KiB in place, bytes of plaintext per second.
fn raw_aead_rate() -> f64 {
    let aead = ChaCha20Poly1305::new(&[7u8; 32].into());
    let mut buf = vec![0u8; BIG];
    let n = 2000u64;
    let start = Instant::now();
    for i in 0..n {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&i.to_le_bytes());
        let nonce = Nonce::from(nonce);
        let tag = aead.encrypt_in_place_detached(&nonce, &[], &mut buf).unwrap();
        aead.decrypt_in_place_detached(&nonce, &[], &mut buf, &tag)
            .unwrap();
    }
    (n as f64 * BIG as f64) / start.elapsed().as_secs_f64()
}

async fn handshake<IO>(a: IO, b: IO, alice: &Identity, bob: &Identity) -> Duration
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let (x, y) = tokio::join!(
        SecureChannel::initiate(a, alice, TrustPolicy::any()),
        SecureChannel::respond(b, bob, TrustPolicy::any()),
    );
    let took = start.elapsed();
    x.unwrap();
    y.unwrap();
    took
}

async fn tcp_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (c, s) = (c.unwrap(), s.unwrap().0);
    c.set_nodelay(true).unwrap();
    s.set_nodelay(true).unwrap();
    (c, s)
}

/// Sends `count` messages of `size` bytes from one task to another; returns messages/s.
async fn stream<IO>(a: IO, b: IO, size: usize, count: usize, batch: bool) -> f64
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (alice, bob) = (Identity::generate(), Identity::generate());
    let (x, y) = tokio::join!(
        SecureChannel::initiate(a, &alice, TrustPolicy::any()),
        SecureChannel::respond(b, &bob, TrustPolicy::any()),
    );
    let (mut tx, mut rx) = (x.unwrap(), y.unwrap());
    let msg = vec![0xabu8; size];
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for _ in 0..count {
            if batch {
                tx.feed(&msg).await.unwrap();
            } else {
                tx.send(&msg).await.unwrap();
            }
        }
        tx.flush().await.unwrap();
        tx
    });
    let receiver = tokio::spawn(async move {
        for _ in 0..count {
            let m = rx.recv().await.unwrap();
            assert_eq!(m.len(), size);
        }
        rx
    });
    let _rx = receiver.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    drop(sender.await.unwrap());
    count as f64 / secs
}

/// Costs of the primitives one handshake is made of (per call, microseconds).
fn handshake_parts() {
    use curve25519_dalek::montgomery::MontgomeryPoint;
    let time = |f: &mut dyn FnMut()| {
        let n = 400;
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    let p = MontgomeryPoint::mul_base_clamped([5; 32]);
    let dh = time(&mut || {
        std::hint::black_box(p.mul_clamped(std::hint::black_box([7; 32])));
    });
    let base = time(&mut || {
        std::hint::black_box(MontgomeryPoint::mul_base_clamped(std::hint::black_box([7; 32])));
    });
    let id = Identity::generate();
    let payload = actor_secure::wire::HandshakePayload::sign(&id, &[1; 32], 1_000);
    let sign = time(&mut || {
        std::hint::black_box(actor_secure::wire::HandshakePayload::sign(&id, &[1; 32], 1_000));
    });
    let bytes = payload.encode();
    let verify = time(&mut || {
        let p = actor_secure::wire::HandshakePayload::decode(&bytes).unwrap();
        p.verify(&[1; 32], 0).unwrap();
    });
    println!(
        "  parts: X25519 DH {dh:.0} us, X25519 keygen {base:.0} us, identity sign {sign:.0} us, decode+verify {verify:.0} us"
    );
    println!("  (each side: 3 DH, 3 keygens, 1 sign, 1 verify; the two sides take turns)");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // `channel_bench [all|raw|handshake|big|small]` runs one part only (for profiling).
    let only = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let run = |part: &str| only == "all" || only == part;
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (alice, bob) = (Identity::generate(), Identity::generate());
        println!(
            "secure channel benchmark, median of {RUNS} runs, {} cores",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );

        let raw = if run("big") || run("raw") {
            median((0..RUNS).map(|_| raw_aead_rate()).collect())
        } else {
            f64::NAN
        };
        println!(
            "raw ChaCha20-Poly1305 encrypt+decrypt, 64 KiB:   {:8.1} MiB/s",
            raw / (1 << 20) as f64
        );

        for transport in ["duplex", "tcp"].into_iter().filter(|_| run("handshake")) {
            let mut times = Vec::new();
            for _ in 0..RUNS {
                let mut per = Vec::new();
                for _ in 0..50 {
                    let t = if transport == "duplex" {
                        let (a, b) = tokio::io::duplex(1 << 16);
                        handshake(a, b, &alice, &bob).await
                    } else {
                        let (a, b) = tcp_pair(&listener).await;
                        handshake(a, b, &alice, &bob).await
                    };
                    per.push(t.as_secs_f64());
                }
                times.push(median(per));
            }
            println!(
                "handshake over {transport:6}:                     {:8.0} us",
                median(times) * 1e6
            );
        }
        if run("handshake") {
            handshake_parts();
        }

        for transport in ["duplex", "tcp"].into_iter().filter(|_| run("big")) {
            let count = 4000; // 256 MiB
            let mut rates = Vec::new();
            for _ in 0..RUNS {
                let r = if transport == "duplex" {
                    let (a, b) = tokio::io::duplex(1 << 20);
                    stream(a, b, BIG, count, false).await
                } else {
                    let (a, b) = tcp_pair(&listener).await;
                    stream(a, b, BIG, count, false).await
                };
                rates.push(r * BIG as f64);
            }
            let rate = median(rates);
            println!(
                "64 KiB messages over {transport:6}:              {:8.1} MiB/s  ({:.0}% of raw AEAD)",
                rate / (1 << 20) as f64,
                100.0 * rate / raw
            );
        }

        let small = [("duplex", true), ("duplex", false), ("tcp", true)];
        for (transport, batch) in small.into_iter().filter(|_| run("small")) {
            let count = 1_000_000;
            let mut rates = Vec::new();
            for _ in 0..RUNS {
                let r = if transport == "duplex" {
                    let (a, b) = tokio::io::duplex(1 << 20);
                    stream(a, b, SMALL, count, batch).await
                } else {
                    let (a, b) = tcp_pair(&listener).await;
                    stream(a, b, SMALL, count, batch).await
                };
                rates.push(r);
            }
            let how = if batch { "feed+flush" } else { "send each " };
            println!(
                "128 B messages over {transport:6} ({how}):  {:10.0} msg/s",
                median(rates)
            );
        }
    });
}
