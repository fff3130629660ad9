//! Nodes as separate OS processes on 127.0.0.1: remote calls, casts, timeouts, panics,
//! lookups, trust, and a node killed with SIGKILL.
//!
//! This file has its own `main` (`harness = false`): run as a test it is the parent and
//! starts copies of itself as child nodes (`TROUPE_TEST_NODE=1`), which export agents and
//! print their address and identifier.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

#[path = "support/process_tests.rs"]
mod process_tests;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use troupe::prelude::*;
use troupe::secure::{Node, NodeError, TrustPolicy};

/// The agent the child node exports.
#[derive(Default)]
pub struct Counter {
    count: u64,
    next_seq: u64,
    out_of_order: u64,
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
    /// Casts carry a sequence number; any gap or repeat is counted.
    #[handle]
    fn seq(&mut self, n: u64) {
        if n != self.next_seq {
            self.out_of_order += 1;
        }
        self.next_seq = n + 1;
    }
    #[handle]
    fn seen(&self) -> (u64, u64) {
        (self.next_seq, self.out_of_order)
    }
    #[handle]
    async fn slow(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
    #[handle]
    fn boom(&self) -> u64 {
        panic!("boom on purpose")
    }
    #[handle]
    fn quit(&self, ctx: &mut Context<Self>) {
        ctx.stop_with(StopReason::Error("asked to quit".into()));
    }
    // ANCHOR: who
    /// The node the call came from, as the secure channel authenticated it.
    #[handle]
    fn who(&self, ctx: &mut Context<Self>) -> Option<String> {
        ctx.caller().map(|c| c.node().to_string())
    }
    // ANCHOR_END: who
    /// The calling agent, when its node names it.
    #[handle]
    fn who_agent(&self, ctx: &mut Context<Self>) -> Option<String> {
        ctx.caller().and_then(|c| c.agent()).map(|a| a.to_string())
    }
}

/// A local agent that calls a remote one from its handler.
#[derive(Default)]
pub struct Asker;

#[agent]
impl Asker {
    #[handle]
    async fn ask(&self, counter: ActorRef<Counter>) -> Option<String> {
        counter.who_agent().await.ok().flatten()
    }
    #[handle]
    async fn try_ask(&self, counter: ActorRef<Counter>) -> Result<Option<String>, CallError> {
        counter.who_agent().await
    }
}

/// Another agent type, for lookups of the wrong protocol.
#[derive(Default)]
pub struct Other;

#[agent(remote)]
impl Other {
    #[handle]
    fn add(&mut self, n: u32) -> u32 {
        n
    }
}

/// A local agent that links itself to a remote one, then crashes.
#[derive(Default)]
pub struct Linker;

#[agent]
impl Linker {
    #[handle]
    fn link_to(&mut self, target: ActorRef<Counter>, ctx: &mut Context<Self>) {
        ctx.link(&target);
    }
    #[handle]
    fn crash(&self) {
        panic!("the linker crashes on purpose")
    }
}

/// A local agent that watches a remote one.
#[derive(Default)]
pub struct Watcher {
    downs: Vec<StopReason>,
}

#[agent]
impl Watcher {
    #[handle]
    fn watch(&mut self, target: ActorRef<Counter>, ctx: &mut Context<Self>) {
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

/// The notices `watcher` has had, once it has one (or `within` has passed).
async fn downs_within(watcher: &ActorRef<Watcher>, within: Duration) -> Vec<StopReason> {
    let started = Instant::now();
    loop {
        let downs = watcher.downs().await.expect("call");
        if !downs.is_empty() || started.elapsed() >= within {
            return downs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The child: a node that trusts `TROUPE_TRUST` and exports a supervised `Counter`.
async fn child() {
    let trusted: Identifier = std::env::var("TROUPE_TRUST")
        .expect("TROUPE_TRUST")
        .parse()
        .expect("an identifier");
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("counter", Counter::default))
        .spawn(&system);
    let counter = sup.child::<Counter>("counter").expect("the counter child");
    let node = Node::builder()
        .trust(TrustPolicy::allow([trusted]))
        .start(&system)
        .await
        .expect("node starts");
    node.export("counter", &counter)
        .expect("export")
        .policy("true") // the trust policy already lets in only the parent
        .expect("policy");
    // An agent with no supervisor: when it stops, it is gone.
    node.export("temp", &system.spawn(Counter::default()))
        .expect("export")
        .policy("true")
        .expect("policy");
    // Only the parent's agent registered as "asker" may call this one.
    let asker = std::env::var("TROUPE_AGENT").expect("TROUPE_AGENT");
    node.export("asker-only", &system.spawn(Counter::default()))
        .expect("export")
        .policy(format!(r#"agent = "{asker}""#))
        .expect("policy");
    println!("NODE {} {}", node.addr(), node.identifier());
    // Serve until the parent closes our stdin (or kills us).
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await;
    node.shutdown().await;
}

/// A child node process; killed when dropped.
struct ChildNode {
    process: Child,
    addr: std::net::SocketAddr,
}

impl ChildNode {
    fn start(trusts: &Identity) -> ChildNode {
        let mut process = Command::new(std::env::current_exe().expect("own path"))
            .env("TROUPE_TEST_NODE", "1")
            .env("TROUPE_TRUST", trusts.identifier().to_string())
            .env(
                "TROUPE_AGENT",
                trusts.derive_agent("asker").identifier().to_string(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a child node");
        let stdout = process.stdout.take().expect("stdout");
        let line = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("NODE "))
            .expect("the child prints its address");
        let addr = line
            .split_whitespace()
            .nth(1)
            .expect("address")
            .parse()
            .expect("an address");
        ChildNode { process, addr }
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn parent_node(system: &System, identity: Identity) -> Node {
    Node::builder()
        .identity(identity)
        .trust(TrustPolicy::any())
        .start(system)
        .await
        .expect("node starts")
}

async fn calls_casts_and_timeouts() {
    let me = Identity::generate();
    let my_id = me.identifier();
    let asker_id = me.derive_agent("asker").identifier();
    let child = ChildNode::start(&me);
    let system = System::new();
    let node = parent_node(&system, me).await;
    let counter = node
        .lookup::<Counter>("counter", child.addr)
        .await
        .expect("lookup");
    // The handler on the other node sees who called, authenticated.
    assert_eq!(counter.who().await, Ok(Some(my_id.to_string())));
    // And which agent, when the caller is an agent registered under a name.
    assert_eq!(counter.who_agent().await, Ok(None), "not called from an agent");
    let asker = system.spawn(Asker);
    assert_eq!(asker.ask(counter.clone()).await, Ok(None), "an unnamed agent");
    let only = node
        .lookup::<Counter>("asker-only", child.addr)
        .await
        .expect("lookup");
    assert_eq!(
        only.who_agent().await,
        Err(CallError::Denied),
        "not from an agent"
    );
    assert_eq!(
        asker.try_ask(only.clone()).await,
        Ok(Err(CallError::Denied)),
        "unnamed"
    );
    system.register("asker", &asker).expect("register");
    assert_eq!(
        asker.ask(counter.clone()).await,
        Ok(Some(asker_id.to_string())),
        "the named agent's identity, derived from its node's"
    );
    // Access policies see it as `subject.agent`.
    assert_eq!(
        asker.try_ask(only).await,
        Ok(Ok(Some(asker_id.to_string()))),
        "the policy lets this agent in"
    );
    let local = system.spawn(Counter::default());
    assert_eq!(local.who().await, Ok(None), "a local call has no remote caller");
    assert!(counter.is_remote() && counter.is_alive());
    counter.add(2).await.expect("call");
    counter.add(3).cast().await.expect("cast");
    counter.add(5).try_cast().expect("try_cast");
    assert_eq!(counter.get().await.expect("call"), 10);
    let timed_out = counter.slow(2_000).timeout(Duration::from_millis(100)).await;
    assert_eq!(timed_out, Err(CallError::Timeout));
    assert_eq!(
        counter.slow(10).await,
        Ok(10),
        "the link still works after a timeout"
    );
    node.shutdown().await;
}

async fn many_casts_arrive_in_order_exactly_once() {
    let me = Identity::generate();
    let child = ChildNode::start(&me);
    let system = System::new();
    let node = parent_node(&system, me).await;
    let counter = node
        .lookup::<Counter>("counter", child.addr)
        .await
        .expect("lookup");
    const N: u64 = 100_000;
    let start = Instant::now();
    for i in 0..N {
        counter.seq(i).cast().await.expect("cast");
    }
    assert_eq!(counter.seen().await, Ok((N, 0)), "every cast once, in order");
    println!("    {N} casts and a call in {:?}", start.elapsed());
    node.shutdown().await;
}

async fn a_remote_panic_reaches_the_caller_and_the_agent_keeps_serving() {
    let me = Identity::generate();
    let child = ChildNode::start(&me);
    let system = System::new();
    let node = parent_node(&system, me).await;
    let counter = node
        .lookup::<Counter>("counter", child.addr)
        .await
        .expect("lookup");
    counter.add(1).await.expect("call");
    let watcher = system.spawn(Watcher::default());
    watcher.watch(counter.clone()).await.expect("watch");
    match counter.boom().await {
        Err(CallError::Panicked(msg)) => assert!(msg.contains("boom on purpose"), "{msg}"),
        other => panic!("expected the panic, got {other:?}"),
    }
    // The supervisor restarted it under the same export: a fresh state, still served,
    // and not down for those who watch it.
    assert_eq!(counter.get().await, Ok(0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(watcher.downs().await, Ok(vec![]));
    assert!(counter.is_alive());
    node.shutdown().await;
}

async fn a_remote_agent_that_stops_fires_monitors_with_its_reason() {
    let me = Identity::generate();
    let child = ChildNode::start(&me);
    let system = System::new();
    let node = parent_node(&system, me).await;
    let temp = node.lookup::<Counter>("temp", child.addr).await.expect("lookup");
    let watcher = system.spawn(Watcher::default());
    watcher.watch(temp.clone()).await.expect("watch");
    tokio::time::sleep(Duration::from_millis(100)).await;
    temp.quit().await.expect("call");
    tokio::time::timeout(Duration::from_secs(5), temp.stopped())
        .await
        .expect("stopped() resolves when the remote agent stops");
    let downs = downs_within(&watcher, Duration::from_millis(2000)).await;
    assert_eq!(downs, vec![StopReason::Error("asked to quit".into())]);
    assert!(!temp.is_alive());
    // Its node is still there: other agents on it are served.
    let counter = node
        .lookup::<Counter>("counter", child.addr)
        .await
        .expect("lookup");
    assert!(counter.add(1).await.is_ok());
    node.shutdown().await;
}

async fn a_link_to_a_remote_agent_carries_exits_both_ways() {
    let me = Identity::generate();
    let child = ChildNode::start(&me);
    let system = System::new();
    let _quiet = troupe::quiet_agent_panics();
    let node = parent_node(&system, me).await;
    let temp = node.lookup::<Counter>("temp", child.addr).await.expect("lookup");
    let watcher = system.spawn(Watcher::default());
    watcher.watch(temp.clone()).await.expect("watch");
    let linker = system.spawn(Linker);
    linker.link_to(temp.clone()).await.expect("call");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The local agent crashes: the remote agent it is linked to stops too.
    assert!(matches!(linker.crash().await, Err(CallError::Panicked(_))));
    let downs = downs_within(&watcher, Duration::from_millis(5000)).await;
    assert_eq!(
        downs,
        vec![StopReason::Error("a linked agent on its node crashed".into())]
    );
    assert!(!temp.is_alive());
    node.shutdown().await;
}

async fn lookups_fail_clearly() {
    let me = Identity::generate();
    let child = ChildNode::start(&me);
    let system = System::new();
    let node = parent_node(&system, me).await;
    match node.lookup::<Counter>("nobody", child.addr).await {
        Err(NodeError::NoSuchExport(name)) => assert_eq!(name, "nobody"),
        other => panic!("expected NoSuchExport, got {other:?}"),
    }
    match node.lookup::<Other>("counter", child.addr).await {
        Err(e @ NodeError::WrongProtocol { .. }) => {
            let text = e.to_string();
            assert!(text.contains("Counter { add(n: u64) -> ()"), "{text}");
            assert!(text.contains("Other { add(n: u32) -> u32 }"), "{text}");
        }
        other => panic!("expected WrongProtocol, got {other:?}"),
    }
    node.shutdown().await;
}

async fn an_untrusted_node_cannot_reach_anything() {
    let trusted = Identity::generate();
    let child = ChildNode::start(&trusted);
    let system = System::new();
    let stranger = parent_node(&system, Identity::generate()).await;
    let refused = stranger.lookup::<Counter>("counter", child.addr).await;
    assert!(
        matches!(refused, Err(NodeError::Channel(_) | NodeError::LinkLost)),
        "{refused:?}"
    );
    stranger.shutdown().await;
}

async fn killing_a_node_fails_calls_in_flight_and_fires_monitors() {
    let me = Identity::generate();
    let mut child = ChildNode::start(&me);
    let system = System::new();
    let node = parent_node(&system, me).await;
    let counter = node
        .lookup::<Counter>("counter", child.addr)
        .await
        .expect("lookup");
    let watcher = system.spawn(Watcher::default());
    watcher.watch(counter.clone()).await.expect("watch");
    let in_flight = tokio::spawn({
        let counter = counter.clone();
        async move { counter.slow(60_000).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed_at = Instant::now();
    child.process.kill().expect("SIGKILL the child");
    let result = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the call in flight returned within 5 s")
        .expect("task");
    assert_eq!(result, Err(CallError::LinkLost));
    tokio::time::timeout(Duration::from_secs(5), counter.stopped())
        .await
        .expect("stopped() resolves once the node is lost");
    assert!(!counter.is_alive());
    let downs = downs_within(&watcher, Duration::from_millis(1000)).await;
    assert_eq!(downs, vec![StopReason::NodeLost]);
    println!(
        "    call failed and monitor fired {:?} after SIGKILL",
        killed_at.elapsed()
    );
    // Later calls fail at once instead of waiting.
    assert_eq!(counter.get().await, Err(CallError::LinkLost));
    assert!(counter.add(1).try_cast().is_err());
    node.shutdown().await;
    system.shutdown().await;
}

fn main() {
    let tests: &[process_tests::Test] = &[
        (
            "calls_casts_and_timeouts",
            || Box::pin(calls_casts_and_timeouts()),
        ),
        ("many_casts_arrive_in_order_exactly_once", || {
            Box::pin(many_casts_arrive_in_order_exactly_once())
        }),
        (
            "a_remote_panic_reaches_the_caller_and_the_agent_keeps_serving",
            || Box::pin(a_remote_panic_reaches_the_caller_and_the_agent_keeps_serving()),
        ),
        ("a_remote_agent_that_stops_fires_monitors_with_its_reason", || {
            Box::pin(a_remote_agent_that_stops_fires_monitors_with_its_reason())
        }),
        ("a_link_to_a_remote_agent_carries_exits_both_ways", || {
            Box::pin(a_link_to_a_remote_agent_carries_exits_both_ways())
        }),
        ("lookups_fail_clearly", || Box::pin(lookups_fail_clearly())),
        ("an_untrusted_node_cannot_reach_anything", || {
            Box::pin(an_untrusted_node_cannot_reach_anything())
        }),
        ("killing_a_node_fails_calls_in_flight_and_fires_monitors", || {
            Box::pin(killing_a_node_fails_calls_in_flight_and_fires_monitors())
        }),
    ];
    process_tests::run("TROUPE_TEST_NODE", child(), tests, Duration::from_secs(60));
}
