//! Testing agents: a [`Probe`] stands in for an agent and records what it receives, in
//! the style of Akka's `TestProbe`; [`faults`] makes a live agent crash on its nth
//! message, handle its messages late, or lose some.
//!
//! ```
//! use std::time::Duration;
//! use troupe::prelude::*;
//! use troupe::testing::Probe;
//!
//! #[derive(Default)]
//! pub struct Counter { n: u64 }
//!
//! #[agent]
//! impl Counter {
//!     #[handle] fn add(&mut self, n: u64) { self.n += n; }
//!     #[handle] fn get(&self) -> u64 { self.n }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), troupe::testing::ProbeError> {
//! let mut probe = Probe::<Counter>::new();
//! let counter: ActorRef<Counter> = probe.reference();
//! // Code under test uses `counter` as it would the real agent.
//! tokio::spawn(async move {
//!     let _ = counter.add(2).cast().await;
//!     counter.get().await
//! });
//! let added = probe.expect_cast(Duration::from_secs(1)).await?;
//! assert!(matches!(added, CounterMsg::Add { n: 2 }));
//! let (asked, reply) = probe.expect_call(Duration::from_secs(1)).await?;
//! assert!(matches!(asked, CounterMsg::Get));
//! reply.reply(CounterReply::Get(40));
//! probe.expect_no_message(Duration::from_millis(50)).await?;
//! # Ok(())
//! # }
//! ```

mod faults;

pub(crate) use faults::{delay_of, forget_faults, injected, Injected};
pub use faults::{faults, Faults, INJECTED_CRASH};

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::actor_ref::RemoteTarget;
use crate::cell::{Envelope, ReplyTx};
use crate::{ActorId, ActorRef, Agent, CallError, StopReason};

/// How many messages a probe holds before senders wait (as a full mailbox makes them).
const CAPACITY: usize = 1024;

/// Why a probe's expectation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeError {
    /// Nothing arrived in time.
    Timeout,
    /// Something else arrived than what was expected (what, in words).
    Unexpected(String),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Timeout => f.write_str("nothing arrived in time"),
            ProbeError::Unexpected(what) => write!(f, "unexpected: {what}"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// A stand-in for an agent of type `A`: its [`reference`](Probe::reference) is an
/// ordinary `ActorRef<A>`, and what is sent to it waits in the probe until the test
/// takes it with [`expect_cast`](Probe::expect_cast), [`expect_call`](Probe::expect_call)
/// (which also gives the call's [`Responder`]) or checks that nothing comes with
/// [`expect_no_message`](Probe::expect_no_message). When the probe is dropped, its
/// reference behaves as a stopped agent's: calls fail with `CallError::Stopped`.
pub struct Probe<A: Agent> {
    queue: Arc<Queue<A>>,
    reference: ActorRef<A>,
}

impl<A: Agent> fmt::Debug for Probe<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("agent", &std::any::type_name::<A>())
            .field("queued", &self.queue.state.lock().messages.len())
            .finish()
    }
}

/// A call's reply slot, from [`Probe::expect_call`]: answer it as the agent would.
/// Dropping it unanswered fails the call with `CallError::NoReply`.
pub struct Responder<A: Agent> {
    tx: Option<ReplyTx<A>>,
}

impl<A: Agent> Drop for Responder<A> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(CallError::NoReply));
        }
    }
}

impl<A: Agent> fmt::Debug for Responder<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl<A: Agent> Responder<A> {
    /// Answers the call with `reply` (the agent's generated reply enum, e.g.
    /// `CounterReply::Get(40)`).
    pub fn reply(mut self, reply: A::Reply) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(reply));
        }
    }

    /// Fails the call with `error`, as a crashed or stopped agent would.
    pub fn fail(mut self, error: CallError) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(error));
        }
    }
}

impl<A: Agent> Default for Probe<A> {
    fn default() -> Self {
        Probe::new()
    }
}

impl<A: Agent> Probe<A> {
    /// A new probe with room for 1024 messages.
    pub fn new() -> Probe<A> {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                messages: VecDeque::new(),
                senders: Vec::new(),
                watchers: Vec::new(),
                dropped: false,
            }),
            arrived: Notify::new(),
            id: ActorId::next(),
        });
        let reference = ActorRef::from_remote(Box::new(Target(queue.clone())));
        Probe { queue, reference }
    }

    /// A reference to the probe, to hand to the code under test.
    pub fn reference(&self) -> ActorRef<A> {
        self.reference.clone()
    }

    async fn next(&mut self, within: Duration) -> Result<Envelope<A>, ProbeError> {
        let wait = async {
            loop {
                let arrived = self.queue.arrived.notified();
                if let Some(env) = self.queue.pop() {
                    return env;
                }
                arrived.await;
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .map_err(|_| ProbeError::Timeout)
    }

    /// Waits up to `within` for the next message and expects it to be a cast.
    pub async fn expect_cast(&mut self, within: Duration) -> Result<A::Msg, ProbeError> {
        let env = self.next(within).await?;
        match env.reply {
            None => Ok(env.msg),
            Some(tx) => {
                // The caller is not left waiting.
                let _ = tx.send(Err(CallError::NoReply));
                Err(ProbeError::Unexpected("a call, where a cast was expected".into()))
            }
        }
    }

    /// Waits up to `within` for the next message and expects it to be a call: gives the
    /// message and the [`Responder`] to answer it with.
    pub async fn expect_call(&mut self, within: Duration) -> Result<(A::Msg, Responder<A>), ProbeError> {
        let env = self.next(within).await?;
        match env.reply {
            Some(tx) => Ok((env.msg, Responder { tx: Some(tx) })),
            None => Err(ProbeError::Unexpected("a cast, where a call was expected".into())),
        }
    }

    /// Checks that no message arrives for `within`.
    pub async fn expect_no_message(&mut self, within: Duration) -> Result<(), ProbeError> {
        match self.next(within).await {
            Err(ProbeError::Timeout) => Ok(()),
            Ok(env) => Err(ProbeError::Unexpected(match env.reply {
                Some(tx) => {
                    let _ = tx.send(Err(CallError::NoReply));
                    "a call, where none was expected".into()
                }
                None => "a cast, where none was expected".into(),
            })),
            Err(e) => Err(e),
        }
    }
}

impl<A: Agent> Drop for Probe<A> {
    fn drop(&mut self) {
        // Its reference now behaves as a stopped agent's; what was queued fails.
        let (messages, wakers) = {
            let mut state = self.queue.state.lock();
            state.dropped = true;
            let mut wakers = std::mem::take(&mut state.senders);
            wakers.append(&mut state.watchers);
            (std::mem::take(&mut state.messages), wakers)
        };
        for env in messages {
            if let Some(tx) = env.reply {
                let _ = tx.send(Err(CallError::Stopped));
            }
        }
        for w in wakers {
            w.wake();
        }
    }
}

struct Queue<A: Agent> {
    state: Mutex<QueueState<A>>,
    arrived: Notify,
    id: ActorId,
}

struct QueueState<A: Agent> {
    messages: VecDeque<Envelope<A>>,
    /// Senders waiting for room.
    senders: Vec<Waker>,
    /// Monitors and `stopped()` waiting for the probe to go.
    watchers: Vec<Waker>,
    dropped: bool,
}

impl<A: Agent> Queue<A> {
    fn pop(&self) -> Option<Envelope<A>> {
        let (env, senders) = {
            let mut state = self.state.lock();
            let env = state.messages.pop_front()?;
            (env, std::mem::take(&mut state.senders))
        };
        for w in senders {
            w.wake();
        }
        Some(env)
    }

    fn push(&self, env: Envelope<A>) {
        self.state.lock().messages.push_back(env);
        self.arrived.notify_one();
    }
}

/// The probe's reference target.
struct Target<A: Agent>(Arc<Queue<A>>);

impl<A: Agent> RemoteTarget<A> for Target<A> {
    fn id(&self) -> ActorId {
        self.0.id
    }

    fn is_alive(&self) -> bool {
        !self.0.state.lock().dropped
    }

    fn try_push(&self, env: Envelope<A>) -> Result<(), (Envelope<A>, bool)> {
        {
            let state = self.0.state.lock();
            if state.dropped {
                return Err((env, false));
            }
            if state.messages.len() >= CAPACITY {
                return Err((env, true));
            }
        }
        self.0.push(env);
        Ok(())
    }

    fn poll_push(
        &self,
        cx: &mut TaskContext<'_>,
        slot: &mut Option<Envelope<A>>,
    ) -> Poll<Result<(), Envelope<A>>> {
        {
            let mut state = self.0.state.lock();
            if state.dropped {
                return Poll::Ready(slot.take().map_or(Ok(()), Err));
            }
            if state.messages.len() >= CAPACITY {
                if !state.senders.iter().any(|w| w.will_wake(cx.waker())) {
                    state.senders.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
        }
        if let Some(env) = slot.take() {
            self.0.push(env);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_down(&self, cx: &mut TaskContext<'_>) -> Poll<StopReason> {
        let mut state = self.0.state.lock();
        if state.dropped {
            return Poll::Ready(StopReason::Normal);
        }
        if !state.watchers.iter().any(|w| w.will_wake(cx.waker())) {
            state.watchers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn describe(&self) -> String {
        format!("a probe for {}", std::any::type_name::<A>())
    }

    fn wire(&self) -> crate::protocol::WireRef {
        // A probe is not on any node: its wire name matches no agent anywhere.
        crate::protocol::WireRef {
            node: [0; 32],
            addr: String::new(),
            incarnation: 0,
            slot: 0,
            token: 0,
            fingerprint: 0,
        }
    }

    fn closed_error(&self) -> CallError {
        // A dropped probe is a stopped agent.
        CallError::Stopped
    }

    fn link_from(&self, _from: ActorId) {}

    fn linked_exit(&self, _from: ActorId, _reason: StopReason) {}
}
