//! [`Request`]: what a generated client method returns, to be awaited (call), cast, or
//! configured first.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::actor_ref::{AgentClient, Lease, RawRef};
use crate::cell::{Envelope, ReplyTx};
use crate::{ActorRef, Agent, CallError, SendError};

/// One message to an agent, not sent yet.
///
/// - `.await` it to **call**: wait until the handler ran and get its return value;
/// - `.cast().await` to **cast**: enqueue it (waiting only for mailbox room) and go on;
/// - `.try_cast()` to cast without ever waiting (fails when the mailbox is full);
/// - `.timeout(d)` first to bound the wait: a call then fails with
///   [`CallError::Timeout`], a cast with [`SendError::Full`].
///
/// Without a timeout, a call waits as long as the agent lives: it never hangs on a
/// stopped or crashed agent (it gets [`CallError::Stopped`] or [`CallError::Panicked`]).
///
/// A request is itself the future of its call, and it owns its target (one reference
/// count), so it can be moved anywhere: `tokio::spawn(worker.run(job))`, a `Vec` of
/// calls for `join_all`, a `JoinSet`, all without cloning references by hand.
#[must_use = "a request does nothing until it is awaited, cast or try_cast"]
pub struct Request<A: Agent, R> {
    target: Lease<A>,
    /// The message until it is enqueued.
    msg: Option<A::Msg>,
    extract: fn(A::Reply) -> Option<R>,
    timeout: Option<Duration>,
    /// The call's state once it was first polled (nothing to drop for a cast).
    call: Option<Call<A>>,
}

/// A started call.
struct Call<A: Agent> {
    /// The reply slot, until the message is enqueued with it.
    tx: Option<ReplyTx<A>>,
    rx: oneshot::Receiver<Result<A::Reply, CallError>>,
    deadline: Option<Pin<Box<Sleep>>>,
}

// No field is structurally pinned: the sleep is boxed and the rest is moved freely.
impl<A: Agent, R> Unpin for Request<A, R> {}

impl<A: Agent, R> Request<A, R> {
    /// Used by generated clients.
    #[doc(hidden)]
    #[inline]
    pub fn new(target: &RawRef<A>, msg: A::Msg, extract: fn(A::Reply) -> Option<R>) -> Self {
        Request {
            target: Lease::new(target),
            msg: Some(msg),
            extract,
            timeout: None,
            call: None,
        }
    }

    /// Bounds the whole request (waiting for mailbox room and, for a call, the reply).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The message this request carries (e.g. to schedule it with a timer). `None` once
    /// the request was polled and the message sent.
    pub fn into_message(self) -> Option<A::Msg> {
        self.msg
    }

    /// Enqueues the message without waiting for it to be handled. Waits while the mailbox
    /// is full (at most the timeout, if one was set).
    #[inline]
    pub fn cast(self) -> Cast<A> {
        let Request {
            target,
            msg,
            timeout,
            call,
            ..
        } = self;
        if let Some(call) = call {
            drop_started(call);
        }
        Cast {
            pending: msg.map(|msg| Envelope {
                msg,
                reply: None,
                caller: None,
            }),
            target,
            timeout,
            deadline: None,
        }
    }

    /// Enqueues the message if there is room right now.
    #[inline]
    pub fn try_cast(self) -> Result<(), SendError<A::Msg>> {
        let Some(msg) = self.msg else {
            return Ok(());
        };
        self.target
            .try_push(Envelope {
                msg,
                reply: None,
                caller: None,
            })
            .map_err(|(env, full)| {
                if full {
                    SendError::Full(env.msg)
                } else {
                    SendError::Closed(env.msg)
                }
            })
    }
}

/// Polling a request makes the call: resolves to the handler's return value.
impl<A: Agent, R> Future for Request<A, R> {
    type Output = Result<R, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.call.is_none() {
            if this.msg.is_none() {
                return Poll::Ready(Err(CallError::Stopped));
            }
            let own = this.target.id();
            if own.is_some() && crate::runner::current_agent() == own {
                // The agent would wait for itself: fail now rather than deadlock.
                this.msg = None;
                return Poll::Ready(Err(CallError::CallingSelf));
            }
            let (tx, rx) = oneshot::channel();
            this.call = Some(Call {
                tx: Some(tx),
                rx,
                deadline: this.timeout.take().map(|d| Box::pin(tokio::time::sleep(d))),
            });
        }
        let Some(call) = &mut this.call else {
            return Poll::Ready(Err(CallError::Stopped));
        };
        if let Some(msg) = this.msg.take() {
            let mut slot = Some(Envelope {
                msg,
                caller: None,
                reply: call.tx.take(),
            });
            match this.target.poll_push(cx, &mut slot) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_closed)) => {
                    // For an agent on another node, "closed" means its link is gone.
                    return Poll::Ready(Err(this
                        .target
                        .remote()
                        .map_or(CallError::Stopped, |r| r.closed_error())));
                }
                Poll::Pending => {
                    // The mailbox is full: keep the message for the next try.
                    if let Some(env) = slot {
                        this.msg = Some(env.msg);
                        call.tx = env.reply;
                    }
                    return call.poll_deadline(cx, &this.target);
                }
            }
        }
        match Pin::new(&mut call.rx).poll(cx) {
            Poll::Ready(Ok(Ok(reply))) => Poll::Ready((this.extract)(reply).ok_or(CallError::BadReply)),
            Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
            Poll::Ready(Err(_dropped)) => Poll::Ready(Err(CallError::Stopped)),
            Poll::Pending => call.poll_deadline(cx, &this.target),
        }
    }
}

/// A request polled as a call, then cast: rare, kept off the casts' hot path.
#[cold]
#[inline(never)]
fn drop_started<A: Agent>(call: Call<A>) {
    drop(call);
}

impl<A: Agent> Call<A> {
    fn poll_deadline<T>(&mut self, cx: &mut Context<'_>, target: &RawRef<A>) -> Poll<Result<T, CallError>> {
        if let Some(sleep) = &mut self.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                if let Some(cell) = target.local_cell() {
                    cell.stats().timed_out();
                }
                return Poll::Ready(Err(CallError::Timeout));
            }
        }
        Poll::Pending
    }
}

impl<A: Agent, R> fmt::Debug for Request<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("target", &*self.target)
            .field("timeout", &self.timeout)
            .field("sent", &self.msg.is_none())
            .finish_non_exhaustive()
    }
}

/// A cast on its way into a mailbox (from [`Request::cast`]): resolves once the message
/// is enqueued, or gives it back in the error.
#[must_use = "futures do nothing unless polled"]
pub struct Cast<A: Agent> {
    target: Lease<A>,
    pending: Option<Envelope<A>>,
    timeout: Option<Duration>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<A: Agent> Unpin for Cast<A> {}

impl<A: Agent> Future for Cast<A> {
    type Output = Result<(), SendError<A::Msg>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.target.poll_push(cx, &mut this.pending) {
            Poll::Ready(r) => Poll::Ready(r.map_err(|env| SendError::Closed(env.msg))),
            Poll::Pending => {
                // Full mailbox: wait for room, at most the timeout.
                if let Some(d) = this.timeout.take() {
                    this.deadline = Some(Box::pin(tokio::time::sleep(d)));
                }
                if let Some(sleep) = &mut this.deadline {
                    if sleep.as_mut().poll(cx).is_ready() {
                        if let Some(env) = this.pending.take() {
                            return Poll::Ready(Err(SendError::Full(env.msg)));
                        }
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<A: Agent> fmt::Debug for Cast<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cast")
            .field("target", &*self.target)
            .field("sent", &self.pending.is_none())
            .finish_non_exhaustive()
    }
}

/// The receiver of a call's reply, as [`deliver`] returns it.
#[doc(hidden)]
pub type ReplyRx<A> = oneshot::Receiver<Result<<A as Agent>::Reply, CallError>>;

/// Enqueues `msg` for `target`, waiting for mailbox room, in order with every other
/// message this caller enqueued before; for a call (`call` true) returns the receiver of
/// the reply. The handler sees `caller` in [`Context::caller`](crate::Context::caller).
/// Gives the message back if the agent has stopped. For the node layer, which delivers
/// messages that arrived from other nodes. Not an API.
#[doc(hidden)]
pub async fn deliver<A: Agent>(
    target: &ActorRef<A>,
    msg: A::Msg,
    call: bool,
    caller: Option<std::sync::Arc<crate::Caller>>,
) -> Result<Option<ReplyRx<A>>, A::Msg> {
    let (reply, rx) = if call {
        let (tx, rx) = oneshot::channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let cast = Cast {
        target: Lease::new(std::ops::Deref::deref(target).troupe_raw()),
        pending: Some(Envelope { msg, reply, caller }),
        timeout: None,
        deadline: None,
    };
    match cast.await {
        Ok(()) => Ok(rx),
        Err(SendError::Closed(msg) | SendError::Full(msg)) => Err(msg),
    }
}

/// Casts a message value to an agent (used by timers): the same `Cast` a request makes.
pub(crate) fn cast_msg<A: Agent>(target: &ActorRef<A>, msg: A::Msg) -> Cast<A> {
    Cast {
        target: Lease::new(std::ops::Deref::deref(target).troupe_raw()),
        pending: Some(Envelope {
            msg,
            reply: None,
            caller: None,
        }),
        timeout: None,
        deadline: None,
    }
}
