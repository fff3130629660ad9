//! The cell behind every reference (id, mailbox, lifecycle) and the loop that runs an
//! agent instance over it.
//!
//! The cell outlives any one instance of the agent: the loop borrows it, and the state
//! lives in the loop's task. That split is what lets a supervisor run a new instance
//! over the same mailbox after a crash.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::link::{self, Down, Watch};
use crate::mailbox::{Mailbox, Received, Signal, Wake};
use crate::supervisor::{Decision, SupShared};
use crate::system::SystemInner;
use crate::{ActorId, ActorRef, Agent, CallError, Context, StopReason};

/// Where a call's reply goes.
pub(crate) type ReplyTx<A> = oneshot::Sender<Result<<A as Agent>::Reply, CallError>>;

/// One queued message: the generated message value and, for a call, its reply slot.
pub(crate) struct Envelope<A: Agent> {
    pub(crate) msg: A::Msg,
    pub(crate) reply: Option<ReplyTx<A>>,
}

/// The shared, long-lived part of an agent.
pub(crate) struct Cell<A: Agent> {
    id: ActorId,
    slot: usize,
    registered: AtomicBool,
    /// Counts instances: links and monitors belong to the instance that made them.
    generation: AtomicU32,
    system: Arc<SystemInner>,
    /// Set when a supervisor owns this agent.
    supervised: Option<Box<Supervised<A>>>,
    /// Until the first delivery, the agent itself is parked in the mailbox.
    mailbox: Mailbox<Envelope<A>, A>,
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
    fn poll_terminated(&self, cx: &mut TaskContext<'_>) -> Poll<()>;
    fn is_terminated(&self) -> bool;
}

impl<A: Agent> Cell<A> {
    fn build(
        id: ActorId,
        slot: usize,
        capacity: usize,
        system: Arc<SystemInner>,
        parked: Option<A>,
        supervised: Option<Box<Supervised<A>>>,
    ) -> Self {
        Cell {
            id,
            slot,
            registered: AtomicBool::new(false),
            generation: AtomicU32::new(0),
            system,
            supervised,
            mailbox: Mailbox::new(capacity, parked),
        }
    }

    pub(crate) fn id(&self) -> ActorId {
        self.id
    }

    pub(crate) fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.mailbox.is_closed()
    }

    pub(crate) fn mark_registered(&self) {
        self.registered.store(true, Ordering::SeqCst);
    }

    pub(crate) fn watch(&self, watch: Watch) -> Result<(), StopReason> {
        self.mailbox.watch(watch)
    }

    /// Starts an instance of the agent as a task over this cell.
    pub(crate) fn start(self: &Arc<Self>, agent: A) -> JoinHandle<()> {
        let myself = ActorRef::from_raw(crate::RawRef::local(self.clone()));
        let ctx = Context::new(myself, crate::System::from_inner(self.system.clone()));
        self.system.start(run(agent, ctx))
    }

    fn wake(self: &Arc<Self>, wake: Wake<A>) {
        match wake {
            Wake::Nothing => {}
            Wake::Task(w) => w.wake(),
            Wake::Start(agent) => drop(self.start(agent)),
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

    pub(crate) fn poll_terminated(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        self.mailbox.poll_terminated(cx)
    }

    /// Stops a supervised agent for good while no instance runs: queued calls get
    /// `CallError::Stopped` and the reference stops working.
    pub(crate) fn finalize(&self, reason: &StopReason) {
        drop(self.mailbox.close());
        self.terminate(reason);
    }

    /// The agent is gone for good: drop the registry names, tell the monitors, leave the
    /// system's table and wake everyone waiting for the end.
    fn terminate(&self, reason: &StopReason) {
        if self.registered.load(Ordering::SeqCst) {
            self.system.registry.remove_agent(self.id);
        }
        let watchers = self.mailbox.terminate(reason);
        link::notify(self.id, reason, watchers);
        self.system.agent_exited(self.slot);
    }
}

impl<A: Agent> AnyCell for Cell<A> {
    fn request_stop(self: Arc<Self>, reason: StopReason) -> bool {
        Cell::request_stop(&self, reason)
    }

    fn deliver(self: Arc<Self>, signal: Signal) -> bool {
        Cell::deliver(&self, signal)
    }

    fn poll_terminated(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        Cell::poll_terminated(self, cx)
    }

    fn is_terminated(&self) -> bool {
        self.mailbox.is_terminated()
    }
}

impl<A: Agent> fmt::Debug for Cell<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cell")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Runs an agent over its cell, instance after instance when a supervisor restarts it
/// in place, until it stops for good or its supervisor takes over.
pub(crate) async fn run<A: Agent>(agent: A, mut ctx: Context<A>) {
    let cell = ctx.cell().clone();
    let mut batch = VecDeque::new();
    let mut agent: Result<A, StopReason> = Ok(agent);
    loop {
        // The generation changes only when an instance ends, so a link or monitor made
        // before this instance got to run still belongs to it.
        let generation = cell.generation();
        let reason = match &mut agent {
            Ok(agent) => instance(agent, &mut ctx, &cell, &mut batch, generation).await,
            Err(failed_start) => failed_start.clone(),
        };
        cell.generation.fetch_add(1, Ordering::AcqRel);
        if reason.is_abnormal() {
            tracing::error!(agent = %cell.id(), %reason, "agent crashed");
        }
        // Links belong to the instance that just ended.
        link::notify(cell.id(), &reason, cell.mailbox.take_links());

        let decision = match &cell.supervised {
            None => Decision::Final,
            Some(s) => match s.shared.upgrade() {
                Some(shared) => shared.decide(s.key, &reason),
                None => Decision::Final,
            },
        };
        if matches!(decision, Decision::Final) {
            // Close first so that nothing waits on an agent that is going away: queued
            // and unhandled messages are dropped here, which resolves their calls to
            // `Stopped`.
            drop(std::mem::take(&mut batch));
            drop(cell.mailbox.close());
        }
        Box::pin(ctx.teardown()).await;
        if let Ok(agent) = &mut agent {
            if let Err(panic) = CatchUnwind(Box::pin(agent.on_stop(&reason, &mut ctx)).as_mut()).await {
                tracing::error!(agent = %cell.id(), panic = %panic_message(&*panic), "on_stop panicked");
            }
        }
        match decision {
            Decision::Final => {
                drop(agent);
                drop(ctx);
                cell.terminate(&reason);
                return;
            }
            Decision::Suspend => {
                // The rest of the batch goes back, in order, for the next instance.
                cell.mailbox.requeue_front(std::mem::take(&mut batch));
                drop(agent);
                drop(ctx);
                if let Some(s) = &cell.supervised {
                    if let Some(shared) = s.shared.upgrade() {
                        shared.report_exit(s.key, reason);
                    }
                }
                return;
            }
            Decision::RestartInPlace => {
                let Some(s) = &cell.supervised else { return };
                agent = catch_unwind(AssertUnwindSafe(|| (s.factory)()))
                    .map_err(|p| StopReason::Panicked(panic_message(&*p)));
            }
        }
    }
}

/// Runs one instance: `on_start`, then messages and signals until it stops.
async fn instance<A: Agent>(
    agent: &mut A,
    ctx: &mut Context<A>,
    cell: &Cell<A>,
    batch: &mut VecDeque<Envelope<A>>,
    generation: u32,
) -> StopReason {
    ctx.begin_instance(generation);
    // Rare paths (start, signals, stop) are boxed so that an idle agent's task holds
    // only what the message loop needs.
    if let Err(panic) = CatchUnwind(Box::pin(agent.on_start(ctx)).as_mut()).await {
        return StopReason::Panicked(panic_message(&*panic));
    }
    if let Some(reason) = ctx.take_stop() {
        return reason;
    }
    loop {
        // After an in-place restart the batch still holds the crashed instance's
        // unhandled messages: they come first.
        if batch.is_empty() {
            match poll_fn(|cx| cell.mailbox.poll_recv(cx, batch)).await {
                Received::Signal(signal) => {
                    if let Some(reason) = Box::pin(on_signal(agent, ctx, signal, generation)).await {
                        return reason;
                    }
                    continue;
                }
                Received::Batch => {}
            }
        }
        while let Some(Envelope { msg, reply }) = batch.pop_front() {
            match CatchUnwind(pin!(agent.handle(msg, ctx))).await {
                Ok(value) => {
                    if let Some(tx) = reply {
                        let _ = tx.send(Ok(value));
                    }
                }
                Err(panic) => {
                    if let Some(tx) = reply {
                        let _ = tx.send(Err(CallError::Panicked));
                    }
                    return StopReason::Panicked(panic_message(&*panic));
                }
            }
            if let Some(reason) = ctx.take_stop() {
                return reason;
            }
            while cell.mailbox.has_signal() {
                let Some(signal) = cell.mailbox.take_signal() else {
                    break;
                };
                if let Some(reason) = Box::pin(on_signal(agent, ctx, signal, generation)).await {
                    return reason;
                }
            }
        }
        // Let other tasks on this worker run between batches of a busy agent.
        tokio::task::consume_budget().await;
    }
}

/// Handles one signal; returns a reason when the instance must stop.
async fn on_signal<A: Agent>(
    agent: &mut A,
    ctx: &mut Context<A>,
    signal: Signal,
    generation: u32,
) -> Option<StopReason> {
    let notice = match signal {
        Signal::Stop(reason) => return Some(reason),
        Signal::Down {
            notice,
            generation: g,
        } => {
            if g != generation {
                return None;
            }
            notice
        }
        Signal::Exit {
            from,
            reason,
            generation: g,
        } => {
            if g != generation {
                return None;
            }
            if !ctx.traps_exits() {
                return reason.is_abnormal().then_some(StopReason::Linked(from));
            }
            Down {
                id: from,
                reason,
                linked: true,
            }
        }
    };
    let outcome = CatchUnwind(pin!(agent.on_down(notice, ctx))).await;
    match outcome {
        Ok(()) => ctx.take_stop(),
        Err(panic) => Some(StopReason::Panicked(panic_message(&*panic))),
    }
}

/// Polls a future, turning a panic inside it into an `Err` with the panic payload.
struct CatchUnwind<'a, F>(Pin<&'a mut F>);

impl<F: Future> Future for CatchUnwind<'_, F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(move || fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
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
pub(crate) fn spawn<A: Agent>(system: &crate::System, agent: A) -> ActorRef<A> {
    let capacity = A::options().mailbox;
    let inner = system.inner();
    if A::EAGER_START {
        let cell: Arc<Cell<A>> =
            inner.track(|slot| Cell::build(ActorId::next(), slot, capacity, inner.clone(), None, None));
        drop(cell.start(agent));
        ActorRef::from_raw(crate::RawRef::local(cell))
    } else {
        let cell: Arc<Cell<A>> = inner
            .track(|slot| Cell::build(ActorId::next(), slot, capacity, inner.clone(), Some(agent), None));
        ActorRef::from_raw(crate::RawRef::local(cell))
    }
}

#[cfg(test)]
mod footprint {
    use super::*;

    /// Memory per agent is a headline number: a tiny agent's cell and task future stay
    /// within these bounds (rare paths are boxed; see `instance`).
    #[tokio::test]
    async fn a_tiny_agents_cell_and_task_stay_small() {
        struct Tiny;
        #[derive(Clone)]
        struct TinyClient(crate::RawRef<Tiny>);
        impl crate::actor_ref::AgentClient<Tiny> for TinyClient {
            fn troupe_from_raw(raw: crate::RawRef<Tiny>) -> Self {
                TinyClient(raw)
            }
            fn troupe_raw(&self) -> &crate::RawRef<Tiny> {
                &self.0
            }
        }
        impl Agent for Tiny {
            type Msg = u64;
            type Reply = u64;
            type Client = TinyClient;
            async fn handle(&mut self, m: u64, _: &mut Context<Self>) -> u64 {
                m
            }
        }
        let system = crate::System::new();
        let cell: Arc<Cell<Tiny>> = system
            .inner()
            .track(|slot| Cell::build(ActorId::next(), slot, 4, system.inner().clone(), None, None));
        let myself = ActorRef::from_raw(crate::RawRef::local(cell.clone()));
        let ctx = Context::new(myself, system.clone());
        let mut batch = VecDeque::new();
        let mut ctx2 = Context::new(
            ActorRef::from_raw(crate::RawRef::local(cell.clone())),
            system.clone(),
        );
        let mut t = Tiny;
        let inst = instance(&mut t, &mut ctx2, &cell, &mut batch, 0);
        let fut = run(Tiny, ctx);
        assert!(std::mem::size_of::<Cell<Tiny>>() <= 160);
        assert!(std::mem::size_of_val(&inst) <= 256);
        assert!(std::mem::size_of_val(&fut) <= 448);
        assert!(std::mem::size_of::<Context<Tiny>>() <= 48);
    }
}
