//! What a node counts: per peer, the traffic of its links (bytes and link messages
//! each way), handshakes and reconnects; and the access decisions on remote messages,
//! portal connections and relay requests. Read with [`Node::stats`](super::Node::stats),
//! published through the `metrics` facade with
//! [`Node::record_metrics`](super::Node::record_metrics).
//!
//! Relaxed atomic adds only: a link holds its peer's counters, found once when the
//! link is set up, and the reader and writer add to them per link message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::identifier::Identifier;

/// The counters of the links to one peer node (across reconnects).
#[derive(Default)]
pub(crate) struct LinkCounters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    handshakes: AtomicU64,
    reconnects: AtomicU64,
}

impl LinkCounters {
    /// One link message of `bytes` came in.
    #[inline]
    pub(crate) fn received(&self, bytes: usize) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// One link message of `bytes` went out.
    #[inline]
    pub(crate) fn sent(&self, bytes: usize) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn handshake(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// What an access decision was about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Guarded {
    /// A remote message to an export (call or cast).
    Message,
    /// A portal connection to an outlet.
    Portal,
    /// A relay request (register or route).
    Relay,
}

/// Every counter of one node.
#[derive(Default)]
pub(crate) struct NodeCounters {
    peers: Mutex<HashMap<Identifier, Arc<LinkCounters>>>,
    /// Allowed, denied; by [`Guarded`].
    decisions: [(AtomicU64, AtomicU64); 3],
}

impl NodeCounters {
    /// The counters of the links to `peer`.
    pub(crate) fn peer(&self, peer: Identifier) -> Arc<LinkCounters> {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(peer)
            .or_default()
            .clone()
    }

    /// Counts one access decision.
    pub(crate) fn decided(&self, what: Guarded, allowed: bool) {
        let (yes, no) = &self.decisions[what as usize];
        if allowed { yes } else { no }.fetch_add(1, Ordering::Relaxed);
    }

    fn decisions(&self, what: Guarded) -> Decisions {
        let (yes, no) = &self.decisions[what as usize];
        Decisions {
            allowed: yes.load(Ordering::Relaxed),
            denied: no.load(Ordering::Relaxed),
        }
    }

    /// A snapshot; `connected` says whether a peer has a link now.
    pub(crate) fn snapshot(&self, connected: impl Fn(&Identifier) -> bool) -> NodeStats {
        // Copied out first: `connected` takes the node's lock on its links.
        let peers: Vec<(Identifier, Arc<LinkCounters>)> = self
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(peer, c)| (*peer, c.clone()))
            .collect();
        let mut links: Vec<LinkStats> = peers
            .iter()
            .map(|(peer, c)| LinkStats {
                peer: peer.to_string(),
                connected: connected(peer),
                bytes_in: c.bytes_in.load(Ordering::Relaxed),
                bytes_out: c.bytes_out.load(Ordering::Relaxed),
                messages_in: c.messages_in.load(Ordering::Relaxed),
                messages_out: c.messages_out.load(Ordering::Relaxed),
                handshakes: c.handshakes.load(Ordering::Relaxed),
                reconnects: c.reconnects.load(Ordering::Relaxed),
            })
            .collect();
        links.sort_by(|a, b| a.peer.cmp(&b.peer));
        NodeStats {
            links,
            access: AccessStats {
                messages: self.decisions(Guarded::Message),
                portals: self.decisions(Guarded::Portal),
                relays: self.decisions(Guarded::Relay),
            },
        }
    }
}

/// A snapshot of what a node did, from [`Node::stats`](super::Node::stats): its links,
/// per peer node, and its access decisions. Serializable (serde).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeStats {
    /// One entry per node this node has had a link with, by identifier.
    pub links: Vec<LinkStats>,
    /// The access decisions this node took.
    pub access: AccessStats,
}

impl NodeStats {
    /// The entry of the peer node `peer`.
    pub fn link(&self, peer: &Identifier) -> Option<&LinkStats> {
        let peer = peer.to_string();
        self.links.iter().find(|l| l.peer == peer)
    }
}

/// The traffic with one peer node, over every link this node had with it. Bytes are
/// those of link messages (before encryption and framing), messages are link messages
/// (calls, casts, replies, control, pieces of large messages; not keepalives).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LinkStats {
    /// The peer's identifier (as [`Identifier`] prints it).
    pub peer: String,
    /// Whether a link to it is up now.
    pub connected: bool,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Link messages received.
    pub messages_in: u64,
    /// Link messages sent.
    pub messages_out: u64,
    /// Secure-channel handshakes completed with it (links set up, either way).
    pub handshakes: u64,
    /// Sessions with it that came back over a new link after theirs broke.
    pub reconnects: u64,
}

/// Access decisions, by what they guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessStats {
    /// Remote messages (calls and casts) to exports.
    pub messages: Decisions,
    /// Portal connections to outlets.
    pub portals: Decisions,
    /// Relay requests (register, route).
    pub relays: Decisions,
}

/// How many requests a policy allowed and denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Decisions {
    /// Allowed.
    pub allowed: u64,
    /// Denied.
    pub denied: u64,
}

/// Metric names, as published by [`Node::record_metrics`](super::Node::record_metrics).
pub mod names {
    /// Counter, labels `peer` and `direction` (`in`, `out`): link message bytes.
    pub const LINK_BYTES: &str = "troupe_link_bytes_total";
    /// Counter, labels `peer` and `direction` (`in`, `out`): link messages.
    pub const LINK_MESSAGES: &str = "troupe_link_messages_total";
    /// Counter, label `peer`: handshakes completed.
    pub const LINK_HANDSHAKES: &str = "troupe_link_handshakes_total";
    /// Counter, label `peer`: reconnects.
    pub const LINK_RECONNECTS: &str = "troupe_link_reconnects_total";
    /// Gauge, label `peer`: 1 while a link is up.
    pub const LINK_UP: &str = "troupe_link_up";
    /// Counter, labels `guards` (`message`, `portal`, `relay`) and `decision`
    /// (`allowed`, `denied`): access decisions.
    pub const ACCESS_DECISIONS: &str = "troupe_access_decisions_total";
}

/// Publishes a snapshot through the `metrics` facade (counters as absolute values).
pub(crate) fn publish(stats: &NodeStats) {
    for l in &stats.links {
        for (direction, bytes, messages) in [
            ("in", l.bytes_in, l.messages_in),
            ("out", l.bytes_out, l.messages_out),
        ] {
            let labels = [("peer", l.peer.clone()), ("direction", direction.to_owned())];
            metrics::counter!(names::LINK_BYTES, &labels).absolute(bytes);
            metrics::counter!(names::LINK_MESSAGES, &labels).absolute(messages);
        }
        let labels = [("peer", l.peer.clone())];
        metrics::counter!(names::LINK_HANDSHAKES, &labels).absolute(l.handshakes);
        metrics::counter!(names::LINK_RECONNECTS, &labels).absolute(l.reconnects);
        metrics::gauge!(names::LINK_UP, &labels).set(if l.connected { 1.0 } else { 0.0 });
    }
    let a = &stats.access;
    for (guards, d) in [
        ("message", a.messages),
        ("portal", a.portals),
        ("relay", a.relays),
    ] {
        for (decision, n) in [("allowed", d.allowed), ("denied", d.denied)] {
            let labels = [("guards", guards), ("decision", decision)];
            metrics::counter!(names::ACCESS_DECISIONS, &labels).absolute(n);
        }
    }
}
