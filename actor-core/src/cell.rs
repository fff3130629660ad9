//! The cell behind every reference: the agent's id, mailbox and lifecycle.
//!
//! The cell outlives any one instance of the agent: the task that runs an instance
//! (`runner`) borrows it, and the state lives in that task. That split is what lets a
//! supervisor run a new instance over the same mailbox after a crash.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};

use tokio::sync::oneshot;

use crate::link::{self, Watch};
use crate::mailbox::{Kill, Mailbox, Signal, Sweep, Wake};
use crate::runner;
use crate::stats::TypeStats;
use crate::supervisor::{Decision, SupShared};
use crate::system::SystemInner;
use crate::{ActorId, ActorRef, Agent, CallError, Context, StopReason};

/// Where a call's reply goes.
#[doc(hidden)]
pub type ReplyTx<A> = oneshot::Sender<Result<<A as Agent>::Reply, CallError>>;

/// One queued message: the generated message value and, for a call, its reply slot.
/// Public only for the node layer (remote targets); not an API.
#[doc(hidden)]
#[allow(missing_debug_implementations)] // holds the user's message, which may not be Debug
pub struct Envelope<A: Agent> {
    /// The message.
    pub msg: A::Msg,
    /// For a call, where the reply goes.
    pub reply: Option<ReplyTx<A>>,
    /// Who sent it, when it came from another node.
    pub caller: Option<Arc<Caller>>,
}

/// Who sent the message being handled, when it came from another node: the node,
/// authenticated by its secure channel. See [`Context::caller`](crate::Context::caller).
///
/// `actor-core` knows no cryptography, so this holds the node's identifier as raw bytes;
/// `troupe::secure::CallerIdentity` (in the prelude) gives it as an `Identifier`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    node: [u8; 32],
    agent: Option<[u8; 32]>,
    /// The trace the message belongs to, when the sender was in one.
    trace: Option<crate::trace::TraceContext>,
}

impl Caller {
    /// The caller on the node whose identifier is `node`. For the node layer.
    #[doc(hidden)]
    pub fn from_node(node: [u8; 32]) -> Caller {
        Caller {
            node,
            agent: None,
            trace: None,
        }
    }

    /// The agent `agent` on the node `node`. For the node layer.
    #[doc(hidden)]
    pub fn from_agent(node: [u8; 32], agent: [u8; 32]) -> Caller {
        Caller {
            node,
            agent: Some(agent),
            trace: None,
        }
    }

    /// The same caller, in the trace `trace` (its span id is the sender's span). For
    /// the node layer.
    #[doc(hidden)]
    pub fn with_trace(mut self, trace: crate::trace::TraceContext) -> Caller {
        self.trace = Some(trace);
        self
    }

    /// The trace context the message came with (W3C `traceparent`), when the sender
    /// was handling a traced message: the handler's own span continues that trace.
    pub fn trace(&self) -> Option<&crate::trace::TraceContext> {
        self.trace.as_ref()
    }

    /// The 32 bytes of the calling node's identifier.
    pub fn node_bytes(&self) -> &[u8; 32] {
        &self.node
    }

    /// The 32 bytes of the calling agent's identifier, when its node named it.
    pub fn agent_bytes(&self) -> Option<&[u8; 32]> {
        self.agent.as_ref()
    }
}

/// The shared, long-lived part of an agent: its mailbox, which also holds the cell's
/// cold fields (see [`Mailbox`] for why).
pub(crate) struct Cell<A: Agent> {
    /// Until the first delivery, the agent itself is parked in the mailbox.
    mailbox: Mailbox<Envelope<A>, Parked<A>, Header<A>>,
}

/// An agent without a task, waiting in its mailbox for a delivery to start one: never
/// started yet, or hibernating (`resume` then says how to continue the same instance).
pub(crate) struct Parked<A> {
    pub(crate) agent: A,
    pub(crate) resume: Option<Resume>,
}

/// What a hibernating instance needs to continue where it stopped (its context is
/// otherwise rebuilt: it had no timers and no children when it hibernated).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resume {
    pub(crate) trap_exits: bool,
}

/// What a cell knows about its agent besides the mailbox; read rarely.
pub(crate) struct Header<A: Agent> {
    system: Arc<SystemInner>,
    id: ActorId,
    slot: u32,
    /// Set when a supervisor owns this agent.
    supervised: Option<Box<Supervised<A>>>,
    /// Counts instances: links belong to the instance that made them.
    generation: AtomicU32,
    /// Registered under a name or in a group at some point: remove it from both when it
    /// stops.
    registered: AtomicBool,
    /// A test injects faults into its messages (`testing::faults`): the message loop
    /// looks them up. (In the header's padding: no cost to other agents.)
    faults: AtomicBool,
    /// Its entry in the system's list of agents with a task, which the hibernation
    /// sweep watches (`hibernate::NOT_WATCHED`: none).
    watch_slot: AtomicU32,
    /// The counters of its type in its system.
    stats: Arc<TypeStats>,
    /// Messages it handled, across restarts (for per-agent message rates).
    handled: AtomicU64,
}

/// How a supervised agent is rebuilt and whom it reports to.
pub(crate) struct Supervised<A> {
    pub(crate) factory: Arc<dyn Fn() -> A + Send + Sync>,
    pub(crate) shared: Weak<SupShared>,
    pub(crate) key: u64,
}

/// What the system, links and monitors need of any cell, whatever its agent type.
pub(crate) trait AnyCell: Send + Sync {
    fn request_stop(self: Arc<Self>, reason: StopReason) -> bool;
    fn deliver(self: Arc<Self>, signal: Signal) -> bool;
    fn kill(self: Arc<Self>) -> bool;
    fn poll_terminated(&self, cx: &mut TaskContext<'_>) -> Poll<()>;
    fn is_terminated(&self) -> bool;
    fn id(&self) -> ActorId;
    /// The agent's type name without its module path.
    fn type_name(&self) -> &'static str;
    /// True when a supervisor owns this agent.
    fn is_supervised(&self) -> bool;
    /// A word for its state (`running`, `idle`, `hibernating`, `not started`, `stopping`).
    fn status(&self) -> &'static str;
    /// One hibernation sweep of this agent; false once it needs no more watching.
    fn sweep(self: Arc<Self>) -> bool;
    /// True while it has a task.
    fn has_task(&self) -> bool;
    /// Its entry in the hibernation watch list.
    fn watch_slot(&self) -> &AtomicU32;
    /// The counters of its type.
    fn type_stats(&self) -> &Arc<TypeStats>;
    /// Messages waiting in its mailbox.
    fn queue_len(&self) -> usize;
    /// Messages it handled so far, across restarts.
    fn handled(&self) -> u64;
}

impl<A: Agent> Cell<A> {
    pub(crate) fn build(
        id: ActorId,
        slot: u32,
        capacity: usize,
        system: Arc<SystemInner>,
        parked: Option<Parked<A>>,
        supervised: Option<Box<Supervised<A>>>,
    ) -> Self {
        let header = Header {
            stats: system.stats.of::<A>(),
            system,
            id,
            slot,
            supervised,
            generation: AtomicU32::new(0),
            registered: AtomicBool::new(false),
            faults: AtomicBool::new(false),
            watch_slot: AtomicU32::new(crate::hibernate::NOT_WATCHED),
            handled: AtomicU64::new(0),
        };
        Cell {
            mailbox: Mailbox::new(capacity, parked, header),
        }
    }

    fn h(&self) -> &Header<A> {
        self.mailbox.header()
    }

    pub(crate) fn id(&self) -> ActorId {
        self.h().id
    }

    /// The counters of its type in its system.
    pub(crate) fn stats(&self) -> &TypeStats {
        &self.h().stats
    }

    /// The agent took `n` messages to handle: counted for its type and for itself.
    /// Returns its type's count before them (see [`TypeStats::took`]).
    #[inline]
    pub(crate) fn took(&self, n: usize) -> u64 {
        let h = self.h();
        h.handled.fetch_add(n as u64, Ordering::Relaxed);
        h.stats.took(n)
    }

    /// Messages taken but given back unhandled (the instance ended first).
    pub(crate) fn gave_back(&self, n: usize) {
        if n > 0 {
            self.h().handled.fetch_sub(n as u64, Ordering::Relaxed);
            self.h().stats.gave_back(n);
        }
    }

    pub(crate) fn generation(&self) -> u32 {
        self.h().generation.load(Ordering::Acquire)
    }

    pub(crate) fn mailbox(&self) -> &Mailbox<Envelope<A>, Parked<A>, Header<A>> {
        &self.mailbox
    }

    pub(crate) fn supervised(&self) -> Option<&Supervised<A>> {
        self.h().supervised.as_deref()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.mailbox.is_closed()
    }

    /// Its task ended as it hibernated.
    pub(crate) fn hibernated(&self) {
        self.h().system.idle.hibernated();
    }

    /// True while a test injects faults into this agent's messages.
    #[inline]
    pub(crate) fn has_faults(&self) -> bool {
        self.h().faults.load(Ordering::Relaxed)
    }

    pub(crate) fn set_faults(&self, on: bool) {
        self.h().faults.store(on, Ordering::Release);
    }

    pub(crate) fn mark_registered(&self) {
        self.h().registered.store(true, Ordering::SeqCst);
    }

    pub(crate) fn watch(&self, watch: Watch) -> Result<(), StopReason> {
        self.mailbox.watch(watch)
    }

    /// Starts (or resumes) an instance of the agent as a task over this cell.
    pub(crate) fn start(self: &Arc<Self>, parked: Parked<A>) {
        let task = runner::in_agent(self.h().id, runner::run(self.task(parked)));
        if let Some(task) = self.h().system.start(task) {
            self.mailbox.set_task(task.abort_handle());
        }
        if self.h().watch_slot.load(Ordering::Acquire) == crate::hibernate::NOT_WATCHED {
            let me: Arc<dyn AnyCell> = self.clone();
            let system = &self.h().system;
            system.idle.watch(system, &me, &self.h().watch_slot);
        }
    }

    /// The state of a task that runs `parked` over this cell.
    fn task(self: &Arc<Self>, parked: Parked<A>) -> runner::Task<A> {
        let myself = ActorRef::from_raw(crate::RawRef::local(self.clone()));
        let ctx = Context::new(myself, crate::System::from_inner(self.h().system.clone()));
        runner::Task::new(parked, ctx)
    }

    fn wake(self: &Arc<Self>, wake: Wake<Parked<A>>) {
        match wake {
            Wake::Nothing => {}
            Wake::Task(w) => w.wake(),
            Wake::Start(agent) => self.start(agent),
        }
    }

    pub(crate) fn try_push(self: &Arc<Self>, env: Envelope<A>) -> Result<(), (Envelope<A>, bool)> {
        let wake = self.mailbox.try_push(env)?;
        self.wake(wake);
        Ok(())
    }

    pub(crate) fn poll_push(
        self: &Arc<Self>,
        cx: &mut TaskContext<'_>,
        slot: &mut Option<Envelope<A>>,
    ) -> Poll<Result<(), Envelope<A>>> {
        match self.mailbox.poll_push(cx, slot) {
            Poll::Ready(Ok(wake)) => {
                self.wake(wake);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(env)) => Poll::Ready(Err(env)),
            Poll::Pending => Poll::Pending,
        }
    }

    pub(crate) fn deliver(self: &Arc<Self>, signal: Signal) -> bool {
        match self.mailbox.signal(signal) {
            Some(wake) => {
                self.wake(wake);
                true
            }
            None => false,
        }
    }

    pub(crate) fn request_stop(self: &Arc<Self>, reason: StopReason) -> bool {
        self.deliver(Signal::Stop(reason))
    }

    /// Ends the running instance at once: its task is aborted wherever it waits, and
    /// the task's clean-up (`runner::Task`'s `Drop`) ends the instance as
    /// [`StopReason::Killed`]. An agent without a task (not started, or hibernating)
    /// goes through the same clean-up at once. False when the agent had already stopped
    /// for good.
    pub(crate) fn kill(self: &Arc<Self>) -> bool {
        match self.mailbox.kill() {
            Kill::Gone => false,
            Kill::Aborted => true,
            Kill::Parked(parked) => {
                // A task that never runs: dropping it is the killed instance's clean-up.
                drop(self.task(parked));
                true
            }
        }
    }

    /// Asks the agent to hibernate if it stayed idle since the last sweep.
    pub(crate) fn sweep(self: &Arc<Self>) -> bool {
        match self.mailbox.sweep() {
            Sweep::Busy => true,
            Sweep::Hibernate(wake) => {
                self.wake(wake);
                true
            }
            Sweep::Gone => false,
        }
    }

    pub(crate) fn poll_terminated(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        self.mailbox.poll_terminated(cx)
    }

    /// Why the agent ended, once it has for good.
    pub(crate) fn final_reason(&self) -> Option<StopReason> {
        self.mailbox.final_reason()
    }

    /// Stops a supervised agent for good while no instance runs: queued calls get
    /// `CallError::Stopped` and the reference stops working.
    pub(crate) fn finalize(&self, reason: &StopReason) {
        drop(self.mailbox.close());
        self.terminate(reason);
    }

    /// An instance ended: advance the generation (links belong to instances), tell the
    /// linked instances, and decide what comes next. `killed` instances are never
    /// restarted in place (their task is gone).
    pub(crate) fn end_instance(&self, reason: &StopReason, killed: bool) -> Decision {
        self.h().generation.fetch_add(1, Ordering::AcqRel);
        if reason.is_abnormal() || killed {
            self.h().stats.crashed();
        }
        if killed {
            tracing::warn!(agent = %self.h().id, "agent killed");
        } else if reason.is_abnormal() {
            match crate::panic::take_location() {
                Some(at) => tracing::error!(agent = %self.h().id, %reason, %at, "agent crashed"),
                None => tracing::error!(agent = %self.h().id, %reason, "agent crashed"),
            }
        }
        link::notify(self.h().id, reason, self.mailbox.take_links());
        let decision = match &self.h().supervised {
            None => Decision::Final,
            Some(s) => match s.shared.upgrade() {
                Some(shared) => shared.decide(s.key, reason, !killed),
                None => Decision::Final,
            },
        };
        if !matches!(decision, Decision::Final) {
            // A stop request was meant for the instance that just ended.
            self.mailbox.clear_stop_signals();
        }
        decision
    }

    /// Tells the supervisor (if any) that this instance's task is done with the cell.
    pub(crate) fn report_exit(&self, reason: StopReason) {
        if let Some(s) = &self.h().supervised {
            if let Some(shared) = s.shared.upgrade() {
                shared.report_exit(s.key, reason);
            }
        }
    }

    /// The agent is gone for good: drop the registry names, tell the monitors, leave the
    /// system's table and wake everyone waiting for the end.
    pub(crate) fn terminate(&self, reason: &StopReason) {
        if self.h().registered.load(Ordering::SeqCst) {
            self.h().system.registry.remove_agent(self.h().id);
            self.h().system.groups.remove_agent(self.h().id);
        }
        if self.has_faults() {
            crate::testing::forget_faults(self.h().id);
        }
        let watchers = self.mailbox.terminate(reason);
        link::notify(self.h().id, reason, watchers);
        self.h().system.idle.forget(&self.h().watch_slot);
        self.h().system.agent_exited(self.h().slot as usize);
        self.mailbox.release_waiters();
    }
}

impl<A: Agent> AnyCell for Cell<A> {
    fn request_stop(self: Arc<Self>, reason: StopReason) -> bool {
        Cell::request_stop(&self, reason)
    }

    fn deliver(self: Arc<Self>, signal: Signal) -> bool {
        Cell::deliver(&self, signal)
    }

    fn kill(self: Arc<Self>) -> bool {
        Cell::kill(&self)
    }

    fn poll_terminated(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        Cell::poll_terminated(self, cx)
    }

    fn is_terminated(&self) -> bool {
        self.mailbox.is_terminated()
    }

    fn id(&self) -> ActorId {
        self.h().id
    }

    fn type_name(&self) -> &'static str {
        crate::actor_ref::short_type_name::<A>()
    }

    fn is_supervised(&self) -> bool {
        self.h().supervised.is_some()
    }

    fn status(&self) -> &'static str {
        self.mailbox.status(|p| {
            if p.resume.is_some() {
                "hibernating"
            } else {
                "not started"
            }
        })
    }

    fn sweep(self: Arc<Self>) -> bool {
        Cell::sweep(&self)
    }

    fn has_task(&self) -> bool {
        self.mailbox.has_task()
    }

    fn watch_slot(&self) -> &AtomicU32 {
        &self.h().watch_slot
    }

    fn type_stats(&self) -> &Arc<TypeStats> {
        &self.h().stats
    }

    fn queue_len(&self) -> usize {
        self.mailbox.len()
    }

    fn handled(&self) -> u64 {
        self.h().handled.load(Ordering::Relaxed)
    }
}

impl<A: Agent> fmt::Debug for Cell<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cell")
            .field("id", &self.h().id)
            .finish_non_exhaustive()
    }
}

/// Builds the cell of a supervised agent; the supervisor starts its instances.
pub(crate) fn new_supervised<A: Agent>(system: &crate::System, hook: Supervised<A>) -> Arc<Cell<A>> {
    let capacity = A::options().mailbox;
    let inner = system.inner();
    inner.track(|slot| {
        Cell::build(
            ActorId::next(),
            slot,
            capacity,
            inner.clone(),
            None,
            Some(Box::new(hook)),
        )
    })
}

/// Builds the cell and registers it with the system. An agent with an `#[on_start]`
/// hook starts at once; any other starts on its first message or signal (until then it
/// is only its cell: nothing it could observe differs, and an idle agent costs no task).
/// The system holds every cell until the agent stops for good, so an agent whose
/// references were all dropped still stops (and runs `#[on_stop]`) at shutdown.
pub(crate) fn spawn<A: Agent>(system: &crate::System, agent: A) -> ActorRef<A> {
    let capacity = A::options().mailbox;
    let inner = system.inner();
    if A::EAGER_START {
        let cell: Arc<Cell<A>> =
            inner.track(|slot| Cell::build(ActorId::next(), slot, capacity, inner.clone(), None, None));
        cell.start(Parked { agent, resume: None });
        ActorRef::from_raw(crate::RawRef::local(cell))
    } else {
        let parked = Parked { agent, resume: None };
        let cell: Arc<Cell<A>> = inner
            .track(|slot| Cell::build(ActorId::next(), slot, capacity, inner.clone(), Some(parked), None));
        ActorRef::from_raw(crate::RawRef::local(cell))
    }
}

/// See [`signal_flag_distance`](crate::mailbox::signal_flag_distance).
#[cfg(test)]
pub(crate) fn signal_flag_distance<A: Agent>() -> usize {
    crate::mailbox::signal_flag_distance::<Envelope<A>, A, Header<A>>()
}
