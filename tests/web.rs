//! The live view over HTTP, with a plain TCP client: the page, the JSON snapshot, the
//! token, the event stream and its bounds, stopping, and a system of 100,000 agents.

#![cfg(feature = "web")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use troupe::prelude::*;
use troupe::secure::{Node, TrustPolicy};
use troupe::web::{EntryKind, LiveView, Snapshot, WebError};

/// An agent that waits.
#[derive(Debug, Default)]
pub struct Idle;

#[agent]
impl Idle {
    #[handle]
    fn ping(&self) -> u8 {
        1
    }
}

/// One request, `Connection: close`; returns the status code, the head and the body.
async fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("the response ends")
        .expect("reads");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Opens the event stream; returns the connection after its response head.
async fn events(addr: SocketAddr, path: &str) -> (u16, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("a response head")
            .expect("reads");
        assert!(
            n > 0,
            "closed before the head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, stream)
}

/// Reads the stream until it holds `n` snapshot events; returns their `seq`s.
async fn snapshots(stream: &mut TcpStream, n: usize) -> Vec<u64> {
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    loop {
        let seqs: Vec<u64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Snapshot>(d).ok())
            .map(|s| s.seq)
            .collect();
        if seqs.len() >= n {
            return seqs;
        }
        let got = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("another event within 10 s")
            .expect("reads");
        assert!(got > 0, "the stream ended early:\n{text}");
        text.push_str(&String::from_utf8_lossy(&buf[..got]));
    }
}

/// True once nothing accepts connections at `addr`.
async fn refused(addr: SocketAddr) -> bool {
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn app(system: &System) -> SupervisorRef {
    Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("keeper", || Idle))
        .child(ChildSpec::supervisor(
            "inner",
            Supervisor::new(Strategy::OneForAll).child(ChildSpec::new("helper", || Idle)),
        ))
        .spawn(system)
}

#[tokio::test]
async fn the_page_is_self_contained_and_the_snapshot_has_the_tree() {
    let system = System::new();
    let _sup = app(&system);
    let view = LiveView::new(&system).serve().await.expect("serves");
    assert!(view.addr().ip().is_loopback(), "bound to loopback by default");
    assert_eq!(view.url(), format!("http://{}/", view.addr()));

    let (status, head, page) = get(view.addr(), "/", "").await;
    assert_eq!(status, 200);
    for id in [
        "id=\"tree\"",
        "id=\"agents\"",
        "id=\"rate\"",
        "id=\"updates\"",
        "<canvas id=\"chart\"",
    ] {
        assert!(page.contains(id), "the page has {id}");
    }
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("src="),
        "the page loads no external asset"
    );
    assert!(head
        .to_ascii_lowercase()
        .contains("content-security-policy: default-src 'none'"));

    // The supervisor starts its children on its own task.
    for _ in 0..100 {
        if system.agent_count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _, json) = get(view.addr(), "/api/snapshot", "").await;
    assert_eq!(status, 200);
    let snap: Snapshot = serde_json::from_str(&json).expect("a snapshot");
    // The app's two agents (supervisors are not agents).
    assert_eq!(snap.agents, 2);
    assert!(!snap.aggregated);
    let root = &snap.tree[0];
    assert_eq!((root.kind, root.name.as_str()), (EntryKind::Supervisor, "root"));
    assert_eq!(root.children[0].name, "keeper");
    assert_eq!(root.children[0].type_name.as_deref(), Some("Idle"));
    assert_eq!(root.children[1].children[0].name, "helper");
    assert!(snap.types.iter().any(|t| t.type_name == "Idle" && t.agents == 2));
    // By default the chart shows the messages the whole system handles per second.
    assert_eq!(
        (snap.rate.label.as_str(), snap.rate.unit.as_str()),
        ("messages", "per second")
    );
    assert!(
        root.children[0].mailbox.is_some(),
        "each agent shows its mailbox depth"
    );

    let (status, _, _) = get(view.addr(), "/nothing", "").await;
    assert_eq!(status, 404);
    view.stop().await;
    system.shutdown().await;
}

#[tokio::test]
async fn with_a_token_every_request_must_present_it() {
    let system = System::new();
    let view = LiveView::new(&system)
        .token("s3cret-token")
        .serve()
        .await
        .expect("serves");
    assert_eq!(view.url(), format!("http://{}/?token=s3cret-token", view.addr()));
    for path in ["/", "/api/snapshot", "/api/events"] {
        let (status, head, _) = get(view.addr(), path, "").await;
        assert_eq!(status, 401, "{path} without the token");
        assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"));
        let (status, _, _) = get(view.addr(), &format!("{path}?token=s3cret-tokeN"), "").await;
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, _, _) = get(view.addr(), path, "Authorization: Bearer s3cret\r\n").await;
        assert_eq!(status, 401, "{path} with a prefix of the token");
    }
    let (status, _, _) = get(
        view.addr(),
        "/api/snapshot",
        "Authorization: Bearer s3cret-token\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, page) = get(view.addr(), "/?token=s3cret-token", "").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"tree\""));

    for bad in ["", "has space", "a&b=c"] {
        let err = LiveView::new(&system)
            .token(bad)
            .serve()
            .await
            .expect_err("refused");
        assert!(matches!(err, WebError::Token), "{bad:?}: {err}");
    }
    let err = LiveView::new(&system)
        .bind("not an address")
        .serve()
        .await
        .expect_err("refused");
    assert!(matches!(err, WebError::Bind { .. }), "{err}");
    view.stop().await;
    system.shutdown().await;
}

#[tokio::test]
async fn events_bring_a_new_snapshot_every_second_and_the_counter_is_charted() {
    let system = System::new();
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = counted.clone();
    let view = LiveView::new(&system)
        .counter("messages", move || {
            counter.fetch_add(10, std::sync::atomic::Ordering::Relaxed) + 10
        })
        .serve()
        .await
        .expect("serves");
    let (status, mut stream) = events(view.addr(), "/api/events").await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let seqs = snapshots(&mut stream, 3).await;
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "new snapshots: {seqs:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "about one a second");

    let (_, _, json) = get(view.addr(), "/api/snapshot", "").await;
    let snap: Snapshot = serde_json::from_str(&json).expect("a snapshot");
    assert_eq!(
        (snap.rate.label.as_str(), snap.rate.unit.as_str()),
        ("messages", "per second")
    );
    assert!(snap.rate.total.unwrap_or(0) >= 20);
    assert!(snap.rate.value > 0.0, "10 per sample is a rate: {:?}", snap.rate);
    assert!(!snap.rate.series.is_empty() && snap.rate.series.len() <= 60);
    view.stop().await;
    system.shutdown().await;
}

#[tokio::test]
async fn event_clients_beyond_the_limit_are_turned_away_until_one_leaves() {
    let system = System::new();
    let view = LiveView::new(&system)
        .max_clients(2)
        .serve()
        .await
        .expect("serves");
    let (s1, first) = events(view.addr(), "/api/events").await;
    let (s2, _second) = events(view.addr(), "/api/events").await;
    let (s3, _third) = events(view.addr(), "/api/events").await;
    assert_eq!((s1, s2, s3), (200, 200, 503));
    drop(first);
    // The first client's place is freed once its stream notices it is gone.
    let mut admitted = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, _stream) = events(view.addr(), "/api/events").await;
        if status == 200 {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "a client that left frees its place");
    view.stop().await;
    system.shutdown().await;
}

#[tokio::test]
async fn stop_ends_open_event_streams_and_closes_the_port() {
    let system = System::new();
    let view = LiveView::new(&system).serve().await.expect("serves");
    let addr = view.addr();
    let (_, mut stream) = events(addr, "/api/events").await;
    snapshots(&mut stream, 1).await;
    let started = Instant::now();
    view.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stop does not hang on an open stream"
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the open stream ends");
    assert!(refused(addr).await, "nothing listens any more");
    system.shutdown().await;
}

#[tokio::test]
async fn the_view_stops_when_the_system_shuts_down_or_the_handle_is_dropped() {
    let system = System::new();
    let view = LiveView::new(&system).serve().await.expect("serves");
    let addr = view.addr();
    let (_, mut stream) = events(addr, "/api/events").await;
    let started = Instant::now();
    system.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the open stream ends with the system");
    assert!(!view.is_running());
    assert!(refused(addr).await);

    let system = System::new();
    let view = LiveView::new(&system).serve().await.expect("serves");
    let addr = view.addr();
    drop(view);
    assert!(refused(addr).await, "dropping the handle stops the view");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_100_000_agents_is_small_and_quick() {
    let system = System::new();
    // 2,000 under a supervisor (a pool), the rest unsupervised. (A supervisor of 50,000
    // children takes half a minute to start in a debug build: that is actor-core's cost,
    // not the live view's.)
    let pool = Pool::builder(|| Idle).size(2_000).name("idlers").spawn(&system);
    let loose: Vec<ActorRef<Idle>> = (0..98_000).map(|_| system.spawn(Idle)).collect();
    assert_eq!(pool.size(), 2_000);
    let view = LiveView::new(&system).serve().await.expect("serves");

    let started = Instant::now();
    let (status, _, json) = get(view.addr(), "/api/snapshot", "").await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    let snap: Snapshot = serde_json::from_str(&json).expect("a snapshot");
    println!("100,000 agents: a snapshot of {} bytes in {took:?}", json.len());
    assert_eq!(snap.agents, 100_000);
    assert!(snap.aggregated);
    assert!(json.len() < 32 * 1024, "{} bytes", json.len());
    assert!(took < Duration::from_secs(5), "{took:?}");
    let idlers = snap
        .tree
        .iter()
        .find(|e| e.name == "idlers")
        .expect("the pool's supervisor");
    assert_eq!(idlers.children.len(), 1, "one row for 2,000 workers of one type");
    assert_eq!(
        (idlers.children[0].kind, idlers.children[0].count),
        (EntryKind::Counted, 2_000)
    );
    let idle = snap
        .types
        .iter()
        .find(|t| t.type_name == "Idle")
        .expect("an Idle row");
    assert!(idle.agents >= 2_000);
    let unlisted: usize = snap
        .types
        .iter()
        .filter(|t| t.type_name == "unlisted")
        .map(|t| t.agents)
        .sum();
    // Every agent is counted: the first 20 unsupervised by type, the rest as unlisted.
    assert_eq!(idle.agents + unlisted, 100_000);
    drop(loose);
    view.stop().await;
    system.shutdown().await;
}

/// Holds every message until told to go on, so its mailbox fills.
#[derive(Debug, Default)]
pub struct Slow;

#[agent]
impl Slow {
    #[handle]
    async fn work(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_and_agents_show_their_message_rate_and_mailboxes() {
    let system = System::new();
    let idle = system.spawn(Idle);
    let quiet = system.spawn(Idle);
    let slow = system.spawn(Slow);
    let view = LiveView::new(&system).serve().await.expect("serves");
    // One snapshot to start the rates from, then 2,000 messages, then another.
    let (_, _, json) = get(view.addr(), "/api/snapshot", "").await;
    let first: Snapshot = serde_json::from_str(&json).expect("a snapshot");
    let entries = |snap: &Snapshot| -> Vec<troupe::web::TreeEntry> {
        snap.tree
            .iter()
            .flat_map(|e| std::iter::once(e).chain(e.children.iter()))
            .cloned()
            .collect()
    };
    let by_id = |snap: &Snapshot, id: ActorId| {
        entries(snap)
            .into_iter()
            .find(|e| e.id.as_deref() == Some(id.to_string().as_str()))
            .unwrap_or_else(|| panic!("{id} in the tree: {:?}", snap.tree))
    };
    // Rates start from the second snapshot that lists an agent.
    assert_eq!(by_id(&first, idle.id()).messages_per_second, None);
    for _ in 0..2_000 {
        idle.ping().await.expect("ping");
    }
    // The slow agent is busy with one message while nine more queue.
    slow.work(3_000).cast().await.expect("cast");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..9 {
        slow.work(1).cast().await.expect("cast");
    }
    // Past the live view's snapshot cache (it builds one at most every 0.9 s).
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (_, _, json) = get(view.addr(), "/api/snapshot", "").await;
    let snap: Snapshot = serde_json::from_str(&json).expect("a snapshot");
    let idle_row = snap
        .types
        .iter()
        .find(|t| t.type_name == "Idle")
        .expect("an Idle row");
    assert!(idle_row.messages_per_second > 100.0, "{idle_row:?}");
    let slow_row = snap
        .types
        .iter()
        .find(|t| t.type_name == "Slow")
        .expect("a Slow row");
    assert_eq!(slow_row.mailbox_depth, 9, "{slow_row:?}");
    let slow_entry = snap
        .tree
        .iter()
        .flat_map(|e| std::iter::once(e).chain(e.children.iter()))
        .find(|e| e.type_name.as_deref() == Some("Slow"))
        .expect("the slow agent in the tree");
    assert_eq!(slow_entry.mailbox, Some(9));
    // Each agent its own rate: 2,000 messages in about a second, one, none.
    let idle_rate = by_id(&snap, idle.id()).messages_per_second.expect("a rate");
    assert!(idle_rate > 100.0, "{idle_rate}");
    let slow_rate = by_id(&snap, slow.id()).messages_per_second.expect("a rate");
    assert!(slow_rate > 0.0 && slow_rate < 10.0, "{slow_rate}");
    assert_eq!(by_id(&snap, quiet.id()).messages_per_second, Some(0.0));
    // The chart's default series is the messages handled per second.
    assert!(snap.rate.total.is_some_and(|t| t >= 2_000), "{:?}", snap.rate);
    view.stop().await;
    system.shutdown_timeout(Duration::from_millis(100)).await;
}

/// Answers with what it is sent, from another node.
#[derive(Debug, Default)]
pub struct Echo;

#[agent(remote)]
impl Echo {
    #[handle]
    fn echo(&self, n: u64) -> u64 {
        n
    }
}

/// The snapshot's row for the link from the served node to `peer`.
async fn link_to(view: SocketAddr, peer: &str) -> Option<troupe::web::LinkRow> {
    let (_, _, json) = get(view, "/api/snapshot", "").await;
    let snap: Snapshot = serde_json::from_str(&json).expect("a snapshot");
    snap.links.into_iter().find(|l| l.to == peer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_show_whether_they_are_up_and_their_traffic() {
    let (system_a, system_b) = (System::new(), System::new());
    let node_b = Node::builder()
        .trust(TrustPolicy::any())
        .start(&system_b)
        .await
        .expect("node b");
    let echo = system_b.spawn(Echo);
    node_b
        .export("echo", &echo)
        .expect("export")
        .policy("true")
        .expect("policy");
    let node_a = Node::builder()
        .trust(TrustPolicy::allow([node_b.identifier()]))
        .start(&system_a)
        .await
        .expect("node a");
    let view = LiveView::new(&system_a)
        .node(&node_a)
        .serve()
        .await
        .expect("serves");
    let b = node_b.identifier().to_string();
    // No link yet, and B is not a member of A's cluster: no row.
    assert!(link_to(view.addr(), &b).await.is_none());
    let remote = node_a
        .lookup::<Echo>("echo", node_b.addr())
        .await
        .expect("lookup");
    // Past the live view's snapshot cache (one snapshot at most every 0.9 s): the link
    // is listed, and its rate counts from here.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let link = link_to(view.addr(), &b).await.expect("a row for the link to B");
    assert!(link.connected, "{link:?}");
    for n in 0..200 {
        assert_eq!(remote.echo(n).await, Ok(n));
    }
    // The link is up, with traffic both ways and a rate since the snapshot before.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let link = link_to(view.addr(), &b).await.expect("a row for the link to B");
    assert!(link.connected && !link.member, "{link:?}");
    assert!(link.bytes_out > 200 * 8 && link.bytes_in > 200 * 8, "{link:?}");
    assert!(link.messages_per_second > 50.0, "{link:?}");
    // B goes away: the row stays, as a link that is down.
    node_b.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let link = link_to(view.addr(), &b).await.expect("the row stays");
        if !link.connected {
            break;
        }
        assert!(Instant::now() < deadline, "the link still shows up: {link:?}");
    }
    view.stop().await;
    node_a.shutdown().await;
    system_a.shutdown().await;
    system_b.shutdown().await;
}
