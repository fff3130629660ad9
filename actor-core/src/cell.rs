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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::sync::oneshot;

use crate::mailbox::{Mailbox, Received, Signal, Wake};
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
    system: Arc<SystemInner>,
    /// Until the first delivery, the agent itself is parked in the mailbox.
    mailbox: Mailbox<Envelope<A>, A>,
}

/// What the system needs of any cell, whatever its agent type.
pub(crate) trait AnyCell: Send + Sync {
    fn request_stop(self: Arc<Self>, reason: StopReason) -> bool;
    fn poll_terminated(&self, cx: &mut TaskContext<'_>) -> Poll<()>;
    fn is_terminated(&self) -> bool;
}

impl<A: Agent> Cell<A> {
    pub(crate) fn new(id: ActorId, slot: usize, capacity: usize, system: Arc<SystemInner>, parked: Option<A>) -> Self {
        Cell {
            id,
            slot,
            registered: AtomicBool::new(false),
            system,
            mailbox: Mailbox::new(capacity, parked),
        }
    }

    pub(crate) fn id(&self) -> ActorId {
        self.id
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.mailbox.is_closed()
    }

    pub(crate) fn mark_registered(&self) {
        self.registered.store(true, Ordering::SeqCst);
    }

    /// Starts the agent's task over this cell.
    pub(crate) fn start(self: &Arc<Self>, agent: A) {
        let myself = ActorRef::from_raw(crate::RawRef::local(self.clone()));
        let ctx = Context::new(myself, crate::System::from_inner(self.system.clone()));
        self.system.start(run(agent, ctx));
    }

    fn wake(self: &Arc<Self>, wake: Wake<A>) {
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

    pub(crate) fn request_stop(self: &Arc<Self>, reason: StopReason) -> bool {
        match self.mailbox.signal(Signal::Stop(reason)) {
            Some(wake) => {
                self.wake(wake);
                true
            }
            None => false,
        }
    }

    pub(crate) fn poll_terminated(&self, cx: &mut TaskContext<'_>) -> Poll<()> {
        self.mailbox.poll_terminated(cx)
    }

    /// The instance is gone for good: drop the registry names, leave the system's
    /// table and wake everyone waiting for the end.
    fn terminate(&self) {
        if self.registered.load(Ordering::SeqCst) {
            self.system.registry.remove_agent(self.id);
        }
        self.mailbox.terminate();
        self.system.agent_exited(self.slot);
    }
}

impl<A: Agent> AnyCell for Cell<A> {
    fn request_stop(self: Arc<Self>, reason: StopReason) -> bool {
        Cell::request_stop(&self, reason)
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
        f.debug_struct("Cell").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Runs one agent from start to stop over its cell, as a task of its own.
pub(crate) async fn run<A: Agent>(mut agent: A, mut ctx: Context<A>) {
    let cell = ctx.cell().clone();
    let mut batch = VecDeque::new();

    let started = CatchUnwind(pin!(agent.on_start(&mut ctx))).await;
    let reason = match started {
        Err(panic) => StopReason::Panicked(panic_message(&*panic)),
        Ok(()) => match ctx.take_stop() {
            Some(reason) => reason,
            None => serve(&mut agent, &mut ctx, &cell, &mut batch).await,
        },
    };

    if reason.is_abnormal() {
        tracing::error!(agent = %cell.id(), %reason, "agent crashed");
    }
    // Close first so that nothing waits on an agent that is going away: queued and
    // unhandled messages are dropped here, which resolves their calls to `Stopped`.
    drop(batch);
    drop(cell.mailbox.close());
    ctx.teardown().await;
    if let Err(panic) = CatchUnwind(pin!(agent.on_stop(&reason, &mut ctx))).await {
        tracing::error!(agent = %cell.id(), panic = %panic_message(&*panic), "on_stop panicked");
    }
    drop(agent);
    drop(ctx);
    cell.terminate();
}

/// Handles messages until a stop: returns why it stopped.
async fn serve<A: Agent>(
    agent: &mut A,
    ctx: &mut Context<A>,
    cell: &Cell<A>,
    batch: &mut VecDeque<Envelope<A>>,
) -> StopReason {
    loop {
        match poll_fn(|cx| cell.mailbox.poll_recv(cx, batch)).await {
            Received::Signal(Signal::Stop(reason)) => return reason,
            Received::Batch => {}
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
            if cell.mailbox.has_signal() {
                if let Some(Signal::Stop(reason)) = cell.mailbox.take_signal() {
                    return reason;
                }
            }
        }
        // Let other tasks on this worker run between batches of a busy agent.
        tokio::task::consume_budget().await;
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

/// Builds the cell and registers it with the system. An agent with an `#[on_start]`
/// hook starts at once; any other starts on its first message or signal (until then it
/// is only its cell: nothing it could observe differs, and an idle agent costs no task).
pub(crate) fn spawn<A: Agent>(system: &crate::System, agent: A) -> ActorRef<A> {
    let capacity = A::options().mailbox;
    let inner = system.inner();
    if A::EAGER_START {
        let cell: Arc<Cell<A>> =
            inner.track(|slot| Cell::new(ActorId::next(), slot, capacity, inner.clone(), None));
        cell.start(agent);
        ActorRef::from_raw(crate::RawRef::local(cell))
    } else {
        let cell: Arc<Cell<A>> =
            inner.track(|slot| Cell::new(ActorId::next(), slot, capacity, inner.clone(), Some(agent)));
        ActorRef::from_raw(crate::RawRef::local(cell))
    }
}
