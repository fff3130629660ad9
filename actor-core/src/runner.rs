//! The task that runs an agent: instance after instance over its cell, the message
//! loop, signals, and catching panics.

use std::any::Any;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::task::{Context as TaskContext, Poll};

use tracing::{Instrument, Span};

use crate::cell::{Caller, Cell, Envelope, Parked, Resume};
use crate::link::Down;
use crate::mailbox::{Received, Signal};
use crate::stats::{self, TypeStats};
use crate::supervisor::Decision;
use crate::testing::Injected;
use crate::trace::{TraceContext, WithTrace};
use crate::{ActorId, Agent, CallError, Context, StopReason};

/// Everything an agent's task owns besides the cell.
///
/// If the task is dropped before it finished (it was aborted by `kill`, by a supervisor
/// after a shutdown timeout, or the runtime went away), dropping this ends the instance
/// as [`StopReason::Killed`]: timers are cancelled, children are asked to stop, links
/// and monitors are told, and the messages the instance had taken but not handled go
/// back to the front of the mailbox for the next instance (supervised) or are answered
/// `Stopped` (for good). `#[on_stop]` does not run for a killed instance.
pub(crate) struct Task<A: Agent> {
    ctx: Context<A>,
    batch: VecDeque<Envelope<A>>,
    /// `Err`: the factory panicked, so this instance failed to start. (Rare values are
    /// boxed: this struct lives in every agent's task.)
    agent: Option<Result<A, Box<StopReason>>>,
    /// Set once an instance has ended, while `on_stop` and clean-up run.
    ending: Option<Box<(Decision, StopReason)>>,
    /// The instance continues after hibernating (no `on_start`).
    resume: Option<Resume>,
    finished: bool,
}

impl<A: Agent> Task<A> {
    pub(crate) fn new(parked: Parked<A>, ctx: Context<A>) -> Self {
        Task {
            ctx,
            batch: VecDeque::new(),
            agent: Some(Ok(parked.agent)),
            ending: None,
            resume: parked.resume,
            finished: false,
        }
    }
}

/// How an instance's message loop ended.
enum Outcome {
    /// The instance is over.
    Ended(StopReason),
    /// Idle long enough: give back the task if the agent can be parked.
    Hibernate,
}

/// Runs an agent over its cell, instance after instance when a supervisor restarts it
/// in place, until it stops for good or its supervisor takes over.
#[allow(clippy::manual_async_fn)] // on purpose: see the comment below
pub(crate) fn run<A: Agent>(mut task: Task<A>) -> impl Future<Output = ()> + Send {
    // An async block rather than an `async fn`: the task is used where it was captured
    // instead of being copied into the future a second time.
    async move {
        let cell = task.ctx.cell().clone();
        loop {
            // The generation changes only when an instance ends, so a link made before this
            // instance got to run still belongs to it.
            let generation = cell.generation();
            let resume = task.resume.take();
            let outcome = match &mut task.agent {
                Some(Ok(agent)) => {
                    instance(agent, &mut task.ctx, &cell, &mut task.batch, generation, resume).await
                }
                Some(Err(failed_start)) => Outcome::Ended((**failed_start).clone()),
                None => Outcome::Ended(StopReason::Killed),
            };
            let reason = match outcome {
                Outcome::Ended(reason) => reason,
                Outcome::Hibernate => {
                    if task.hibernate(&cell) {
                        cell.hibernated();
                        return;
                    }
                    continue;
                }
            };
            let decision = cell.end_instance(&reason, false);
            if matches!(decision, Decision::Final) {
                // Close first so that nothing waits on an agent that is going away: queued
                // and unhandled messages are dropped here, which resolves their calls to
                // `Stopped`.
                cell.gave_back(task.batch.len());
                drop(std::mem::take(&mut task.batch));
                drop(cell.mailbox().close());
            }
            task.ending = Some(Box::new((decision, reason.clone())));
            Box::pin(task.ctx.teardown()).await;
            if let Some(Ok(agent)) = &mut task.agent {
                if let Err(panic) =
                    CatchUnwind::new(Box::pin(agent.on_stop(&reason, &mut task.ctx)).as_mut()).await
                {
                    tracing::error!(agent = %cell.id(), panic = %panic_message(&*panic), "on_stop panicked");
                }
            }
            // Timers and children that `on_stop` itself started do not outlive it.
            Box::pin(task.ctx.teardown()).await;
            match decision {
                Decision::Final | Decision::Suspend => {
                    task.finished = true;
                    task.finish(decision, reason);
                    return;
                }
                Decision::RestartInPlace => {
                    task.ending = None;
                    let Some(s) = cell.supervised() else { return };
                    let next = catch_unwind(AssertUnwindSafe(|| (s.factory)()))
                        .map_err(|p| Box::new(StopReason::Panicked(panic_message(&*p))));
                    if let Some(Ok(old)) = task.agent.replace(next) {
                        drop_agent(cell.id(), old);
                    }
                }
            }
        }
    }
}

impl<A: Agent> Task<A> {
    /// Parks the agent back in its mailbox and lets the task end, when nothing would be
    /// lost: no timers or children of its own, no stop pending, nothing queued. Else it
    /// stays, and the same instance goes on (`resume` is set for the next turn).
    fn hibernate(&mut self, cell: &Cell<A>) -> bool {
        let resume = Resume {
            trap_exits: self.ctx.traps_exits(),
        };
        self.resume = Some(resume);
        if !self.batch.is_empty() || !self.ctx.can_hibernate() {
            return false;
        }
        let Some(Ok(agent)) = self.agent.take() else {
            return false;
        };
        match cell.mailbox().hibernate(Parked {
            agent,
            resume: Some(resume),
        }) {
            Ok(()) => {
                self.finished = true;
                true
            }
            Err(parked) => {
                self.agent = Some(Ok(parked.agent));
                false
            }
        }
    }

    /// The instance is over and the task lets go of the cell: for good (`Final`), or
    /// handing the mailbox back to the supervisor (`Suspend`).
    fn finish(&mut self, decision: Decision, reason: StopReason) {
        let cell = self.ctx.cell().clone();
        if let Some(Ok(agent)) = self.agent.take() {
            drop_agent(cell.id(), agent);
        }
        // Messages taken but not handled were counted as handled: not any more.
        cell.gave_back(self.batch.len());
        if matches!(decision, Decision::Final) {
            drop(std::mem::take(&mut self.batch));
            drop(cell.mailbox().close());
            cell.terminate(&reason);
        } else {
            // The rest of the batch goes back, in order, for the next instance.
            cell.mailbox().requeue_front(std::mem::take(&mut self.batch));
            cell.mailbox().clear_task();
        }
        cell.report_exit(reason);
    }
}

impl<A: Agent> Drop for Task<A> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let cell = self.ctx.cell().clone();
        let (decision, reason) = match self.ending.take().map(|b| *b) {
            Some((d @ (Decision::Final | Decision::Suspend), reason)) => (d, reason),
            // Killed while running, or between two instances of an in-place restart.
            _ => (cell.end_instance(&StopReason::Killed, true), StopReason::Killed),
        };
        self.ctx.teardown_now();
        let decision = match decision {
            Decision::RestartInPlace => Decision::Suspend,
            d => d,
        };
        self.finish(decision, reason);
    }
}

/// Drops an agent's state; a panic in its `Drop` is logged, not propagated.
pub(crate) fn drop_agent<A>(id: crate::ActorId, agent: A) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(agent))) {
        tracing::error!(agent = %id, panic = %panic_message(&*panic), "dropping the agent panicked");
    }
}

/// Runs one instance: `on_start`, then messages and signals until it stops.
async fn instance<A: Agent>(
    agent: &mut A,
    ctx: &mut Context<A>,
    cell: &Cell<A>,
    batch: &mut VecDeque<Envelope<A>>,
    generation: u32,
    resume: Option<Resume>,
) -> Outcome {
    ctx.begin_instance(generation);
    match resume {
        // Back from hibernation: the same instance goes on.
        Some(resume) => ctx.trap_exits(resume.trap_exits),
        None => {
            if generation > 0 {
                // An instance ended before this one: a restart.
                cell.stats().restarted();
            }
            // Rare paths (start, signals, stop) are boxed so that an idle agent's task
            // holds only what the message loop needs.
            if let Err(panic) = CatchUnwind::new(Box::pin(agent.on_start(ctx)).as_mut()).await {
                return Outcome::Ended(StopReason::Panicked(panic_message(&*panic)));
            }
            if let Some(reason) = ctx.take_stop() {
                return Outcome::Ended(reason);
            }
        }
    }
    // The count of messages of this type before the current batch, modulo
    // `SAMPLE_EVERY`: decides which messages are timed (see `TypeStats::timed`).
    let mut base: u8 = 0;
    loop {
        // After an in-place restart the batch still holds the crashed instance's
        // unhandled messages: they come first.
        if batch.is_empty() {
            match poll_fn(|cx| cell.mailbox().poll_recv(cx, batch)).await {
                Received::Signal(Signal::Hibernate) => return Outcome::Hibernate,
                Received::Signal(signal) => {
                    if let Some(reason) = Box::pin(on_signal(agent, ctx, signal, generation)).await {
                        return Outcome::Ended(reason);
                    }
                    continue;
                }
                Received::Batch => base = (cell.took(batch.len()) % stats::SAMPLE_EVERY) as u8,
            }
        }
        while let Some(Envelope { msg, reply, caller }) = batch.pop_front() {
            // The reply slot waits in the context: a `Reply<T>` handler takes it from there.
            ctx.set_reply(reply);
            ctx.set_caller(caller);
            // Traced only when a subscriber wants the span: otherwise this costs a relaxed
            // load and a compare (tracing's cached callsite interest). The traced path is
            // boxed, so that an untraced agent's task stays as small as it was.
            let started = if TypeStats::timed(base.into(), batch.len()) {
                stats::now_ns()
            } else {
                0
            };
            // The rare path (traced, or faults a test injects with `testing::faults`) is
            // boxed; the common one pays a flag and tracing's interest check. (Deciding
            // the faults here, before the reply slot went to the context, cost 15
            // instructions per message on `tell`.)
            let faulty = cell.has_faults();
            let handled = if faulty || tracing::enabled!(target: HANDLE_TARGET, tracing::Level::DEBUG) {
                match traced(agent, msg, ctx, cell.id(), faulty).await {
                    Slow::Handled(handled) => handled,
                    // The call's reply slot waits in the fault plan: the caller gets no
                    // answer, as if the message were lost.
                    Slow::Dropped => {
                        ctx.set_caller(None);
                        continue;
                    }
                    // The call (if any) was answered with the crash.
                    Slow::Crashed => {
                        ctx.set_caller(None);
                        return Outcome::Ended(StopReason::Panicked(
                            crate::testing::INJECTED_CRASH.to_owned(),
                        ));
                    }
                }
            } else {
                CatchUnwind::new(pin!(agent.handle(msg, ctx))).await
            };
            if started != 0 {
                cell.stats().sample(stats::now_ns().saturating_sub(started));
            }
            // Hooks and the next message must not see this message's caller.
            ctx.set_caller(None);
            match handled {
                Ok(Some(value)) => {
                    if let Some(tx) = ctx.take_reply() {
                        let _ = tx.send(Ok(value));
                    }
                }
                Ok(None) => {}
                Err(panic) => {
                    let message = panic_message(&*panic);
                    if let Some(tx) = ctx.take_reply() {
                        let _ = tx.send(Err(CallError::Panicked(bounded(&message))));
                    }
                    return Outcome::Ended(StopReason::Panicked(message));
                }
            }
            if let Some(reason) = ctx.take_stop() {
                return Outcome::Ended(reason);
            }
            while cell.mailbox().has_signal() {
                let Some(signal) = cell.mailbox().take_signal() else {
                    break;
                };
                if let Some(reason) = Box::pin(on_signal(agent, ctx, signal, generation)).await {
                    return Outcome::Ended(reason);
                }
            }
        }
        // Let other tasks on this worker run between batches of a busy agent.
        tokio::task::consume_budget().await;
    }
}

/// The target of the span around each handled message (see [`handle_span`]).
pub(crate) const HANDLE_TARGET: &str = "troupe::handle";

/// The `troupe::handle` span (level `DEBUG`) around the handling of `msg`: fields
/// `agent` (the type's name), `id` (the agent's id), `handler` (the `#[handle]`
/// method), `trace_id` and `span_id` (W3C, hex: see [`crate::trace`]), and, for a
/// message from another node, `caller_node` and `caller_agent` (identifiers, as
/// `troupe::secure::Identifier` prints them) and `parent_span_id` when it came in a
/// trace; `panic`, recorded when the handler panicked, holds the panic's message.
/// `Span::none()` unless a subscriber enables it.
fn handle_span<A: Agent>(id: ActorId, msg: &A::Msg, caller: Option<&Caller>, trace: &TraceContext) -> Span {
    tracing::debug_span!(
        target: HANDLE_TARGET,
        "handle",
        agent = crate::actor_ref::short_type_name::<A>(),
        id = %id,
        handler = A::handler_name(msg),
        caller_node = caller.map(|c| tracing::field::display(IdText(c.node_bytes()))),
        caller_agent = caller.and_then(|c| c.agent_bytes()).map(|a| tracing::field::display(IdText(a))),
        trace_id = %trace.trace_id_hex(),
        span_id = %trace.span_id_hex(),
        parent_span_id = caller.and_then(|c| c.trace()).map(|t| tracing::field::display(t.span_id_hex())),
        panic = tracing::field::Empty,
    )
}

/// A handler's reply, or the payload of its panic.
type Handled<A> = Result<Option<<A as Agent>::Reply>, Box<dyn Any + Send>>;

/// Handles `msg` inside its `troupe::handle` span, after an injected delay if any (the
/// message loop's rare path, boxed so that it takes one word in an agent's task).
#[inline(never)]
fn traced<'a, A: Agent>(
    agent: &'a mut A,
    msg: A::Msg,
    ctx: &'a mut Context<A>,
    id: ActorId,
    faulty: bool,
) -> Pin<Box<dyn Future<Output = Slow<A>> + Send + 'a>> {
    let mut delayed = false;
    if faulty {
        match crate::testing::injected::<A>(id, ctx.take_reply()) {
            (Injected::Nothing, reply) => ctx.set_reply(reply),
            (Injected::Delay, reply) => {
                ctx.set_reply(reply);
                delayed = true;
            }
            (Injected::Drop, _) => return Box::pin(std::future::ready(Slow::Dropped)),
            (Injected::Crash, reply) => {
                if let Some(tx) = reply {
                    let _ = tx.send(Err(CallError::Panicked(
                        crate::testing::INJECTED_CRASH.to_owned(),
                    )));
                }
                return Box::pin(std::future::ready(Slow::Crashed));
            }
        }
    }
    // The caller's trace goes on, or a new one starts (only for an enabled span).
    let trace = match ctx.caller().and_then(Caller::trace) {
        Some(parent) => parent.child(),
        None => TraceContext::new_root(),
    };
    let span = handle_span::<A>(id, &msg, ctx.caller(), &trace);
    Box::pin(async move {
        if let Some(d) = delayed.then(|| crate::testing::delay_of(id)).flatten() {
            tokio::time::sleep(d).await;
        }
        if span.is_none() {
            return Slow::Handled(CatchUnwind::new(pin!(agent.handle(msg, ctx))).await);
        }
        let recorder = span.clone();
        let mut handling = pin!(agent.handle(msg, ctx).instrument(span));
        let handled = CatchUnwind::new(pin!(WithTrace {
            fut: handling.as_mut(),
            trace,
        }))
        .await;
        if let Err(panic) = &handled {
            recorder.record("panic", tracing::field::display(panic_message(&**panic)));
        }
        Slow::Handled(handled)
    })
}

/// What the message loop's rare path did with a message.
enum Slow<A: Agent> {
    /// Handled (traced, or after an injected delay).
    Handled(Handled<A>),
    /// An injected fault dropped it.
    Dropped,
    /// An injected fault crashed the agent on it.
    Crashed,
}

/// An identifier's 32 bytes as text: `I` and lower-case hex, as `Identifier` prints.
struct IdText<'a>(&'a [u8; 32]);

impl std::fmt::Display for IdText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("I")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
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
        // Only an idle agent hibernates; one that got messages since goes on.
        Signal::Hibernate => return None,
        // Monitors belong to the agent, not to one instance: a restarted watcher still
        // gets the notice.
        Signal::Down { notice } => notice,
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
    let outcome = CatchUnwind::new(pin!(agent.on_down(notice, ctx))).await;
    match outcome {
        Ok(()) => ctx.take_stop(),
        Err(panic) => Some(StopReason::Panicked(panic_message(&*panic))),
    }
}

tokio::task_local! {
    /// The agent whose task is being polled (set for the whole task, once per poll).
    static CURRENT: ActorId;
}

/// The agent whose task is running here, if any.
pub(crate) fn current_agent() -> Option<ActorId> {
    CURRENT.try_with(|id| *id).ok()
}

/// Runs an agent's task knowing which agent it runs for (see [`current_agent`]).
pub(crate) fn in_agent<F: Future>(id: ActorId, task: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(id, task)
}

/// Polls a future, turning a panic inside it into an `Err` with the panic payload.
struct CatchUnwind<'a, F> {
    fut: Pin<&'a mut F>,
}

impl<'a, F> CatchUnwind<'a, F> {
    #[inline]
    fn new(fut: Pin<&'a mut F>) -> Self {
        CatchUnwind { fut }
    }
}

impl<F: Future> Future for CatchUnwind<'_, F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let fut = self.fut.as_mut();
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

/// Longest panic message a caller receives in [`CallError::Panicked`] (the agent's log
/// has the whole message).
pub(crate) const PANIC_MESSAGE_MAX: usize = 256;

/// `message`, cut to at most [`PANIC_MESSAGE_MAX`] bytes on a character boundary.
pub(crate) fn bounded(message: &str) -> String {
    if message.len() <= PANIC_MESSAGE_MAX {
        return message.to_owned();
    }
    let mut end = PANIC_MESSAGE_MAX - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = message[..end].to_owned();
    out.push('…');
    out
}

#[cfg(test)]
mod footprint {
    use super::*;
    use crate::cell::Cell;
    use crate::ActorRef;
    use std::sync::Arc;

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
            async fn handle(&mut self, m: u64, _: &mut Context<Self>) -> Option<u64> {
                Some(m)
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
        let inst = instance(&mut t, &mut ctx2, &cell, &mut batch, 0, None);
        let fut = run(Task::new(
            Parked {
                agent: Tiny,
                resume: None,
            },
            ctx,
        ));
        // 152 since per-type stats (a pointer in the header): with the `Arc` counts and
        // malloc's header that is still a 176-byte chunk, as 144 was. (The per-agent
        // message count took the room of a `u32` capacity.)
        assert!(std::mem::size_of::<Cell<Tiny>>() <= 152);
        // The agent's per-message signal check never shares a cache line with what a
        // sender writes (see `Mailbox`).
        assert!(crate::cell::signal_flag_distance::<Tiny>() >= 64);
        assert!(std::mem::size_of_val(&inst) <= 256);
        // 464 since the handling time sample (a start time held across the handler's
        // await); a task exists only while its agent is busy (idle agents hibernate).
        assert!(std::mem::size_of_val(&fut) <= 464);
        // The reply slot of the message being handled lives in the context, and a
        // reference is two words (one agent, or a pool).
        assert!(std::mem::size_of::<Context<Tiny>>() <= 64);
    }
}
