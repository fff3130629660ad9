//! Faults for tests of distributed behaviour: cut or slow the link between two nodes,
//! kill a node. Nothing here runs unless a test asks for it: a node without faults
//! checks one map when a link opens, and an atomic before each batch it writes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::link::Link;
use super::{Inner, Node};
use crate::identifier::Identifier;

/// What a test did to this node's links with one other node.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fault {
    cut: bool,
    delay: Duration,
}

impl Inner {
    /// Whether the link with `peer` is cut (no link with it may open).
    pub(super) fn is_cut(&self, peer: &Identifier) -> bool {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .is_some_and(|f| f.cut)
    }

    /// How long each batch written to `peer` waits first.
    pub(super) fn delay_to(&self, peer: &Identifier) -> Duration {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .map_or(Duration::ZERO, |f| f.delay)
    }

    fn set_fault(&self, peer: Identifier, change: impl FnOnce(&mut Fault)) -> Fault {
        let mut faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let fault = faults.entry(peer).or_default();
        change(fault);
        let fault = *fault;
        if !fault.cut && fault.delay.is_zero() {
            faults.remove(&peer);
        }
        fault
    }

    /// The links this node has with `peer` now.
    fn links_with(&self, peer: Identifier) -> Vec<Arc<Link>> {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        links
            .by_peer
            .get(&peer)
            .and_then(|p| p.link())
            .into_iter()
            .collect()
    }
}

/// Faults a test injects into one node's links ([`Node::faults`]).
///
/// ```
/// # use std::time::Duration;
/// # use troupe::secure::{Node, TrustPolicy};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let system = troupe::System::new();
/// let a = Node::builder().trust(TrustPolicy::any()).start(&system).await?;
/// let b = Node::builder().trust(TrustPolicy::any()).start(&system).await?;
/// a.faults().slow(b.identifier(), Duration::from_millis(50)); // every batch a sends to b waits 50 ms
/// a.faults().cut(b.identifier());                             // the link breaks; no new one opens
/// a.faults().heal(b.identifier());                            // links may open again
/// # b.shutdown().await;
/// # a.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct NodeFaults {
    node: Node,
}

impl NodeFaults {
    /// Cuts this node's link with `peer`: it breaks at once, without the channel's
    /// goodbye (as when a network fails), and no link between the two opens again,
    /// whichever side dials, until [`heal`](NodeFaults::heal). Sessions then behave as
    /// after any broken link: calls in flight fail with `LinkLost`, reconnecting fails,
    /// and after `reconnect_within` the session is lost (monitors fire `NodeLost`).
    pub fn cut(&self, peer: Identifier) {
        self.node.inner.set_fault(peer, |f| f.cut = true);
        for link in self.node.inner.links_with(peer) {
            sever(&link);
        }
    }

    /// Lets links with `peer` open again (a later call or lookup dials it).
    pub fn heal(&self, peer: Identifier) {
        self.node.inner.set_fault(peer, |f| f.cut = false);
    }

    /// Delays everything this node sends to `peer` by `delay` (each batch the link's
    /// writer sends waits that long first); `Duration::ZERO` ends it. Applies to the
    /// link open now and to later ones.
    pub fn slow(&self, peer: Identifier, delay: Duration) {
        self.node.inner.set_fault(peer, |f| f.delay = delay);
        for link in self.node.inner.links_with(peer) {
            link.set_delay(delay);
        }
    }
}

/// Breaks `link` at once, without a goodbye: its reader stops, its writer sends
/// nothing more, and the connection closes under both.
pub(super) fn sever(link: &Link) {
    link.severed.store(true, Ordering::Release);
    link.close();
    if let Some(reader) = link.reader.get() {
        reader.abort();
    }
}

impl Node {
    /// Faults to inject into this node's links, for tests: cut or slow the link with
    /// another node ([`NodeFaults`]).
    pub fn faults(&self) -> NodeFaults {
        NodeFaults { node: self.clone() }
    }

    /// Stops this node as a crash would: every link breaks at once without a goodbye,
    /// the cluster is not told it leaves (it must find out, as after a `kill -9`), and
    /// every task of the node ends. For tests of failure handling; a node that should
    /// leave calls [`shutdown`](Node::shutdown).
    pub async fn kill(&self) {
        let inner = &self.inner;
        inner.closing.store(true, Ordering::Release);
        // No goodbye to the cluster.
        drop(inner.swim.lock().unwrap_or_else(PoisonError::into_inner).take());
        let peers: Vec<_> = {
            let mut links = inner.links.lock().unwrap_or_else(PoisonError::into_inner);
            links.by_addr.clear();
            links.by_peer.drain().map(|(_, p)| p).collect()
        };
        for peer in &peers {
            if let Some(link) = peer.link() {
                sever(&link);
            }
        }
        let mut tasks = std::mem::take(&mut *inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        for peer in &peers {
            peer.lose();
        }
    }
}
