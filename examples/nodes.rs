//! Two nodes: one exports a counter, the other calls it through an ordinary `ActorRef`.
//!
//! Both nodes run in this one process to keep the example short; on two machines, give
//! each its own `Identity::load_or_create("node.key")?` and listen on a routable address.
//!
//! ```text
//! cargo run --example nodes
//! ```

use std::time::Duration;

use troupe::prelude::*;
use troupe::secure::{Node, TrustPolicy};

// ANCHOR: agent
/// `remote` lets the agent's messages cross the network.
#[derive(Debug, Default)]
pub struct Counter {
    count: u64,
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
    #[handle]
    async fn slow_get(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.count
    }
}
// ANCHOR_END: agent

/// A local agent that watches the remote counter.
#[derive(Debug, Default)]
pub struct Watcher;

#[agent]
impl Watcher {
    #[handle]
    fn watch(&mut self, counter: ActorRef<Counter>, ctx: &mut Context<Self>) {
        ctx.monitor(&counter);
    }
    #[on_down]
    fn down(&mut self, down: Down) {
        println!("watcher: {} is down: {}", down.id, down.reason);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let system = System::new();

    // ANCHOR: start
    // Each node has an identity and trusts only the other one.
    let (a_identity, b_identity) = (Identity::generate(), Identity::generate());
    let (a_id, b_id) = (a_identity.identifier(), b_identity.identifier());
    let a = Node::builder()
        .identity(a_identity)
        .listen("127.0.0.1:0")
        .trust(TrustPolicy::allow([b_id]))
        .start(&system)
        .await?;
    let b = Node::builder()
        .identity(b_identity)
        .trust(TrustPolicy::allow([a_id]))
        .start(&system)
        .await?;
    println!("node a is {} at {}", a.identifier(), a.addr());
    // ANCHOR_END: start

    // ANCHOR: export
    // On node a: export an agent by name. Only exported agents are reachable, and only
    // as their access policy allows (without one, every remote call is denied). Here:
    // node b, as its secure channel authenticated it.
    let counter = system.spawn(Counter::default());
    a.export("counter", &counter)?
        .policy(format!(r#"identifier = "{b_id}""#))?;

    // On node b: look it up. The agent's protocol is checked here, so another agent
    // type (or another version of Counter) fails now, not at the first message.
    let remote: ActorRef<Counter> = b.lookup::<Counter>("counter", a.addr()).await?;
    remote.add(2).await?; // call: waits for the handler on node a
    remote.add(3).cast().await?; // cast: queued on the secure link, in order
    println!("remote count: {}", remote.get().await?);
    let late = remote.slow_get(500).timeout(Duration::from_millis(50)).await;
    println!("a call that takes too long: {late:?}");
    // ANCHOR_END: export

    // ANCHOR: lost
    // When the link to a node is lost, monitors fire and calls fail instead of waiting.
    let watcher = system.spawn(Watcher);
    watcher.watch(remote.clone()).await?;
    a.shutdown().await;
    remote.stopped().await;
    println!("after node a shut down: {:?}", remote.get().await);
    // ANCHOR_END: lost

    tokio::time::sleep(Duration::from_millis(50)).await;
    b.shutdown().await;
    system.shutdown().await;
    Ok(())
}
