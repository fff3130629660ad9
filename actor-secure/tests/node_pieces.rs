//! Large messages between nodes go in pieces: a 10 MiB message does not hold back the
//! small ones behind it on the same link, and messages to one agent keep their order.
//! The link runs through a proxy that limits it to about 40 MB/s, so that a large
//! message takes long enough to see the difference.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actor_secure::{ChannelConfig, Identity, Node, SecureChannel, TrustPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use troupe::prelude::*;

const BIG: usize = 10 << 20;

/// Records the sizes of the blobs it gets.
#[derive(Debug, Default)]
pub struct Sink {
    lens: Vec<usize>,
}

#[agent(remote)]
impl Sink {
    // Strings, not `Vec<u8>`: serde encodes a string in one piece, a vector byte by
    // byte, which in a debug build takes longer than sending it.
    #[handle]
    fn put(&mut self, blob: String) -> usize {
        self.lens.push(blob.len());
        blob.len()
    }
    #[handle]
    fn note(&mut self, blob: String) {
        self.lens.push(blob.len());
    }
    #[handle]
    fn lens(&self) -> Vec<usize> {
        self.lens.clone()
    }
    #[handle]
    fn ping(&self) -> u8 {
        1
    }
}

/// A TCP proxy to `target` that forwards at most about 40 MB/s each way.
async fn slow_proxy(target: SocketAddr) -> SocketAddr {
    async fn pipe(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf) {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                break;
            }
            // 16 KiB per 0.4 ms.
            tokio::time::sleep(Duration::from_micros(400 * n as u64 / buf.len() as u64)).await;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(target).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw));
            tokio::spawn(pipe(sr, cw));
        }
    });
    addr
}

/// Two nodes with 16 MiB messages; `a` exports two sinks. Returns references to them
/// from `b`, through the slow proxy.
async fn setup(system: &System) -> (Node, Node, ActorRef<Sink>, ActorRef<Sink>) {
    let (ia, ib) = (Identity::generate(), Identity::generate());
    let (ida, idb) = (ia.identifier(), ib.identifier());
    let channel = ChannelConfig::default().max_message_size(16 << 20);
    let a = Node::builder()
        .identity(ia)
        .trust(TrustPolicy::allow([idb]))
        .channel(channel.clone())
        .start(system)
        .await
        .unwrap();
    let b = Node::builder()
        .identity(ib)
        .trust(TrustPolicy::allow([ida]))
        .channel(channel)
        .start(system)
        .await
        .unwrap();
    for name in ["one", "two"] {
        a.export(name, &system.spawn(Sink::default()))
            .unwrap()
            .policy("true")
            .unwrap();
    }
    let via = slow_proxy(a.addr()).await;
    let one = b.lookup::<Sink>("one", via).await.unwrap();
    let two = b.lookup::<Sink>("two", via).await.unwrap();
    (a, b, one, two)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_does_not_hold_back_small_ones_on_the_same_link() {
    let system = System::new();
    let (a, b, one, two) = setup(&system).await;
    assert_eq!(two.ping().await, Ok(1));
    let started = Instant::now();
    let big = tokio::spawn({
        let one = one.clone();
        async move { one.put("7".repeat(BIG)).await }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let asked = Instant::now();
    assert_eq!(two.ping().await, Ok(1));
    let small = asked.elapsed();
    let still_sending = !big.is_finished();
    assert_eq!(big.await.unwrap(), Ok(BIG));
    let large = started.elapsed();
    println!("a small call took {small:?} while a 10 MiB call took {large:?}");
    assert!(
        still_sending,
        "the small call came back while the large one was still on its way"
    );
    assert!(small * 4 < large, "{small:?} is not much less than {large:?}");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_one_agent_keep_their_order_around_a_large_one() {
    let system = System::new();
    let (a, b, one, _two) = setup(&system).await;
    one.note("1".repeat(BIG)).cast().await.unwrap();
    one.note("2".repeat(3)).cast().await.unwrap();
    one.note("3".repeat(2 << 20)).cast().await.unwrap();
    one.note("4".repeat(5)).cast().await.unwrap();
    assert_eq!(one.lens().await, Ok(vec![BIG, 3, 2 << 20, 5]));
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_make_a_node_hold_pieces_without_bound() {
    let system = System::new();
    let (attacker, ia) = (Identity::generate(), Identity::generate());
    let a = Node::builder()
        .identity(ia)
        .trust(TrustPolicy::allow([attacker.identifier()]))
        .start(&system)
        .await
        .unwrap();
    let piece = |id: u64, last: u8, len: usize| {
        let mut m = vec![12u8];
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0; 4]);
        m.push(last);
        m.extend(std::iter::repeat_n(0u8, len));
        m
    };
    // One message in pieces whose content is itself a piece.
    let mut nested = piece(2, 1, 0);
    nested.extend_from_slice(&piece(9, 1, 3));
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("too many at once", (1..=5).map(|id| piece(id, 0, 10)).collect()),
        (
            "over the size limit",
            (0..17).map(|_| piece(1, 0, 64 * 1024)).collect(),
        ),
        ("a bad flag", vec![piece(1, 7, 10)]),
        ("a piece inside a piece", vec![nested]),
    ];
    for (what, msgs) in cases {
        let tcp = TcpStream::connect(a.addr()).await.unwrap();
        let mut ch = SecureChannel::initiate(tcp, &attacker, TrustPolicy::allow([a.identifier()]))
            .await
            .unwrap();
        let hello = ch.recv().await.unwrap();
        ch.recv().await.unwrap();
        ch.send(&hello).await.unwrap();
        for m in msgs {
            if ch.send(&m).await.is_err() {
                break;
            }
        }
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if ch.recv().await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "{what}: the node closed the link");
    }
    a.shutdown().await;
}
