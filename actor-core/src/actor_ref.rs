//! [`ActorRef`], the handle to an agent, and the raw reference the typed client wraps.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::cell::{Cell, Envelope};
use crate::pool::Router;
use crate::Agent;

/// The stable identity of one agent within a process.
///
/// Ids are never reused; a restarted agent (under supervision) keeps its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActorId(u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ActorId {
    pub(crate) fn next() -> Self {
        ActorId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number (unique within this process).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// A new id, for a reference standing for an agent on another node. Not an API.
    #[doc(hidden)]
    pub fn fresh() -> Self {
        ActorId::next()
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Implemented by the typed client that `#[agent]` generates. Not for direct use.
#[doc(hidden)]
pub trait AgentClient<A: Agent>: Clone + Send + Sync + 'static {
    fn troupe_from_raw(raw: RawRef<A>) -> Self;
    fn troupe_raw(&self) -> &RawRef<A>;
}

/// Where the messages of a reference go.
///
/// One agent of this process, a pool's router that picks one of its workers per
/// message, or an agent on another node (behind the same generated client).
enum Target<A: Agent> {
    Local(Arc<Cell<A>>),
    Pool(Arc<Router<A>>),
    /// Boxed inside the `Arc` so that the pointer stays thin: a reference is two words,
    /// whatever it points at.
    Remote(Arc<Box<dyn RemoteTarget<A>>>),
}

/// An agent on another node, as the node layer (`troupe::secure::Node`) implements it:
/// `actor-core` knows nothing of networks, it only hands envelopes over. Not an API for
/// applications.
#[doc(hidden)]
pub trait RemoteTarget<A: Agent>: Send + Sync + 'static {
    /// A process-unique id standing for the remote agent here (equality, hashing,
    /// monitors).
    fn id(&self) -> ActorId;
    /// False once the link to the agent's node is lost.
    fn is_alive(&self) -> bool;
    /// Hands the envelope over if there is room now; on failure gives it back, with
    /// `true` when the link's queue is full and `false` when the link is gone.
    fn try_push(&self, env: Envelope<A>) -> Result<(), (Envelope<A>, bool)>;
    /// Hands the envelope in `slot` over, waiting for room; `Err` when the link is gone.
    fn poll_push(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<Envelope<A>>,
    ) -> Poll<Result<(), Envelope<A>>>;
    /// Ready once the agent is gone for good: with its reason when its node says it
    /// stopped, with [`StopReason::NodeLost`] when the link to its node is lost. The
    /// first poll may ask the node to watch the agent.
    fn poll_down(&self, cx: &mut Context<'_>) -> Poll<crate::StopReason>;
    /// For `Debug`: where the agent is.
    fn describe(&self) -> String;
    /// How the node layer names this agent on the wire.
    fn wire(&self) -> crate::protocol::WireRef;
    /// The local agent `from` linked itself to this agent: its node is told.
    fn link_from(&self, from: ActorId);
    /// The local agent `from`, linked to this agent, ended with `reason`.
    fn linked_exit(&self, from: ActorId, reason: crate::StopReason);
    /// What a call gets when the target no longer takes messages (for an agent on
    /// another node: its link is gone).
    fn closed_error(&self) -> crate::CallError {
        crate::CallError::LinkLost
    }
}

/// The untyped core of a reference; generated clients wrap it. Not for direct use.
#[doc(hidden)]
pub struct RawRef<A: Agent> {
    target: Target<A>,
}

impl<A: Agent> Clone for RawRef<A> {
    fn clone(&self) -> Self {
        RawRef {
            target: match &self.target {
                Target::Local(cell) => Target::Local(cell.clone()),
                Target::Pool(router) => Target::Pool(router.clone()),
                Target::Remote(remote) => Target::Remote(remote.clone()),
            },
        }
    }
}

impl<A: Agent> RawRef<A> {
    pub(crate) fn local(cell: Arc<Cell<A>>) -> Self {
        RawRef {
            target: Target::Local(cell),
        }
    }

    pub(crate) fn pool(router: Arc<Router<A>>) -> Self {
        RawRef {
            target: Target::Pool(router),
        }
    }

    /// The one local agent this reference points at (none for a pool or a remote agent).
    pub(crate) fn local_cell(&self) -> Option<&Arc<Cell<A>>> {
        match &self.target {
            Target::Local(cell) => Some(cell),
            Target::Pool(_) | Target::Remote(_) => None,
        }
    }

    /// The id of the one local agent this reference points at (none for a pool or a
    /// remote agent). For hand-written clients (`troupe::mcp::McpClient`). Not an API.
    #[doc(hidden)]
    pub fn local_id(&self) -> Option<ActorId> {
        self.local_cell().map(|cell| cell.id())
    }

    /// The agent on another node this reference points at, if it does.
    pub(crate) fn remote(&self) -> Option<&Arc<Box<dyn RemoteTarget<A>>>> {
        match &self.target {
            Target::Remote(remote) => Some(remote),
            Target::Local(_) | Target::Pool(_) => None,
        }
    }

    /// The id of the local agent this reference points at (none for a pool or a remote
    /// agent: a call to a remote agent never waits on the calling agent's own mailbox).
    pub(crate) fn id(&self) -> Option<ActorId> {
        self.local_cell().map(|c| c.id())
    }

    pub(crate) fn try_push(&self, env: Envelope<A>) -> Result<(), (Envelope<A>, bool)> {
        match &self.target {
            Target::Local(cell) => cell.try_push(env),
            Target::Pool(router) => router.try_push(env),
            Target::Remote(remote) => remote.try_push(env),
        }
    }

    pub(crate) fn poll_push(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<Envelope<A>>,
    ) -> Poll<Result<(), Envelope<A>>> {
        match &self.target {
            Target::Local(cell) => cell.poll_push(cx, slot),
            Target::Pool(router) => router.poll_push(cx, slot),
            Target::Remote(remote) => remote.poll_push(cx, slot),
        }
    }
}

thread_local! {
    /// Spare reference counts of one agent per thread: those of the last agent this
    /// thread finished requests to. A sender that keeps sending to the same agent takes
    /// one back for its next request instead of incrementing and decrementing the
    /// agent's shared count for every request (two atomic read-modify-writes, contended
    /// when several threads send to one agent). Several are kept so that requests
    /// waiting for mailbox room do not empty it. A thread keeps at most `SPARES` counts
    /// of one agent, which may keep that agent's cell allocated a little longer.
    static SPARE: RefCell<Vec<Arc<dyn Any + Send + Sync>>> = const { RefCell::new(Vec::new()) };
}

/// How many counts of its last target a thread keeps.
const SPARES: usize = 32;

/// The reference a request holds: a counted reference to its target, taken from (and
/// given back to) this thread's spares when it can.
pub(crate) struct Lease<A: Agent>(Option<RawRef<A>>);

impl<A: Agent> Lease<A> {
    #[inline]
    pub(crate) fn new(raw: &RawRef<A>) -> Self {
        match Self::from_spare(raw) {
            Some(lease) => lease,
            None => Lease(Some(raw.clone())),
        }
    }

    /// One of this thread's spare counts, when they are for `raw`'s agent.
    #[inline]
    fn from_spare(raw: &RawRef<A>) -> Option<Self> {
        let Target::Local(cell) = &raw.target else {
            return None;
        };
        let spare = SPARE
            .try_with(|s| {
                let mut s = s.try_borrow_mut().ok()?;
                let same = s
                    .last()
                    .is_some_and(|a| std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(cell)));
                if same {
                    s.pop()
                } else {
                    None
                }
            })
            .ok()
            .flatten()?;
        spare
            .downcast::<Cell<A>>()
            .ok()
            .map(|cell| Lease(Some(RawRef::local(cell))))
    }
}

impl<A: Agent> std::ops::Deref for Lease<A> {
    type Target = RawRef<A>;

    fn deref(&self) -> &RawRef<A> {
        // Always `Some` until dropped.
        match &self.0 {
            Some(raw) => raw,
            None => unreachable!("a lease is only emptied by its own drop"),
        }
    }
}

impl<A: Agent> Drop for Lease<A> {
    #[inline]
    fn drop(&mut self) {
        let Some(RawRef {
            target: Target::Local(cell),
        }) = self.0.take()
        else {
            return;
        };
        let any: Arc<dyn Any + Send + Sync> = cell;
        // Counts that cannot be kept are dropped after the borrow ends (dropping a cell
        // may run an agent's `Drop`, which may send).
        let _leftover = SPARE.try_with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else {
                return vec![any];
            };
            let same = s
                .first()
                .is_none_or(|a| std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(&any)));
            if !same {
                return std::mem::replace(&mut *s, vec![any]);
            }
            if s.len() < SPARES {
                s.push(any);
                Vec::new()
            } else {
                vec![any]
            }
        });
    }
}

/// A reference to an agent: cheap to clone, `Send + Sync`, comparable and hashable by
/// the agent's [`ActorId`].
///
/// It dereferences to the client that `#[agent]` generates, so it has one method per
/// handler: `counter.add(2).await?`, `counter.get().await?`, `counter.add(1).cast().await?`.
pub struct ActorRef<A: Agent> {
    client: A::Client,
}

impl<A: Agent> ActorRef<A> {
    pub(crate) fn from_raw(raw: RawRef<A>) -> Self {
        ActorRef {
            client: A::Client::troupe_from_raw(raw),
        }
    }

    /// A reference to an agent on another node, for the node layer. Not an API.
    #[doc(hidden)]
    pub fn from_remote(target: Box<dyn RemoteTarget<A>>) -> Self {
        ActorRef::from_raw(RawRef {
            target: Target::Remote(Arc::new(target)),
        })
    }

    fn raw(&self) -> &RawRef<A> {
        self.client.troupe_raw()
    }

    /// The local agent's cell; `None` for an agent on another node.
    pub(crate) fn local_cell(&self) -> Option<&Arc<Cell<A>>> {
        self.raw().local_cell()
    }

    pub(crate) fn remote(&self) -> Option<&Arc<Box<dyn RemoteTarget<A>>>> {
        self.raw().remote()
    }

    /// The local agent's cell. Only for references known to be local (an agent's own
    /// reference, a supervisor's child, a pool's worker).
    pub(crate) fn cell(&self) -> &Arc<Cell<A>> {
        match self.raw().local_cell() {
            Some(cell) => cell,
            None => unreachable!("only called on references to local agents"),
        }
    }

    /// The agent's stable id (for an agent on another node, an id that stands for it in
    /// this process).
    pub fn id(&self) -> ActorId {
        match &self.raw().target {
            Target::Local(cell) => cell.id(),
            Target::Remote(remote) => remote.id(),
            Target::Pool(_) => unreachable!("an ActorRef points at one agent"),
        }
    }

    /// True when the reference points at an agent on another node.
    pub fn is_remote(&self) -> bool {
        self.remote().is_some()
    }

    /// True until the agent has stopped and its mailbox is closed (for an agent on
    /// another node: until the link to its node is lost, or its node said it stopped,
    /// which it does once the agent is watched).
    pub fn is_alive(&self) -> bool {
        match &self.raw().target {
            Target::Local(cell) => !cell.is_closed(),
            Target::Remote(remote) => remote.is_alive(),
            Target::Pool(_) => unreachable!("an ActorRef points at one agent"),
        }
    }

    /// Asks the agent to stop after the message it is handling; messages still queued
    /// are not handled (their callers get [`CallError::Stopped`](crate::CallError::Stopped)).
    /// Returns false when it had already stopped.
    ///
    /// This waits for nothing: await [`stopped`](ActorRef::stopped) to know it is gone,
    /// bounded with `tokio::time::timeout` and followed by [`kill`](ActorRef::kill) if a
    /// handler may hang. A supervised agent is stopped for the instance only: a
    /// `Permanent` child is restarted (use
    /// [`SupervisorRef::terminate_child`](crate::SupervisorRef::terminate_child) to remove
    /// it for good).
    ///
    /// An agent on another node is stopped on its own node: this returns false for it.
    pub fn stop_gracefully(&self) -> bool {
        self.local_cell()
            .is_some_and(|cell| cell.request_stop(crate::StopReason::Normal))
    }

    /// Kills the agent at once, as OTP's `exit(Pid, kill)`: its task is aborted wherever
    /// it waits (a handler stuck in an `.await` included), `#[on_stop]` does not run, calls
    /// queued behind it get [`CallError::Stopped`](crate::CallError::Stopped), and links
    /// and monitors see [`StopReason::Killed`](crate::StopReason::Killed). Timers are
    /// cancelled and children started with `ctx.spawn` are asked to stop.
    ///
    /// A supervised agent counts a kill as a crash: its supervisor restarts it (the
    /// reference and the queued messages survive). A handler that never yields (a
    /// blocking loop) cannot be aborted until it does. Returns false when the agent had
    /// already stopped for good; [`stopped`](ActorRef::stopped) resolves once it is gone.
    ///
    /// An agent on another node cannot be killed from here: this returns false for it.
    pub fn kill(&self) -> bool {
        self.local_cell().is_some_and(|cell| cell.kill())
    }

    /// Resolves once the agent has stopped and its `#[on_stop]` hook has run (for an
    /// agent on another node: once its node says so, or the link to its node is lost).
    pub async fn stopped(&self) {
        match &self.raw().target {
            Target::Local(cell) => std::future::poll_fn(|cx| cell.poll_terminated(cx)).await,
            Target::Remote(remote) => {
                std::future::poll_fn(|cx| remote.poll_down(cx)).await;
            }
            Target::Pool(_) => unreachable!("an ActorRef points at one agent"),
        }
    }
}

impl<A: Agent> Deref for ActorRef<A> {
    type Target = A::Client;

    fn deref(&self) -> &A::Client {
        &self.client
    }
}

impl<A: Agent> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        ActorRef {
            client: self.client.clone(),
        }
    }
}

impl<A: Agent> PartialEq for ActorRef<A> {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl<A: Agent> Eq for ActorRef<A> {}

impl<A: Agent> Hash for ActorRef<A> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl<A: Agent> fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorRef<{}>({})", short_type_name::<A>(), self.id())
    }
}

impl<A: Agent> fmt::Debug for RawRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Local(cell) => write!(f, "RawRef<{}>({})", short_type_name::<A>(), cell.id()),
            Target::Pool(router) => write!(f, "Pool<{}>({} workers)", short_type_name::<A>(), router.len()),
            Target::Remote(remote) => write!(
                f,
                "RawRef<{}>({} at {})",
                short_type_name::<A>(),
                remote.id(),
                remote.describe()
            ),
        }
    }
}

/// The type name without its module path (`Counter` rather than `my_app::Counter`).
pub(crate) fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    match base.rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}
