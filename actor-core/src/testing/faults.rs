//! Fault injection: make a live agent crash on its nth message, handle its messages
//! late, or lose some of them, to test how the agents around it cope.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use crate::cell::ReplyTx;
use crate::{ActorId, ActorRef, Agent};

/// The panic message of a crash that [`Faults::crash_on_nth`] injects (what the call
/// gets in `CallError::Panicked`, and the agent's `StopReason::Panicked`).
pub const INJECTED_CRASH: &str = "injected crash (testing::faults)";

/// The faults planned for one agent.
#[derive(Default)]
struct Plan {
    /// Crash on the message that brings this to 0 (1: the next one).
    crash_in: Option<u32>,
    /// Each message waits this long before its handler runs.
    delay: Option<Duration>,
    /// Drop this many of the next messages.
    drop_next: u32,
    dropped: u64,
    /// The reply slots of dropped calls, kept so that their callers wait (a lost
    /// message is never answered); released by `clear` or when the agent stops.
    held: Vec<Box<dyn Any + Send>>,
}

type Plans = Mutex<HashMap<ActorId, Arc<Mutex<Plan>>>>;

/// Plans by agent; an agent's cell has a flag set while it has one, so the message
/// loop looks here only then.
fn plans() -> &'static Plans {
    static PLANS: OnceLock<Plans> = OnceLock::new();
    PLANS.get_or_init(Plans::default)
}

/// What the message loop does with the next message of an agent with faults.
#[derive(Debug)]
pub(crate) enum Injected {
    Nothing,
    Drop,
    /// Handle it after the plan's delay ([`delay_of`]).
    Delay,
    Crash,
}

/// The delay planned for agent `id`'s messages.
pub(crate) fn delay_of(id: ActorId) -> Option<Duration> {
    let plan = plans().lock().get(&id).cloned()?;
    let delay = plan.lock().delay;
    delay
}

/// Decides the fate of the next message of agent `id`, and gives its reply slot back
/// (a dropped call's is held instead).
pub(crate) fn injected<A: Agent>(id: ActorId, reply: Option<ReplyTx<A>>) -> (Injected, Option<ReplyTx<A>>) {
    let Some(plan) = plans().lock().get(&id).cloned() else {
        return (Injected::Nothing, reply);
    };
    let mut plan = plan.lock();
    if plan.drop_next > 0 {
        plan.drop_next -= 1;
        plan.dropped += 1;
        if let Some(tx) = reply {
            plan.held.push(Box::new(tx));
        }
        return (Injected::Drop, None);
    }
    if let Some(n) = plan.crash_in {
        if n <= 1 {
            plan.crash_in = None;
            return (Injected::Crash, reply);
        }
        plan.crash_in = Some(n - 1);
    }
    match plan.delay {
        Some(_) => (Injected::Delay, reply),
        None => (Injected::Nothing, reply),
    }
}

/// The agent `id` stopped for good: its plan goes (held calls then fail with
/// `CallError::Stopped`).
pub(crate) fn forget_faults(id: ActorId) {
    let plan = plans().lock().remove(&id);
    drop(plan);
}

/// The faults of one local agent, from [`faults`]: each setting applies to the
/// messages the agent takes from now on, until [`clear`](Faults::clear) or until the
/// agent stops for good. A supervised agent keeps its faults across restarts (they
/// belong to its reference, as its mailbox does).
///
/// Agents without faults pay nothing for this (a flag in the cell's padding, read once
/// per message).
pub struct Faults {
    id: ActorId,
    plan: Arc<Mutex<Plan>>,
    cell: Arc<dyn FaultFlag>,
}

/// The cell's flag, whatever the agent type.
trait FaultFlag: Send + Sync {
    fn set(&self, on: bool);
}

impl<A: Agent> FaultFlag for crate::cell::Cell<A> {
    fn set(&self, on: bool) {
        self.set_faults(on);
    }
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.plan.lock();
        f.debug_struct("Faults")
            .field("agent", &self.id)
            .field("crash_in", &plan.crash_in)
            .field("delay", &plan.delay)
            .field("drop_next", &plan.drop_next)
            .field("dropped", &plan.dropped)
            .finish()
    }
}

/// Injects faults into the messages of a local agent (in tests).
///
/// ```
/// use std::time::Duration;
/// use troupe::prelude::*;
/// use troupe::testing::{faults, INJECTED_CRASH};
///
/// #[derive(Default)]
/// pub struct Counter { n: u64 }
///
/// #[agent]
/// impl Counter {
///     #[handle] fn add(&mut self, n: u64) { self.n += n; }
///     #[handle] fn get(&self) -> u64 { self.n }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let _quiet = troupe::quiet_agent_panics();
/// let system = System::new();
/// let counter = system.spawn(Counter::default());
/// faults(&counter).drop_next(1).crash_on_nth(2);
/// counter.add(1).cast().await.unwrap(); // lost
/// counter.add(2).await.unwrap();        // the first message that arrives
/// assert_eq!(counter.get().await, Err(CallError::Panicked(INJECTED_CRASH.into())));
/// # system.shutdown().await;
/// # }
/// ```
///
/// # Panics
///
/// When `agent` is not a local agent (a pool, a [`Probe`](super::Probe), or an agent
/// on another node): their messages do not go through a local agent's loop.
pub fn faults<A: Agent>(agent: &ActorRef<A>) -> Faults {
    let Some(cell) = agent.local_cell() else {
        panic!("testing::faults: {agent:?} is not a local agent");
    };
    let id = cell.id();
    let plan = plans().lock().entry(id).or_default().clone();
    Faults {
        id,
        plan,
        cell: cell.clone(),
    }
}

impl Faults {
    fn change(&self, f: impl FnOnce(&mut Plan)) -> &Self {
        f(&mut self.plan.lock());
        // Back in the table (after a `clear`) before the flag says to look there.
        plans().lock().entry(self.id).or_insert_with(|| self.plan.clone());
        self.cell.set(true);
        self
    }

    /// The agent's `n`th message from now (1: the next one) crashes it instead of being
    /// handled, as a panic in its handler would: a call gets
    /// `CallError::Panicked(INJECTED_CRASH)`, the instance ends with
    /// `StopReason::Panicked`, and its supervisor (if any) decides. Once.
    pub fn crash_on_nth(&self, n: u32) -> &Self {
        self.change(|p| p.crash_in = Some(n.max(1)))
    }

    /// Every message waits `d` (on tokio's clock, so paused time skips it) before its
    /// handler runs; the messages behind it wait in the mailbox meanwhile. `ZERO` ends
    /// the delay.
    pub fn delay(&self, d: Duration) -> &Self {
        self.change(|p| p.delay = (!d.is_zero()).then_some(d))
    }

    /// The next `n` messages are lost: not handled, and a call among them is never
    /// answered (its caller waits, so give it a `.timeout(d)`; it fails with
    /// `CallError::Stopped` once the faults are cleared or the agent stops).
    pub fn drop_next(&self, n: u32) -> &Self {
        self.change(|p| p.drop_next = n)
    }

    /// How many messages were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.plan.lock().dropped
    }

    /// Removes every fault: the agent handles its messages normally again, and the
    /// calls held by dropped messages fail with `CallError::Stopped`.
    pub fn clear(&self) {
        self.cell.set(false);
        let removed = plans().lock().remove(&self.id);
        let held = {
            let mut plan = self.plan.lock();
            *plan = Plan {
                dropped: plan.dropped,
                ..Plan::default()
            };
            std::mem::take(&mut plan.held)
        };
        drop((removed, held));
    }
}
