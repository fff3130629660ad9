//! Relays between nodes in this process: a node that registers a name at a relay is
//! reached through it; the two end nodes' own secure channel runs inside the relay's
//! links, so a relay that records sees no plaintext and a relay that flips bits breaks
//! the channel instead of the data.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actor_secure::{CallerIdentity, Identity, Node, NodeError, RelayTap, Route, TrustPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use troupe::prelude::*;

/// Keeps strings; says who called.
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
    /// The node the call came from, as the end-to-end channel authenticated it.
    #[handle]
    fn who(&self, ctx: &mut Context<Self>) -> Option<String> {
        ctx.caller().map(|c| c.node().to_string())
    }
    /// Calls back the agent it is given (a reference that crossed the relay).
    #[handle]
    async fn call_back(&self, greeter: ActorRef<Greeter>) -> String {
        greeter
            .greet("store".into())
            .await
            .unwrap_or_else(|e| format!("failed: {e}"))
    }
}

/// Greets.
#[derive(Debug, Default)]
pub struct Greeter;

#[agent(remote)]
impl Greeter {
    #[handle]
    fn greet(&self, who: String) -> String {
        format!("hello, {who}")
    }
}

async fn node(system: &System, identity: Identity, tap: Option<RelayTap>) -> Node {
    let mut builder = Node::builder().identity(identity).trust(TrustPolicy::any());
    if let Some(tap) = tap {
        builder = builder.relay_tap(tap);
    }
    builder.start(system).await.expect("node starts")
}

/// A relay `r` (with `tap`), a node `n` registered there as "edge-1" exporting a
/// `Store`, and a client node `c`.
struct Trio {
    r: Node,
    n: Node,
    c: Node,
    store: ActorRef<Store>,
    route: Route,
}

async fn trio(system: &System, tap: Option<RelayTap>) -> Trio {
    let (ir, in_, ic) = (Identity::generate(), Identity::generate(), Identity::generate());
    let (n_id, c_id) = (in_.identifier(), ic.identifier());
    let r = node(system, ir, tap).await;
    r.serve_relay()
        .register_policy(format!(r#"subject.identifier = "{n_id}""#))
        .unwrap()
        .route_policy(format!(r#"subject.identifier = "{c_id}""#))
        .unwrap();
    let n = node(system, in_, None).await;
    let store = system.spawn(Store::default());
    n.export("store", &store).unwrap().policy("true").unwrap();
    let registration = n.register_at(r.addr(), "edge-1").await.expect("registered");
    let route = registration.route();
    let c = node(system, ic, None).await;
    Trio {
        r,
        n,
        c,
        store,
        route,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_references_and_portals_work_through_a_relay() {
    let system = System::new();
    let t = trio(&system, None).await;
    let store =
        t.c.lookup_via::<Store>("store", &t.route)
            .await
            .expect("lookup through the relay");
    assert_eq!(store.put("one".into()).await, Ok(1));
    store.put("two".into()).cast().await.unwrap();
    assert_eq!(store.all().await.unwrap(), vec!["one", "two"]);
    // The end node authenticated the client itself, not the relay.
    assert_eq!(store.who().await.unwrap(), Some(t.c.identifier().to_string()));
    assert_ne!(store.who().await.unwrap(), Some(t.r.identifier().to_string()));

    // A reference to the client's agent crosses the relay and is called back.
    let greeter = system.spawn(Greeter);
    assert_eq!(store.call_back(greeter).await.unwrap(), "hello, store");

    // A portal through the relay.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        tcp.read_to_end(&mut buf).await.unwrap();
        buf.reverse();
        tcp.write_all(&buf).await.unwrap();
    });
    t.n.outlet("svc", service.to_string())
        .unwrap()
        .policy("true")
        .unwrap();
    let mut stream =
        t.c.connect_outlet_via(&t.route, "svc")
            .await
            .expect("portal through the relay");
    stream.write_all(b"abc").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"cba");
    // Only one session: the second lookup reuses the relayed channel.
    let again = t.c.lookup_via::<Store>("store", &t.route).await.unwrap();
    assert_eq!(again, store);
    t.shutdown_all().await;
}

impl Trio {
    async fn shutdown_all(self) {
        let Trio { r, n, c, .. } = self;
        c.shutdown().await;
        n.shutdown().await;
        r.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_relay_sees_no_plaintext() {
    let system = System::new();
    let seen = Arc::new(Mutex::new(Vec::<u8>::new()));
    let record = seen.clone();
    let tap: RelayTap = Arc::new(move |chunk: &mut [u8]| record.lock().unwrap().extend_from_slice(chunk));
    let t = trio(&system, Some(tap)).await;
    let store = t.c.lookup_via::<Store>("store", &t.route).await.unwrap();
    const MARKER: &str = "PLAINTEXT-MARKER-7f3a";
    for i in 0..20 {
        store.put(format!("{MARKER}-{i}")).await.unwrap();
    }
    assert_eq!(store.all().await.unwrap().len(), 20, "the calls went through");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() > 20 * MARKER.len(),
        "the relay forwarded the traffic ({} bytes)",
        seen.len()
    );
    let found = seen.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
    assert!(!found, "the relay saw a plaintext marker");
    // Nor the export's name, which the lookup carried.
    assert!(!seen.windows(b"store".len()).any(|w| w == b"store"));
    t.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_flips_bits_breaks_the_channel_and_delivers_nothing_altered() {
    let system = System::new();
    // After the handshakes, flip one bit in every 5th chunk.
    let chunks = Arc::new(AtomicUsize::new(0));
    let count = chunks.clone();
    let tap: RelayTap = Arc::new(move |chunk: &mut [u8]| {
        let n = count.fetch_add(1, Ordering::Relaxed);
        if n > 12 && n.is_multiple_of(5) {
            let i = chunk.len() / 2;
            chunk[i] ^= 0x10;
        }
    });
    let t = trio(&system, Some(tap)).await;
    let store = t.c.lookup_via::<Store>("store", &t.route).await.unwrap();
    let mut failed = 0;
    for i in 0..50 {
        let item = format!("item-{i:03}");
        match store.put(item).timeout(Duration::from_secs(2)).await {
            Ok(_) => {}
            Err(_) => failed += 1,
        }
    }
    assert!(failed > 0, "a flipped bit must break the channel");
    // What arrived is exactly what was sent: never an altered item.
    let items = t.store.all().await.unwrap();
    for item in &items {
        let ok =
            item.len() == 8 && item.starts_with("item-") && item[5..].parse::<u32>().is_ok_and(|n| n < 50);
        assert!(ok, "an altered message was delivered: {item:?}");
    }
    // Nor twice (the session reconnects through the relay after each break, and the
    // item of a call whose reply was lost may be there, once).
    let mut unique = items.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        items.len(),
        "a message was delivered twice: {items:?}"
    );
    t.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_decides_who_registers_and_who_routes() {
    let system = System::new();
    let t = trio(&system, None).await;
    // A node the register policy does not name cannot take a name.
    let other = node(&system, Identity::generate(), None).await;
    let e = other.register_at(t.r.addr(), "edge-2").await.unwrap_err();
    assert!(matches!(e, NodeError::Denied), "{e}");
    // Nor reach a registered node: the route policy names only `c`.
    let e = other.lookup_via::<Store>("store", &t.route).await.unwrap_err();
    assert!(matches!(e, NodeError::Denied), "{e}");
    // An unknown name.
    let e =
        t.c.lookup_via::<Store>("store", &Route::relay(t.r.addr(), "nobody"))
            .await
            .unwrap_err();
    assert!(matches!(&e, NodeError::NoSuchNode(n) if n == "nobody"), "{e}");
    // A name another node holds.
    let relay = t.r.serve_relay().register_policy("true").unwrap();
    let e = other.register_at(t.r.addr(), "edge-1").await.unwrap_err();
    assert!(matches!(&e, NodeError::NameTaken(n) if n == "edge-1"), "{e}");
    assert_eq!(relay.names(), vec![("edge-1".to_owned(), t.n.identifier())]);
    // A node that is not a relay says so.
    let e =
        t.c.lookup_via::<Store>("store", &Route::relay(t.n.addr(), "x"))
            .await
            .unwrap_err();
    assert!(
        matches!(&e, NodeError::Refused(why) if why.contains("not a relay")),
        "{e}"
    );
    other.shutdown().await;
    t.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_relay_dies_calls_fail_and_the_route_comes_back_with_it() {
    let system = System::new();
    // The relay restarts with the same identity (from the same seed).
    let seed = [42u8; 32];
    let relay_identity = Identity::from_seed(&seed);
    let (in_, ic) = (Identity::generate(), Identity::generate());
    let r = node(&system, relay_identity, None).await;
    let relay_addr = r.addr();
    r.serve_relay()
        .register_policy("true")
        .unwrap()
        .route_policy("true")
        .unwrap();
    // On one machine the registered node could dial the client back directly when the
    // relayed link breaks (the session would then survive the relay, as it should when
    // the client is reachable); behind NAT it could not, which this models.
    let n = Node::builder()
        .identity(in_)
        .trust(TrustPolicy::any())
        .reconnect_within(Duration::ZERO)
        .start(&system)
        .await
        .unwrap();
    n.export("store", &system.spawn(Store::default()))
        .unwrap()
        .policy("true")
        .unwrap();
    let route = n.register_at(relay_addr, "edge-1").await.unwrap().route();
    let c = node(&system, ic, None).await;
    let store = c.lookup_via::<Store>("store", &route).await.unwrap();
    assert_eq!(store.put("before".into()).await, Ok(1));

    r.shutdown().await;
    let started = Instant::now();
    let e = store.put("during".into()).timeout(Duration::from_secs(5)).await;
    assert!(e.is_err(), "a call fails while the relay is gone");
    eprintln!(
        "the call failed {:?} after the relay went: {e:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(4));

    // The relay comes back at its address: the node registers again by itself, and the
    // route works again.
    let r2 = Node::builder()
        .identity(Identity::from_seed(&seed))
        .trust(TrustPolicy::any())
        .listen(relay_addr.to_string())
        .start(&system)
        .await
        .expect("the relay restarts at its address");
    let relay = r2
        .serve_relay()
        .register_policy("true")
        .unwrap()
        .route_policy("true")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while relay.names().is_empty() {
        assert!(Instant::now() < deadline, "the node did not register again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = c
        .lookup_via::<Store>("store", &route)
        .await
        .expect("the route is back");
    assert_eq!(store.put("after".into()).await, Ok(2));
    c.shutdown().await;
    n.shutdown().await;
    r2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoever_holds_the_name_the_client_accepts_only_the_node_it_trusts() {
    let system = System::new();
    let relay = node(&system, Identity::generate(), None).await;
    relay
        .serve_relay()
        .register_policy("true")
        .unwrap()
        .route_policy("true")
        .unwrap();
    // An impostor takes the name the client expects the real node under.
    let impostor = node(&system, Identity::generate(), None).await;
    impostor
        .export("store", &system.spawn(Store::default()))
        .unwrap()
        .policy("true")
        .unwrap();
    impostor.register_at(relay.addr(), "edge-1").await.unwrap();
    let real = Identity::generate().identifier();
    let client = Node::builder()
        .trust(TrustPolicy::allow([real, relay.identifier()]))
        .start(&system)
        .await
        .unwrap();
    let e = client
        .lookup_via::<Store>("store", &Route::relay(relay.addr(), "edge-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, NodeError::Channel(_)),
        "the end-to-end handshake refuses it: {e}"
    );
    client.shutdown().await;
    impostor.shutdown().await;
    relay.shutdown().await;
}
