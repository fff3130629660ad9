//! Portals between two nodes in this process: TCP services reached through an inlet on
//! one node and an outlet on the other. The cross-process tests (a real HTTP server, a
//! node killed mid-stream) are in the workspace's `tests/portals.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actor_secure::{Identity, Node, NodeError, PortalConfig, TrustPolicy};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use troupe::System;

async fn node(system: &System, identity: Identity, trust: TrustPolicy, portals: PortalConfig) -> Node {
    Node::builder()
        .identity(identity)
        .trust(trust)
        .portals(portals)
        .start(system)
        .await
        .expect("node starts")
}

/// Two nodes that trust each other, with these portal settings.
async fn pair_with(system: &System, portals: PortalConfig) -> (Node, Node) {
    let (ia, ib) = (Identity::generate(), Identity::generate());
    let (ida, idb) = (ia.identifier(), ib.identifier());
    let a = node(system, ia, TrustPolicy::allow([idb]), portals.clone()).await;
    let b = node(system, ib, TrustPolicy::allow([ida]), portals).await;
    (a, b)
}

async fn pair(system: &System) -> (Node, Node) {
    pair_with(system, PortalConfig::default()).await
}

/// An echo service: writes back what it reads, then half-closes at end of file.
async fn echo_service() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Bytes that are different everywhere (a xorshift stream), so a lost, repeated or
/// swapped chunk shows.
struct Pattern(u64);

impl Pattern {
    /// The next `buf.len()` bytes of the stream (eight per step; `buf` lengths other
    /// than multiples of eight are only ever the last of a stream here).
    fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            word.copy_from_slice(&self.0.to_le_bytes()[..word.len()]);
        }
    }
}

/// Writes `total` pattern bytes, then half-closes.
async fn send_pattern<W: AsyncWrite + Unpin>(mut w: W, seed: u64, total: usize) {
    let mut pattern = Pattern(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let n = buf.len().min(total - sent);
        pattern.fill(&mut buf[..n]);
        w.write_all(&buf[..n]).await.expect("write");
        sent += n;
    }
    w.shutdown().await.expect("half-close");
}

/// Reads to end of file and checks every byte against the pattern; returns the count.
async fn check_pattern<R: AsyncRead + Unpin>(mut r: R, seed: u64) -> usize {
    const BLOCK: usize = 64 * 1024;
    let mut pattern = Pattern(seed);
    let mut buf = vec![0u8; BLOCK];
    // The pattern in the blocks the sender wrote; `at` is how far into this one.
    let mut want = vec![0u8; BLOCK];
    pattern.fill(&mut want);
    let mut at = 0;
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).await.expect("read");
        if n == 0 {
            return total;
        }
        let mut got = &buf[..n];
        while !got.is_empty() {
            if at == BLOCK {
                pattern.fill(&mut want);
                at = 0;
            }
            let k = got.len().min(BLOCK - at);
            assert!(got[..k] == want[at..at + k], "bytes from {total} differ");
            got = &got[k..];
            at += k;
            total += k;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_mib_cross_an_inlet_and_an_outlet_byte_for_byte() {
    let system = System::new();
    let (a, b) = pair(&system).await;
    a.outlet("echo", echo_service().await.to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let inlet = b.inlet("127.0.0.1:0", a.addr(), "echo").await.unwrap();
    let tcp = TcpStream::connect(inlet.addr()).await.unwrap();
    let (r, w) = tcp.into_split();
    const TOTAL: usize = 100 << 20;
    let started = Instant::now();
    let (_, got) = tokio::join!(send_pattern(w, 7, TOTAL), check_pattern(r, 7));
    assert_eq!(got, TOTAL, "every byte came back, then end of file");
    eprintln!("100 MiB there and back in {:?}", started.elapsed());
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_close_reaches_the_service_and_its_answer_still_comes_back() {
    let system = System::new();
    let (a, b) = pair(&system).await;
    // A service that answers only once the request is complete (it read end of file).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        tcp.read_to_end(&mut request).await.unwrap();
        let answer = format!("got {} bytes", request.len());
        tcp.write_all(answer.as_bytes()).await.unwrap();
    });
    a.outlet("svc", service.to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let inlet = b.inlet("127.0.0.1:0", a.addr(), "svc").await.unwrap();
    let mut tcp = TcpStream::connect(inlet.addr()).await.unwrap();
    tcp.write_all(&[5u8; 1000]).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer))
        .await
        .expect("the answer and end of file come")
        .unwrap();
    assert_eq!(answer, "got 1000 bytes");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_side_closing_closes_the_other() {
    let system = System::new();
    let (a, b) = pair(&system).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = listener.local_addr().unwrap();
    a.outlet("svc", service.to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let inlet = b.inlet("127.0.0.1:0", a.addr(), "svc").await.unwrap();

    // The service closes: the client reads what was sent, then end of file.
    let mut client = TcpStream::connect(inlet.addr()).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    server.write_all(b"bye").await.unwrap();
    drop(server);
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut got))
        .await
        .expect("the client sees the close")
        .unwrap();
    assert_eq!(got, b"bye");

    // The client closes: the service sees end of file.
    let mut client = TcpStream::connect(inlet.addr()).await.unwrap();
    client.write_all(b"hi").await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    drop(client);
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), server.read_to_end(&mut got))
        .await
        .expect("the service sees the close")
        .unwrap();
    assert_eq!(got, b"hi");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_link_closes_both_ends_promptly() {
    let system = System::new();
    let (a, b) = pair(&system).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = listener.local_addr().unwrap();
    a.outlet("svc", service.to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let inlet = b.inlet("127.0.0.1:0", a.addr(), "svc").await.unwrap();
    let mut client = TcpStream::connect(inlet.addr()).await.unwrap();
    client.write_all(b"ping").await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let mut ping = [0u8; 4];
    server.read_exact(&mut ping).await.unwrap();

    // The node with the inlet goes away mid-connection.
    let started = Instant::now();
    b.shutdown().await;
    let mut rest = Vec::new();
    let seen = tokio::time::timeout(Duration::from_secs(2), server.read_to_end(&mut rest)).await;
    assert!(seen.is_ok(), "the service's connection closes");
    let seen = tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut rest)).await;
    assert!(seen.is_ok(), "the client's connection closes");
    assert!(rest.is_empty());
    eprintln!("both ends closed {:?} after the node went", started.elapsed());
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_connection_idles_out_at_both_ends() {
    let system = System::new();
    let config = PortalConfig::default().idle_timeout(Duration::from_millis(300));
    let (a, b) = pair_with(&system, config).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    a.outlet("svc", listener.local_addr().unwrap().to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let inlet = b.inlet("127.0.0.1:0", a.addr(), "svc").await.unwrap();
    let mut client = TcpStream::connect(inlet.addr()).await.unwrap();
    client.write_all(b"x").await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), server.read_to_end(&mut got))
        .await
        .expect("the service's end closes")
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), client.read_to_end(&mut rest))
        .await
        .expect("the client's end closes")
        .unwrap();
    let after = started.elapsed();
    assert_eq!(got, b"x");
    assert!(
        after >= Duration::from_millis(200),
        "not before the idle timeout: {after:?}"
    );
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_slows_the_writer_and_memory_stays_bounded() {
    let system = System::new();
    let (a, b) = pair_with(&system, PortalConfig::default().window(64 * 1024)).await;
    // A service that writes as fast as it may, counting what its socket took.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let count = written.clone();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let chunk = vec![9u8; 16 * 1024];
        while tcp.write_all(&chunk).await.is_ok() {
            count.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    a.outlet("firehose", service.to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let inlet = b.inlet("127.0.0.1:0", a.addr(), "firehose").await.unwrap();
    let mut client = TcpStream::connect(inlet.addr()).await.unwrap();

    // The client reads nothing: the service must stall once the sockets' buffers and
    // the windows are full (unbounded, it would write gigabytes meanwhile).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stalled = written.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = written.load(Ordering::Relaxed);
    eprintln!("the service wrote {stalled} bytes, then {later}, to a client that reads nothing");
    assert!(stalled < 48 << 20, "bounded: {stalled} bytes");
    assert!(later - stalled < 1 << 20, "stalled: {stalled} then {later}");

    // Reading lets it go on.
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0;
    while read < (stalled as usize) + (8 << 20) {
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0);
        assert!(buf[..n].iter().all(|&b| b == 9));
        read += n;
    }
    assert!(
        written.load(Ordering::Relaxed) > later,
        "the writer went on once read"
    );
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_at_once_each_get_their_own_bytes() {
    let system = System::new();
    let (a, b) = pair(&system).await;
    a.outlet("echo", echo_service().await.to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let inlet = b.inlet("127.0.0.1:0", a.addr(), "echo").await.unwrap();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let addr = inlet.addr();
        clients.spawn(async move {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let (r, w) = tcp.into_split();
            let total = 100_000 + i as usize * 1000;
            let (_, got) = tokio::join!(send_pattern(w, 1000 + i, total), check_pattern(r, 1000 + i));
            assert_eq!(got, total);
        });
    }
    let mut done = 0;
    while let Some(result) = clients.join_next().await {
        result.expect("a connection got its own bytes back");
        done += 1;
    }
    assert_eq!(done, 200);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlets_are_under_access_control_and_refusals_are_typed() {
    let system = System::new();
    let (a, b) = pair(&system).await;
    let echo = echo_service().await.to_string();

    // No policy, no default policy: denied.
    a.outlet("closed", &echo).unwrap();
    let e = b.connect_outlet(a.addr(), "closed").await.unwrap_err();
    assert!(matches!(e, NodeError::Denied), "{e}");

    // A policy that names another node: denied; one that names this node: allowed.
    let outlet = a
        .outlet("db", &echo)
        .unwrap()
        .policy(r#"subject.identifier = "nobody""#)
        .unwrap();
    let e = b.connect_outlet(a.addr(), "db").await.unwrap_err();
    assert!(matches!(e, NodeError::Denied), "{e}");
    outlet
        .policy(format!(
            r#"subject.identifier = "{}" and action.kind = "connect""#,
            b.identifier()
        ))
        .unwrap();
    let mut stream = b.connect_outlet(a.addr(), "db").await.expect("allowed now");
    stream.write_all(b"through").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"through");

    // No such outlet; a service that is down.
    let e = b.connect_outlet(a.addr(), "nothing").await.unwrap_err();
    assert!(matches!(&e, NodeError::NoSuchOutlet(n) if n == "nothing"), "{e}");
    let down = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    a.outlet("down", down.to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let e = b.connect_outlet(a.addr(), "down").await.unwrap_err();
    assert!(
        matches!(&e, NodeError::Refused(why) if why.contains("cannot be reached")),
        "{e}"
    );
    assert!(matches!(
        a.outlet("db", &echo),
        Err(NodeError::AlreadyAnOutlet(_))
    ));
    assert!(a.remove_outlet("db"));
    let e = b.connect_outlet(a.addr(), "db").await.unwrap_err();
    assert!(matches!(e, NodeError::NoSuchOutlet(_)), "{e}");

    // An inlet whose connections are refused closes them at once.
    let inlet = b.inlet("127.0.0.1:0", a.addr(), "closed").await.unwrap();
    let mut tcp = TcpStream::connect(inlet.addr()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut got))
        .await
        .expect("closed at once")
        .ok();
    assert!(got.is_empty());
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outlet_created_with_its_policy_never_falls_back_to_the_default() {
    let system = System::new();
    let (a, b) = pair(&system).await;
    let echo = echo_service().await.to_string();
    // A default that lets everyone in: an outlet without a policy of its own is open.
    a.set_default_policy(Some(troupe::abac::Policy::parse("true").unwrap()));
    a.outlet("open", &echo).unwrap();
    b.connect_outlet(a.addr(), "open")
        .await
        .expect("the default allows");

    // One created with its policy is decided by that policy, from its first connection.
    let outlet = a
        .outlet_with_policy("strict", &echo, r#"subject.identifier = "nobody""#)
        .unwrap();
    assert_eq!(outlet.name(), "strict");
    let e = b.connect_outlet(a.addr(), "strict").await.unwrap_err();
    assert!(matches!(e, NodeError::Denied), "{e}");

    // A policy that does not parse adds no outlet; a name in use is refused.
    let e = a.outlet_with_policy("broken", &echo, "(and").unwrap_err();
    assert!(matches!(e, NodeError::Policy(_)), "{e}");
    assert!(!a.remove_outlet("broken"), "nothing was added");
    assert!(matches!(
        a.outlet_with_policy("strict", &echo, "true"),
        Err(NodeError::AlreadyAnOutlet(_))
    ));
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_may_hold_only_so_many_connections_into_outlets() {
    let system = System::new();
    let (a, b) = pair_with(&system, PortalConfig::default().max_connections(3)).await;
    a.outlet("echo", echo_service().await.to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            b.connect_outlet(a.addr(), "echo")
                .await
                .expect("within the bound"),
        );
    }
    let e = b.connect_outlet(a.addr(), "echo").await.unwrap_err();
    assert!(
        matches!(&e, NodeError::Refused(why) if why.contains("too many")),
        "{e}"
    );
    // One ends: there is room again.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match b.connect_outlet(a.addr(), "echo").await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no room after a connection ended: {e}"),
        }
    }
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_inlet_takes_no_more_connections() {
    let system = System::new();
    let (a, b) = pair(&system).await;
    a.outlet("echo", echo_service().await.to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let inlet = b.inlet("127.0.0.1:0", a.addr(), "echo").await.unwrap();
    let mut tcp = TcpStream::connect(inlet.addr()).await.unwrap();
    tcp.write_all(b"before").await.unwrap();
    let mut got = [0u8; 6];
    tcp.read_exact(&mut got).await.unwrap();
    inlet.close();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(inlet.addr()).await.is_err(), "nothing listens");
    // The open connection goes on.
    tcp.write_all(b"after!").await.unwrap();
    tcp.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"after!");
    b.shutdown().await;
    a.shutdown().await;
}
