//! The ractor_cluster 0.16 peer of the remote benchmark: the same `rcall`, `rcall8`, `rcast`
//! and `connect` workloads as troupe's rows, between two ractor_cluster `NodeServer`s in
//! this process over loopback TCP. ractor_cluster's link is plaintext (`Raw` mode, cookie
//! authentication, no encryption), so it pays no cipher cost that troupe's Noise link pays.
//!
//! Node A spawns a counter and joins it to a process group; node B connects to A, and
//! when B's session is ready (A's `Spawn` and `PgJoin` have been handled), the counter is
//! the `RemoteActor` child of that session. ractor's pid registry and process groups are
//! global to the process, so with both nodes in one process each node also advertises the
//! counter to the other; we take the `RemoteActor` under the connecting node's own session,
//! which reaches the counter over the TCP link.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ractor::{call, cast, Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{
    NodeEventSubscription, NodeServer, NodeServerMessage, NodeSessionMessage, RactorClusterMessage,
};
use tokio::sync::mpsc;

use crate::{median, CALLS, CASTS, CONNECTS};

const COOKIE: &str = "remote-bench";
const GROUP: &str = "counter";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Node names must differ (a session to a node of the same name is a self-connection).
static NODES: AtomicUsize = AtomicUsize::new(0);

struct Counter;

#[derive(RactorClusterMessage)]
pub enum CounterMsg {
    Add(u64),
    #[rpc]
    Get(RpcReplyPort<u64>),
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<CounterMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<CounterMsg>,
        msg: CounterMsg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Add(n) => *count += n,
            CounterMsg::Get(reply) => {
                let _ = reply.send(*count);
            }
        }
        Ok(())
    }
}

/// Reports each node session that becomes ready (authenticated and state exchanged).
struct OnReady(mpsc::UnboundedSender<ActorRef<NodeSessionMessage>>);

impl NodeEventSubscription for OnReady {
    fn node_session_opened(&self, _: NodeServerSessionInformation) {}
    fn node_session_disconnected(&self, _: NodeServerSessionInformation) {}
    fn node_session_authenticated(&self, _: NodeServerSessionInformation) {}
    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.send(ses.actor);
    }
}

async fn start_node(port: u16) -> ActorRef<NodeServerMessage> {
    let name = format!("n{}", NODES.fetch_add(1, Ordering::Relaxed));
    let server = NodeServer::new(port, COOKIE.into(), name, "127.0.0.1".into(), None, None)
        .with_listen_addr(LOCALHOST);
    Actor::spawn(None, server, ()).await.expect("node server").0
}

/// Connects `node` to node A and returns the counter as a `RemoteActor` on `node`.
async fn reach_counter(node: &ActorRef<NodeServerMessage>, a_port: u16, pid: u64) -> ActorRef<CounterMsg> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.cast(NodeServerMessage::SubscribeToEvents {
        id: "remote-bench".into(),
        subscription: Box::new(OnReady(tx)),
    })
    .expect("subscribe");
    ractor_cluster::client_connect(node, (LOCALHOST, a_port))
        .await
        .expect("connect");
    let session = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("session ready within 10 s")
        .expect("node server alive");
    let remote = session
        .get_cell()
        .get_children()
        .into_iter()
        .find(|c| !c.get_id().is_local() && c.get_id().pid() == pid)
        .expect("the counter is a RemoteActor of the new session");
    remote.into()
}

/// Stops a node server and everything under it (sessions, TCP actors, remote actors).
async fn stop_node(node: &ActorRef<NodeServerMessage>) {
    let mut all = vec![node.get_cell()];
    let mut i = 0;
    while i < all.len() {
        let children = all[i].get_children();
        all.extend(children);
        i += 1;
    }
    for cell in all.iter().rev() {
        cell.stop(None);
    }
    for cell in &all {
        let _ = cell.wait(Some(Duration::from_secs(1))).await;
    }
}

pub struct Setup {
    a: ActorRef<NodeServerMessage>,
    a_port: u16,
    b: ActorRef<NodeServerMessage>,
    local: ActorRef<CounterMsg>,
    pub counter: ActorRef<CounterMsg>,
}

pub async fn setup() -> Setup {
    // ractor_cluster cannot report the port it picked for port 0, so pick a free one.
    let a_port = std::net::TcpListener::bind((LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let a = start_node(a_port).await;
    let (local, _) = Actor::spawn(None, Counter, ()).await.expect("counter");
    ractor::pg::join(GROUP.into(), vec![local.get_cell()]);
    let b = start_node(0).await;
    let counter = reach_counter(&b, a_port, local.get_id().pid()).await;
    assert!(
        ractor::pg::get_members(&GROUP.into())
            .iter()
            .any(|c: &ActorCell| c.get_id() == counter.get_id()),
        "the remote counter joined the process group"
    );
    Setup {
        a,
        a_port,
        b,
        local,
        counter,
    }
}

pub async fn shutdown(s: Setup) {
    stop_node(&s.b).await;
    stop_node(&s.a).await;
    s.local.stop(None);
}

pub async fn rcall(counter: &ActorRef<CounterMsg>) -> f64 {
    let start = Instant::now();
    for _ in 0..CALLS {
        call!(counter, CounterMsg::Get).expect("call");
    }
    start.elapsed().as_secs_f64() * 1e6 / CALLS as f64
}

pub async fn rcall8(counter: &ActorRef<CounterMsg>) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = counter.clone();
            tokio::spawn(async move {
                for _ in 0..CALLS / 8 {
                    call!(c, CounterMsg::Get).expect("call");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    CALLS as f64 / start.elapsed().as_secs_f64()
}

/// `cast!` is synchronous (unbounded mailboxes all the way to the socket writer), so the
/// loop never waits; the final call waits for every cast to arrive.
pub async fn rcast(counter: &ActorRef<CounterMsg>) -> f64 {
    let before = call!(counter, CounterMsg::Get).expect("call");
    let start = Instant::now();
    for _ in 0..CASTS {
        cast!(counter, CounterMsg::Add(1)).expect("cast");
    }
    let after = call!(counter, CounterMsg::Get).expect("call");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(after - before, CASTS, "every ractor_cluster cast arrived");
    CASTS as f64 / secs
}

/// A new node server: listen, connect to A, authenticate, state exchange (A's actors
/// spawned as remote actors), first call. Median, in milliseconds.
pub async fn connect(s: &Setup) -> f64 {
    let pid = s.local.get_id().pid();
    let mut times = Vec::new();
    for _ in 0..CONNECTS {
        let start = Instant::now();
        let node = start_node(0).await;
        let counter = reach_counter(&node, s.a_port, pid).await;
        call!(counter, CounterMsg::Get).expect("call");
        times.push(start.elapsed().as_secs_f64() * 1e3);
        stop_node(&node).await;
    }
    median(times)
}
