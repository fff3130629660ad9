//! Identities that survive restarts, and agent identities derived from the node's.
//!
//! Run it with `cargo run --example identities`.

use std::time::Duration;

use troupe::prelude::*;
use troupe::secure::AgentIdentityExt;

/// An agent, to show that every agent has an identity.
#[derive(Debug, Default)]
pub struct Billing;

#[agent]
impl Billing {
    #[handle]
    fn ping(&self) {}
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("troupe-identities-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("node.key");

    // ANCHOR: persist
    // Created (mode 0600) the first time, loaded afterwards: the same identifier.
    let node = Identity::load_or_create(&path)?;
    let again = Identity::load_or_create(&path)?;
    assert_eq!(node.identifier(), again.identifier());
    println!("node is {}", node.identifier());
    // ANCHOR_END: persist

    // ANCHOR: agents
    let system = System::new();
    let billing = system.spawn(Billing);
    // Derived on demand from the node's key: spawning stays as fast as ever.
    let by_name = node.derive_agent("billing"); // same name, same identity, always
    let by_ref = billing.identifier(&node); // from an ActorRef (or a Context)
    println!("agent `billing` is {}", by_name.identifier());
    println!("agent {} is {by_ref}", billing.id());
    // The node vouches for the agent; anyone who trusts the node can check it.
    let proof = node.attest_agent(&by_name.identifier(), Duration::from_secs(3600));
    proof.verify(&node.identifier())?;
    println!("the node's attestation for `billing` checks out");
    // ANCHOR_END: agents

    system.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
