//! Identities that survive restarts, and agent identities derived from the node's.
//!
//! Run it with `cargo run --example identities`.

use std::time::Duration;

use troupe::prelude::*;

/// An agent, to show that a named agent has an identity.
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
    // A directory of its own that only we may write to: identity files elsewhere are
    // refused (see the book).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
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
    system.register("billing", &billing)?;
    // Derived on demand from the node's key and the agent's registered name: spawning
    // stays as fast as ever, and the identity survives restarts of the node.
    let by_name = node.derive_agent("billing"); // same name, same identity, always
    println!("agent `billing` ({}) is {}", billing.id(), by_name.identifier());
    // The node vouches for the agent; anyone who trusts the node can check it.
    let proof = node.attest_agent(&by_name.identifier(), Duration::from_secs(3600));
    proof.verify(&node.identifier())?;
    println!("the node's attestation for `billing` checks out");
    // ANCHOR_END: agents

    system.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
