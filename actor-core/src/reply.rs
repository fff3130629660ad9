//! [`Reply`]: a call's reply slot, taken by a handler to answer later.

use std::fmt;

use crate::cell::ReplyTx;
use crate::{Agent, CallError, Context};

/// The reply slot of a call, for a handler that answers later: from another task, or
/// while handling another message. The agent is free to handle other messages
/// meanwhile (gen_server's `noreply` + `gen_server:reply`).
///
/// A handler takes it by declaring a `Reply<T>` parameter and returning nothing; callers
/// see no difference: the client method still returns `T` when awaited.
///
/// ```
/// use std::time::Duration;
/// use troupe::prelude::*;
///
/// pub struct Planner;
///
/// #[agent]
/// impl Planner {
///     /// Plans in the background; the planner takes the next request at once.
///     #[handle]
///     fn plan(&mut self, task: String, reply: Reply<String>) {
///         tokio::spawn(async move {
///             tokio::time::sleep(Duration::from_millis(10)).await;
///             reply.send(format!("plan for {task}"));
///         });
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> troupe::Result<()> {
/// let system = System::new();
/// let planner = system.spawn(Planner);
/// assert_eq!(planner.plan("dinner".into()).await?, "plan for dinner");
/// # system.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// Dropping it without answering resolves the call to [`CallError::NoReply`] (or
/// [`CallError::Panicked`] when it is dropped by a panic): a call never hangs on a lost
/// reply. For a message that was cast rather than called, nobody waits and
/// [`send`](Reply::send) does nothing.
#[must_use = "the caller waits for this reply: send it, or drop it to fail the call"]
pub struct Reply<T> {
    sink: Option<Box<dyn Sink<T>>>,
}

/// Where a reply of type `T` goes: the call's slot, with the agent's reply enum wrapped
/// around the value.
trait Sink<T>: Send {
    fn send(self: Box<Self>, value: Result<T, CallError>) -> bool;
    fn is_closed(&self) -> bool;
}

struct Slot<A: Agent, T> {
    tx: ReplyTx<A>,
    wrap: fn(T) -> A::Reply,
}

impl<A: Agent, T: Send> Sink<T> for Slot<A, T> {
    fn send(self: Box<Self>, value: Result<T, CallError>) -> bool {
        self.tx.send(value.map(self.wrap)).is_ok()
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<T: Send + 'static> Reply<T> {
    /// Takes the reply slot of the message being handled (used by generated code).
    #[doc(hidden)]
    pub fn __from_ctx<A: Agent>(ctx: &mut Context<A>, wrap: fn(T) -> A::Reply) -> Self {
        Reply {
            sink: ctx
                .take_reply()
                .map(|tx| Box::new(Slot::<A, T> { tx, wrap }) as Box<dyn Sink<T>>),
        }
    }

    /// Answers the call. False when nobody waits for the answer any more: the caller
    /// timed out or gave up, or the message was cast.
    pub fn send(mut self, value: T) -> bool {
        match self.sink.take() {
            Some(sink) => sink.send(Ok(value)),
            None => false,
        }
    }

    /// Fails the call with `error` instead of answering it.
    pub fn fail(mut self, error: CallError) -> bool {
        match self.sink.take() {
            Some(sink) => sink.send(Err(error)),
            None => false,
        }
    }

    /// True when nobody waits for the answer (any more): worth checking before
    /// expensive work.
    pub fn is_closed(&self) -> bool {
        self.sink.as_ref().is_none_or(|s| s.is_closed())
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            let error = if std::thread::panicking() {
                CallError::Panicked("the handler panicked before replying".to_owned())
            } else {
                CallError::NoReply
            };
            sink.send(Err(error));
        }
    }
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("waiting", &self.sink.as_ref().is_some_and(|s| !s.is_closed()))
            .finish()
    }
}
