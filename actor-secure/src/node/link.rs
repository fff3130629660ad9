//! One secure link to another node: a bounded outbox drained by a writer task, a reader
//! task that dispatches what arrives, and the calls waiting for replies.
//!
//! Every link message is one [`SecureChannel`](crate::SecureChannel) message: a fixed
//! 13-byte header (kind, correlation id, export slot) and a payload. Message and reply
//! payloads are MessagePack (rmp-serde) of the agent's generated enums.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use actor_core::CallError;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::identifier::Identifier;

/// How many credentials a peer may present in a burst; then one per second.
pub(crate) const CREDENTIAL_BURST: u32 = 8;

/// Header: kind (1) || correlation id (8, big-endian) || export slot (4, big-endian).
pub(crate) const HEADER_LEN: usize = 13;

/// What a link message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Look an export up by name and protocol; payload [`LookupRequest`].
    Lookup = 1,
    /// The answer to a lookup; payload [`LookupAnswer`].
    Found = 2,
    /// A call to the export in `slot`; payload the message.
    Call = 3,
    /// A cast to the export in `slot`; payload the message.
    Cast = 4,
    /// The reply to call `id`; payload a status byte, then the reply or a [`Failure`].
    Reply = 5,
    /// The sender's credential (empty: none), first on a link and again on refresh.
    Credential = 6,
    /// A membership (SWIM) packet; its claimed sender must be the link's peer.
    Membership = 7,
    /// The sender's [`Hello`]: the first message on every link.
    Hello = 8,
    /// The sender sends no more requests on this link (a duplicate being retired); the
    /// receiver closes it once nothing of its own is in flight on it.
    Retire = 9,
    /// Watch the export in `slot`: answer with `Down` when it stops for good.
    Monitor = 10,
    /// The export in `slot` stopped for good; payload a [`RemoteStop`].
    Down = 11,
    /// A piece of a large link message, so that it does not hold back the small ones
    /// behind it: `id` names the message; payload a byte (1: the last piece) and the
    /// piece. The pieces put together are a whole link message.
    Fragment = 12,
    /// One of the sender's agents joined or left a cluster-wide group; payload a
    /// [`GroupNews`].
    Group = 13,
    /// An agent of the sender linked itself to the export in `slot`; payload the
    /// export's secret (8) and the sender's id for that agent (8).
    Link = 14,
    /// That linked agent ended; payload as for `Link`, then a [`RemoteStop`].
    LinkExit = 15,
    /// Open a portal stream to an outlet (see `portal`); answered by a `Reply`.
    PortalOpen = 16,
    /// Bytes of a portal stream.
    PortalData = 17,
    /// Window given back on a portal stream.
    PortalCredit = 18,
    /// A portal stream's half-close (0) or abort (1).
    PortalClose = 19,
    /// Register a name at a relay (see `relay`); answered by a `Reply`.
    RelayRegister = 20,
    /// Open a stream through a relay to the node registered under a name; answered by
    /// a `Reply`. The stream then carries a secure channel between the two end nodes.
    RelayConnect = 21,
    /// From a relay to a node registered there: a stream from another node; answered
    /// by a `Reply`.
    RelayIncoming = 22,
}

/// How many links into this node's agents one node may hold.
pub(crate) const MAX_LINKS_IN: usize = 65_536;

/// Delivers a linked remote agent's exit to the local agent it is linked to.
pub(crate) type LinkedIn = Box<dyn Fn(actor_core::StopReason) + Send>;

/// How many group memberships one node may announce to another.
pub(crate) const MAX_GROUP_ENTRIES: usize = 65_536;

/// A join or a leave, as it crosses the link; the member must be the sender's agent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GroupNews {
    pub(crate) join: bool,
    pub(crate) group: String,
    pub(crate) member: actor_core::__private::WireRef,
}

/// Link messages longer than this go in pieces of this size.
pub(crate) const PIECE: usize = 64 * 1024;

/// How many large messages may be in pieces at once, each way on a link.
pub(crate) const MAX_IN_PIECES: usize = 4;

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Lookup,
            2 => Kind::Found,
            3 => Kind::Call,
            4 => Kind::Cast,
            5 => Kind::Reply,
            6 => Kind::Credential,
            7 => Kind::Membership,
            8 => Kind::Hello,
            9 => Kind::Retire,
            10 => Kind::Monitor,
            11 => Kind::Down,
            12 => Kind::Fragment,
            13 => Kind::Group,
            14 => Kind::Link,
            15 => Kind::LinkExit,
            16 => Kind::PortalOpen,
            17 => Kind::PortalData,
            18 => Kind::PortalCredit,
            19 => Kind::PortalClose,
            20 => Kind::RelayRegister,
            21 => Kind::RelayConnect,
            22 => Kind::RelayIncoming,
            _ => return None,
        })
    }
}

/// Set in the kind byte of a call or cast made by an agent its node names: the payload
/// starts with that agent's identifier (32 bytes).
pub(crate) const FROM_AGENT: u8 = 0x80;

/// Set in the kind byte of a call or cast sent from a traced handler: the payload
/// carries the W3C trace context (`actor_core::trace::WIRE_LEN` bytes: version, trace
/// id, span id, flags), after the calling agent's identifier if there is one.
pub(crate) const TRACED: u8 = 0x40;

/// A decoded header and the payload after it.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub(crate) kind: Kind,
    /// The payload starts with the calling agent's identifier (see [`FROM_AGENT`]).
    pub(crate) from_agent: bool,
    /// The payload carries a trace context (see [`TRACED`]).
    pub(crate) traced: bool,
    pub(crate) id: u64,
    pub(crate) slot: u32,
    pub(crate) payload: &'a [u8],
}

/// Why a link message does not decode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    Short,
    UnknownKind(u8),
}

pub(crate) fn encode(kind: Kind, id: u64, slot: u32, payload_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload_len);
    out.push(kind as u8);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&slot.to_be_bytes());
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    if bytes.len() < HEADER_LEN {
        return Err(FrameError::Short);
    }
    let from_agent = bytes[0] & FROM_AGENT != 0;
    let traced = bytes[0] & TRACED != 0;
    let kind = Kind::from_byte(bytes[0] & !(FROM_AGENT | TRACED)).ok_or(FrameError::UnknownKind(bytes[0]))?;
    if (from_agent || traced) && !matches!(kind, Kind::Call | Kind::Cast) {
        return Err(FrameError::UnknownKind(bytes[0]));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[1..9]);
    let mut slot = [0u8; 4];
    slot.copy_from_slice(&bytes[9..13]);
    Ok(Frame {
        kind,
        from_agent,
        traced,
        id: u64::from_be_bytes(id),
        slot: u32::from_be_bytes(slot),
        payload: &bytes[HEADER_LEN..],
    })
}

/// What a node says first on every link: which run of it this is (a node restarted with
/// the same identity is a new incarnation) and where it listens.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) incarnation: u64,
    pub(crate) addr: std::net::SocketAddr,
    /// The sender had no working link with the receiver when it opened this one (so
    /// any link the receiver still has with it is stale).
    pub(crate) fresh: bool,
}

/// Why an exported agent stopped, as it crosses the link.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RemoteStop {
    Normal,
    Shutdown,
    Panicked(String),
    Error(String),
    Linked,
    Killed,
    NotExported,
}

impl RemoteStop {
    pub(crate) fn from_reason(reason: &actor_core::StopReason) -> RemoteStop {
        use actor_core::StopReason as R;
        match reason {
            R::Normal => RemoteStop::Normal,
            R::Shutdown => RemoteStop::Shutdown,
            R::Panicked(m) => RemoteStop::Panicked(m.clone()),
            R::Error(m) => RemoteStop::Error(m.clone()),
            R::Linked(_) => RemoteStop::Linked,
            R::Killed => RemoteStop::Killed,
            other => RemoteStop::Error(other.to_string()),
        }
    }

    pub(crate) fn into_reason(self) -> actor_core::StopReason {
        use actor_core::StopReason as R;
        match self {
            RemoteStop::Normal => R::Normal,
            RemoteStop::Shutdown => R::Shutdown,
            RemoteStop::Panicked(m) => R::Panicked(m),
            RemoteStop::Error(m) => R::Error(m),
            // The linked agent is on the other node: its id means nothing here.
            RemoteStop::Linked => R::Error("a linked agent on its node crashed".into()),
            RemoteStop::Killed => R::Killed,
            RemoteStop::NotExported => R::Error("the agent is not exported (any more)".into()),
        }
    }
}

/// A lookup: the export's name and the protocol the caller expects.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LookupRequest {
    pub(crate) name: String,
    pub(crate) fingerprint: u64,
    pub(crate) description: String,
}

/// The answer to a lookup.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum LookupAnswer {
    Found { slot: u32 },
    NoSuchExport,
    WrongProtocol { found: String },
}

/// Why a remote call failed, as it crosses the link (never the remote side's internals).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Failure {
    Stopped,
    Panicked(String),
    NoReply,
    NoSuchExport,
    Undecodable,
    Unencodable,
    Denied,
    Other(String),
}

impl Failure {
    pub(crate) fn from_call_error(e: &CallError) -> Failure {
        match e {
            CallError::Stopped => Failure::Stopped,
            CallError::Panicked(m) => Failure::Panicked(m.clone()),
            CallError::NoReply => Failure::NoReply,
            other => Failure::Other(other.to_string()),
        }
    }

    pub(crate) fn into_call_error(self) -> CallError {
        match self {
            Failure::Stopped => CallError::Stopped,
            Failure::Panicked(m) => CallError::Panicked(m),
            Failure::NoReply => CallError::NoReply,
            Failure::NoSuchExport => CallError::Remote("the agent is no longer exported".into()),
            Failure::Undecodable => CallError::Remote("the remote node could not decode the message".into()),
            Failure::Unencodable => CallError::Remote("the remote node could not encode the reply".into()),
            Failure::Denied => CallError::Denied,
            Failure::Other(why) => CallError::Remote(why),
        }
    }
}

/// What waits for a reply: completes the caller's future (decoding the reply), or says
/// the caller stopped waiting.
pub(crate) trait Waiting: Send {
    fn complete(self: Box<Self>, result: Result<&[u8], CallError>);
    fn abandoned(&self) -> bool;
}

/// The outgoing queue: bounded, drained by the link's writer task.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<OutState>,
    /// Wakes the writer task.
    pub(crate) ready: Notify,
}

#[derive(Debug)]
struct OutState {
    queue: VecDeque<Vec<u8>>,
    capacity: usize,
    /// Senders waiting for room.
    waiters: Vec<Waker>,
    closed: bool,
}

/// Why the outbox did not take a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    Full,
    Closed,
}

impl Outbox {
    pub(crate) fn new(capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(OutState {
                queue: VecDeque::new(),
                capacity: capacity.max(1),
                waiters: Vec::new(),
                closed: false,
            }),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the message `make` builds, if there is room now. `make` runs only then
    /// (under the lock, so the message keeps its place).
    pub(crate) fn try_push_with(&self, make: impl FnOnce() -> Option<Vec<u8>>) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        if state.queue.len() >= state.capacity {
            return Err(Refused::Full);
        }
        if let Some(msg) = make() {
            state.queue.push_back(msg);
            drop(state);
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Like [`Outbox::try_push_with`], but waits for room.
    pub(crate) fn poll_push_with(
        &self,
        cx: &mut Context<'_>,
        make: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Poll<Result<(), Refused>> {
        let mut state = self.lock();
        if state.closed {
            return Poll::Ready(Err(Refused::Closed));
        }
        if state.queue.len() >= state.capacity {
            if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                state.waiters.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        if let Some(msg) = make() {
            state.queue.push_back(msg);
            drop(state);
            self.ready.notify_one();
        }
        Poll::Ready(Ok(()))
    }

    /// Ready when there is room (or the outbox is closed: `Err`); otherwise the waker
    /// is told when there may be.
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        let mut state = self.lock();
        if state.closed {
            return Poll::Ready(Err(Refused::Closed));
        }
        if state.queue.len() >= state.capacity {
            if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                state.waiters.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// Queues `msg`, waiting for room.
    pub(crate) async fn push(&self, msg: Vec<u8>) -> Result<(), Refused> {
        let mut msg = Some(msg);
        std::future::poll_fn(|cx| self.poll_push_with(cx, || msg.take())).await
    }

    /// Everything queued, and whether the outbox is closed. Wakes the senders waiting
    /// for room.
    pub(crate) fn take(&self) -> (Vec<Vec<u8>>, bool) {
        let mut state = self.lock();
        let batch: Vec<_> = state.queue.drain(..).collect();
        let waiters = std::mem::take(&mut state.waiters);
        let closed = state.closed;
        drop(state);
        for w in waiters {
            w.wake();
        }
        (batch, closed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    pub(crate) fn close(&self) {
        let waiters = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.waiters)
        };
        for w in waiters {
            w.wake();
        }
        self.ready.notify_one();
    }
}

/// A reply being waited for: resolves to the link message that answers the call (a
/// reply or a failure) once the agent has answered.
pub(crate) type PendingReply = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>>;

/// One link's shared state.
pub(crate) struct Link {
    pub(crate) peer: Identifier,
    /// What handlers see in `ctx.caller()` for messages from this link.
    pub(crate) caller: std::sync::Arc<actor_core::Caller>,
    pub(crate) outbox: Outbox,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Box<dyn Waiting>>>,
    max_waiting: usize,
    /// The largest link message the channel carries.
    pub(crate) max_message: usize,
    closed: AtomicBool,
    /// Whether this node dialled the link (the tie-break between two links to one node).
    pub(crate) dialled: bool,
    /// When the link was set up.
    pub(crate) opened: std::time::Instant,
    /// The peer said it sends nothing more on this link (it is being retired).
    pub(crate) retired_by_peer: AtomicBool,
    /// The other node as references see it; told when this link closes.
    peer_state: Mutex<std::sync::Weak<Peer>>,
    /// Calls from the peer running here now (bounded: when none is free, the reader
    /// waits).
    pub(crate) inbound: std::sync::Arc<tokio::sync::Semaphore>,
    max_inbound: usize,
    /// Replies to the peer's calls, awaited by the link's writer (so an agent's answer
    /// wakes the writer directly).
    pub(crate) replies: tokio::sync::mpsc::UnboundedSender<PendingReply>,
    replies_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<PendingReply>>>,
    /// Woken when the peer's hello has been taken (the link belongs to a session) or
    /// the link closed.
    pub(crate) attached: Notify,
    /// The peer's verified credential, if it presented a valid one.
    credential: Mutex<Option<crate::credential::VerifiedCredential>>,
    /// Bumped whenever `credential` changes (decisions made before no longer hold).
    credential_generation: AtomicU64,
    /// Credentials the peer may still present now (each costs a signature check): a
    /// bucket of [`CREDENTIAL_BURST`], refilled one per second.
    credential_budget: Mutex<(u32, std::time::Instant)>,
    /// Access decisions for (export slot, handler, is a call), with what they depended
    /// on: allowed, policy generation, credential generation, valid until (Unix s).
    decisions: Mutex<HashMap<DecisionKey, CachedDecision>>,
    /// The portal connections this link carries.
    pub(crate) portals: super::portal::Streams,
    /// Cut by a test ([`super::faults`]): the writer leaves without a goodbye.
    pub(crate) severed: AtomicBool,
    /// How long each batch waits before it is written, in microseconds (a test's fault).
    delay_us: AtomicU64,
    /// Stops the link's reader (a cut).
    pub(crate) reader: std::sync::OnceLock<tokio::task::AbortHandle>,
    /// Its traffic, counted into its peer's counters (see `stats`).
    pub(crate) counters: std::sync::Arc<super::stats::LinkCounters>,
}

/// (export slot, handler, is a call, the calling agent its node named).
pub(crate) type DecisionKey = (u32, &'static str, bool, Option<[u8; 32]>);

/// How many access decisions a link keeps (beyond, the table starts over).
const MAX_DECISIONS: usize = 4096;
/// (allowed, policy generation, credential generation, valid until in Unix seconds).
pub(crate) type CachedDecision = (bool, u64, u64, u64);

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.peer)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new(
        peer: Identifier,
        outbox_capacity: usize,
        max_waiting: usize,
        max_message: usize,
        dialled: bool,
        max_inbound: usize,
    ) -> Link {
        // Unbounded in type, bounded in use: each holds one of `max_inbound` permits.
        let (replies, replies_rx) = tokio::sync::mpsc::unbounded_channel();
        Link {
            replies,
            replies_rx: Mutex::new(Some(replies_rx)),
            peer,
            caller: std::sync::Arc::new(actor_core::Caller::from_node(*peer.as_bytes())),
            outbox: Outbox::new(outbox_capacity),
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            max_waiting,
            max_message,
            closed: AtomicBool::new(false),
            dialled,
            opened: std::time::Instant::now(),
            retired_by_peer: AtomicBool::new(false),
            peer_state: Mutex::new(std::sync::Weak::new()),
            attached: Notify::new(),
            inbound: std::sync::Arc::new(tokio::sync::Semaphore::new(max_inbound)),
            max_inbound,
            credential: Mutex::new(None),
            credential_generation: AtomicU64::new(0),
            credential_budget: Mutex::new((CREDENTIAL_BURST, std::time::Instant::now())),
            decisions: Mutex::new(HashMap::new()),
            portals: super::portal::Streams::default(),
            severed: AtomicBool::new(false),
            delay_us: AtomicU64::new(0),
            reader: std::sync::OnceLock::new(),
            counters: std::sync::Arc::default(),
        }
    }

    /// The link counts its traffic into `counters` (its peer's, in the node's stats).
    pub(crate) fn with_counters(mut self, counters: std::sync::Arc<super::stats::LinkCounters>) -> Link {
        self.counters = counters;
        self
    }

    pub(crate) fn credential(&self) -> Option<crate::credential::VerifiedCredential> {
        self.credential
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_credential(&self, credential: Option<crate::credential::VerifiedCredential>) {
        *self.credential.lock().unwrap_or_else(PoisonError::into_inner) = credential;
        self.credential_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes one credential from the peer's budget; false when it presents them faster
    /// than [`CREDENTIAL_BURST`] and then one per second.
    pub(crate) fn take_credential_budget(&self) -> bool {
        let mut budget = self
            .credential_budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (tokens, since) = &mut *budget;
        let refill = u32::try_from(since.elapsed().as_secs()).unwrap_or(u32::MAX);
        if refill > 0 {
            *tokens = tokens.saturating_add(refill).min(CREDENTIAL_BURST);
            *since = std::time::Instant::now();
        }
        if *tokens == 0 {
            return false;
        }
        *tokens -= 1;
        true
    }

    pub(crate) fn credential_generation(&self) -> u64 {
        self.credential_generation.load(Ordering::Acquire)
    }

    /// A cached decision that still holds for these generations at `now`.
    pub(crate) fn cached_decision(&self, key: DecisionKey, policy_generation: u64, now: u64) -> Option<bool> {
        let decisions = self.decisions.lock().unwrap_or_else(PoisonError::into_inner);
        let &(allowed, p, c, until) = decisions.get(&key)?;
        (p == policy_generation && c == self.credential_generation() && now < until).then_some(allowed)
    }

    pub(crate) fn cache_decision(&self, key: DecisionKey, entry: CachedDecision) {
        let mut decisions = self.decisions.lock().unwrap_or_else(PoisonError::into_inner);
        // A peer naming ever more calling agents cannot grow the table without end.
        if decisions.len() >= MAX_DECISIONS && !decisions.contains_key(&key) {
            decisions.clear();
        }
        decisions.insert(key, entry);
    }

    /// Delays each batch the writer sends (a test's fault; zero: none).
    pub(crate) fn set_delay(&self, delay: std::time::Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_us.store(us, Ordering::Relaxed);
    }

    /// Waits as long as a test's fault says before a batch goes out.
    pub(crate) async fn fault_delay(&self) {
        let us = self.delay_us.load(Ordering::Relaxed);
        if us > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(us)).await;
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Registers a waiting call; `None` (and the waiter completed with an error) when
    /// the link is closed or too many calls wait.
    pub(crate) fn wait_for_reply(&self, waiter: Box<dyn Waiting>) -> Option<u64> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_closed() {
            drop(waiting);
            waiter.complete(Err(CallError::LinkLost));
            return None;
        }
        if waiting.len() >= self.max_waiting {
            // Callers that gave up (timed out, dropped) leave their entries behind.
            waiting.retain(|_, w| !w.abandoned());
        }
        if waiting.len() >= self.max_waiting {
            drop(waiting);
            waiter.complete(Err(CallError::Remote(
                "too many calls in flight to that node".into(),
            )));
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        waiting.insert(id, waiter);
        Some(id)
    }

    /// Forgets a waiting call whose message could not be queued after all.
    pub(crate) fn forget(&self, id: u64) -> Option<Box<dyn Waiting>> {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }

    /// Completes the call waiting for reply `id`, if any still does.
    pub(crate) fn complete(&self, id: u64, result: Result<&[u8], CallError>) {
        if let Some(waiter) = self.forget(id) {
            waiter.complete(result);
        }
    }

    /// Marks the link lost: every waiting call fails with `LinkLost`, the outbox refuses
    /// more, and the session is told (its watchers are woken if this link carried it).
    pub(crate) fn close(&self) {
        let waiting = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut *waiting)
        };
        self.outbox.close();
        self.portals.abort_all();
        self.attached.notify_waiters();
        // The session lets go of the link (and starts reconnecting) before the calls on
        // it fail: a caller that sees `LinkLost` and calls again must wait for the new
        // link, not find this closed one and fail again.
        let peer = self
            .peer_state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade();
        if let Some(peer) = peer {
            peer.link_closed(self);
        }
        for (_, waiter) in waiting {
            waiter.complete(Err(CallError::LinkLost));
        }
    }

    /// The replies the writer awaits (the writer takes them once).
    pub(crate) fn take_replies(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<PendingReply>> {
        self.replies_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The session this link belongs to, once the peer's hello has been taken.
    pub(crate) fn session(&self) -> Option<std::sync::Arc<Peer>> {
        self.peer_state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade()
    }

    /// Waits until the link belongs to a session (`None`: it closed first).
    pub(crate) async fn attached(&self) -> Option<std::sync::Arc<Peer>> {
        loop {
            let woken = self.attached.notified();
            if let Some(peer) = self.session() {
                return Some(peer);
            }
            if self.is_closed() {
                return None;
            }
            woken.await;
        }
    }

    /// Whether nothing is in flight on the link: no call waits for a reply, none from
    /// the peer is running here, nothing waits to go out, and no portal connection is
    /// open.
    pub(crate) fn is_quiet(&self) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
            && self.inbound.available_permits() == self.max_inbound
            && self.outbox.is_empty()
            && self.portals.is_empty()
    }
}

/// Another node, as the references to its agents see it: the link that carries their
/// messages now, and whether the node is lost.
///
/// One `Peer` stands for one session with the node. When two links to it open at once
/// (both nodes dialled), references move to the one the tie-break keeps. When its link
/// breaks, the node reconnects and the session goes on over the new link. When it cannot
/// (nothing listens, another run of the node answers, time runs out), or membership
/// declares the node down, the peer is lost for good: monitors fire with `NodeLost`, and
/// references to its agents stop working (a later lookup starts a new session).
pub(crate) struct Peer {
    pub(crate) id: Identifier,
    /// Which run of the node this session is with.
    pub(crate) incarnation: u64,
    /// Where the node listens.
    pub(crate) addr: std::net::SocketAddr,
    link: parking_lot::RwLock<Option<std::sync::Arc<Link>>>,
    lost: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
    /// This node's watches of the node's exports, by slot.
    downs: Mutex<HashMap<u32, DownState>>,
    /// The id each of the node's exports has here (references to one agent are equal).
    ids: Mutex<HashMap<u32, actor_core::ActorId>>,
    /// The node's watches of this node's exports (one task each, by slot).
    pub(crate) monitored: Mutex<std::collections::HashSet<u32>>,
    /// The node's agents linked to this node's exports: (slot, their id there).
    pub(crate) linked_in: Mutex<HashMap<(u32, u64), LinkedIn>>,
    /// What to do when the link in use breaks: reconnect (the node sets it), or, when
    /// unset, lose the session.
    reconnect: std::sync::OnceLock<Reconnect>,
}

/// Starts reconnecting a session whose link broke.
pub(crate) type Reconnect = Box<dyn Fn(std::sync::Arc<Peer>) + Send + Sync>;

/// A watch of one export on the other node.
#[derive(Default)]
struct DownState {
    asked: bool,
    reason: Option<actor_core::StopReason>,
    waiters: Vec<Waker>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.id)
            .field("lost", &self.is_lost())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A session with `link`'s node, carried by `link`.
    pub(crate) fn new(link: &std::sync::Arc<Link>, hello: &Hello) -> std::sync::Arc<Peer> {
        let peer = Peer::connecting(link.peer, hello.incarnation, hello.addr);
        peer.switch_to(link);
        if link.is_closed() {
            peer.lose();
        }
        peer
    }

    /// A session with a node this node is still dialling (a reference to one of its
    /// agents arrived): messages wait for the link, within the usual bounds.
    pub(crate) fn connecting(
        id: Identifier,
        incarnation: u64,
        addr: std::net::SocketAddr,
    ) -> std::sync::Arc<Peer> {
        std::sync::Arc::new(Peer {
            id,
            incarnation,
            addr,
            link: parking_lot::RwLock::new(None),
            lost: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            downs: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
            monitored: Mutex::new(std::collections::HashSet::new()),
            linked_in: Mutex::new(HashMap::new()),
            reconnect: std::sync::OnceLock::new(),
        })
    }

    /// The id the export in `slot` has here.
    pub(crate) fn id_for(&self, slot: u32, max: usize) -> actor_core::ActorId {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = ids.get(&slot) {
            return *id;
        }
        let id = actor_core::ActorId::fresh();
        // A peer naming ever more agents cannot grow the table without bound.
        if ids.len() < max {
            ids.insert(slot, id);
        }
        id
    }

    /// Ready once the session has a link (or is lost).
    pub(crate) fn poll_link(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_lost() || self.link.read().is_some() {
            return Poll::Ready(());
        }
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Makes `link` part of this session without carrying its messages (a duplicate the
    /// tie-break retires).
    pub(crate) fn adopt(self: &std::sync::Arc<Self>, link: &Link) {
        *link.peer_state.lock().unwrap_or_else(PoisonError::into_inner) = std::sync::Arc::downgrade(self);
        link.attached.notify_waiters();
    }

    /// Runs `f` with the link that carries messages now (`None`: the node is lost).
    pub(crate) fn with_link<R>(&self, f: impl FnOnce(Option<&std::sync::Arc<Link>>) -> R) -> R {
        let link = self.link.read();
        f(link.as_ref())
    }

    /// The link that carries messages now.
    pub(crate) fn link(&self) -> Option<std::sync::Arc<Link>> {
        self.link.read().clone()
    }

    /// Moves the session onto `link` (the tie-break kept it); the old link is the
    /// caller's to retire.
    pub(crate) fn switch_to(self: &std::sync::Arc<Self>, link: &std::sync::Arc<Link>) {
        *self.link.write() = Some(link.clone());
        self.adopt(link);
        // Senders waiting for a link (the session was connecting) go on.
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(PoisonError::into_inner));
        for w in waiters {
            w.wake();
        }
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Reconnects the session with `reconnect` when its link breaks (instead of losing
    /// it at once).
    pub(crate) fn set_reconnect(&self, reconnect: Reconnect) {
        let _ = self.reconnect.set(reconnect);
    }

    /// A link of this session closed. If it was the one in use, the session reconnects
    /// (its calls in flight have failed; new messages wait for the new link), or is
    /// lost when it cannot.
    fn link_closed(self: &std::sync::Arc<Self>, closed: &Link) {
        let current = {
            let mut link = self.link.write();
            let current = link.as_ref().is_some_and(|l| std::ptr::eq(&**l, closed));
            if current && self.reconnect.get().is_some() && !self.is_lost() {
                *link = None;
            }
            current
        };
        if !current {
            return;
        }
        match self.reconnect.get() {
            Some(reconnect) if !self.is_lost() => reconnect(self.clone()),
            _ => self.lose(),
        }
    }

    /// Marks the session lost: wakes the watchers and closes its link.
    pub(crate) fn lose(&self) {
        let link = {
            let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            self.lost.store(true, Ordering::Release);
            for w in waiters.drain(..) {
                w.wake();
            }
            self.link.write().take()
        };
        let downs = std::mem::take(&mut *self.downs.lock().unwrap_or_else(PoisonError::into_inner));
        for w in downs.into_values().flat_map(|d| d.waiters) {
            w.wake();
        }
        // Agents linked to its agents get the node's loss as their exit.
        let linked = std::mem::take(&mut *self.linked_in.lock().unwrap_or_else(PoisonError::into_inner));
        for deliver in linked.into_values() {
            deliver(actor_core::StopReason::NodeLost);
        }
        if let Some(link) = link {
            link.close();
        }
    }

    /// Ready once the export in `slot` has stopped for good (its reason) or the session
    /// is lost (`NodeLost`). The `bool` says the node must still be asked to watch it.
    pub(crate) fn poll_down(&self, slot: u32, cx: &mut Context<'_>) -> (Poll<actor_core::StopReason>, bool) {
        let mut downs = self.downs.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock `lose` takes after setting the flag: no lost wake-up.
        if self.is_lost() {
            return (Poll::Ready(actor_core::StopReason::NodeLost), false);
        }
        let state = downs.entry(slot).or_default();
        if let Some(reason) = &state.reason {
            return (Poll::Ready(reason.clone()), false);
        }
        if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiters.push(cx.waker().clone());
        }
        let ask = !state.asked;
        state.asked = true;
        (Poll::Pending, ask)
    }

    /// Whether the node said the export in `slot` stopped for good.
    pub(crate) fn is_down(&self, slot: u32) -> bool {
        self.downs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&slot)
            .is_some_and(|d| d.reason.is_some())
    }

    /// The node says the export in `slot` stopped for good.
    pub(crate) fn agent_down(&self, slot: u32, reason: actor_core::StopReason) {
        let waiters = {
            let mut downs = self.downs.lock().unwrap_or_else(PoisonError::into_inner);
            // Only for watches this node asked for: a peer cannot grow the table.
            let Some(state) = downs.get_mut(&slot) else {
                return;
            };
            state.reason = Some(reason);
            std::mem::take(&mut state.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    /// Ready once the session is lost.
    pub(crate) fn poll_lost(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_lost() {
            return Poll::Ready(());
        }
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_lost() {
            return Poll::Ready(());
        }
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let mut msg = encode(Kind::Call, 7, 3, 2);
        msg.extend_from_slice(b"hi");
        let frame = decode(&msg).unwrap();
        assert_eq!(
            (frame.kind, frame.id, frame.slot, frame.payload),
            (Kind::Call, 7, 3, &b"hi"[..])
        );
        assert_eq!(decode(&msg[..12]).unwrap_err(), FrameError::Short);
        msg[0] = 99;
        assert_eq!(decode(&msg).unwrap_err(), FrameError::UnknownKind(99));
    }

    proptest::proptest! {
        #[test]
        fn the_header_decoder_never_panics_and_round_trips(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)
        ) {
            if let Ok(frame) = decode(&bytes) {
                let mut again = encode(frame.kind, frame.id, frame.slot, frame.payload.len());
                if frame.from_agent {
                    again[0] |= FROM_AGENT;
                }
                if frame.traced {
                    again[0] |= TRACED;
                }
                again.extend_from_slice(frame.payload);
                proptest::prop_assert_eq!(again, bytes);
            }
        }

        #[test]
        fn payload_decoders_refuse_garbage_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)
        ) {
            let _ = rmp_serde::from_slice::<LookupRequest>(&bytes);
            let _ = rmp_serde::from_slice::<LookupAnswer>(&bytes);
            let _ = rmp_serde::from_slice::<Failure>(&bytes);
            let _ = rmp_serde::from_slice::<Hello>(&bytes);
            let _ = rmp_serde::from_slice::<RemoteStop>(&bytes);
            let _ = rmp_serde::from_slice::<GroupNews>(&bytes);
        }
    }

    #[test]
    fn the_outbox_is_bounded_and_refuses_after_close() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.try_push_with(|| Some(vec![1])), Ok(()));
        assert_eq!(outbox.try_push_with(|| Some(vec![2])), Ok(()));
        let mut built = false;
        assert_eq!(
            outbox.try_push_with(|| {
                built = true;
                Some(vec![3])
            }),
            Err(Refused::Full)
        );
        assert!(!built, "nothing is encoded without room");
        let (batch, closed) = outbox.take();
        assert_eq!((batch, closed), (vec![vec![1], vec![2]], false));
        outbox.close();
        assert_eq!(outbox.try_push_with(|| Some(vec![4])), Err(Refused::Closed));
    }

    struct Probe(std::sync::mpsc::Sender<Result<Vec<u8>, CallError>>);

    impl Waiting for Probe {
        fn complete(self: Box<Self>, result: Result<&[u8], CallError>) {
            let _ = self.0.send(result.map(<[u8]>::to_vec));
        }
        fn abandoned(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_peer_cannot_grow_the_table_of_remote_agent_ids_without_bound() {
        let peer = Peer::connecting(Identifier::from_bytes([3; 32]), 1, ([127, 0, 0, 1], 1).into());
        assert_eq!(peer.id_for(1, 2), peer.id_for(1, 2), "one agent, one id");
        let second = peer.id_for(2, 2);
        assert_eq!(second, peer.id_for(2, 2));
        assert_ne!(
            peer.id_for(3, 2),
            peer.id_for(3, 2),
            "beyond the bound, ids are not kept"
        );
    }

    #[test]
    fn a_peer_cannot_present_credentials_faster_than_its_budget() {
        let link = Link::new(Identifier::from_bytes([2; 32]), 4, 2, 1 << 20, true, 8);
        for _ in 0..CREDENTIAL_BURST {
            assert!(link.take_credential_budget());
        }
        assert!(!link.take_credential_budget(), "the burst is spent");
    }

    #[test]
    fn closing_a_link_fails_every_waiting_call_and_refuses_new_ones() {
        let link = Link::new(Identifier::from_bytes([1; 32]), 4, 2, 1 << 20, true, 8);
        let (tx, rx) = std::sync::mpsc::channel();
        let a = link.wait_for_reply(Box::new(Probe(tx.clone()))).unwrap();
        let _b = link.wait_for_reply(Box::new(Probe(tx.clone()))).unwrap();
        assert!(
            link.wait_for_reply(Box::new(Probe(tx.clone()))).is_none(),
            "bounded"
        );
        assert!(matches!(rx.recv().unwrap(), Err(CallError::Remote(_))));
        link.complete(a, Ok(b"done"));
        assert_eq!(rx.recv().unwrap().unwrap(), b"done");
        link.close();
        assert_eq!(rx.recv().unwrap(), Err(CallError::LinkLost));
        assert!(link.wait_for_reply(Box::new(Probe(tx))).is_none());
        assert_eq!(rx.recv().unwrap(), Err(CallError::LinkLost));
    }
}
