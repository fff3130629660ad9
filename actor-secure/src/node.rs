//! [`Node`]: agents on other machines behind the same `ActorRef`, every byte through a
//! [`SecureChannel`].
//!
//! A node listens on a TCP address with its [`Identity`], accepts only the peers its
//! [`TrustPolicy`] allows, and makes the agents you [`export`](Node::export) reachable by
//! name. Another node's [`lookup`](Node::lookup) checks the agent's [`Protocol`] and
//! returns an `ActorRef<A>` whose generated methods (`.await`, `.cast()`, `.try_cast()`,
//! `.timeout(d)`) work as they do locally. One secure link per pair of nodes carries every
//! reference between them.

mod faults;
mod link;
mod portal;
mod relay;
pub(crate) mod stats;
mod swim;

pub use faults::NodeFaults;
#[doc(hidden)]
pub use portal::RelayTap;
pub use portal::{Inlet, OutletHandle, PortalConfig, PortalStream};
pub use relay::{Registration, RelayHandle, Route};
pub use stats::{AccessStats, Decisions, LinkStats, NodeStats};
pub use swim::MembershipConfig;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actor_core::__private::{deliver, with_ref_scope, Envelope, RemoteTarget, ReplyTx, WireRef};
use actor_core::{ActorId, ActorRef, CallError, Protocol, RemoteAgent, System};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use actor_abac::{Decision, Environment, Policy};

use crate::channel::{ChannelConfig, ChannelReader, ChannelWriter, SecureChannel};
use crate::credential::Credential;
use crate::error::ChannelError;
use crate::identifier::Identifier;
use crate::identity::Identity;
use crate::listener::{ListenerConfig, SecureListener};
use crate::trust::TrustPolicy;
use link::{
    Failure, GroupNews, Hello, Kind, Link, LookupAnswer, LookupRequest, Peer, Refused, RemoteStop, Waiting,
};
use swim::{Effect, MemberId, Swim};

/// Why a node could not start, export or look up.
#[non_exhaustive]
#[derive(Debug)]
pub enum NodeError {
    /// Binding the listening address or connecting failed.
    Io(io::Error),
    /// The secure channel to the other node could not be opened (untrusted, refused,
    /// timed out, ...).
    Channel(ChannelError),
    /// The other node exports no agent under this name.
    NoSuchExport(String),
    /// The agent exported under this name has another protocol: another agent type, or
    /// another version of it.
    WrongProtocol {
        /// The export's name.
        name: String,
        /// What this node expected.
        expected: String,
        /// What the other node has.
        found: String,
    },
    /// This node already exports an agent under this name.
    AlreadyExported(String),
    /// The other node did not answer in time.
    Timeout,
    /// The link to the other node was lost before it answered.
    LinkLost,
    /// The other node answered with something this node does not understand.
    Protocol(&'static str),
    /// A policy does not parse.
    Policy(actor_abac::ParseError),
    /// No export of that name on this node.
    NotExported(String),
    /// The node sets this export attribute itself (`name`, `agent`).
    ReservedAttribute(String),
    /// The other node's access policy denied this (its audit log says why).
    Denied,
    /// The other node has no outlet of this name.
    NoSuchOutlet(String),
    /// The other node refused to open a portal connection: its outlet could not reach
    /// its service, or it carries as many connections as it may.
    Refused(String),
    /// This node already has an outlet of this name.
    AlreadyAnOutlet(String),
    /// Another node holds this name at the relay.
    NameTaken(String),
    /// No node is registered under this name at the relay.
    NoSuchNode(String),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Io(e) => write!(f, "i/o error: {e}"),
            NodeError::Channel(e) => write!(f, "secure channel failed: {e}"),
            NodeError::NoSuchExport(name) => write!(f, "no agent exported as `{name}`"),
            NodeError::WrongProtocol {
                name,
                expected,
                found,
            } => write!(f, "`{name}` is `{found}`, not `{expected}`"),
            NodeError::AlreadyExported(name) => write!(f, "an agent is already exported as `{name}`"),
            NodeError::Timeout => f.write_str("the other node did not answer in time"),
            NodeError::LinkLost => f.write_str("link to the other node lost"),
            NodeError::Protocol(what) => write!(f, "unexpected answer from the other node: {what}"),
            NodeError::Policy(e) => write!(f, "invalid policy {e}"),
            NodeError::NotExported(name) => write!(f, "nothing is exported as `{name}` here"),
            NodeError::ReservedAttribute(name) => write!(f, "`resource.{name}` is set by the node"),
            NodeError::Denied => f.write_str("denied by the other node's access policy"),
            NodeError::NoSuchOutlet(name) => write!(f, "no outlet named `{name}`"),
            NodeError::Refused(why) => write!(f, "the other node refused the connection: {why}"),
            NodeError::AlreadyAnOutlet(name) => write!(f, "an outlet is already named `{name}`"),
            NodeError::NameTaken(name) => write!(f, "another node holds the name `{name}` at the relay"),
            NodeError::NoSuchNode(name) => write!(f, "no node is registered as `{name}` at the relay"),
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NodeError::Io(e) => Some(e),
            NodeError::Channel(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for NodeError {
    fn from(e: io::Error) -> Self {
        NodeError::Io(e)
    }
}

impl From<ChannelError> for NodeError {
    fn from(e: ChannelError) -> Self {
        NodeError::Channel(e)
    }
}

/// Builds a [`Node`]. Every setting has a default except the trust policy, which says
/// whom the node talks to (both ways).
#[derive(Debug)]
pub struct NodeBuilder {
    identity: Option<Identity>,
    listen: String,
    trust: Option<TrustPolicy>,
    listener: ListenerConfig,
    channel: ChannelConfig,
    outbox: usize,
    max_waiting: usize,
    max_inbound_calls: usize,
    lookup_timeout: Duration,
    authorities: Vec<Identifier>,
    credential: Option<Credential>,
    default_policy: Option<Policy>,
    audit_allowed: bool,
    reserved: Vec<String>,
    seeds: Vec<String>,
    membership: MembershipConfig,
    reconnect_within: Duration,
    portals: PortalConfig,
    relay_tap: Option<relay::Tap>,
}

impl NodeBuilder {
    /// Shows every chunk this node forwards as a relay to `tap`, which may change it.
    /// Only for tests of what a relay can see and do.
    #[doc(hidden)]
    pub fn relay_tap(mut self, tap: RelayTap) -> Self {
        self.relay_tap = Some(relay::Tap(tap));
        self
    }

    /// Windows, bounds and timeouts of the node's portals (inlets and outlets).
    pub fn portals(mut self, config: PortalConfig) -> Self {
        self.portals = config;
        self
    }

    /// How long a session whose link broke keeps trying to reconnect before the other
    /// node counts as lost (default 3 s): its references wait for the new link meanwhile,
    /// and its watchers hear nothing unless it fails. `Duration::ZERO` makes a broken
    /// link lose the node at once.
    pub fn reconnect_within(mut self, d: Duration) -> Self {
        self.reconnect_within = d;
        self
    }

    /// Nodes to join the cluster through (repeatable; `host:port`). The node keeps
    /// trying, with backoff, until one answers; then membership finds the others.
    pub fn seeds<S: Into<String>>(mut self, seeds: impl IntoIterator<Item = S>) -> Self {
        self.seeds.extend(seeds.into_iter().map(Into::into));
        self
    }

    /// How the cluster notices dead nodes (default [`MembershipConfig::default`]).
    pub fn membership(mut self, config: MembershipConfig) -> Self {
        self.membership = config;
        self
    }

    /// Reserves a subject attribute name (repeatable): credentials that carry it anyway
    /// have it dropped, so only the node decides what it means (`identifier` and
    /// `has_credential` are always reserved).
    pub fn reserve_attribute(mut self, name: impl Into<String>) -> Self {
        self.reserved.push(name.into());
        self
    }

    /// Trusts `authority` to vouch for other nodes' attributes (repeatable): credentials
    /// it issued count in access policies.
    pub fn trust_authority(mut self, authority: Identifier) -> Self {
        self.authorities.push(authority);
        self
    }

    /// The credential this node presents to every peer (see
    /// [`Node::refresh_credential`] to replace it).
    pub fn credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// The policy for remote calls to exports that have none of their own. Without one,
    /// such calls are denied: a remote caller is never allowed by default.
    pub fn default_policy(mut self, policy: Policy) -> Self {
        self.default_policy = Some(policy);
        self
    }

    /// Also record allowed remote calls in the audit log (denials always are).
    pub fn audit_allowed(mut self, on: bool) -> Self {
        self.audit_allowed = on;
        self
    }

    /// The node's identity (default: a fresh one, so a new identifier on every start).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Where to listen (default `127.0.0.1:0`, any free port; [`Node::addr`] tells it).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = addr.into();
        self
    }

    /// Which nodes may connect to this one, and which this one connects to. Required.
    pub fn trust(mut self, policy: TrustPolicy) -> Self {
        self.trust = Some(policy);
        self
    }

    /// How the node accepts connections: handshakes in total and per source address
    /// (default [`ListenerConfig::default`]; its channel settings are replaced by
    /// [`NodeBuilder::channel`]'s).
    pub fn listener(mut self, config: ListenerConfig) -> Self {
        self.listener = config;
        self
    }

    /// The settings of every link's secure channel (default [`ChannelConfig::default`]).
    pub fn channel(mut self, config: ChannelConfig) -> Self {
        self.channel = config;
        self
    }

    /// How many messages may wait to go out on one link (default 4096); a full queue
    /// makes `cast().await` wait and `try_cast` fail, as a full mailbox does locally.
    pub fn outbox(mut self, messages: usize) -> Self {
        self.outbox = messages;
        self
    }

    /// How many calls may wait for replies on one link (default 65536); beyond, a call
    /// fails at once with `CallError::Remote`.
    pub fn max_waiting_calls(mut self, calls: usize) -> Self {
        self.max_waiting = calls;
        self
    }

    /// How many calls from one other node may be running here at once (default 1024);
    /// beyond, the link stops reading until one finishes.
    pub fn max_inbound_calls(mut self, calls: usize) -> Self {
        self.max_inbound_calls = calls.max(1);
        self
    }

    /// How long [`Node::lookup`] waits for an answer (default 10 s).
    pub fn lookup_timeout(mut self, d: Duration) -> Self {
        self.lookup_timeout = d;
        self
    }

    /// Binds the listening address and starts accepting links.
    pub async fn start(self, system: &System) -> Result<Node, NodeError> {
        let Some(trust) = self.trust else {
            return Err(NodeError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a node needs a trust policy: NodeBuilder::trust",
            )));
        };
        let identity = Arc::new(self.identity.unwrap_or_else(Identity::generate));
        let tcp = TcpListener::bind(&self.listen).await?;
        let addr = tcp.local_addr()?;
        // Which run of this node this is: a restart with the same identity is a new one,
        // later than every earlier one.
        let incarnation = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros(),
        )
        .unwrap_or(u64::MAX);
        let mut seed = [0u8; 32];
        let _ = getrandom::getrandom(&mut seed);
        let me = MemberId {
            node: *identity.identifier().as_bytes(),
            addr,
            incarnation,
        };
        let inner = Arc::new(Inner {
            identity: identity.clone(),
            trust: trust.clone(),
            channel: self.channel.clone(),
            addr,
            outbox: self.outbox,
            max_waiting: self.max_waiting,
            max_inbound_calls: self.max_inbound_calls,
            lookup_timeout: self.lookup_timeout,
            authorities: self.authorities,
            credential: Mutex::new(self.credential),
            default_policy: RwLock::new(self.default_policy.map(Arc::new)),
            policy_generation: std::sync::atomic::AtomicU64::new(0),
            audit_allowed: self.audit_allowed,
            reserved: self.reserved,
            incarnation,
            swim: Mutex::new(Some(Swim::new(me, &self.membership, seed))),
            dial_failed: Mutex::new(HashMap::new()),
            membership_sent: Default::default(),
            ref_scope: std::sync::OnceLock::new(),
            agent_ids: Mutex::new(HashMap::new()),
            closing: std::sync::atomic::AtomicBool::new(false),
            retired: std::sync::atomic::AtomicU64::new(0),
            reconnect_within: self.reconnect_within,
            exports: Mutex::new(Exports::default()),
            links: Mutex::new(Links::default()),
            tasks: Mutex::new(JoinSet::new()),
            system: system.clone(),
            groups: Mutex::new(SharedGroups::default()),
            portals: self.portals,
            outlets: Mutex::new(HashMap::new()),
            relays: relay::Relays::new(self.relay_tap.map(|t| t.0)),
            faults: Mutex::new(HashMap::new()),
            counters: stats::NodeCounters::default(),
        });
        let listener = SecureListener::from_tcp(tcp, identity, trust, self.listener.channel(self.channel));
        let weak = Arc::downgrade(&inner);
        let scope: Arc<dyn std::any::Any + Send + Sync> = Arc::new(RefScope { node: weak.clone() });
        let _ = inner.ref_scope.set(scope);
        inner.spawn(accept_loop(listener, weak.clone()));
        for seed in self.seeds {
            inner.spawn(join(weak.clone(), seed));
        }
        Ok(Node { inner })
    }
}

/// This process's place among nodes: a listening address, an identity, the agents it
/// exports, and one secure link per other node it talks to.
///
/// ```
/// use troupe::prelude::*;
/// use troupe::secure::{Node, TrustPolicy};
///
/// #[derive(Default)]
/// pub struct Counter { count: u64 }
///
/// #[agent(remote)]
/// impl Counter {
///     #[handle] fn add(&mut self, n: u64) { self.count += n; }
///     #[handle] fn get(&self) -> u64 { self.count }
/// }
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let system = System::new();
/// let (a_id, b_id) = (Identity::generate(), Identity::generate());
/// let (a_name, b_name) = (a_id.identifier(), b_id.identifier());
/// let a = Node::builder().identity(a_id).trust(TrustPolicy::allow([b_name])).start(&system).await?;
/// let b = Node::builder().identity(b_id).trust(TrustPolicy::allow([a_name])).start(&system).await?;
///
/// // Any node the trust policy lets in may call it (the default is to deny).
/// a.export("counter", &system.spawn(Counter::default()))?.policy("true")?;
/// let counter = b.lookup::<Counter>("counter", a.addr()).await?;   // an ActorRef<Counter>
/// counter.add(2).await?;
/// counter.add(3).cast().await?;
/// assert_eq!(counter.get().await?, 5);
/// # b.shutdown().await;
/// # a.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    identity: Arc<Identity>,
    trust: TrustPolicy,
    channel: ChannelConfig,
    addr: SocketAddr,
    outbox: usize,
    max_waiting: usize,
    max_inbound_calls: usize,
    lookup_timeout: Duration,
    authorities: Vec<Identifier>,
    credential: Mutex<Option<Credential>>,
    default_policy: RwLock<Option<Arc<Policy>>>,
    /// Bumped whenever any policy changes (cached decisions no longer hold).
    policy_generation: std::sync::atomic::AtomicU64,
    audit_allowed: bool,
    reserved: Vec<String>,
    /// Which run of this node this is (start time in microseconds).
    incarnation: u64,
    /// Membership; `None` once the node has shut down.
    swim: Mutex<Option<Swim>>,
    /// Members this node could not dial: when it may try again, and how many times in
    /// a row it failed (the wait doubles from 100 ms up to 5 s).
    dial_failed: Mutex<HashMap<[u8; 32], (Instant, u32)>>,
    /// How long a broken session tries to reconnect.
    reconnect_within: Duration,
    /// Duplicate links this node has retired (see `retire`).
    retired: std::sync::atomic::AtomicU64,
    /// Set when the node starts shutting down: it takes no new links from then on.
    closing: std::sync::atomic::AtomicBool,
    /// The identifiers of this node's named agents that made remote calls, by name.
    agent_ids: Mutex<HashMap<String, Identifier>>,
    /// Handles the references inside this node's messages (see `refs`).
    ref_scope: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
    /// Membership packets and bytes this node has sent.
    membership_sent: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64),
    exports: Mutex<Exports>,
    links: Mutex<Links>,
    tasks: Mutex<JoinSet<()>>,
    system: System,
    /// Cluster-wide groups.
    groups: Mutex<SharedGroups>,
    portals: PortalConfig,
    /// The TCP services this node lets peers reach, by name.
    outlets: Mutex<HashMap<String, Arc<portal::Outlet>>>,
    relays: relay::Relays,
    /// Faults a test injected into links with other nodes.
    faults: Mutex<HashMap<Identifier, faults::Fault>>,
    /// Traffic per peer and access decisions (see `stats`).
    counters: stats::NodeCounters,
}

/// Cluster-wide groups: this node's members, as other nodes are told of them, and
/// other nodes' members, as they told this one.
#[derive(Default)]
struct SharedGroups {
    /// (group, agent) -> the agent's wire name.
    local: HashMap<(String, ActorId), WireRef>,
    /// This node's agents whose end is watched (to leave their groups).
    watched: std::collections::HashSet<ActorId>,
    /// Other nodes' members: (group, wire name), by node.
    remote: HashMap<Identifier, Vec<(String, WireRef)>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("identifier", &self.identity.identifier())
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Exports {
    by_name: HashMap<String, u32>,
    by_slot: HashMap<u32, Arc<dyn Exported>>,
    /// Agents exported because a reference to them was sent: (slot, secret), by agent.
    sent: HashMap<ActorId, (u32, u64)>,
    next_slot: u32,
}

/// What encodes and decodes the references inside one node's messages.
struct RefScope {
    node: Weak<Inner>,
}

#[derive(Default)]
struct Links {
    /// The session with each node this one talks to.
    by_peer: HashMap<Identifier, Arc<Peer>>,
    /// Which node answered at each address this node dialled.
    by_addr: HashMap<SocketAddr, Identifier>,
    /// One dial at a time per address.
    dialing: HashMap<SocketAddr, Arc<tokio::sync::Mutex<()>>>,
}

/// Checks that a membership packet claims to come from `peer`, the node whose link it
/// came on: a node speaks for itself only.
fn membership_sender_is(peer: &Identifier, packet: &[u8]) -> Result<(), &'static str> {
    let sender = swim::claimed_sender(packet).ok_or("undecodable membership packet")?;
    if sender.node != *peer.as_bytes() {
        return Err("a membership packet claiming another sender");
    }
    Ok(())
}

/// How long to wait before dialling a member again after `failures` failed dials in a
/// row: 100 ms, doubling, at most 5 s.
fn redial_after(failures: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(Duration::from_secs(5))
}

/// One dial at a time per address; the entry goes when no one dials that address.
struct DialGate<'a> {
    node: &'a Inner,
    addr: SocketAddr,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for DialGate<'_> {
    fn drop(&mut self) {
        let mut links = self.node.links.lock().unwrap_or_else(PoisonError::into_inner);
        // The table's and ours: no one else is dialling or waiting.
        if links
            .dialing
            .get(&self.addr)
            .is_some_and(|g| Arc::strong_count(g) <= 2)
        {
            links.dialing.remove(&self.addr);
        }
    }
}

/// How many nodes this node may be dialling at once because references to their
/// agents arrived (a peer could otherwise make it dial without end).
const MAX_CONNECTING: usize = 256;

/// What a remote message is for, as access policies see it.
#[derive(Clone, Copy)]
struct Resource<'a> {
    /// The exported agent's type.
    agent: &'a str,
    /// The handler.
    handler: &'a str,
    /// A call (or a cast).
    call: bool,
}

/// How many distinct agents of one node this node gives an id to (beyond, references
/// to them still work but do not compare equal).
const MAX_REMOTE_IDS: usize = 65_536;

/// How long a session whose link broke tries to reconnect before it is lost, by default.
const RECONNECT_WITHIN: Duration = Duration::from_secs(3);

/// Two links opened within this long of each other count as opened at the same time.
const SIMULTANEOUS: Duration = Duration::from_secs(2);

/// How long a retired duplicate link may take to finish what is in flight on it.
const RETIRE_WITHIN: Duration = Duration::from_secs(60);

impl Inner {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> tokio::task::AbortHandle {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task)
    }

    fn export_in(&self, slot: u32) -> Option<Arc<dyn Exported>> {
        let exports = self.exports.lock().unwrap_or_else(PoisonError::into_inner);
        exports.by_slot.get(&slot).cloned()
    }

    /// Starts the tasks of a new link over `ch` (`dialled`: this node opened it); the
    /// link joins a session when the peer's hello arrives.
    fn install<IO: LinkIo>(self: &Arc<Self>, ch: SecureChannel<IO>, dialled: bool) -> Arc<Link> {
        let peer = *ch.peer();
        let counters = self.counters.peer(peer);
        counters.handshake();
        let link = Arc::new(
            Link::new(
                peer,
                self.outbox,
                self.max_waiting,
                self.channel.max_message_size,
                dialled,
                self.max_inbound_calls,
            )
            .with_counters(counters),
        );
        let (reader, writer) = ch.split();
        // Our hello, then our credential, ahead of any call.
        let hello = Hello {
            incarnation: self.incarnation,
            addr: self.addr,
            fresh: self.session_with_peer(peer).is_none(),
        };
        let body = rmp_serde::to_vec(&hello).unwrap_or_default();
        let mut first = link::encode(Kind::Hello, 0, 0, body.len());
        first.extend_from_slice(&body);
        let _ = link.outbox.try_push_with(|| Some(first));
        let _ = link.outbox.try_push_with(|| Some(self.credential_message()));
        // A link a test cut may not open again (either side dialling).
        if self.is_cut(&peer) {
            link.close();
            return link;
        }
        link.set_delay(self.delay_to(&peer));
        self.spawn(write_loop(link.clone(), writer));
        let reader = self.spawn(read_loop(link.clone(), reader, Arc::downgrade(self)));
        let _ = link.reader.set(reader);
        link
    }

    /// Takes the hello that opens `link`: the link joins the session with its node, or
    /// starts one. Two links in one session (both nodes dialled at once) end with one:
    /// both nodes keep the link the node with the smaller identifier dialled, and retire
    /// the other once nothing is in flight on it.
    fn attach(self: &Arc<Self>, link: &Arc<Link>, hello: &Hello) -> Result<(), &'static str> {
        if self.closing.load(std::sync::atomic::Ordering::Acquire) {
            return Err("the node is shutting down");
        }
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        let mut existing = links.by_peer.get(&link.peer).filter(|p| !p.is_lost()).cloned();
        // A session whose link has just closed (and is being marked lost) is over. So is
        // one whose link is stale: the other node had no working link with us when it
        // opened this one, and ours was not opened at the same moment (a connection that
        // broke without us noticing).
        let stale = |p: &Arc<Peer>| {
            p.link().is_some_and(|l| {
                l.is_closed()
                    || (hello.fresh
                        && p.incarnation == hello.incarnation
                        && l.opened.elapsed() > SIMULTANEOUS)
            })
        };
        if let Some(old) = existing.take_if(|p| stale(p)) {
            old.lose();
        }
        match existing {
            // This node was dialling it (a reference to one of its agents arrived).
            Some(peer) if peer.incarnation == hello.incarnation && peer.link().is_none() => {
                peer.switch_to(link);
            }
            Some(peer) if peer.incarnation == hello.incarnation => {
                let ours_is_smaller = self.identity.identifier() < link.peer;
                self.retired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if link.dialled == ours_is_smaller {
                    let old = peer.link();
                    peer.switch_to(link);
                    if let Some(old) = old {
                        self.spawn(retire(old));
                    }
                } else {
                    peer.adopt(link);
                    self.spawn(retire(link.clone()));
                }
            }
            Some(peer) if peer.incarnation > hello.incarnation => {
                return Err("a link from an earlier run of a node that has restarted");
            }
            old => {
                // A new session: the node restarted (its old session is over) or is new.
                if let Some(old) = old {
                    old.lose();
                }
                let peer = Peer::new(link, hello);
                peer.set_reconnect(self.reconnector());
                links.by_peer.insert(link.peer, peer);
                // The new session learns this node's group members.
                let news: Vec<Vec<u8>> = {
                    let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
                    groups
                        .local
                        .iter()
                        .map(|((group, _), wire)| group_message(true, group, wire))
                        .collect()
                };
                if !news.is_empty() {
                    let link = link.clone();
                    self.spawn(async move {
                        for msg in news {
                            if link.outbox.push(msg).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        }
        Ok(())
    }

    /// The live session with the node `expect`, or with the node that answered at
    /// `addr` when this node dialled it.
    fn session_with(&self, addr: SocketAddr, expect: Option<Identifier>) -> Option<Arc<Peer>> {
        let id = match expect {
            Some(id) => id,
            None => *self
                .links
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .by_addr
                .get(&addr)?,
        };
        self.session_with_peer(id)
    }

    /// The identifier of the agent running here, when it is registered under a name in
    /// this node's system (derived from the node's identity and the name, so it stays
    /// the same across restarts).
    fn calling_agent(&self) -> Option<Identifier> {
        let id = actor_core::__private::current_agent()?;
        let name = self.system.registered_name(id)?;
        let mut known = self.agent_ids.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(agent) = known.get(&name) {
            return Some(*agent);
        }
        let agent = self.identity.derive_agent(&name).identifier();
        // Derivations cost tens of microseconds: kept, within a bound.
        if known.len() >= 4096 {
            known.clear();
        }
        known.insert(name, agent);
        Some(agent)
    }

    /// What a session does when its link breaks: reconnect, in a task of this node.
    fn reconnector(self: &Arc<Self>) -> link::Reconnect {
        let node = Arc::downgrade(self);
        Box::new(move |peer| match node.upgrade() {
            Some(n) if !n.reconnect_within.is_zero() => {
                n.spawn(reconnect(node.clone(), peer));
            }
            _ => peer.lose(),
        })
    }

    /// The live session with node `id` that has a working link.
    fn session_with_peer(&self, id: Identifier) -> Option<Arc<Peer>> {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        links
            .by_peer
            .get(&id)
            .filter(|p| !p.is_lost() && p.link().is_some_and(|l| !l.is_closed()))
            .cloned()
    }

    fn scope(&self) -> Arc<dyn std::any::Any + Send + Sync> {
        self.ref_scope
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::new(RefScope { node: Weak::new() }))
    }

    /// Exports `agent` without a name because a reference to it is being sent: any node
    /// this one trusts that holds the reference (and so its secret) may message it.
    /// Once per agent; the export goes when the agent stops for good.
    fn export_sent<A: RemoteAgent>(self: &Arc<Self>, agent: &ActorRef<A>) -> (u32, u64) {
        let mut exports = self.exports.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&known) = exports.sent.get(&agent.id()) {
            return known;
        }
        exports.next_slot += 1;
        let slot = exports.next_slot;
        let mut secret = [0u8; 8];
        let _ = getrandom::getrandom(&mut secret);
        let token = u64::from_le_bytes(secret) | 1;
        let policies = Policies {
            name: format!("(sent reference to {})", A::protocol().name()),
            ..Policies::default()
        };
        // Holding the reference is the permission.
        if let Ok(allow) = Policy::parse("true") {
            *policies.whole.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(allow));
        }
        let export: Arc<dyn Exported> = Arc::new(Export {
            agent: agent.clone(),
            protocol: A::protocol(),
            policies,
            token,
        });
        exports.by_slot.insert(slot, export);
        exports.sent.insert(agent.id(), (slot, token));
        drop(exports);
        let node = Arc::downgrade(self);
        let agent = agent.clone();
        self.spawn(async move {
            actor_core::__private::exit_reason(&agent).await;
            if let Some(node) = node.upgrade() {
                let mut exports = node.exports.lock().unwrap_or_else(PoisonError::into_inner);
                exports.sent.remove(&agent.id());
                exports.by_slot.remove(&slot);
            }
        });
        (slot, token)
    }

    /// The session with node `id` (incarnation `incarnation`, listening at `addr`) for a
    /// reference that names one of its agents: the open one, or a new one this node
    /// starts dialling.
    fn peer_for(self: &Arc<Self>, id: Identifier, addr: &str, incarnation: u64) -> Result<Arc<Peer>, String> {
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(peer) = links.by_peer.get(&id).filter(|p| !p.is_lost()) {
            match peer.incarnation.cmp(&incarnation) {
                std::cmp::Ordering::Equal => return Ok(peer.clone()),
                std::cmp::Ordering::Greater => {
                    return Err("a reference to an agent of an earlier run of its node".into());
                }
                // The node restarted since: the session this node has is over.
                std::cmp::Ordering::Less => peer.lose(),
            }
        }
        if !self.trust.allows(&id) {
            return Err(format!(
                "a reference to an agent on {id}, which this node does not trust"
            ));
        }
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("a reference with a bad node address `{addr}`"))?;
        let connecting = links
            .by_peer
            .values()
            .filter(|p| !p.is_lost() && p.link().is_none())
            .count();
        if connecting >= MAX_CONNECTING {
            return Err("too many nodes being dialled for references".into());
        }
        let peer = Peer::connecting(id, incarnation, addr);
        peer.set_reconnect(self.reconnector());
        links.by_peer.insert(id, peer.clone());
        drop(links);
        let node = Arc::downgrade(self);
        let connecting = peer.clone();
        self.spawn(async move {
            let Some(node) = node.upgrade() else {
                connecting.lose();
                return;
            };
            if let Err(e) = node.link_to(addr, Some(id)).await {
                tracing::debug!(node = %id, error = %e, "node: could not reach the node of a reference");
            }
            // Dialled, but the session did not take the link (another incarnation).
            if connecting.link().is_none() {
                connecting.lose();
            }
        });
        Ok(peer)
    }

    /// The session with the node at `addr` (which must be `expect`, when given),
    /// dialling it if there is none.
    async fn link_to(
        self: &Arc<Self>,
        addr: SocketAddr,
        expect: Option<Identifier>,
    ) -> Result<Arc<Peer>, NodeError> {
        if let Some(peer) = self.session_with(addr, expect) {
            return Ok(peer);
        }
        if self.closing.load(std::sync::atomic::Ordering::Acquire) {
            return Err(NodeError::LinkLost);
        }
        let gate = DialGate {
            node: self,
            addr,
            gate: {
                let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
                links.dialing.entry(addr).or_default().clone()
            },
        };
        let _one_dial = gate.gate.lock().await;
        if let Some(peer) = self.session_with(addr, expect) {
            return Ok(peer);
        }
        let ch = self.dial(addr).await?;
        if expect.is_some_and(|id| id != *ch.peer()) {
            return Err(NodeError::Protocol("another node answered at that address"));
        }
        let link = self.install(ch, true);
        let peer = match tokio::time::timeout(self.lookup_timeout, link.attached()).await {
            Ok(Some(peer)) => peer,
            Ok(None) => return Err(NodeError::LinkLost),
            Err(_) => {
                link.close();
                return Err(NodeError::Timeout);
            }
        };
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_addr
            .insert(addr, link.peer);
        Ok(peer)
    }

    /// Opens a secure channel to `addr`. A listener that is busy with other handshakes
    /// drops the connection without a word; that is retried, with backoff, until the
    /// lookup timeout.
    async fn dial(&self, addr: SocketAddr) -> Result<SecureChannel<TcpStream>, NodeError> {
        let deadline = Instant::now() + self.lookup_timeout;
        let mut backoff = Duration::from_millis(10);
        loop {
            let attempt = async {
                let tcp = TcpStream::connect(addr).await?;
                let _ = tcp.set_nodelay(true);
                Ok::<_, NodeError>(
                    SecureChannel::initiate_with(tcp, &self.identity, self.trust.clone(), &self.channel)
                        .await?,
                )
            };
            match tokio::time::timeout_at(deadline.into(), attempt).await {
                Err(_) => return Err(NodeError::Timeout),
                Ok(Ok(ch)) => return Ok(ch),
                Ok(Err(NodeError::Channel(ChannelError::ConnectionLost)))
                    if Instant::now() + backoff < deadline =>
                {
                    // Spread the retries of many dialling nodes apart.
                    let mut jitter = [0u8; 1];
                    let _ = getrandom::getrandom(&mut jitter);
                    let jitter = u64::from(jitter[0] % 20);
                    tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Runs `f` on the membership state machine (`None` once the node shut down).
    fn swim<R>(&self, f: impl FnOnce(&mut Swim) -> R) -> Option<R> {
        self.swim
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map(f)
    }

    /// Carries out what membership asks for.
    fn run_effects(self: &Arc<Self>, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send(to, data) => self.send_membership(to, &data),
                Effect::Schedule(after, timer) => {
                    let node = Arc::downgrade(self);
                    self.spawn(async move {
                        tokio::time::sleep(after).await;
                        if let Some(node) = node.upgrade() {
                            let effects = node.swim(|s| s.handle_timer(timer)).unwrap_or_default();
                            node.run_effects(effects);
                        }
                    });
                }
                Effect::Up(member) => {
                    tracing::info!(target: "troupe::cluster", node = %Identifier::from_bytes(member.node), addr = %member.addr, "node joined");
                }
                Effect::Down(member) => {
                    let id = Identifier::from_bytes(member.node);
                    tracing::warn!(target: "troupe::cluster", node = %id, addr = %member.addr, "node down");
                    let peer = {
                        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
                        links.by_peer.get(&id).cloned()
                    };
                    // The session ends: monitors of its agents fire with `NodeLost`.
                    if let Some(peer) = peer.filter(|p| p.incarnation <= member.incarnation) {
                        peer.lose();
                    }
                }
                Effect::Rejoined(me) => {
                    tracing::warn!(target: "troupe::cluster", incarnation = me.incarnation, "this node was declared down and rejoined");
                }
            }
        }
    }

    /// Sends a membership packet to `to` over its link, dialling it if needed. Packets
    /// are datagrams to membership: one that finds the link's queue full is dropped.
    fn send_membership(self: &Arc<Self>, to: MemberId, data: &[u8]) {
        let id = Identifier::from_bytes(to.node);
        self.membership_sent
            .0
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.membership_sent.1.fetch_add(
            (link::HEADER_LEN + data.len()) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut out = link::encode(Kind::Membership, 0, 0, data.len());
        out.extend_from_slice(data);
        if let Some(peer) = self.session_with(to.addr, Some(id)) {
            peer.with_link(|link| {
                if let Some(link) = link {
                    let _ = link.outbox.try_push_with(|| Some(out));
                }
            });
            return;
        }
        if !self.trust.allows(&id) {
            return;
        }
        {
            let failed = self.dial_failed.lock().unwrap_or_else(PoisonError::into_inner);
            if failed
                .get(&to.node)
                .is_some_and(|(retry, _)| Instant::now() < *retry)
            {
                return;
            }
        }
        let node = Arc::downgrade(self);
        self.spawn(async move {
            let Some(node) = node.upgrade() else {
                return;
            };
            match node.link_to(to.addr, Some(id)).await {
                Ok(peer) => {
                    node.dial_failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&to.node);
                    peer.with_link(|link| {
                        if let Some(link) = link {
                            let _ = link.outbox.try_push_with(|| Some(out));
                        }
                    });
                }
                Err(e) => {
                    tracing::debug!(target: "troupe::cluster", node = %id, error = %e, "could not reach a member");
                    let mut failed = node.dial_failed.lock().unwrap_or_else(PoisonError::into_inner);
                    let times = failed.get(&to.node).map_or(0, |(_, n)| *n).saturating_add(1);
                    failed.insert(to.node, (Instant::now() + redial_after(times), times));
                }
            }
        });
    }

    /// The peer on `link` watches the export in `slot`: tell it (on whichever link then
    /// carries the session) when the agent stops for good. One watch per export and
    /// peer, however often it asks.
    fn watch_export(&self, link: &Link, slot: u32, token: u64) {
        let Some(peer) = link.session() else {
            return;
        };
        // An agent exported by sending a reference is watched only by holders of it.
        let export = self
            .export_in(slot)
            .filter(|e| e.token() == 0 || same_secret(e.token(), token));
        let down = move |stop: &RemoteStop| {
            let body = rmp_serde::to_vec(stop).unwrap_or_default();
            let mut out = link::encode(Kind::Down, 0, slot, body.len());
            out.extend_from_slice(&body);
            out
        };
        // A watch of nothing is answered at once, if there is room, and not kept: a
        // peer asking again and again makes no tasks and no table grow.
        let Some(export) = export else {
            let _ = link.outbox.try_push_with(|| Some(down(&RemoteStop::NotExported)));
            return;
        };
        // One watch per export and peer (the table stays within the exports).
        let fresh = peer
            .monitored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(slot);
        if !fresh {
            return;
        }
        self.spawn(async move {
            let stop = tokio::select! {
                reason = export.exit() => RemoteStop::from_reason(&reason),
                () = std::future::poll_fn(|cx| peer.poll_lost(cx)) => return,
            };
            if let Some(link) = peer.link() {
                let _ = link.outbox.push(down(&stop)).await;
            }
        });
    }

    /// An agent of the peer on `link` linked itself to the export in `slot`: its exit,
    /// or the peer's loss, will reach the export's agent as a linked agent's exit.
    fn link_in(&self, link: &Link, slot: u32, payload: &[u8]) -> Result<(), &'static str> {
        let (token, from) = link_payload(payload).ok_or("a malformed link")?;
        let Some(peer) = link.session() else {
            return Ok(());
        };
        let Some(export) = self
            .export_in(slot)
            .filter(|e| e.token() == 0 || same_secret(e.token(), token))
        else {
            return Ok(());
        };
        let mut linked = peer.linked_in.lock().unwrap_or_else(PoisonError::into_inner);
        if !linked.contains_key(&(slot, from)) && linked.len() >= link::MAX_LINKS_IN {
            return Err("too many links");
        }
        // The linked agent, as the export's agent sees it.
        let stands_for = ActorId::fresh();
        linked.insert(
            (slot, from),
            Box::new(move |reason| export.exit_signal(stands_for, reason)),
        );
        Ok(())
    }

    /// The peer's agent linked to the export in `slot` ended.
    fn link_exit(&self, link: &Link, slot: u32, payload: &[u8]) -> Result<(), &'static str> {
        let (_, from) = link_payload(payload).ok_or("a malformed link exit")?;
        let stop =
            rmp_serde::from_slice::<RemoteStop>(&payload[16..]).map_err(|_| "an undecodable link exit")?;
        let Some(peer) = link.session() else {
            return Ok(());
        };
        // Only links this node recorded (which checked the export's secret).
        let deliver = peer
            .linked_in
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(slot, from));
        if let Some(deliver) = deliver {
            deliver(stop.into_reason());
        }
        Ok(())
    }

    /// Tells every node this one has a session with.
    fn tell_all(&self, msg: Vec<u8>) {
        let links: Vec<_> = {
            let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
            links.by_peer.values().filter_map(|p| p.link()).collect()
        };
        for link in links {
            let msg = msg.clone();
            self.spawn(async move {
                let _ = link.outbox.push(msg).await;
            });
        }
    }

    /// Takes another node's group news from `link`; `Err` ends the link.
    fn group_news(&self, link: &Link, payload: &[u8]) -> Result<(), &'static str> {
        let news = rmp_serde::from_slice::<GroupNews>(payload).map_err(|_| "undecodable group news")?;
        if news.member.node != *link.peer.as_bytes() {
            return Err("group news about another node's agent");
        }
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let entries = groups.remote.entry(link.peer).or_default();
        // Entries of an earlier run of that node are over.
        entries.retain(|(_, w)| w.incarnation >= news.member.incarnation);
        let same = |(g, w): &(String, WireRef)| *g == news.group && w.slot == news.member.slot;
        if news.join {
            if !entries.iter().any(same) {
                if entries.len() >= link::MAX_GROUP_ENTRIES {
                    return Err("too many group memberships");
                }
                entries.push((news.group, news.member));
            }
        } else {
            entries.retain(|e| !same(e));
        }
        Ok(())
    }

    /// Takes a membership packet from `link`; `Err` ends the link.
    fn membership_packet(self: &Arc<Self>, link: &Link, payload: &[u8]) -> Result<(), &'static str> {
        membership_sender_is(&link.peer, payload)?;
        let Some((effects, result)) = self.swim(|s| s.handle_data(payload)) else {
            return Ok(());
        };
        if let Err(e) = result {
            tracing::debug!(target: "troupe::cluster", peer = %link.peer, error = %e, "membership packet refused");
        }
        self.run_effects(effects);
        Ok(())
    }

    fn policies_changed(&self) {
        self.policy_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn credential_message(&self) -> Vec<u8> {
        let credential = self.credential.lock().unwrap_or_else(PoisonError::into_inner);
        let body = credential.as_ref().map(Credential::to_bytes).unwrap_or_default();
        let mut out = link::encode(Kind::Credential, 0, 0, body.len());
        out.extend_from_slice(&body);
        out
    }

    /// Takes the credential a peer presented on `link`: verified against the trusted
    /// authorities and the link's peer, or no attributes at all (an invalid credential
    /// does not close the link: the peer is then treated as having none).
    fn accept_credential(&self, link: &Link, payload: &[u8]) {
        if payload.is_empty() {
            link.set_credential(None);
            return;
        }
        let verified = Credential::from_bytes(payload)
            .and_then(|c| c.verify(&self.authorities, &link.peer))
            .map(|v| v.without(&self.reserved));
        match verified {
            Ok(v) => link.set_credential(Some(v)),
            Err(e) => {
                tracing::warn!(
                    target: "troupe::audit",
                    peer = %link.peer,
                    error = %e,
                    "credential refused: the peer has no attributes"
                );
                link.set_credential(None);
            }
        }
    }

    /// The policy environment of a message from `link` to `export`'s `handler`.
    fn environment(
        &self,
        link: &Link,
        caller: &actor_core::Caller,
        export: &str,
        target: &Resource,
    ) -> Environment {
        let Resource { agent, handler, call } = *target;
        let mut env = Environment::new();
        let now = crate::agent::unix_secs(std::time::SystemTime::now());
        match link.credential() {
            // A credential stops counting at its expiry, link or no link.
            Some(c) if c.expires_at() > now => c.apply_to(&mut env),
            _ => env.insert("subject.has_credential", false),
        }
        env.insert("subject.identifier", link.peer.to_string());
        if let Some(agent) = caller.agent_bytes() {
            env.insert("subject.agent", Identifier::from_bytes(*agent).to_string());
        }
        env.insert("resource.name", export);
        env.insert("resource.agent", agent);
        env.insert("action.handler", handler);
        env.insert("action.kind", if call { "call" } else { "cast" });
        env
    }
}

impl Node {
    /// A builder with the defaults.
    pub fn builder() -> NodeBuilder {
        NodeBuilder {
            identity: None,
            listen: "127.0.0.1:0".into(),
            trust: None,
            listener: ListenerConfig::default(),
            channel: ChannelConfig::default(),
            outbox: 4096,
            max_waiting: 65536,
            max_inbound_calls: 1024,
            lookup_timeout: Duration::from_secs(10),
            authorities: Vec::new(),
            credential: None,
            default_policy: None,
            audit_allowed: false,
            reserved: Vec::new(),
            seeds: Vec::new(),
            membership: MembershipConfig::default(),
            reconnect_within: RECONNECT_WITHIN,
            portals: PortalConfig::default(),
            relay_tap: None,
        }
    }

    /// The address the node listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The node's identifier.
    pub fn identifier(&self) -> Identifier {
        self.inner.identity.identifier()
    }

    /// Makes `agent` reachable from other (trusted) nodes as `name`. Only exported agents
    /// are reachable, and only as their access policies allow: set them on the returned
    /// [`ExportHandle`] (or a node-wide [`NodeBuilder::default_policy`]); an export with
    /// no policy denies every remote call.
    pub fn export<A: RemoteAgent>(
        &self,
        name: impl Into<String>,
        agent: &ActorRef<A>,
    ) -> Result<ExportHandle, NodeError> {
        let name = name.into();
        let mut exports = self.inner.exports.lock().unwrap_or_else(PoisonError::into_inner);
        if exports.by_name.contains_key(&name) {
            return Err(NodeError::AlreadyExported(name));
        }
        exports.next_slot += 1;
        let slot = exports.next_slot;
        exports.by_name.insert(name.clone(), slot);
        exports.by_slot.insert(
            slot,
            Arc::new(Export {
                agent: agent.clone(),
                protocol: A::protocol(),
                policies: Policies {
                    name: name.clone(),
                    // Policies declared with `#[handle(policy = "...")]`, checked when the
                    // agent was compiled.
                    handlers: RwLock::new(
                        A::handler_policies()
                            .iter()
                            .filter_map(|(handler, text)| {
                                Policy::parse(text)
                                    .ok()
                                    .map(|p| ((*handler).to_owned(), Arc::new(p)))
                            })
                            .collect(),
                    ),
                    ..Policies::default()
                },
                token: 0,
            }),
        );
        Ok(ExportHandle {
            node: self.clone(),
            name,
        })
    }

    /// Replaces the credential this node presents, on every open link and every new one.
    /// Peers check that it is about this node; attributes from the old one stop counting
    /// as soon as they have the new one.
    pub async fn refresh_credential(&self, credential: Credential) {
        *self
            .inner
            .credential
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(credential);
        let links: Vec<_> = {
            let links = self.inner.links.lock().unwrap_or_else(PoisonError::into_inner);
            links.by_peer.values().filter_map(|p| p.link()).collect()
        };
        for link in links {
            let _ = link.outbox.push(self.inner.credential_message()).await;
        }
    }

    /// Replaces the node's default policy (for exports without their own); `None` denies
    /// such calls again.
    pub fn set_default_policy(&self, policy: Option<Policy>) {
        *self
            .inner
            .default_policy
            .write()
            .unwrap_or_else(PoisonError::into_inner) = policy.map(Arc::new);
        self.inner.policies_changed();
    }

    /// Stops exporting `name`; returns true when it was exported. Calls through
    /// references other nodes already hold then fail with `CallError::Remote`.
    pub fn unexport(&self, name: &str) -> bool {
        let mut exports = self.inner.exports.lock().unwrap_or_else(PoisonError::into_inner);
        match exports.by_name.remove(name) {
            Some(slot) => exports.by_slot.remove(&slot).is_some(),
            None => false,
        }
    }

    /// A reference to the agent exported as `name` by the node at `addr`, after checking
    /// that it is an `A` of the same [`Protocol`] (another type or version fails here,
    /// with [`NodeError::WrongProtocol`]). Opens the link to that node if none is open.
    pub async fn lookup<A: RemoteAgent>(
        &self,
        name: &str,
        addr: impl ToSocketAddrs,
    ) -> Result<ActorRef<A>, NodeError> {
        let addr = tokio::net::lookup_host(addr)
            .await?
            .next()
            .ok_or_else(|| NodeError::Io(io::Error::new(io::ErrorKind::InvalidInput, "no address")))?;
        let peer = self.inner.link_to(addr, None).await?;
        self.lookup_on::<A>(peer, name).await
    }

    /// A reference to the agent exported as `name` by any node of the cluster (the
    /// first that answers, when several export the name). Fails with
    /// [`NodeError::NoSuchExport`] when no member exports it, and with
    /// [`NodeError::WrongProtocol`] when only agents of another protocol are exported
    /// under that name.
    pub async fn find<A: RemoteAgent>(&self, name: &str) -> Result<ActorRef<A>, NodeError> {
        let members: Vec<MemberId> = self
            .inner
            .swim(|s| s.members().copied().collect())
            .unwrap_or_default();
        let mut lookups = JoinSet::new();
        for member in members {
            let node = self.clone();
            let name = name.to_owned();
            lookups.spawn(async move {
                let id = Identifier::from_bytes(member.node);
                let peer = node.inner.link_to(member.addr, Some(id)).await?;
                node.lookup_on::<A>(peer, &name).await
            });
        }
        // Unless some member has it: a wrong protocol says most, then a member that
        // could not be asked (it might have had it), then "nobody has it".
        let mut wrong = None;
        let mut unreachable = None;
        while let Some(result) = lookups.join_next().await {
            match result {
                Ok(Ok(found)) => return Ok(found),
                Ok(Err(e @ NodeError::WrongProtocol { .. })) => wrong = Some(e),
                Ok(Err(NodeError::NoSuchExport(_))) => {}
                Ok(Err(e)) => unreachable = Some(e),
                Err(_) => unreachable = Some(NodeError::LinkLost),
            }
        }
        Err(wrong
            .or(unreachable)
            .unwrap_or_else(|| NodeError::NoSuchExport(name.to_owned())))
    }

    /// The cluster as this node sees it: itself and every member it knows to be up.
    pub fn members(&self) -> Vec<ClusterMember> {
        let mut members = vec![ClusterMember {
            identifier: self.identifier(),
            addr: self.addr(),
        }];
        self.inner.swim(|s| {
            members.extend(s.members().map(|m| ClusterMember {
                identifier: Identifier::from_bytes(m.node),
                addr: m.addr,
            }));
        });
        members
    }

    /// Adds `agent` (an agent of this node) to the cluster-wide group `group`: every
    /// node of the cluster sees it in [`Node::group_members`], and in this node's
    /// `System`, `system.members` too. It leaves when it stops, when
    /// [`Node::leave_group`] is called, and for the other nodes when this node is lost.
    /// A member is reachable by every node this one trusts, as a reference sent to them
    /// would be.
    pub fn join_group<A: RemoteAgent>(
        &self,
        group: impl Into<String>,
        agent: &ActorRef<A>,
    ) -> Result<(), actor_core::RegistryError> {
        let group = group.into();
        self.inner.system.join(group.clone(), agent)?;
        let scope = self.inner.scope();
        let wire = refs::ref_to_wire(agent, &*scope).map_err(|_| actor_core::RegistryError::AgentStopped)?;
        let fresh_watch = {
            let mut groups = self.inner.groups.lock().unwrap_or_else(PoisonError::into_inner);
            groups.local.insert((group.clone(), agent.id()), wire.clone());
            groups.watched.insert(agent.id())
        };
        self.inner.tell_all(group_message(true, &group, &wire));
        if fresh_watch {
            // When the agent stops for good, it leaves its groups everywhere.
            let node = Arc::downgrade(&self.inner);
            let agent = agent.clone();
            self.inner.spawn(async move {
                actor_core::__private::exit_reason(&agent).await;
                let Some(node) = node.upgrade() else {
                    return;
                };
                let gone: Vec<_> = {
                    let mut groups = node.groups.lock().unwrap_or_else(PoisonError::into_inner);
                    groups.watched.remove(&agent.id());
                    let keys: Vec<_> = groups
                        .local
                        .keys()
                        .filter(|(_, id)| *id == agent.id())
                        .cloned()
                        .collect();
                    keys.into_iter()
                        .filter_map(|key| groups.local.remove(&key).map(|wire| (key.0, wire)))
                        .collect()
                };
                for (group, wire) in gone {
                    node.tell_all(group_message(false, &group, &wire));
                }
            });
        }
        Ok(())
    }

    /// Removes `agent` from the cluster-wide group `group`; true when it was a member.
    pub fn leave_group<A: RemoteAgent>(&self, group: &str, agent: &ActorRef<A>) -> bool {
        let was = self.inner.system.leave(group, agent);
        let wire = self
            .inner
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .local
            .remove(&(group.to_owned(), agent.id()));
        if let Some(wire) = &wire {
            self.inner.tell_all(group_message(false, group, wire));
        }
        was || wire.is_some()
    }

    /// The members of the cluster-wide group `group` that are agents of type `A`: this
    /// node's first, then those of the other nodes it has a session with (members on a
    /// lost node are left out).
    pub fn group_members<A: RemoteAgent>(&self, group: &str) -> Vec<ActorRef<A>> {
        let mut members = self.inner.system.members::<A>(group);
        let fingerprint = A::protocol().fingerprint();
        let candidates: Vec<WireRef> = {
            let live: std::collections::HashMap<Identifier, u64> = {
                let links = self.inner.links.lock().unwrap_or_else(PoisonError::into_inner);
                links
                    .by_peer
                    .iter()
                    .filter(|(_, p)| !p.is_lost())
                    .map(|(id, p)| (*id, p.incarnation))
                    .collect()
            };
            let mut groups = self.inner.groups.lock().unwrap_or_else(PoisonError::into_inner);
            // Members of lost sessions, or of earlier runs of their node, are gone.
            groups.remote.retain(|node, entries| {
                entries.retain(|(_, w)| live.get(node) == Some(&w.incarnation));
                !entries.is_empty()
            });
            groups
                .remote
                .values()
                .flatten()
                .filter(|(g, w)| g == group && w.fingerprint == fingerprint)
                .map(|(_, w)| w.clone())
                .collect()
        };
        let scope = self.inner.scope();
        members.extend(
            candidates
                .into_iter()
                .filter_map(|wire| refs::ref_from_wire::<A>(wire, &*scope).ok()),
        );
        members
    }

    /// What this node did: per peer node, the traffic of its links (bytes and link
    /// messages each way), handshakes and reconnects; and how many remote messages,
    /// portal connections and relay requests its policies allowed and denied. A
    /// snapshot, serializable with serde; see [`NodeStats`].
    pub fn stats(&self) -> NodeStats {
        self.inner
            .counters
            .snapshot(|peer| self.inner.session_with_peer(*peer).is_some())
    }

    /// Publishes [`stats`](Node::stats) through the [`metrics`] facade, to whatever
    /// recorder the application installed (names in
    /// [`metric_names`](crate::metric_names); labels `peer`, `direction`, `guards`,
    /// `decision`). Counters are published as absolute values. See
    /// [`publish_metrics`](Node::publish_metrics) to do it periodically, and
    /// `System::record_metrics` for the agents' numbers.
    pub fn record_metrics(&self) {
        stats::publish(&self.stats());
    }

    /// Calls [`record_metrics`](Node::record_metrics) every `every` (from now) until
    /// the node shuts down.
    pub fn publish_metrics(&self, every: Duration) {
        let node = Arc::downgrade(&self.inner);
        self.inner.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = node.upgrade() else { return };
                if inner.closing.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
                Node { inner }.record_metrics();
            }
        });
    }

    /// Closes every link of this node at once, as a network failure would; sessions
    /// then reconnect. For tests of what happens then. Not an API.
    #[doc(hidden)]
    pub fn break_links(&self) {
        let peers: Vec<Arc<Peer>> = {
            let links = self.inner.links.lock().unwrap_or_else(PoisonError::into_inner);
            links.by_peer.values().cloned().collect()
        };
        for peer in peers {
            if let Some(link) = peer.link() {
                link.close();
            }
        }
    }

    /// How many duplicate links (two links to one node at once) this node has retired.
    #[doc(hidden)]
    pub fn retired_links(&self) -> u64 {
        self.inner.retired.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many membership packets, and how many bytes of them, this node has sent
    /// since it started (before encryption).
    pub fn membership_traffic(&self) -> (u64, u64) {
        (
            self.inner
                .membership_sent
                .0
                .load(std::sync::atomic::Ordering::Relaxed),
            self.inner
                .membership_sent
                .1
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    async fn lookup_on<A: RemoteAgent>(&self, peer: Arc<Peer>, name: &str) -> Result<ActorRef<A>, NodeError> {
        let link = peer.link().ok_or(NodeError::LinkLost)?;
        let protocol = A::protocol();
        let request = LookupRequest {
            name: name.to_owned(),
            fingerprint: protocol.fingerprint(),
            description: protocol.description().to_owned(),
        };
        let payload = rmp_serde::to_vec(&request).map_err(|_| NodeError::Protocol("lookup encoding"))?;
        let (tx, rx) = oneshot::channel();
        let Some(id) = link.wait_for_reply(Box::new(RawWaiter(tx))) else {
            return Err(NodeError::LinkLost);
        };
        let mut msg = link::encode(Kind::Lookup, id, 0, payload.len());
        msg.extend_from_slice(&payload);
        if link.outbox.push(msg).await.is_err() {
            link.forget(id);
            return Err(NodeError::LinkLost);
        }
        let answer = match tokio::time::timeout(self.inner.lookup_timeout, rx).await {
            Err(_) => {
                link.forget(id);
                return Err(NodeError::Timeout);
            }
            Ok(Err(_)) | Ok(Ok(Err(_))) => return Err(NodeError::LinkLost),
            Ok(Ok(Ok(bytes))) => bytes,
        };
        match rmp_serde::from_slice::<LookupAnswer>(&answer) {
            Ok(LookupAnswer::Found { slot }) => Ok(ActorRef::from_remote(Box::new(RemoteRef::<A> {
                node: Arc::downgrade(&self.inner),
                id: peer.id_for(slot, MAX_REMOTE_IDS),
                peer,
                slot,
                token: 0,
                name: name.to_owned(),
                scope: self.inner.scope(),
                _agent: std::marker::PhantomData,
            }))),
            Ok(LookupAnswer::NoSuchExport) => Err(NodeError::NoSuchExport(name.to_owned())),
            Ok(LookupAnswer::WrongProtocol { found }) => Err(NodeError::WrongProtocol {
                name: name.to_owned(),
                expected: protocol.description().to_owned(),
                found,
            }),
            Err(_) => Err(NodeError::Protocol("undecodable lookup answer")),
        }
    }

    /// Stops listening and closes every link: calls in flight on them fail with
    /// `CallError::LinkLost`, and references to agents on other nodes stop working.
    pub async fn shutdown(&self) {
        // No new links from here on (a peer reconnecting would find a node half gone).
        self.inner
            .closing
            .store(true, std::sync::atomic::Ordering::Release);
        // Tell the cluster this node leaves, so it is not left to suspect it.
        let swim = self
            .inner
            .swim
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(swim) = swim {
            self.inner.run_effects(swim.leave());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let peers: Vec<_> = {
            let mut links = self.inner.links.lock().unwrap_or_else(PoisonError::into_inner);
            links.by_addr.clear();
            links.by_peer.drain().map(|(_, p)| p).collect()
        };
        for peer in &peers {
            peer.lose();
        }
        // The writers send their authenticated close; then every task goes.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut tasks = std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        tasks.shutdown().await;
    }
}

/// What a link runs over: a TCP connection, or a stream through a relay.
trait LinkIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync + 'static {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync + 'static> LinkIo for T {}

/// Accepts links until the node is gone.
async fn accept_loop(mut listener: SecureListener, node: Weak<Inner>) {
    while let Ok((ch, from)) = listener.accept().await {
        let Some(node) = node.upgrade() else {
            return;
        };
        if node.closing.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        tracing::debug!(peer = %ch.peer(), %from, "node: link accepted");
        node.install(ch, false);
    }
}

/// Joins the cluster through `seed`: retries with backoff until this node has members.
async fn join(node: Weak<Inner>, seed: String) {
    let mut backoff = Duration::from_millis(100);
    loop {
        {
            let Some(node) = node.upgrade() else {
                return;
            };
            // Joined (or shut down): nothing more to do.
            if node.swim(|s| s.num_members()).unwrap_or(1) > 0 {
                return;
            }
            let addr = tokio::net::lookup_host(seed.as_str())
                .await
                .ok()
                .and_then(|mut a| a.next());
            match addr {
                Some(addr) if addr != node.addr => match node.link_to(addr, None).await {
                    Ok(peer) => {
                        let to = MemberId {
                            node: *peer.id.as_bytes(),
                            addr,
                            incarnation: peer.incarnation,
                        };
                        let effects = node.swim(|s| s.announce(to)).unwrap_or_default();
                        node.run_effects(effects);
                    }
                    Err(e) => {
                        tracing::debug!(target: "troupe::cluster", %seed, error = %e, "seed not reachable yet");
                    }
                },
                // Our own address, or one that does not resolve.
                _ => return,
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Reconnects a session whose link broke, with backoff, within the node's
/// `reconnect_within` ([`RECONNECT_WITHIN`] by default):
/// its references and watches go on over the new link. A node where nothing listens any
/// more (its process is gone) ends the session at once, as does a node that comes back as
/// another run of itself; so does running out of time.
async fn reconnect(node: Weak<Inner>, peer: Arc<Peer>) {
    let within = node.upgrade().map_or(Duration::ZERO, |n| n.reconnect_within);
    // `Duration::MAX` (or anything past the clock's range) means: keep trying.
    let deadline = Instant::now().checked_add(within);
    let mut backoff = Duration::from_millis(20);
    loop {
        if peer.is_lost() || peer.link().is_some() {
            return;
        }
        let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
        let Some(n) = node.upgrade().filter(|_| !left.is_zero()) else {
            peer.lose();
            return;
        };
        // A session through a relay goes back through it.
        let again = async {
            match n.route_of(peer.id) {
                Some((relay, name)) => n.link_via(relay, &name, Some(peer.id)).await,
                None => n.link_to(peer.addr, Some(peer.id)).await,
            }
        };
        match tokio::time::timeout(left, again).await {
            // The session took the new link, or the node came back as another run (its
            // hello started a new session and ended this one).
            Ok(Ok(_)) => {
                if peer.link().is_none() {
                    peer.lose();
                } else {
                    n.counters.peer(peer.id).reconnected();
                }
                return;
            }
            Ok(Err(NodeError::Io(e))) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::debug!(peer = %peer.id, "node: nothing listens where the node was; its session ends");
                peer.lose();
                return;
            }
            Ok(Err(e)) => tracing::debug!(peer = %peer.id, error = %e, "node: reconnecting"),
            Err(_) => {}
        }
        drop(n);
        tokio::time::sleep(backoff.min(left)).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Retires a duplicate link: this node sends nothing new on it and tells the peer, who
/// closes it once its own calls on it are answered (its `Retire` makes this node do the
/// same). A peer that never answers loses the link after [`RETIRE_WITHIN`].
async fn retire(link: Arc<Link>) {
    let _ = link.outbox.push(link::encode(Kind::Retire, 0, 0, 0)).await;
    tokio::time::sleep(RETIRE_WITHIN).await;
    link.close();
}

/// Closes `link` once nothing is in flight on it here (checked three times, 50 ms apart).
async fn close_when_quiet(link: Arc<Link>) {
    let started = Instant::now();
    let mut quiet = 0;
    while started.elapsed() < RETIRE_WITHIN && quiet < 3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        quiet = if link.is_quiet() { quiet + 1 } else { 0 };
    }
    tracing::debug!(peer = %link.peer, "node: a duplicate link retired");
    link.close();
}

/// Closes a link when the task holding it ends in any way, including being aborted
/// (the node dropped without `shutdown`): calls waiting on it must never hang.
struct CloseOnDrop(Arc<Link>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A large link message going out in pieces.
struct InPieces {
    id: u64,
    msg: Vec<u8>,
    sent: usize,
    /// The agent it is for (a call or cast), whose later messages wait behind it.
    target: Option<u32>,
    /// Messages for the same agent queued after it, sent once it is out.
    after: Vec<Vec<u8>>,
}

/// The agent a call or cast is for.
fn target_of(msg: &[u8]) -> Option<u32> {
    link::decode(msg)
        .ok()
        .filter(|f| matches!(f.kind, Kind::Call | Kind::Cast))
        .map(|f| f.slot)
}

/// Sends `msg` now, or starts it in pieces, or queues it behind the message in pieces
/// for the same agent (order per agent is kept; other messages go past).
async fn send_or_split(
    writer: &mut ChannelWriter<impl LinkIo>,
    counters: &stats::LinkCounters,
    large: &mut VecDeque<InPieces>,
    next_id: &mut u64,
    msg: Vec<u8>,
) -> Result<(), ChannelError> {
    let target = target_of(&msg);
    if let Some(ahead) = target.and_then(|t| large.iter_mut().rev().find(|l| l.target == Some(t))) {
        ahead.after.push(msg);
        return Ok(());
    }
    if msg.len() <= link::PIECE {
        counters.sent(msg.len());
        return writer.feed(&msg).await;
    }
    *next_id += 1;
    large.push_back(InPieces {
        id: *next_id,
        msg,
        sent: 0,
        target,
        after: Vec::new(),
    });
    Ok(())
}

/// Writes what the outbox holds, batch by batch, with keepalives when quiet. Large
/// messages go one piece per round, between the small ones.
async fn write_loop<IO: LinkIo>(link: Arc<Link>, mut writer: ChannelWriter<IO>) {
    use futures_util::{FutureExt, StreamExt};

    let _closes = CloseOnDrop(link.clone());
    let mut large: VecDeque<InPieces> = VecDeque::new();
    let mut next_id = 0u64;
    let mut incoming = link.take_replies();
    let mut replies = futures_util::stream::FuturesUnordered::new();
    let result: Result<(), ChannelError> = async {
        loop {
            let ready = link.outbox.ready.notified();
            // Replies whose agents have answered go out first.
            let mut answered = false;
            if let Some(incoming) = incoming.as_mut() {
                while let Ok(reply) = incoming.try_recv() {
                    replies.push(reply);
                }
            }
            while let Some(Some(msg)) = replies.next().now_or_never() {
                send_or_split(&mut writer, &link.counters, &mut large, &mut next_id, msg).await?;
                answered = true;
            }
            // With enough large messages in pieces, the outbox waits (and so, when it
            // fills, its senders): memory stays bounded.
            let (batch, closed) = if large.len() < link::MAX_IN_PIECES {
                link.outbox.take()
            } else {
                (Vec::new(), false)
            };
            if batch.is_empty() && large.is_empty() {
                if closed {
                    // A cut link (a test's fault) ends without the channel's goodbye.
                    if link.severed.load(std::sync::atomic::Ordering::Acquire) {
                        return Ok(());
                    }
                    return writer.close().await;
                }
                if answered {
                    link.fault_delay().await;
                    writer.flush().await?;
                    continue;
                }
                let keepalive = async {
                    match writer.keepalive_due() {
                        Some(due) => tokio::time::sleep_until(due).await,
                        None => std::future::pending().await,
                    }
                };
                let new_reply = async {
                    match incoming.as_mut() {
                        Some(incoming) => incoming.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let answer = async {
                    if replies.is_empty() {
                        std::future::pending().await
                    } else {
                        replies.next().await
                    }
                };
                tokio::select! {
                    () = ready => {}
                    reply = new_reply => match reply {
                        Some(reply) => replies.push(reply),
                        None => incoming = None,
                    },
                    Some(msg) = answer => {
                        send_or_split(&mut writer, &link.counters, &mut large, &mut next_id, msg).await?;
                        link.fault_delay().await;
                        writer.flush().await?;
                    }
                    () = keepalive => writer.keepalive().await?,
                }
                continue;
            }
            for msg in batch {
                send_or_split(&mut writer, &link.counters, &mut large, &mut next_id, msg).await?;
            }
            // One piece of each large message per round.
            let mut i = 0;
            while i < large.len() {
                let piece = {
                    let l = &mut large[i];
                    let end = (l.sent + link::PIECE).min(l.msg.len());
                    let last = end == l.msg.len();
                    let mut piece = link::encode(Kind::Fragment, l.id, 0, 1 + end - l.sent);
                    piece.push(u8::from(last));
                    piece.extend_from_slice(&l.msg[l.sent..end]);
                    l.sent = end;
                    piece
                };
                link.counters.sent(piece.len());
                writer.feed(&piece).await?;
                if large[i].sent == large[i].msg.len() {
                    if let Some(done) = large.remove(i) {
                        for msg in done.after {
                            send_or_split(&mut writer, &link.counters, &mut large, &mut next_id, msg).await?;
                        }
                    }
                } else {
                    i += 1;
                }
            }
            link.fault_delay().await;
            writer.flush().await?;
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(peer = %link.peer, error = %e, "node: link writer ended");
    }
    link.close();
}

/// Reads and dispatches until the link ends; then fails everything waiting on it.
async fn read_loop<IO: LinkIo>(link: Arc<Link>, mut reader: ChannelReader<IO>, node: Weak<Inner>) {
    let _closes = CloseOnDrop(link.clone());
    let mut hello = false;
    // Large messages arriving in pieces: (pieces so far, when the first came).
    let mut partial: HashMap<u64, (Vec<u8>, Instant)> = HashMap::new();
    let mut whole: Option<bytes::Bytes> = None;
    let pieces_within = node
        .upgrade()
        .map_or(Duration::from_secs(60), |n| n.channel.message_timeout);
    let reason = loop {
        let from_pieces = whole.is_some();
        let msg = match whole.take() {
            Some(msg) => msg,
            None => {
                // A message left in pieces must be completed in time.
                let oldest = partial.values().map(|(_, since)| *since).min();
                let deadline = oldest.and_then(|t| t.checked_add(pieces_within));
                let received = match deadline {
                    Some(deadline) => tokio::select! {
                        r = reader.recv() => r,
                        () = tokio::time::sleep_until(deadline.into()) => {
                            break "a message in pieces was not completed in time".into();
                        }
                    },
                    None => reader.recv().await,
                };
                match received {
                    Ok(msg) => {
                        link.counters.received(msg.len());
                        msg
                    }
                    Err(e) => break e.to_string(),
                }
            }
        };
        let frame = match link::decode(&msg) {
            Ok(frame) => frame,
            Err(e) => break format!("undecodable link message: {e:?}"),
        };
        if from_pieces && frame.kind == Kind::Fragment {
            break "a piece inside a message in pieces".into();
        }
        let Some(node) = node.upgrade() else {
            break "node shut down".into();
        };
        // The hello comes first, once.
        if hello == (frame.kind == Kind::Hello) {
            break "a link message before the hello, or a second hello".into();
        }
        match frame.kind {
            Kind::Hello => {
                hello = true;
                let Ok(h) = rmp_serde::from_slice::<Hello>(frame.payload) else {
                    break "undecodable hello".into();
                };
                if let Err(why) = node.attach(&link, &h) {
                    break why.into();
                }
            }
            Kind::Membership => {
                if let Err(why) = node.membership_packet(&link, frame.payload) {
                    break why.into();
                }
            }
            // The peer sends no more requests here: close once our side is done too.
            // (Once: a peer repeating it cannot make this node start more tasks.)
            Kind::Retire => {
                if !link
                    .retired_by_peer
                    .swap(true, std::sync::atomic::Ordering::AcqRel)
                {
                    node.spawn(close_when_quiet(link.clone()));
                }
            }
            Kind::Fragment => {
                let Some((&last, piece)) = frame.payload.split_first() else {
                    break "an empty piece".into();
                };
                if !partial.contains_key(&frame.id) && partial.len() >= link::MAX_IN_PIECES {
                    break "too many messages in pieces at once".into();
                }
                let (so_far, _) = partial
                    .entry(frame.id)
                    .or_insert_with(|| (Vec::new(), Instant::now()));
                if so_far.len() + piece.len() > link.max_message {
                    break "a message in pieces over the size limit".into();
                }
                so_far.extend_from_slice(piece);
                match last {
                    0 => {}
                    1 => whole = partial.remove(&frame.id).map(|(m, _)| bytes::Bytes::from(m)),
                    _ => break "a piece with a bad flag".into(),
                }
            }
            Kind::Link => {
                if let Err(why) = node.link_in(&link, frame.slot, frame.payload) {
                    break why.into();
                }
            }
            Kind::LinkExit => {
                if let Err(why) = node.link_exit(&link, frame.slot, frame.payload) {
                    break why.into();
                }
            }
            Kind::Group => {
                if let Err(why) = node.group_news(&link, frame.payload) {
                    break why.into();
                }
            }
            Kind::Monitor => {
                let token = frame
                    .payload
                    .first_chunk::<8>()
                    .map_or(0, |t| u64::from_le_bytes(*t));
                node.watch_export(&link, frame.slot, token);
            }
            Kind::Down => {
                let Ok(stop) = rmp_serde::from_slice::<RemoteStop>(frame.payload) else {
                    break "undecodable down notice".into();
                };
                if let Some(peer) = link.session() {
                    peer.agent_down(frame.slot, stop.into_reason());
                }
            }
            Kind::Reply => match frame.payload.split_first() {
                Some((0, reply)) => link.complete(frame.id, Ok(reply)),
                Some((1, failure)) => {
                    let e = rmp_serde::from_slice::<Failure>(failure)
                        .map(Failure::into_call_error)
                        .unwrap_or_else(|_| CallError::Remote("undecodable failure".into()));
                    link.complete(frame.id, Err(e));
                }
                _ => break "reply without a status".into(),
            },
            Kind::Found => link.complete(frame.id, Ok(frame.payload)),
            Kind::PortalOpen => match node.portal_open(&link, frame.id, frame.payload) {
                Ok(Some(refusal)) => {
                    if link.outbox.push(refusal).await.is_err() {
                        break "link closed".into();
                    }
                }
                Ok(None) => {}
                Err(why) => break why.into(),
            },
            Kind::RelayRegister => match node.relay_register(&link, frame.id, frame.payload) {
                Ok(answer) => {
                    if link.outbox.push(answer).await.is_err() {
                        break "link closed".into();
                    }
                }
                Err(why) => break why.into(),
            },
            Kind::RelayConnect | Kind::RelayIncoming => {
                let answer = if frame.kind == Kind::RelayConnect {
                    node.relay_connect(&link, frame.id, frame.payload)
                } else {
                    node.relay_incoming(&link, frame.id, frame.payload)
                };
                match answer {
                    Ok(Some(refusal)) => {
                        if link.outbox.push(refusal).await.is_err() {
                            break "link closed".into();
                        }
                    }
                    Ok(None) => {}
                    Err(why) => break why.into(),
                }
            }
            Kind::PortalData | Kind::PortalCredit | Kind::PortalClose => {
                match link
                    .portals
                    .frame(frame.kind, frame.id, frame.slot, frame.payload)
                {
                    Ok(None) => {}
                    // A relay passes a joined stream's traffic on (waiting for room on
                    // the other link: backpressure reaches the sender).
                    Ok(Some((other, msg))) => {
                        let _ = other.outbox.push(msg).await;
                    }
                    Err(why) => break why.into(),
                }
            }
            Kind::Credential => {
                // Each one costs a signature check: a peer that floods them loses its link.
                if !link.take_credential_budget() {
                    break "credentials presented too fast".into();
                }
                node.accept_credential(&link, frame.payload);
            }
            Kind::Lookup => {
                let answer = match rmp_serde::from_slice::<LookupRequest>(frame.payload) {
                    Ok(request) => answer_lookup(&node, &request),
                    Err(_) => break "undecodable lookup".into(),
                };
                let payload = rmp_serde::to_vec(&answer).unwrap_or_default();
                let mut out = link::encode(Kind::Found, frame.id, 0, payload.len());
                out.extend_from_slice(&payload);
                if link.outbox.push(out).await.is_err() {
                    break "link closed".into();
                }
            }
            Kind::Call | Kind::Cast => {
                let call = frame.kind == Kind::Call;
                // A call from an agent its node names carries that agent's identifier.
                let (caller, payload) = if frame.from_agent {
                    let Some((agent, rest)) = frame.payload.split_first_chunk::<32>() else {
                        break "a call from an agent without its identifier".into();
                    };
                    let caller = actor_core::Caller::from_agent(*link.peer.as_bytes(), *agent);
                    (Arc::new(caller), rest)
                } else {
                    (link.caller.clone(), frame.payload)
                };
                // A call from a traced handler carries its trace context; one that does
                // not parse is ignored (the handler starts a trace of its own).
                let (caller, payload) = if frame.traced {
                    let Some((trace, rest)) = payload.split_first_chunk::<{ actor_core::trace::WIRE_LEN }>()
                    else {
                        break "a traced call without its trace context".into();
                    };
                    match actor_core::trace::TraceContext::from_bytes(trace) {
                        Ok(trace) => (Arc::new((*caller).clone().with_trace(trace)), rest),
                        Err(_) => (caller, rest),
                    }
                } else {
                    (caller, payload)
                };
                let export = node.export_in(frame.slot);
                // An agent exported by sending a reference takes messages that carry its
                // secret first.
                let payload = match &export {
                    Some(export) => match export.token() {
                        0 => Some(payload),
                        token => payload
                            .split_first_chunk::<8>()
                            .filter(|(t, _)| same_secret(u64::from_le_bytes(**t), token))
                            .map(|(_, rest)| rest),
                    },
                    None => None,
                };
                let (Some(export), Some(payload)) = (export, payload) else {
                    if call {
                        send_failure(&link, frame.id, &Failure::NoSuchExport).await;
                    }
                    continue;
                };
                // Bounded work per link: when too many calls run, stop reading.
                let permit = if call {
                    match link.inbound.clone().acquire_owned().await {
                        Ok(permit) => Some(permit),
                        Err(_) => break "closed".into(),
                    }
                } else {
                    None
                };
                let inbound = Inbound {
                    slot: frame.slot,
                    payload,
                    id: call.then_some(frame.id),
                    permit,
                    caller,
                };
                export.deliver(&node, &link, inbound).await;
            }
        }
    };
    tracing::debug!(peer = %link.peer, %reason, "node: link closed");
    link.close();
}

/// The secret and the linking agent's id at the start of a link or link exit.
fn link_payload(payload: &[u8]) -> Option<(u64, u64)> {
    let (token, rest) = payload.split_first_chunk::<8>()?;
    let (from, _) = rest.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*token), u64::from_le_bytes(*from)))
}

/// A group join or leave as a link message.
fn group_message(join: bool, group: &str, member: &WireRef) -> Vec<u8> {
    let news = GroupNews {
        join,
        group: group.to_owned(),
        member: member.clone(),
    };
    let body = rmp_serde::to_vec(&news).unwrap_or_default();
    let mut out = link::encode(Kind::Group, 0, 0, body.len());
    out.extend_from_slice(&body);
    out
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: u64, b: u64) -> bool {
    std::hint::black_box(a ^ b) == 0
}

fn answer_lookup(node: &Inner, request: &LookupRequest) -> LookupAnswer {
    let exports = node.exports.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(&slot) = exports.by_name.get(&request.name) else {
        return LookupAnswer::NoSuchExport;
    };
    let Some(export) = exports.by_slot.get(&slot) else {
        return LookupAnswer::NoSuchExport;
    };
    let protocol = export.protocol();
    if protocol.fingerprint() != request.fingerprint {
        return LookupAnswer::WrongProtocol {
            found: protocol.description().to_owned(),
        };
    }
    LookupAnswer::Found { slot }
}

/// The link message that fails call `id`.
fn failure_message(id: u64, failure: &Failure) -> Vec<u8> {
    let body = rmp_serde::to_vec(failure).unwrap_or_default();
    let mut out = link::encode(Kind::Reply, id, 0, 1 + body.len());
    out.push(1);
    out.extend_from_slice(&body);
    out
}

async fn send_failure(link: &Link, id: u64, failure: &Failure) {
    let _ = link.outbox.push(failure_message(id, failure)).await;
}

/// An exported agent, type-erased.
trait Exported: Send + Sync {
    fn protocol(&self) -> &Protocol;
    /// Delivers a linked agent's exit (`from` stands for it here).
    fn exit_signal(&self, from: ActorId, reason: actor_core::StopReason);
    /// The secret a message must carry (0: none, a named export).
    fn token(&self) -> u64;
    fn as_any(&self) -> &dyn std::any::Any;
    fn policies(&self) -> &Policies;
    /// Resolves when the agent is gone for good (not when it restarts), with why.
    fn exit(&self) -> Pin<Box<dyn Future<Output = actor_core::StopReason> + Send + '_>>;
    /// Decodes a message, checks the access policy, and enqueues it (in arrival order);
    /// for a call (`id`), answers on the link when the reply comes.
    fn deliver<'a>(
        &'a self,
        node: &'a Inner,
        link: &'a Arc<Link>,
        inbound: Inbound<'a>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// A call or cast that arrived for an export.
struct Inbound<'a> {
    /// The export's slot.
    slot: u32,
    /// The encoded message.
    payload: &'a [u8],
    /// The call's correlation id (`None`: a cast).
    id: Option<u64>,
    /// The call's place among the link's calls running here.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Who sent it.
    caller: Arc<actor_core::Caller>,
}

/// An export's access policies, replaceable while the node runs.
#[derive(Default)]
struct Policies {
    name: String,
    whole: RwLock<Option<Arc<Policy>>>,
    handlers: RwLock<HashMap<String, Arc<Policy>>>,
    /// `resource.<name>` attributes given at export.
    attributes: RwLock<Vec<(String, String)>>,
}

impl Policies {
    /// Refuses the attribute names the node sets itself.
    fn check_attribute(name: &str) -> Result<(), NodeError> {
        if matches!(name, "name" | "agent") {
            return Err(NodeError::ReservedAttribute(name.to_owned()));
        }
        Ok(())
    }

    /// Sets `resource.<name>` (replacing an earlier value).
    fn set_attribute(&self, name: &str, value: String) {
        let mut attributes = self.attributes.write().unwrap_or_else(PoisonError::into_inner);
        attributes.retain(|(n, _)| n != name);
        attributes.push((name.to_owned(), value));
    }

    /// Adds the `resource.<name>` attributes to a policy environment.
    fn add_attributes(&self, env: &mut Environment) {
        for (name, value) in self
            .attributes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            env.insert(format!("resource.{name}"), value.as_str());
        }
    }

    /// The policy that decides `handler`: its own, else the export's, else the node's
    /// default.
    fn for_handler(&self, handler: &str, node: &Inner) -> Option<Arc<Policy>> {
        let read = |l: &RwLock<Option<Arc<Policy>>>| l.read().unwrap_or_else(PoisonError::into_inner).clone();
        self.handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(handler)
            .cloned()
            .or_else(|| read(&self.whole))
            .or_else(|| read(&node.default_policy))
    }
}

struct Export<A: RemoteAgent> {
    agent: ActorRef<A>,
    protocol: Protocol,
    policies: Policies,
    token: u64,
}

impl<A: RemoteAgent> Exported for Export<A> {
    fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    fn exit(&self) -> Pin<Box<dyn Future<Output = actor_core::StopReason> + Send + '_>> {
        Box::pin(actor_core::__private::exit_reason(&self.agent))
    }

    fn token(&self) -> u64 {
        self.token
    }

    fn exit_signal(&self, from: ActorId, reason: actor_core::StopReason) {
        actor_core::__private::signal_exit(&self.agent, from, reason);
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn policies(&self) -> &Policies {
        &self.policies
    }

    fn deliver<'a>(
        &'a self,
        node: &'a Inner,
        link: &'a Arc<Link>,
        inbound: Inbound<'a>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        let Inbound {
            slot,
            payload,
            id,
            permit,
            caller,
        } = inbound;
        Box::pin(async move {
            let msg = match with_ref_scope(node.scope(), || rmp_serde::from_slice::<A::Msg>(payload)) {
                Ok(msg) => msg,
                Err(e) => {
                    match id {
                        Some(id) => send_failure(link, id, &Failure::Undecodable).await,
                        // A cast has no one to answer: say so here rather than drop it
                        // silently.
                        None => tracing::warn!(
                            agent = self.protocol.name(),
                            error = %e,
                            "node: a cast from another node could not be decoded and was dropped"
                        ),
                    }
                    return;
                }
            };
            // Access control: the handler never runs unless a policy allows.
            let handler = A::handler(&msg);
            let call = id.is_some();
            let kind = if call { "call" } else { "cast" };
            // Decisions are cached per link, export and handler until a policy or the
            // peer's credential changes, or the credential expires.
            let key = (slot, handler, call, caller.agent_bytes().copied());
            let generation = node.policy_generation.load(std::sync::atomic::Ordering::Acquire);
            let now = crate::agent::unix_secs(std::time::SystemTime::now());
            let cached = link.cached_decision(key, generation, now);
            if cached == Some(true) && !node.audit_allowed {
                node.counters.decided(stats::Guarded::Message, true);
                return self.enqueue(node, link, msg, id, permit, caller).await;
            }
            let policy = self.policies.for_handler(handler, node);
            let credential_generation = link.credential_generation();
            let allowed = match cached {
                Some(allowed) => allowed,
                None => {
                    let env = self.environment(node, link, &caller, handler, call);
                    let allowed = policy.as_ref().is_some_and(|p| p.decide(&env).is_allowed());
                    let until = link
                        .credential()
                        .map_or(u64::MAX, |c| c.expires_at())
                        .max(now.saturating_add(1));
                    link.cache_decision(key, (allowed, generation, credential_generation, until));
                    allowed
                }
            };
            let decision = if allowed {
                Decision::Allow
            } else {
                let env = self.environment(node, link, &caller, handler, call);
                match &policy {
                    Some(p) => p.decide(&env),
                    None => Decision::Deny(actor_abac::Denial::False),
                }
            };
            let policy_text = policy.as_deref().map_or("none (deny)", Policy::text);
            node.counters
                .decided(stats::Guarded::Message, decision.is_allowed());
            if !decision.is_allowed() {
                tracing::warn!(
                    target: "troupe::audit",
                    caller = %link.peer,
                    export = %self.policies.name,
                    handler,
                    kind,
                    decision = "deny",
                    reason = %decision,
                    policy = policy_text,
                    "remote message denied"
                );
                if let Some(id) = id {
                    send_failure(link, id, &Failure::Denied).await;
                }
                return;
            }
            if node.audit_allowed {
                tracing::info!(
                    target: "troupe::audit",
                    caller = %link.peer,
                    export = %self.policies.name,
                    handler,
                    kind,
                    decision = "allow",
                    policy = policy_text,
                    "remote message allowed"
                );
            }
            self.enqueue(node, link, msg, id, permit, caller).await
        })
    }
}

impl<A: RemoteAgent> Export<A> {
    /// The node's environment for this message, with the export's own attributes.
    fn environment(
        &self,
        node: &Inner,
        link: &Link,
        caller: &actor_core::Caller,
        handler: &str,
        call: bool,
    ) -> Environment {
        let target = Resource {
            agent: self.protocol.name(),
            handler,
            call,
        };
        let mut env = node.environment(link, caller, &self.policies.name, &target);
        self.policies.add_attributes(&mut env);
        env
    }

    /// Puts an allowed message in the agent's mailbox; for a call, answers when the
    /// reply comes.
    async fn enqueue(
        &self,
        node: &Inner,
        link: &Arc<Link>,
        msg: A::Msg,
        id: Option<u64>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        caller: Arc<actor_core::Caller>,
    ) {
        let call = id.is_some();
        {
            let caller = Some(caller);
            let rx = match deliver(&self.agent, msg, call, caller).await {
                Ok(rx) => rx,
                Err(_stopped) => {
                    if let Some(id) = id {
                        send_failure(link, id, &Failure::Stopped).await;
                    }
                    return;
                }
            };
            let (Some(rx), Some(id)) = (rx, id) else {
                return;
            };
            let max_message = link.max_message;
            let scope = node.scope();
            // The reply is awaited off the reader, so other messages keep flowing: by the
            // link's writer, which the agent's answer wakes directly.
            let reply: link::PendingReply = Box::pin(async move {
                let _permit = permit;
                let result = rx.await.unwrap_or(Err(CallError::Stopped));
                match result.map(|reply| with_ref_scope(scope, || rmp_serde::to_vec(&reply))) {
                    Ok(Ok(body)) if link::HEADER_LEN + 1 + body.len() > max_message => {
                        let why = format!(
                            "the reply of {} bytes is over the link's limit of {} bytes",
                            body.len(),
                            max_message
                        );
                        failure_message(id, &Failure::Other(why))
                    }
                    Ok(Ok(body)) => {
                        let mut out = link::encode(Kind::Reply, id, 0, 1 + body.len());
                        out.push(0);
                        out.extend_from_slice(&body);
                        out
                    }
                    Ok(Err(_)) => failure_message(id, &Failure::Unencodable),
                    Err(e) => failure_message(id, &Failure::from_call_error(&e)),
                }
            });
            // Fails only once the writer is gone, and the link with it.
            let _ = link.replies.send(reply);
        }
    }
}

/// An export on this node, to set its access policies.
///
/// ```
/// # use troupe::prelude::*;
/// # use troupe::secure::{Node, TrustPolicy};
/// # #[derive(Default)] pub struct Counter { n: u64 }
/// # #[agent(remote)] impl Counter {
/// #     #[handle] fn get(&self) -> u64 { self.n }
/// #     #[handle] fn reset(&mut self) { self.n = 0; }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let system = System::new();
/// # let node = Node::builder().trust(TrustPolicy::any()).start(&system).await?;
/// node.export("counter", &system.spawn(Counter::default()))?
///     .policy(r#"team = "research""#)?                 // every handler
///     .handler_policy("reset", r#"role = "admin""#)?;  // this one instead
/// # node.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ExportHandle {
    node: Node,
    name: String,
}

impl ExportHandle {
    fn with_policies(&self, f: impl FnOnce(&Policies)) -> Result<(), NodeError> {
        let exports = self
            .node
            .inner
            .exports
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let export = exports
            .by_name
            .get(&self.name)
            .and_then(|slot| exports.by_slot.get(slot))
            .ok_or_else(|| NodeError::NotExported(self.name.clone()))?;
        f(export.policies());
        self.node.inner.policies_changed();
        Ok(())
    }

    /// Sets the policy for every handler of the export that has none of its own. Takes
    /// effect for the next message; replaces any earlier one.
    pub fn policy(self, text: impl AsRef<str>) -> Result<Self, NodeError> {
        let policy = Arc::new(Policy::parse(text.as_ref()).map_err(NodeError::Policy)?);
        self.with_policies(|p| *p.whole.write().unwrap_or_else(PoisonError::into_inner) = Some(policy))?;
        Ok(self)
    }

    /// Sets the policy of one handler (by its method name). Takes effect for the next
    /// message; replaces any earlier one.
    pub fn handler_policy(self, handler: &str, text: impl AsRef<str>) -> Result<Self, NodeError> {
        let policy = Arc::new(Policy::parse(text.as_ref()).map_err(NodeError::Policy)?);
        self.with_policies(|p| {
            p.handlers
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(handler.to_owned(), policy);
        })?;
        Ok(self)
    }

    /// Sets the export's attribute `name` (policies see it as `resource.<name>`; `name`
    /// and `agent` are set by the node and cannot be replaced). Takes effect for the next
    /// message.
    pub fn attribute(self, name: &str, value: impl Into<String>) -> Result<Self, NodeError> {
        Policies::check_attribute(name)?;
        let value = value.into();
        self.with_policies(|p| p.set_attribute(name, value))?;
        Ok(self)
    }

    /// The export's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Waits for raw reply bytes (lookups).
struct RawWaiter(oneshot::Sender<Result<Vec<u8>, CallError>>);

impl Waiting for RawWaiter {
    fn complete(self: Box<Self>, result: Result<&[u8], CallError>) {
        let _ = self.0.send(result.map(<[u8]>::to_vec));
    }

    fn abandoned(&self) -> bool {
        self.0.is_closed()
    }
}

/// Waits for a typed reply: decodes it into the caller's reply slot.
struct ReplyWaiter<A: RemoteAgent>(ReplyTx<A>, Arc<dyn std::any::Any + Send + Sync>);

impl<A: RemoteAgent> Waiting for ReplyWaiter<A> {
    fn complete(self: Box<Self>, result: Result<&[u8], CallError>) {
        let scope = self.1;
        let reply = result.and_then(|bytes| {
            with_ref_scope(scope, || rmp_serde::from_slice::<A::Reply>(bytes))
                .map_err(|e| CallError::Remote(format!("the reply could not be decoded: {e}")))
        });
        let _ = self.0.send(reply);
    }

    fn abandoned(&self) -> bool {
        self.0.is_closed()
    }
}

/// A reference's view of an agent on another node.
struct RemoteRef<A: RemoteAgent> {
    /// This node (to name the agent that makes a call).
    node: Weak<Inner>,
    peer: Arc<Peer>,
    slot: u32,
    /// The secret of an agent exported by sending a reference (0: a named export).
    token: u64,
    id: ActorId,
    name: String,
    /// The node's reference codec, for references inside messages and replies.
    scope: Arc<dyn std::any::Any + Send + Sync>,
    _agent: std::marker::PhantomData<fn() -> A>,
}

impl<A: RemoteAgent> RemoteRef<A> {
    /// Serializes a message into a link message with room for its header, outside any
    /// lock: a large message must not hold up other senders while it is encoded.
    fn serialize(&self, msg: &A::Msg) -> Result<Vec<u8>, String> {
        let mut out = vec![0u8; link::HEADER_LEN];
        // The calling agent, when its node names it, comes first. (Only a send from
        // inside an agent touches the node: the rest do not contend on its count.)
        let in_agent = actor_core::__private::current_agent().is_some();
        if let Some(agent) = in_agent
            .then(|| self.node.upgrade())
            .flatten()
            .and_then(|n| n.calling_agent())
        {
            out[0] = link::FROM_AGENT;
            out.extend_from_slice(agent.as_bytes());
        }
        // A traced handler's calls carry its trace context: the handler on the other
        // node continues the trace (W3C trace context).
        if let Some(trace) = in_agent.then(actor_core::trace::current).flatten() {
            out[0] |= link::TRACED;
            out.extend_from_slice(&trace.to_bytes());
        }
        // An agent exported by sending a reference is reached with its secret first.
        if self.token != 0 {
            out.extend_from_slice(&self.token.to_le_bytes());
        }
        with_ref_scope(self.scope.clone(), || rmp_serde::encode::write(&mut out, msg))
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Answers a call whose message could not be encoded (a cast is dropped, with a
    /// warning).
    fn unencodable(&self, env: Envelope<A>, e: &str) {
        tracing::warn!(agent = %self.name, error = %e, "node: a message could not be encoded");
        if let Some(tx) = env.reply {
            let _ = tx.send(Err(CallError::Remote(format!(
                "the message could not be encoded: {e}"
            ))));
        }
    }

    /// Finishes a serialized message for `link` (registering its reply); `None` when it
    /// cannot be sent (the caller has been answered with the reason).
    ///
    /// A message over the link's size limit is refused here, so that it never reaches
    /// the channel (where it would end the link for everyone): a call gets
    /// `CallError::Remote` saying so, a cast is given back (`Err`).
    fn finish(
        &self,
        link: &Link,
        env: Envelope<A>,
        mut out: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, Envelope<A>> {
        if out.len() > link.max_message {
            let why = format!(
                "a message of {} bytes is over the link's limit of {} bytes",
                out.len(),
                link.max_message
            );
            tracing::warn!(agent = %self.name, "node: {why}");
            return match env.reply {
                Some(tx) => {
                    let _ = tx.send(Err(CallError::Remote(why)));
                    Ok(None)
                }
                None => Err(env),
            };
        }
        let (kind, id) = match env.reply {
            Some(tx) => match link.wait_for_reply(Box::new(ReplyWaiter::<A>(tx, self.scope.clone()))) {
                Some(id) => (Kind::Call, id),
                None => return Ok(None),
            },
            None => (Kind::Cast, 0),
        };
        let flags = out[0] & (link::FROM_AGENT | link::TRACED);
        out[..link::HEADER_LEN].copy_from_slice(&link::encode(kind, id, self.slot, 0));
        out[0] |= flags;
        Ok(Some(out))
    }

    /// Sends a control message (a link, an exit) once the session has a link.
    fn send_control(&self, msg: Vec<u8>) {
        let peer = self.peer.clone();
        tokio::spawn(async move {
            std::future::poll_fn(|cx| peer.poll_link(cx)).await;
            if let Some(link) = peer.link() {
                let _ = link.outbox.push(msg).await;
            }
        });
    }

    /// Pushes a serialized message onto `link`'s outbox if there is room now. Gives
    /// back what was not sent.
    fn push_now(
        &self,
        link: Option<&Arc<Link>>,
        env: Envelope<A>,
        out: Vec<u8>,
    ) -> (Result<(), Refused>, Option<Envelope<A>>) {
        let mut pending = Some((env, out));
        let pushed = match link {
            Some(link) => link.outbox.try_push_with(|| {
                let (env, out) = pending.take()?;
                match self.finish(link, env, out) {
                    Ok(msg) => msg,
                    Err(env) => {
                        pending = Some((env, Vec::new()));
                        None
                    }
                }
            }),
            None if self.peer.is_lost() => Err(Refused::Closed),
            // Still dialling its node: as a full queue.
            None => Err(Refused::Full),
        };
        (pushed, pending.map(|(env, _)| env))
    }
}

impl<A: RemoteAgent> RemoteTarget<A> for RemoteRef<A> {
    fn id(&self) -> ActorId {
        self.id
    }

    fn is_alive(&self) -> bool {
        !self.peer.is_lost() && !self.peer.is_down(self.slot)
    }

    fn try_push(&self, env: Envelope<A>) -> Result<(), (Envelope<A>, bool)> {
        let out = match self.serialize(&env.msg) {
            Ok(out) => out,
            Err(e) => {
                self.unencodable(env, &e);
                return Ok(());
            }
        };
        let (pushed, left) = self.peer.with_link(|link| self.push_now(link, env, out));
        match (pushed, left) {
            (_, None) => Ok(()),
            (Err(Refused::Full), Some(env)) => Err((env, true)),
            // Closed, or a cast over the size limit.
            (_, Some(env)) => Err((env, false)),
        }
    }

    fn poll_push(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<Envelope<A>>,
    ) -> Poll<Result<(), Envelope<A>>> {
        // Wait for room first, so that a message is encoded once it can go.
        let room = self.peer.with_link(|link| match link {
            Some(link) => link.outbox.poll_room(cx),
            None if self.peer.is_lost() => Poll::Ready(Err(Refused::Closed)),
            None => Poll::Pending,
        });
        match room {
            Poll::Pending => {
                if self.peer.link().is_none() && self.peer.poll_link(cx).is_ready() {
                    // The link came (or the session was lost) meanwhile: try again now.
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
            Poll::Ready(Err(_)) => return Poll::Ready(slot.take().map_or(Ok(()), Err)),
            Poll::Ready(Ok(())) => {}
        }
        let Some(env) = slot.take() else {
            return Poll::Ready(Ok(()));
        };
        let out = match self.serialize(&env.msg) {
            Ok(out) => out,
            Err(e) => {
                self.unencodable(env, &e);
                return Poll::Ready(Ok(()));
            }
        };
        match self.peer.with_link(|link| self.push_now(link, env, out)) {
            (_, None) => Poll::Ready(Ok(())),
            // Another sender took the room meanwhile: wait again.
            (Err(Refused::Full), Some(env)) => {
                *slot = Some(env);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            // Closed, or a cast over the size limit.
            (_, Some(env)) => Poll::Ready(Err(env)),
        }
    }

    fn poll_down(&self, cx: &mut Context<'_>) -> Poll<actor_core::StopReason> {
        let (down, ask) = self.peer.poll_down(self.slot, cx);
        if ask {
            let mut watch = link::encode(Kind::Monitor, 0, self.slot, 8);
            watch.extend_from_slice(&self.token.to_le_bytes());
            let peer = self.peer.clone();
            tokio::spawn(async move {
                // Once the session has a link (it may still be dialling).
                std::future::poll_fn(|cx| peer.poll_link(cx)).await;
                if let Some(link) = peer.link() {
                    let _ = link.outbox.push(watch).await;
                }
            });
        }
        down
    }

    fn link_from(&self, from: ActorId) {
        let mut msg = link::encode(Kind::Link, 0, self.slot, 16);
        msg.extend_from_slice(&self.token.to_le_bytes());
        msg.extend_from_slice(&from.as_u64().to_le_bytes());
        self.send_control(msg);
    }

    fn linked_exit(&self, from: ActorId, reason: actor_core::StopReason) {
        let stop = rmp_serde::to_vec(&RemoteStop::from_reason(&reason)).unwrap_or_default();
        let mut msg = link::encode(Kind::LinkExit, 0, self.slot, 16 + stop.len());
        msg.extend_from_slice(&self.token.to_le_bytes());
        msg.extend_from_slice(&from.as_u64().to_le_bytes());
        msg.extend_from_slice(&stop);
        self.send_control(msg);
    }

    fn wire(&self) -> WireRef {
        WireRef {
            node: *self.peer.id.as_bytes(),
            addr: self.peer.addr.to_string(),
            incarnation: self.peer.incarnation,
            slot: self.slot,
            token: self.token,
            fingerprint: A::protocol().fingerprint(),
        }
    }

    fn describe(&self) -> String {
        format!("`{}` on {} at {}", self.name, self.peer.id, self.peer.addr)
    }
}

/// A node of the cluster, as [`Node::members`] lists it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMember {
    /// The node's identifier.
    pub identifier: Identifier,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// The identifier of the node a message came from: `ctx.caller().map(|c| c.node())`.
///
/// ```
/// use troupe::prelude::*;
///
/// fn who(caller: &Caller) -> Identifier {
///     caller.node()
/// }
/// # let _ = who;
/// ```
pub trait CallerIdentity {
    /// The calling node's identifier, as its secure channel authenticated it.
    fn node(&self) -> Identifier;

    /// The calling agent's identifier, when the call came from an agent registered
    /// under a name on its node: the identity `Identity::derive_agent(name)` of that
    /// node's identity. The node states it over its authenticated link; it can vouch
    /// only for its own agents. `None` for calls from outside an agent, or from an
    /// unnamed one.
    fn agent(&self) -> Option<Identifier>;
}

impl CallerIdentity for actor_core::Caller {
    fn node(&self) -> Identifier {
        Identifier::from_bytes(*self.node_bytes())
    }

    fn agent(&self) -> Option<Identifier> {
        self.agent_bytes().copied().map(Identifier::from_bytes)
    }
}

/// The node's side of references inside messages, called by the code `#[agent(remote)]`
/// generates. Not for applications.
#[doc(hidden)]
pub(crate) mod refs {
    use super::*;

    /// How `agent` is named in a message this node sends: a reference to an agent on
    /// another node keeps its name; a local agent is exported (without a name, once)
    /// and named by this node.
    pub fn ref_to_wire<A: RemoteAgent>(
        agent: &ActorRef<A>,
        scope: &(dyn std::any::Any + Send + Sync),
    ) -> Result<WireRef, String> {
        if let Some(wire) = actor_core::__private::remote_wire(agent) {
            return Ok(wire);
        }
        let node = scope
            .downcast_ref::<RefScope>()
            .and_then(|s| s.node.upgrade())
            .ok_or("references can only be sent by a running node")?;
        let (slot, token) = node.export_sent(agent);
        Ok(WireRef {
            node: *node.identity.identifier().as_bytes(),
            addr: node.addr.to_string(),
            incarnation: node.incarnation,
            slot,
            token,
            fingerprint: A::protocol().fingerprint(),
        })
    }

    /// The reference a name in a message that arrived stands for: a local agent when it
    /// names one of this node's, else a reference through the session with its node
    /// (dialled if there is none).
    pub fn ref_from_wire<A: RemoteAgent>(
        wire: WireRef,
        scope: &(dyn std::any::Any + Send + Sync),
    ) -> Result<ActorRef<A>, String> {
        let node = scope
            .downcast_ref::<RefScope>()
            .and_then(|s| s.node.upgrade())
            .ok_or("references can only be received by a running node")?;
        let protocol = A::protocol();
        if wire.fingerprint != protocol.fingerprint() {
            return Err(format!(
                "a reference to another kind of agent than `{}`",
                protocol.name()
            ));
        }
        let id = Identifier::from_bytes(wire.node);
        if id == node.identity.identifier() {
            if wire.incarnation != node.incarnation {
                return Err("a reference to an agent of an earlier run of this node".into());
            }
            let export = node
                .export_in(wire.slot)
                .filter(|e| same_secret(e.token(), wire.token))
                .ok_or("a reference to an agent this node no longer exports")?;
            let export = export
                .as_any()
                .downcast_ref::<Export<A>>()
                .ok_or("a reference to another kind of agent")?;
            return Ok(export.agent.clone());
        }
        let peer = node.peer_for(id, &wire.addr, wire.incarnation)?;
        Ok(ActorRef::from_remote(Box::new(RemoteRef::<A> {
            node: Arc::downgrade(&node),
            id: peer.id_for(wire.slot, MAX_REMOTE_IDS),
            peer,
            slot: wire.slot,
            token: wire.token,
            name: format!("a `{}` sent by reference", protocol.name()),
            scope: node.scope(),
            _agent: std::marker::PhantomData,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_membership_packet_must_come_from_the_node_it_names() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let me = MemberId {
            node: a,
            addr: SocketAddr::from(([127, 0, 0, 1], 7001)),
            incarnation: 1,
        };
        let to = MemberId {
            node: b,
            addr: SocketAddr::from(([127, 0, 0, 1], 7002)),
            incarnation: 1,
        };
        let mut swim = Swim::new(me, &MembershipConfig::default(), [7; 32]);
        let packet = swim
            .announce(to)
            .into_iter()
            .find_map(|e| match e {
                Effect::Send(_, bytes) => Some(bytes),
                _ => None,
            })
            .expect("an announce to send");
        assert_eq!(membership_sender_is(&Identifier::from_bytes(a), &packet), Ok(()));
        assert!(membership_sender_is(&Identifier::from_bytes([3; 32]), &packet).is_err());
        assert!(membership_sender_is(&Identifier::from_bytes(a), b"garbage").is_err());
    }

    #[test]
    fn redials_back_off_from_100_ms_to_5_s() {
        let waits: Vec<_> = (1..=8).map(|n| redial_after(n).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
