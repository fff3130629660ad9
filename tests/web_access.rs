//! The live view behind a node's access control: operators on other nodes reach it only
//! through a portal that the node's policy opens per connection, with the token on
//! top when there is one; the outlet goes when the view stops.

#![cfg(feature = "web")]
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::error::Error;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use troupe::prelude::*;
use troupe::secure::{attrs, Authority, Credential, Node, NodeError, TrustPolicy};
use troupe::web::{LiveView, Snapshot, WebError};

#[path = "support/captured_log.rs"]
mod captured_log;
use captured_log::CapturedLog;

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

/// `troupe::audit` events (and the rest of the log) as text, for every test here: the
/// nodes log from the runtime's worker threads, so the subscriber is global; lines are
/// told apart by node identifier.
fn log() -> &'static CapturedLog {
    static LOG: OnceLock<CapturedLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = CapturedLog::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        log
    })
}

/// One `GET` with `Connection: close` over any byte stream (a portal connection, TCP);
/// the status code and the body.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, path: &str, headers: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: live-view\r\nConnection: close\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("the response ends")
        .expect("reads");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_owned())
}

/// A node on its own system that trusts `server` and presents `credential`, if any.
async fn peer(identity: Identity, credential: Option<Credential>, server: &Node) -> (System, Node) {
    let system = System::new();
    let mut builder = Node::builder()
        .identity(identity)
        .trust(TrustPolicy::allow([server.identifier()]));
    if let Some(credential) = credential {
        builder = builder.credential(credential);
    }
    let node = builder.start(&system).await.expect("the node starts");
    (system, node)
}

/// Waits until `system` runs `n` agents (a supervisor starts its children on its task).
async fn agents(system: &System, n: usize) {
    for _ in 0..100 {
        if system.agent_count() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} agents, not {n}", system.agent_count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_the_policy_allows_reach_the_view_through_the_portal() -> Result<(), Box<dyn Error>> {
    let log = log();
    let authority = Authority::generate();
    let system = System::new();
    let _app = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("keeper", || Idle))
        .spawn(&system);
    agents(&system, 1).await;

    // ANCHOR: behind
    // The node that runs the system: any node may link to it, its policies decide.
    let node = Node::builder()
        .trust(TrustPolicy::any())
        .trust_authority(authority.identifier()) // whose credentials count
        .start(&system)
        .await?;
    // The view listens on loopback; the node opens the outlet "live-view" to it, and
    // only nodes whose credential says role = "operator" get a connection.
    let view = LiveView::new(&system)
        .node(&node)
        .behind(&node, "live-view", r#"role = "operator""#)
        .serve()
        .await?;
    // ANCHOR_END: behind
    assert!(view.addr().ip().is_loopback());
    assert_eq!(view.outlet().map(|o| o.name()), Some("live-view"));

    let (operator_id, guest_id, stranger_id) =
        (Identity::generate(), Identity::generate(), Identity::generate());
    let (op, guest, stranger) = (
        operator_id.identifier(),
        guest_id.identifier(),
        stranger_id.identifier(),
    );
    let operator_credential =
        authority.issue(op, attrs! { "role" => "operator" }, Duration::from_secs(3600))?;
    let guest_credential = authority.issue(guest, attrs! { "role" => "guest" }, Duration::from_secs(3600))?;
    let (_operator_system, operator) = peer(operator_id, Some(operator_credential), &node).await;
    let (_guest_system, guest_node) = peer(guest_id, Some(guest_credential), &node).await;
    let (_stranger_system, stranger_node) = peer(stranger_id, None, &node).await;

    // ANCHOR: operator
    // On the operator's machine: an inlet, for a browser to open http://127.0.0.1:<port>/
    let inlet = operator.inlet("127.0.0.1:0", node.addr(), "live-view").await?;
    // ... or one connection from code.
    let stream = operator.connect_outlet(node.addr(), "live-view").await?;
    // ANCHOR_END: operator

    // The page through the inlet.
    let (status, page) = get(TcpStream::connect(inlet.addr()).await?, "/", "").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"tree\""), "the page");

    // The snapshot through a portal connection: node A's system and node A.
    let (status, json) = get(stream, "/api/snapshot", "").await;
    assert_eq!(status, 200, "{json}");
    let snap: Snapshot = serde_json::from_str(&json)?;
    assert_eq!(
        snap.agents, 1,
        "the agents of the view's system, not the operator's"
    );
    let keeper = &snap.tree[0].children[0];
    assert_eq!(
        (keeper.name.as_str(), keeper.type_name.as_deref()),
        ("keeper", Some("Idle"))
    );
    assert!(snap
        .nodes
        .iter()
        .any(|n| n.identifier == node.identifier().to_string()));

    // A credential without the role, or none: denied, and each is an audit event.
    for (who, id) in [(&guest_node, guest), (&stranger_node, stranger)] {
        let e = who
            .connect_outlet(node.addr(), "live-view")
            .await
            .expect_err("denied");
        assert!(matches!(e, NodeError::Denied), "{e}");
        let text = log.text();
        let denial = text
            .lines()
            .find(|l| l.contains("portal connection denied") && l.contains(&id.to_string()))
            .unwrap_or_else(|| panic!("no audit event for {id}:\n{text}"));
        assert!(denial.contains("troupe::audit"), "{denial}");
        assert!(denial.contains("live-view"), "{denial}");
    }

    // Stopped: the outlet is gone, so an operator gets no further than the node.
    view.stop().await;
    let e = operator
        .connect_outlet(node.addr(), "live-view")
        .await
        .expect_err("no outlet any more");
    assert!(
        matches!(&e, NodeError::NoSuchOutlet(name) if name == "live-view"),
        "{e}"
    );
    let mut closed = TcpStream::connect(inlet.addr()).await?;
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), closed.read_to_end(&mut rest))
        .await
        .expect("the inlet's connection is closed at once")
        .ok();
    assert!(rest.is_empty(), "nothing answers through the inlet");

    for n in [&operator, &guest_node, &stranger_node, &node] {
        n.shutdown().await;
    }
    system.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_portal_the_token_is_still_required() -> Result<(), Box<dyn Error>> {
    let system = System::new();
    let node = Node::builder().trust(TrustPolicy::any()).start(&system).await?;
    let operator_id = Identity::generate();
    // A policy on the connecting node's identity alone (no credential).
    let policy = format!(r#"subject.identifier = "{}""#, operator_id.identifier());
    let view = LiveView::new(&system)
        .token("s3cret-token")
        .behind(&node, "live-view", policy)
        .serve()
        .await?;
    let (_operator_system, operator) = peer(operator_id, None, &node).await;

    let stream = operator.connect_outlet(node.addr(), "live-view").await?;
    let (status, _) = get(stream, "/api/snapshot", "").await;
    assert_eq!(status, 401, "the portal lets the node in, not past the token");
    let stream = operator.connect_outlet(node.addr(), "live-view").await?;
    let (status, _) = get(stream, "/api/snapshot?token=wrong", "").await;
    assert_eq!(status, 401);
    let stream = operator.connect_outlet(node.addr(), "live-view").await?;
    let (status, json) = get(stream, "/api/snapshot", "Authorization: Bearer s3cret-token\r\n").await;
    assert_eq!(status, 200, "{json}");
    serde_json::from_str::<Snapshot>(&json)?;

    view.stop().await;
    operator.shutdown().await;
    node.shutdown().await;
    system.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_refuses_a_reachable_address_a_taken_name_and_a_bad_policy() -> Result<(), Box<dyn Error>> {
    let system = System::new();
    let node = Node::builder().trust(TrustPolicy::any()).start(&system).await?;

    // Reachable from other machines: that would bypass the node.
    let err = LiveView::new(&system)
        .bind("0.0.0.0:0")
        .behind(&node, "live-view", "true")
        .serve()
        .await
        .expect_err("refused");
    assert!(
        matches!(err, WebError::NotLoopback(addr) if addr.ip().is_unspecified()),
        "{err}"
    );
    assert!(!node.remove_outlet("live-view"), "no outlet was opened");

    // A name in use, and a policy that does not parse: refused, nothing left behind.
    node.outlet("taken", "127.0.0.1:9")?;
    let err = LiveView::new(&system)
        .behind(&node, "taken", "true")
        .serve()
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, WebError::Outlet(NodeError::AlreadyAnOutlet(name)) if name == "taken"),
        "{err}"
    );
    let err = LiveView::new(&system)
        .behind(&node, "live-view", "(and")
        .serve()
        .await
        .expect_err("refused");
    assert!(matches!(err, WebError::Outlet(NodeError::Policy(_))), "{err}");
    assert!(!node.remove_outlet("live-view"), "no outlet was opened");

    node.shutdown().await;
    system.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outlet_goes_when_the_view_is_dropped_or_its_system_shuts_down() -> Result<(), Box<dyn Error>> {
    // The node runs on a system of its own, so that it outlives the viewed one.
    let node_system = System::new();
    let node = Node::builder()
        .trust(TrustPolicy::any())
        .start(&node_system)
        .await?;
    let operator_id = Identity::generate();
    let policy = format!(r#"subject.identifier = "{}""#, operator_id.identifier());
    let (_operator_system, operator) = peer(operator_id, None, &node).await;
    let reachable = || async {
        match operator.connect_outlet(node.addr(), "live-view").await {
            Ok(_) => true,
            Err(NodeError::NoSuchOutlet(_)) => false,
            Err(e) => panic!("{e}"),
        }
    };

    // Dropped: the outlet goes at once, and the name is free for the next view.
    let system = System::new();
    let view = LiveView::new(&system)
        .behind(&node, "live-view", &policy)
        .serve()
        .await?;
    assert!(reachable().await);
    drop(view);
    assert!(!reachable().await, "dropping the handle removes the outlet");

    let view = LiveView::new(&system)
        .behind(&node, "live-view", &policy)
        .serve()
        .await?;
    assert!(reachable().await, "the name was free again");

    // The viewed system shuts down: the view stops within a second, and the outlet goes.
    system.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while reachable().await {
        assert!(Instant::now() < deadline, "the outlet outlived the view");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!view.is_running());

    operator.shutdown().await;
    node.shutdown().await;
    node_system.shutdown().await;
    Ok(())
}
