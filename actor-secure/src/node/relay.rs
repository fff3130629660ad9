//! Relays: reaching a node that cannot accept connections.
//!
//! A node behind NAT keeps an outgoing link to a relay and registers a name there
//! (`RelayRegister`). Another node asks the relay for a stream to that name
//! (`RelayConnect`); the relay opens a stream to the registered node on its link
//! (`RelayIncoming`) and splices the two. The two end nodes then run a secure channel
//! of their own *inside* that stream, and a link over it like any other: calls,
//! references, monitors and portals work as they do directly. The relay forwards
//! ciphertext it cannot read, and cannot impersonate either end, which authenticate
//! each other in the inner handshake under their own trust policies.
//!
//! Who may register a name, and who may route to one, is decided by the relay's
//! policies (`action.kind` = `"register"` or `"route"`, `resource.agent` = `"relay"`,
//! `resource.name` = the name).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use actor_abac::{Decision, Policy};
use serde::{Deserialize, Serialize};
use tokio::net::ToSocketAddrs;
use tokio::sync::Semaphore;

use super::link::{self, Kind, Link, Peer};
use super::portal::{answer_message, OpenAnswer, RelayTap, StreamIo};
use super::{Inner, Node, NodeError, Resource};
use crate::channel::SecureChannel;
use crate::identifier::Identifier;

/// How many names a relay keeps, and how many one node may hold there.
const MAX_NAMES: usize = 65_536;
const MAX_NAMES_PER_NODE: usize = 16;

/// How many inner handshakes a node runs at once for streams that reach it through
/// relays (each costs signature checks); beyond, such streams are refused.
const MAX_INNER_HANDSHAKES: usize = 16;

/// How to reach another node.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Dial it at this address.
    Direct(SocketAddr),
    /// Through the relay at `relay`, where the node registered as `name`.
    Relay {
        /// Where the relay listens.
        relay: SocketAddr,
        /// The name the node registered there.
        name: String,
    },
}

impl Route {
    /// Through the relay at `relay`, to the node registered there as `name`.
    pub fn relay(relay: SocketAddr, name: impl Into<String>) -> Route {
        Route::Relay {
            relay,
            name: name.into(),
        }
    }
}

impl From<SocketAddr> for Route {
    fn from(addr: SocketAddr) -> Route {
        Route::Direct(addr)
    }
}

/// A registration request.
#[derive(Debug, Serialize, Deserialize)]
struct Register {
    name: String,
}

/// A request for a stream to a registered node.
#[derive(Debug, Serialize, Deserialize)]
struct Connect {
    name: String,
    window: u32,
}

/// A stream from `from`, offered by the relay.
#[derive(Debug, Serialize, Deserialize)]
struct Incoming {
    from: [u8; 32],
    window: u32,
}

/// What a relay keeps: its policies and who registered which name.
#[derive(Default)]
pub(crate) struct RelayService {
    register: RwLock<Option<Arc<Policy>>>,
    route: RwLock<Option<Arc<Policy>>>,
    names: Mutex<HashMap<String, (Identifier, Weak<Link>)>>,
}

/// A [`RelayTap`] in a builder.
pub(crate) struct Tap(pub(crate) RelayTap);

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayTap")
    }
}

/// Node state for relays: this node's relay service, if it offers one; the relays it
/// registered with; the routes of its relayed sessions.
#[derive(Default)]
pub(crate) struct Relays {
    pub(crate) service: RwLock<Option<Arc<RelayService>>>,
    /// The relays this node registered with: it takes streams only from them.
    registered_with: Mutex<HashSet<Identifier>>,
    /// The route of each session that runs through a relay.
    routes: Mutex<HashMap<Identifier, (SocketAddr, String)>>,
    handshakes: Option<Arc<Semaphore>>,
    pub(crate) tap: Option<RelayTap>,
}

impl Relays {
    pub(crate) fn new(tap: Option<RelayTap>) -> Relays {
        Relays {
            handshakes: Some(Arc::new(Semaphore::new(MAX_INNER_HANDSHAKES))),
            tap,
            ..Relays::default()
        }
    }
}

impl Inner {
    /// The session `route` leads to, opening it if there is none.
    pub(super) async fn session_on(self: &Arc<Self>, route: &Route) -> Result<Arc<Peer>, NodeError> {
        match route {
            Route::Direct(addr) => self.link_to(*addr, None).await,
            Route::Relay { relay, name } => self.link_via(*relay, name, None).await,
        }
    }

    /// The relay route of the session with `peer`, if it runs through one.
    pub(super) fn route_of(&self, peer: Identifier) -> Option<(SocketAddr, String)> {
        self.relays
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer)
            .cloned()
    }

    /// The session with the node registered as `name` at the relay at `relay` (which
    /// must be `expect`, when given), opening a secure channel to it through the relay
    /// if there is none.
    pub(super) async fn link_via(
        self: &Arc<Self>,
        relay: SocketAddr,
        name: &str,
        expect: Option<Identifier>,
    ) -> Result<Arc<Peer>, NodeError> {
        let known = {
            let routes = self.relays.routes.lock().unwrap_or_else(PoisonError::into_inner);
            routes
                .iter()
                .find(|(_, route)| route.0 == relay && route.1 == name)
                .map(|(id, _)| *id)
        };
        if let Some(peer) = known.and_then(|id| self.session_with_peer(id)) {
            return Ok(peer);
        }
        let relay_peer = self.link_to(relay, None).await?;
        let relay_link = relay_peer.link().ok_or(NodeError::LinkLost)?;
        let connect = Connect {
            name: name.to_owned(),
            window: u32::try_from(self.portals.window).unwrap_or(u32::MAX),
        };
        let body = rmp_serde::to_vec(&connect).map_err(|_| NodeError::Protocol("relay encoding"))?;
        let (stream, answer) = self
            .request_stream(&relay_link, Kind::RelayConnect, &body)
            .await?;
        let window = match answer {
            OpenAnswer::Opened { window } => window as usize,
            other => {
                relay_link.portals.remove(stream.key());
                return Err(match other {
                    OpenAnswer::Denied => NodeError::Denied,
                    OpenAnswer::NoSuchNode => NodeError::NoSuchNode(name.to_owned()),
                    OpenAnswer::Refused(why) => NodeError::Refused(why),
                    _ => NodeError::Protocol("an unexpected relay answer"),
                });
            }
        };
        let ours =
            StreamIo::new(relay_link, stream, window).ok_or(NodeError::Protocol("a stream taken twice"))?;
        // The end nodes authenticate each other here: the relay only carries bytes.
        let ch =
            SecureChannel::initiate_with(ours, &self.identity, self.trust.clone(), &self.channel).await?;
        if expect.is_some_and(|id| id != *ch.peer()) {
            return Err(NodeError::Protocol("another node answered under that name"));
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
        self.relays
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer.id, (relay, name.to_owned()));
        Ok(peer)
    }

    /// The relay's policy for `action` on `name`, decided for the link's peer.
    fn relay_decides(&self, service: &RelayService, link: &Link, action: &str, name: &str) -> bool {
        let policy = match action {
            "register" => &service.register,
            _ => &service.route,
        };
        let policy = policy.read().unwrap_or_else(PoisonError::into_inner).clone();
        let target = Resource {
            agent: "relay",
            handler: action,
            call: true,
        };
        let mut env = self.environment(link, &link.caller, name, &target);
        env.insert("action.kind", action);
        let decision = match &policy {
            Some(p) => p.decide(&env),
            None => Decision::Deny(actor_abac::Denial::False),
        };
        let policy_text = policy.as_deref().map_or("none (deny)", Policy::text);
        self.counters
            .decided(super::stats::Guarded::Relay, decision.is_allowed());
        if !decision.is_allowed() {
            tracing::warn!(
                target: "troupe::audit",
                caller = %link.peer,
                name,
                action,
                decision = "deny",
                reason = %decision,
                policy = policy_text,
                "relay request denied"
            );
        } else if self.audit_allowed {
            tracing::info!(
                target: "troupe::audit",
                caller = %link.peer,
                name,
                action,
                decision = "allow",
                policy = policy_text,
                "relay request allowed"
            );
        }
        decision.is_allowed()
    }

    /// A node registers a name here. Returns the answer; `Err` when the request breaks
    /// the rules.
    pub(super) fn relay_register(
        &self,
        link: &Arc<Link>,
        id: u64,
        payload: &[u8],
    ) -> Result<Vec<u8>, &'static str> {
        let Ok(request) = rmp_serde::from_slice::<Register>(payload) else {
            return Err("an undecodable relay registration");
        };
        let service = self
            .relays
            .service
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(service) = service else {
            return Ok(answer_message(
                id,
                &OpenAnswer::Refused("this node is not a relay".into()),
            ));
        };
        if !self.relay_decides(&service, link, "register", &request.name) {
            return Ok(answer_message(id, &OpenAnswer::Denied));
        }
        let mut names = service.names.lock().unwrap_or_else(PoisonError::into_inner);
        let live = |(_, l): &(Identifier, Weak<Link>)| l.upgrade().is_some_and(|l| !l.is_closed());
        if let Some(held) = names.get(&request.name) {
            if held.0 != link.peer && live(held) {
                return Ok(answer_message(id, &OpenAnswer::NameTaken));
            }
        }
        if names.len() >= MAX_NAMES {
            names.retain(|_, held| live(held));
        }
        let mine = names
            .values()
            .filter(|held| held.0 == link.peer && live(held))
            .count();
        if names.len() >= MAX_NAMES || mine >= MAX_NAMES_PER_NODE {
            return Ok(answer_message(id, &OpenAnswer::Refused("too many names".into())));
        }
        names.insert(request.name, (link.peer, Arc::downgrade(link)));
        Ok(answer_message(id, &OpenAnswer::Registered))
    }

    /// A node asks this relay for a stream to a registered node: decided here, at
    /// once; the registered node is asked off the link's reader. Returns the answer to
    /// send now, if any (a refusal).
    pub(super) fn relay_connect(
        self: &Arc<Self>,
        link: &Arc<Link>,
        id: u64,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, &'static str> {
        let Ok(request) = rmp_serde::from_slice::<Connect>(payload) else {
            return Err("an undecodable relay connection");
        };
        let service = self
            .relays
            .service
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(service) = service else {
            let refused = OpenAnswer::Refused("this node is not a relay".into());
            return Ok(Some(answer_message(id, &refused)));
        };
        if !self.relay_decides(&service, link, "route", &request.name) {
            return Ok(Some(answer_message(id, &OpenAnswer::Denied)));
        }
        let target = service
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&request.name)
            .and_then(|(_, l)| l.upgrade())
            .filter(|l| !l.is_closed());
        let Some(target) = target else {
            return Ok(Some(answer_message(id, &OpenAnswer::NoSuchNode)));
        };
        let Some(inbound) = link
            .portals
            .add((false, id), self.portals.window, self.portals.max_connections)
        else {
            let refused = OpenAnswer::Refused("too many relayed connections".into());
            return Ok(Some(answer_message(id, &refused)));
        };
        let node = self.clone();
        let link = link.clone();
        self.spawn(async move {
            // The far end learns what the near end accepts in flight, and the other way.
            let offer = Incoming {
                from: *link.peer.as_bytes(),
                window: request.window,
            };
            let body = rmp_serde::to_vec(&offer).unwrap_or_default();
            let outbound = match node.request_stream(&target, Kind::RelayIncoming, &body).await {
                Ok((stream, OpenAnswer::Opened { window })) => Some((stream, window)),
                Ok((stream, _)) => {
                    target.portals.remove(stream.key());
                    None
                }
                Err(_) => None,
            };
            let Some((outbound, far_window)) = outbound else {
                link.portals.remove(inbound.key());
                let refused = OpenAnswer::Refused("the node did not take the connection".into());
                let _ = link.outbox.push(answer_message(id, &refused)).await;
                return;
            };
            // Each stream takes in flight what the far end of the other accepts.
            inbound.set_window(far_window as usize);
            outbound.set_window(request.window as usize);
            inbound.join(&link, &outbound, &target, node.relays.tap.clone());
            let opened = OpenAnswer::Opened { window: far_window };
            if link.outbox.push(answer_message(id, &opened)).await.is_err() {
                link.portals.remove(inbound.key());
                target.portals.remove(outbound.key());
            }
        });
        Ok(None)
    }

    /// A relay this node registered with offers a stream from another node: the other
    /// node's secure channel runs inside it, answered here as if it had dialled.
    pub(super) fn relay_incoming(
        self: &Arc<Self>,
        link: &Arc<Link>,
        id: u64,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, &'static str> {
        let Ok(offer) = rmp_serde::from_slice::<Incoming>(payload) else {
            return Err("an undecodable relayed connection");
        };
        let registered = self
            .relays
            .registered_with
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&link.peer);
        if !registered {
            let refused = OpenAnswer::Refused("not registered there".into());
            return Ok(Some(answer_message(id, &refused)));
        }
        let permit = self
            .relays
            .handshakes
            .as_ref()
            .and_then(|h| h.clone().try_acquire_owned().ok());
        let Some(permit) = permit else {
            let refused = OpenAnswer::Refused("too many relayed handshakes at once".into());
            return Ok(Some(answer_message(id, &refused)));
        };
        let Some(stream) = link
            .portals
            .add((false, id), self.portals.window, self.portals.max_connections)
        else {
            let refused = OpenAnswer::Refused("too many relayed connections".into());
            return Ok(Some(answer_message(id, &refused)));
        };
        tracing::debug!(from = %Identifier::from_bytes(offer.from), relay = %link.peer, "node: a connection through a relay");
        let node = Arc::downgrade(self);
        let link = link.clone();
        let window = u32::try_from(self.portals.window).unwrap_or(u32::MAX);
        self.spawn(async move {
            if link
                .outbox
                .push(answer_message(id, &OpenAnswer::Opened { window }))
                .await
                .is_err()
            {
                link.portals.remove(stream.key());
                return;
            }
            let Some(ours) = StreamIo::new(link, stream, offer.window as usize) else {
                return;
            };
            let Some(inner) = node.upgrade() else {
                return;
            };
            let (identity, trust, channel) =
                (inner.identity.clone(), inner.trust.clone(), inner.channel.clone());
            drop(inner);
            let ch = SecureChannel::respond_with(ours, &identity, trust, &channel).await;
            drop(permit);
            match (ch, node.upgrade()) {
                (Ok(ch), Some(inner)) => {
                    inner.install(ch, false);
                }
                (Err(e), _) => tracing::debug!(error = %e, "node: a relayed handshake failed"),
                _ => {}
            }
        });
        Ok(None)
    }
}

impl Node {
    /// Makes this node a relay: nodes that cannot accept connections may register a
    /// name here ([`Node::register_at`]) and others reach them by that name
    /// ([`Route::relay`]). Both are decided by the relay's policies, which deny
    /// everything until set ([`RelayHandle::register_policy`],
    /// [`RelayHandle::route_policy`]).
    pub fn serve_relay(&self) -> RelayHandle {
        let mut service = self
            .inner
            .relays
            .service
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let service = service.get_or_insert_with(Arc::default).clone();
        RelayHandle { service }
    }

    /// Registers this node as `name` at the relay at `relay`, over an outgoing link,
    /// so that other nodes reach it through the relay by that name. The registration
    /// is kept: when the link to the relay breaks, the node dials it again (backing off
    /// from 100 ms to 5 s) and registers again, until [`Registration::cancel`] or
    /// shutdown. Fails with [`NodeError::Denied`] or [`NodeError::NameTaken`] when the
    /// relay refuses the first registration.
    pub async fn register_at(
        &self,
        relay: impl ToSocketAddrs,
        name: &str,
    ) -> Result<Registration, NodeError> {
        let relay = tokio::net::lookup_host(relay)
            .await?
            .next()
            .ok_or_else(|| NodeError::Io(io::Error::new(io::ErrorKind::InvalidInput, "no address")))?;
        let link = register_once(&self.inner, relay, name).await?;
        let stop = Arc::new(Semaphore::new(0));
        self.inner.spawn(keep_registered(
            Arc::downgrade(&self.inner),
            relay,
            name.to_owned(),
            link,
            stop.clone(),
        ));
        Ok(Registration {
            relay,
            name: name.to_owned(),
            stop,
        })
    }

    /// A reference to the agent exported as `name` by the node `route` leads to (see
    /// [`Node::lookup`]); through a relay, the two nodes' own secure channel runs
    /// inside the relay's links.
    pub async fn lookup_via<A: actor_core::RemoteAgent>(
        &self,
        name: &str,
        route: &Route,
    ) -> Result<actor_core::ActorRef<A>, NodeError> {
        let peer = self.inner.session_on(route).await?;
        self.lookup_on::<A>(peer, name).await
    }
}

/// Registers `name` at `relay` once: the link it holds.
async fn register_once(node: &Arc<Inner>, relay: SocketAddr, name: &str) -> Result<Arc<Link>, NodeError> {
    let peer = node.link_to(relay, None).await?;
    let link = peer.link().ok_or(NodeError::LinkLost)?;
    // Streams from this relay are taken from now on.
    node.relays
        .registered_with
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(link.peer);
    let body = rmp_serde::to_vec(&Register {
        name: name.to_owned(),
    })
    .map_err(|_| NodeError::Protocol("relay encoding"))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let Some(id) = link.wait_for_reply(Box::new(super::RawWaiter(tx))) else {
        return Err(NodeError::LinkLost);
    };
    let mut msg = link::encode(Kind::RelayRegister, id, 0, body.len());
    msg.extend_from_slice(&body);
    if link.outbox.push(msg).await.is_err() {
        link.forget(id);
        return Err(NodeError::LinkLost);
    }
    let answer = match tokio::time::timeout(node.lookup_timeout, rx).await {
        Err(_) => {
            link.forget(id);
            return Err(NodeError::Timeout);
        }
        Ok(Err(_) | Ok(Err(_))) => return Err(NodeError::LinkLost),
        Ok(Ok(Ok(bytes))) => bytes,
    };
    match rmp_serde::from_slice::<OpenAnswer>(&answer) {
        Ok(OpenAnswer::Registered) => Ok(link),
        Ok(OpenAnswer::Denied) => Err(NodeError::Denied),
        Ok(OpenAnswer::NameTaken) => Err(NodeError::NameTaken(name.to_owned())),
        Ok(OpenAnswer::Refused(why)) => Err(NodeError::Refused(why)),
        _ => Err(NodeError::Protocol("an unexpected relay answer")),
    }
}

/// Registers again whenever the link that holds the registration closes.
async fn keep_registered(
    node: Weak<Inner>,
    relay: SocketAddr,
    name: String,
    mut link: Arc<Link>,
    stop: Arc<Semaphore>,
) {
    let mut failures = 0u32;
    loop {
        let wait = if link.is_closed() {
            Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5))
        } else {
            Duration::from_millis(250)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.acquire() => return,
        }
        if !link.is_closed() {
            continue;
        }
        let Some(inner) = node.upgrade() else {
            return;
        };
        if inner.closing.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        match register_once(&inner, relay, &name).await {
            Ok(new) => {
                tracing::info!(%relay, %name, "node: registered at the relay again");
                link = new;
                failures = 0;
            }
            Err(e) => {
                tracing::debug!(%relay, %name, error = %e, "node: registering at the relay again failed");
                failures += 1;
            }
        }
    }
}

/// This node's relay service, to set who may use it (see [`Node::serve_relay`]).
#[derive(Clone)]
pub struct RelayHandle {
    service: Arc<RelayService>,
}

impl std::fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHandle").finish_non_exhaustive()
    }
}

impl RelayHandle {
    /// Who may register a name here (`action.kind = "register"`, `resource.name` the
    /// name). Replaces any earlier policy.
    pub fn register_policy(self, text: impl AsRef<str>) -> Result<Self, NodeError> {
        let policy = Arc::new(Policy::parse(text.as_ref()).map_err(NodeError::Policy)?);
        *self
            .service
            .register
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(policy);
        Ok(self)
    }

    /// Who may reach a registered node through here (`action.kind = "route"`,
    /// `resource.name` the name). Replaces any earlier policy.
    pub fn route_policy(self, text: impl AsRef<str>) -> Result<Self, NodeError> {
        let policy = Arc::new(Policy::parse(text.as_ref()).map_err(NodeError::Policy)?);
        *self.service.route.write().unwrap_or_else(PoisonError::into_inner) = Some(policy);
        Ok(self)
    }

    /// The names registered here now, with the node that holds each.
    pub fn names(&self) -> Vec<(String, Identifier)> {
        self.service
            .names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, (_, l))| l.upgrade().is_some_and(|l| !l.is_closed()))
            .map(|(name, (id, _))| (name.clone(), *id))
            .collect()
    }
}

/// A name this node holds at a relay (see [`Node::register_at`]).
#[derive(Debug)]
pub struct Registration {
    relay: SocketAddr,
    name: String,
    stop: Arc<Semaphore>,
}

impl Registration {
    /// The route other nodes use to reach this node.
    pub fn route(&self) -> Route {
        Route::relay(self.relay, self.name.clone())
    }

    /// Stops registering again after the link to the relay breaks (the relay forgets
    /// the name when that link closes).
    pub fn cancel(&self) {
        self.stop.close();
    }
}
