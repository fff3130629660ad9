//! Node links under attack: a proxy between two nodes that reads, flips and cuts bytes,
//! and a trusted peer that sends garbage. Nodes run in this process; the cross-process
//! tests are in the workspace's `tests/nodes.rs`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actor_secure::{Identity, Node, SecureChannel, TrustPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use troupe::prelude::*;

/// Messages carry a marker the proxy looks for.
#[derive(Debug, Default)]
pub struct Store {
    items: Vec<String>,
}

#[agent(remote)]
impl Store {
    #[handle]
    fn put(&mut self, item: String) -> usize {
        self.items.push(item);
        self.items.len()
    }
    #[handle]
    fn all(&self) -> Vec<String> {
        self.items.clone()
    }
}

async fn node(system: &System, identity: Identity, trust: TrustPolicy) -> Node {
    Node::builder()
        .identity(identity)
        .trust(trust)
        .start(system)
        .await
        .expect("node starts")
}

/// Two nodes that trust each other: `a` exports a `Store` as "store".
async fn pair(system: &System) -> (Node, Node, ActorRef<Store>) {
    let (ia, ib) = (Identity::generate(), Identity::generate());
    let (ida, idb) = (ia.identifier(), ib.identifier());
    let a = node(system, ia, TrustPolicy::allow([idb])).await;
    let b = node(system, ib, TrustPolicy::allow([ida])).await;
    let store = system.spawn(Store::default());
    a.export("store", &store).expect("export").policy("true").unwrap();
    (a, b, store)
}

/// What the proxy does to bytes going from the client to the server.
/// Changes a chunk the client sent (given its offset in the stream); false drops it.
type Tamper = Arc<dyn Fn(usize, &mut [u8]) -> bool + Send + Sync>;

/// A TCP proxy in front of `target` that records every byte both ways and lets `tamper`
/// change the client's bytes (given the offset of the chunk in the stream).
async fn proxy(target: SocketAddr, tamper: Tamper) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(target).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let (log_up, log_down, tamper) = (log.clone(), log.clone(), tamper.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut offset = 0;
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    log_up.lock().unwrap().extend_from_slice(&buf[..n]);
                    let keep = tamper(offset, &mut buf[..n]);
                    offset += n;
                    if keep && sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    log_down.lock().unwrap().extend_from_slice(&buf[..n]);
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_on_the_path_never_sees_a_message_in_the_clear() {
    let system = System::new();
    let (a, b, _store) = pair(&system).await;
    let (via, seen) = proxy(a.addr(), Arc::new(|_, _| true)).await;
    let store = b
        .lookup::<Store>("store", via)
        .await
        .expect("lookup through the proxy");
    let marker = "PLAINTEXT-MARKER-7d3f";
    assert_eq!(store.put(marker.to_owned()).await, Ok(1));
    assert_eq!(store.all().await, Ok(vec![marker.to_owned()]));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() > 200,
        "the proxy carried the link ({} bytes)",
        seen.len()
    );
    assert!(
        !contains(&seen, marker.as_bytes()),
        "the marker crossed in the clear"
    );
    assert!(!contains(&seen, b"store"), "the export name crossed in the clear");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_kills_the_link_and_no_altered_message_is_delivered() {
    let system = System::new();
    let (a, b, store_here) = pair(&system).await;
    // Once armed, flip one bit at the end of every chunk the client sends (inside the
    // authentication tag of the frame it carries): the next message is tampered with.
    // (Flipping a length prefix instead makes the link stall until the frame timeout.)
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trigger = armed.clone();
    let tamper: Tamper = Arc::new(move |_, bytes: &mut [u8]| {
        if trigger.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x01;
            }
        }
        true
    });
    let (via, _) = proxy(a.addr(), tamper).await;
    let store = b.lookup::<Store>("store", via).await.expect("lookup");
    assert_eq!(store.put("before".into()).await, Ok(1));
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let tampered = store.put("tampered".into()).timeout(Duration::from_secs(5)).await;
    assert_eq!(
        tampered,
        Err(CallError::LinkLost),
        "the link fails, the call does not hang"
    );
    // Nothing altered (or anything at all after the tampering) reached the agent.
    assert_eq!(store_here.all().await, Ok(vec!["before".to_owned()]));
    // The session reconnects by itself (to the node's own address): the same reference
    // works again, and a new lookup finds the same session.
    armed.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(store.put("late".into()).await, Ok(2));
    let again = b.lookup::<Store>("store", via).await.expect("lookup");
    assert_eq!(again, store, "the same agent, the same session");
    assert_eq!(again.put("again".into()).await, Ok(3));
    assert_eq!(
        store_here.all().await,
        Ok(vec!["before".to_owned(), "late".to_owned(), "again".to_owned()])
    );
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_frame_kills_the_link_and_a_new_one_replaces_it() {
    let system = System::new();
    let (a, b, store_here) = pair(&system).await;
    // Once armed, the proxy swallows one chunk the client sends: the frames after it
    // arrive with the wrong nonce.
    let drop_next = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trigger = drop_next.clone();
    let tamper: Tamper =
        Arc::new(move |_, _: &mut [u8]| !trigger.swap(false, std::sync::atomic::Ordering::SeqCst));
    let (via, _) = proxy(a.addr(), tamper).await;
    let store = b.lookup::<Store>("store", via).await.expect("lookup");
    assert_eq!(store.put("one".into()).await, Ok(1));
    drop_next.store(true, std::sync::atomic::Ordering::SeqCst);
    // The swallowed call cannot be noticed until the next frame arrives out of turn.
    let lost = store.put("dropped".into()).timeout(Duration::from_secs(1)).await;
    assert_eq!(lost, Err(CallError::Timeout));
    let next = store.put("next".into()).timeout(Duration::from_secs(5)).await;
    assert_eq!(
        next,
        Err(CallError::LinkLost),
        "the frame after the gap ends the link"
    );
    let again = b.lookup::<Store>("store", via).await.expect("a new link");
    assert_eq!(again.put("two".into()).await, Ok(2));
    assert_eq!(
        store_here.all().await,
        Ok(vec!["one".to_owned(), "two".to_owned()])
    );
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_peer_sending_garbage_loses_its_link_and_the_node_keeps_serving() {
    let system = System::new();
    // A hostile peer the node trusts: it speaks the channel correctly but sends link
    // messages that make no sense. `b` is an honest node trusted alongside it.
    let (hostile_identity, ia2, ib) = (Identity::generate(), Identity::generate(), Identity::generate());
    let (ida2, idb) = (ia2.identifier(), ib.identifier());
    let a2 = node(
        &system,
        ia2,
        TrustPolicy::allow([hostile_identity.identifier(), idb]),
    )
    .await;
    let b = node(&system, ib, TrustPolicy::allow([ida2])).await;
    a2.export("store", &system.spawn(Store::default()))
        .unwrap()
        .policy("true")
        .unwrap();
    let mut header = vec![7u8]; // a membership packet
    header.extend_from_slice(&[0; 12]);
    for (garbage, say_hello) in [
        (vec![], true),                                            // shorter than a header
        (vec![99; 40], true),                                      // unknown kind
        (vec![1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc1], true), // a lookup that does not decode
        (vec![5; 13], true),                                       // a reply without a status
        (vec![4; 13], false),                                      // a message before the hello
        ([header.clone(), vec![0xff; 40]].concat(), true),         // membership that does not decode
        (vec![8; 13], true),                                       // a second hello
    ] {
        let tcp = TcpStream::connect(a2.addr()).await.unwrap();
        let mut ch = SecureChannel::initiate(tcp, &hostile_identity, TrustPolicy::allow([a2.identifier()]))
            .await
            .expect("the hostile peer is trusted");
        let hello = ch.recv().await.unwrap();
        assert_eq!(hello[0], 8, "a node's first link message is its hello");
        assert_eq!(ch.recv().await.unwrap()[0], 6, "then its credential");
        if say_hello {
            ch.send(&hello).await.unwrap();
        }
        ch.send(&garbage).await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), ch.recv()).await;
        assert!(matches!(ended, Ok(Err(_))), "the node closed the link: {ended:?}");
    }
    // Credentials cost a signature check each: a flood of them loses the link.
    let tcp = TcpStream::connect(a2.addr()).await.unwrap();
    let mut ch = SecureChannel::initiate(tcp, &hostile_identity, TrustPolicy::allow([a2.identifier()]))
        .await
        .unwrap();
    let hello = ch.recv().await.unwrap();
    assert_eq!(ch.recv().await.unwrap()[0], 6, "the hello, then the credential");
    ch.send(&hello).await.unwrap();
    let empty_credential = [6u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for _ in 0..20 {
        if ch.send(&empty_credential).await.is_err() {
            break;
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), ch.recv()).await;
    assert!(
        matches!(ended, Ok(Err(_))),
        "the node closed the flooding link: {ended:?}"
    );
    // A call to a slot that was never exported, and a message that does not decode, get
    // errors, not a hang or a crash.
    let tcp = TcpStream::connect(a2.addr()).await.unwrap();
    let mut ch = SecureChannel::initiate(tcp, &hostile_identity, TrustPolicy::allow([a2.identifier()]))
        .await
        .unwrap();
    let hello = ch.recv().await.unwrap();
    assert_eq!(ch.recv().await.unwrap()[0], 6, "the hello, then the credential");
    ch.send(&hello).await.unwrap();
    let mut call_to_nowhere = vec![3, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 42];
    call_to_nowhere.extend_from_slice(&[0x90]);
    ch.send(&call_to_nowhere).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), ch.recv())
        .await
        .expect("an answer")
        .expect("the link stays up");
    assert_eq!(answer[0], 5, "a reply");
    assert_eq!(&answer[1..9], &7u64.to_be_bytes(), "to call 7");
    assert_eq!(answer[13], 1, "with a failure");
    // The honest node is still served.
    let store = b.lookup::<Store>("store", a2.addr()).await.expect("lookup");
    assert_eq!(store.put("still here".into()).await, Ok(1));
    for n in [&a2, &b] {
        n.shutdown().await;
    }
}

/// An agent whose handler waits, to keep a call in flight.
#[derive(Debug, Default)]
pub struct Sleeper;

#[agent(remote)]
impl Sleeper {
    #[handle]
    async fn nap(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_node_without_shutdown_fails_its_calls_instead_of_hanging() {
    let system = System::new();
    let (ia, ib) = (Identity::generate(), Identity::generate());
    let (ida, idb) = (ia.identifier(), ib.identifier());
    let a = node(&system, ia, TrustPolicy::allow([idb])).await;
    let b = node(&system, ib, TrustPolicy::allow([ida])).await;
    a.export("sleeper", &system.spawn(Sleeper))
        .unwrap()
        .policy("true")
        .unwrap();
    let sleeper = b.lookup::<Sleeper>("sleeper", a.addr()).await.unwrap();
    let in_flight = tokio::spawn({
        let sleeper = sleeper.clone();
        async move { sleeper.nap(60_000).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(b); // the calling node goes away, its tasks with it
    let result = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the call returned")
        .unwrap();
    assert_eq!(result, Err(CallError::LinkLost));
    assert!(!sleeper.is_alive());
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_or_reply_over_the_size_limit_fails_alone_and_the_link_lives() {
    let system = System::new();
    let (a, b, _store) = pair(&system).await;
    let store = b.lookup::<Store>("store", a.addr()).await.unwrap();
    // The channel's default limit is 1 MiB.
    let too_big = "x".repeat(2 << 20);
    match store.put(too_big.clone()).await {
        Err(CallError::Remote(why)) => assert!(why.contains("over the link's limit"), "{why}"),
        other => panic!("expected a size error, got {other:?}"),
    }
    assert!(matches!(
        store.put(too_big).cast().await,
        Err(SendError::Closed(_))
    ));
    assert!(store.is_alive(), "the link survives");
    // Each item fits, but the reply listing them all does not.
    let item = "y".repeat(600 * 1024);
    assert_eq!(store.put(item.clone()).await, Ok(1));
    assert_eq!(store.put(item).await, Ok(2));
    match store.all().await {
        Err(CallError::Remote(why)) => assert!(why.contains("reply"), "{why}"),
        other => panic!("expected a size error, got {:?}", other.map(|v| v.len())),
    }
    assert_eq!(store.put("small".into()).await, Ok(3), "and still works");
    b.shutdown().await;
    a.shutdown().await;
}

/// Links itself to a remote agent on request.
#[derive(Debug, Default)]
pub struct Linker;

#[agent]
impl Linker {
    #[handle]
    fn link_to(&mut self, target: ActorRef<Store>, ctx: &mut Context<Self>) {
        ctx.link(&target);
    }
}

/// Records the notices it gets.
#[derive(Debug, Default)]
pub struct Recorder {
    downs: Vec<StopReason>,
}

#[agent]
impl Recorder {
    #[handle]
    fn watch(&mut self, target: ActorRef<Store>, ctx: &mut Context<Self>) {
        ctx.monitor(&target);
    }
    #[handle]
    fn downs(&self) -> Vec<StopReason> {
        self.downs.clone()
    }
    #[on_down]
    fn down(&mut self, down: Down) {
        self.downs.push(down.reason);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_linked_from_a_node_that_is_lost_gets_the_loss_as_an_exit() {
    let system = System::new();
    let (a, b, store_here) = pair(&system).await;
    let recorder = system.spawn(Recorder::default());
    recorder.watch(store_here.clone()).await.unwrap();
    let store = b.lookup::<Store>("store", a.addr()).await.expect("lookup");
    let linker = system.spawn(Linker);
    linker.link_to(store).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Node b goes away: the agent on node a that b's agent linked to gets NodeLost as
    // its linked partner's exit, and (not trapping exits) stops.
    b.shutdown().await;
    let mut downs = Vec::new();
    for _ in 0..250 {
        downs = recorder.downs().await.unwrap();
        if !downs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(downs.as_slice(), [StopReason::Linked(_)]), "{downs:?}");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_serving_while_a_trusted_peer_floods_it_with_garbage_and_oversized_frames() {
    let system = System::new();
    let (hostile_identity, ia, ib) = (
        Arc::new(Identity::generate()),
        Identity::generate(),
        Identity::generate(),
    );
    let (ida, idb) = (ia.identifier(), ib.identifier());
    let a = node(
        &system,
        ia,
        TrustPolicy::allow([hostile_identity.identifier(), idb]),
    )
    .await;
    let b = node(&system, ib, TrustPolicy::allow([ida])).await;
    a.export("store", &system.spawn(Store::default()))
        .unwrap()
        .policy("true")
        .unwrap();
    let target = a.addr();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Four flooders, each opening link after link: garbage, then a 2 MiB message (over
    // the node's 1 MiB limit). They run on a thread and runtime of their own, as an
    // attacker would on its own machine.
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let (stop, identity) = (stop.clone(), hostile_identity.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut links = 0u32;
                    let big = actor_secure::ChannelConfig::default().max_message_size(4 << 20);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let Ok(tcp) = TcpStream::connect(target).await else {
                            continue;
                        };
                        let Ok(mut ch) =
                            SecureChannel::initiate_with(tcp, &identity, TrustPolicy::allow([ida]), &big)
                                .await
                        else {
                            continue;
                        };
                        links += 1;
                        let _ = ch.send(&[0xEE; 64]).await;
                        let _ = ch.send(&vec![0u8; 2 << 20]).await;
                        let _ = tokio::time::timeout(Duration::from_secs(2), ch.recv()).await;
                    }
                    links
                })
            })
        })
        .collect();
    let store = b.lookup::<Store>("store", a.addr()).await.expect("lookup");
    // Honest calls for three seconds, under the flood.
    let started = std::time::Instant::now();
    let mut calls = 0;
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(3) {
        let one = std::time::Instant::now();
        let n = store
            .put(format!("honest {calls}"))
            .timeout(Duration::from_secs(5))
            .await;
        calls += 1;
        assert_eq!(n, Ok(calls), "honest call {calls} is served");
        slowest = slowest.max(one.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut hostile = 0;
    for f in flooders {
        hostile += f.join().unwrap();
    }
    println!(
        "{calls} honest calls in 3 s (slowest {slowest:?}) while {hostile} hostile links were opened and dropped"
    );
    assert!(hostile > 20, "the flood really ran ({hostile} links)");
    assert!(
        slowest < Duration::from_secs(1),
        "no honest call waited long: {slowest:?}"
    );
    b.shutdown().await;
    a.shutdown().await;
}

/// A proxy whose `cut` ends the client's side of every connection but keeps the
/// server's side open and silent: the server is left with a half-open link.
async fn half_open_proxy(target: SocketAddr) -> (SocketAddr, Arc<tokio::sync::Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = Arc::new(tokio::sync::Notify::new());
    let cutter = cut.clone();
    tokio::spawn(async move {
        let mut graveyard = Vec::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((client, _)) = accepted else { return };
                    let Ok(server) = TcpStream::connect(target).await else { continue };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let (c1, c2) = (cutter.clone(), cutter.clone());
                    let up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        loop {
                            tokio::select! {
                                () = c1.notified() => return sw,
                                n = cr.read(&mut buf) => match n {
                                    Ok(n) if n > 0 => { if sw.write_all(&buf[..n]).await.is_err() { return sw; } }
                                    _ => return sw,
                                },
                            }
                        }
                    });
                    let down = tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        loop {
                            tokio::select! {
                                () = c2.notified() => return sr,
                                n = sr.read(&mut buf) => match n {
                                    Ok(n) if n > 0 => { if cw.write_all(&buf[..n]).await.is_err() { return sr; } }
                                    _ => return sr,
                                },
                            }
                        }
                    });
                    graveyard.push((up, down));
                }
            }
        }
    });
    (addr, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_left_half_open_gives_way_to_the_new_one() {
    let system = System::new();
    // The node with the smaller identifier would keep its old link in a tie-break.
    let (mut ia, mut ib) = (Identity::generate(), Identity::generate());
    if ia.identifier() > ib.identifier() {
        std::mem::swap(&mut ia, &mut ib);
    }
    let (ida, idb) = (ia.identifier(), ib.identifier());
    let a = node(&system, ia, TrustPolicy::allow([idb])).await;
    let b = node(&system, ib, TrustPolicy::allow([ida])).await;
    let store_here = system.spawn(Store::default());
    a.export("store", &store_here).unwrap().policy("true").unwrap();
    let (via, cut) = half_open_proxy(a.addr()).await;
    let store = b.lookup::<Store>("store", via).await.expect("lookup");
    assert_eq!(store.put("one".into()).await, Ok(1));
    // b's side of the connection ends; a's stays open and silent. b reconnects by
    // itself (to a's own address); a must let the new link replace its stale one
    // rather than retire it again and again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    cut.notify_waiters();
    let started = std::time::Instant::now();
    while store.all().timeout(Duration::from_secs(1)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "the reference works again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in 2..=20 {
        assert_eq!(
            store.put(format!("{n}")).await,
            Ok(n),
            "calls work on the new link"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.put("last".into()).await, Ok(21), "and it is not retired");
    assert_eq!(
        a.retired_links(),
        0,
        "a dropped its stale link instead of retiring the new one"
    );
    b.shutdown().await;
    a.shutdown().await;
}

/// Keeps a reference it is sent.
#[derive(Debug, Default)]
pub struct Holder {
    kept: Option<ActorRef<Store>>,
}

#[agent(remote)]
impl Holder {
    #[handle]
    fn keep(&mut self, store: ActorRef<Store>) {
        self.kept = Some(store);
    }
    #[handle]
    async fn put_there(&self, item: String) -> Option<usize> {
        let store = self.kept.clone()?;
        store.put(item).await.ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_exported_by_sending_its_reference_is_reached_only_with_its_secret() {
    let system = System::new();
    let (hostile_identity, ia, ib) = (Identity::generate(), Identity::generate(), Identity::generate());
    let (ida, idb) = (ia.identifier(), ib.identifier());
    // Node a trusts b and the hostile peer; it exports nothing by name.
    let a = node(
        &system,
        ia,
        TrustPolicy::allow([idb, hostile_identity.identifier()]),
    )
    .await;
    let b = node(&system, ib, TrustPolicy::allow([ida])).await;
    let holder_there = system.spawn(Holder::default());
    b.export("holder", &holder_there).unwrap().policy("true").unwrap();
    let holder = a.lookup::<Holder>("holder", b.addr()).await.expect("lookup");
    // a sends a reference to its (unexported) store: b can use it.
    let store = system.spawn(Store::default());
    holder.keep(store.clone()).await.expect("call");
    assert_eq!(holder.put_there("through b".into()).await, Ok(Some(1)));
    // A trusted peer that guesses the export's slot (the first on a) but not its
    // secret gets "no such export", and nothing reaches the agent.
    let tcp = TcpStream::connect(a.addr()).await.unwrap();
    let mut ch = SecureChannel::initiate(tcp, &hostile_identity, TrustPolicy::allow([ida]))
        .await
        .unwrap();
    let hello = ch.recv().await.unwrap();
    ch.recv().await.unwrap();
    ch.send(&hello).await.unwrap();
    for (id, secret) in [(7u64, None), (8, Some(0u64)), (9, Some(12345))] {
        let mut call = vec![3u8];
        call.extend_from_slice(&id.to_be_bytes());
        call.extend_from_slice(&1u32.to_be_bytes());
        if let Some(secret) = secret {
            call.extend_from_slice(&secret.to_le_bytes());
        }
        call.extend_from_slice(
            &rmp_serde::to_vec(&StoreMsg::Put {
                item: "stolen".into(),
            })
            .unwrap(),
        );
        ch.send(&call).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), ch.recv())
            .await
            .expect("an answer")
            .expect("the link stays up");
        assert_eq!(answer[0], 5, "a reply");
        assert_eq!(&answer[1..9], &id.to_be_bytes());
        assert_eq!(answer[13], 1, "a failure");
    }
    assert_eq!(store.all().await, Ok(vec!["through b".to_owned()]));
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_reconnect_window_a_broken_link_loses_the_node_at_once() {
    let system = System::new();
    let (ia, ib) = (Identity::generate(), Identity::generate());
    let (ida, idb) = (ia.identifier(), ib.identifier());
    let a = node(&system, ia, TrustPolicy::allow([idb])).await;
    let b = Node::builder()
        .identity(ib)
        .trust(TrustPolicy::allow([ida]))
        .reconnect_within(Duration::ZERO)
        .start(&system)
        .await
        .unwrap();
    a.export("store", &system.spawn(Store::default()))
        .unwrap()
        .policy("true")
        .unwrap();
    let (via, cut) = half_open_proxy(a.addr()).await;
    let store = b.lookup::<Store>("store", via).await.expect("lookup");
    assert_eq!(store.put("one".into()).await, Ok(1));
    cut.notify_waiters();
    tokio::time::timeout(Duration::from_secs(5), store.stopped())
        .await
        .expect("the node is lost as soon as the link breaks");
    assert_eq!(store.put("two".into()).await, Err(CallError::LinkLost));
    b.shutdown().await;
    a.shutdown().await;
}
