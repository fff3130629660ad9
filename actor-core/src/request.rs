//! [`Request`]: what a generated client method returns, to be awaited (call), cast, or
//! configured first.

use std::fmt;
use std::future::{poll_fn, Future};
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
    /// The reply slot of a call that started but could not be enqueued yet.
    tx: Option<ReplyTx<A>>,
    /// Where the reply arrives, once the call started.
    rx: Option<oneshot::Receiver<Result<A::Reply, CallError>>>,
    extract: fn(A::Reply) -> Option<R>,
    timeout: Option<Duration>,
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
            tx: None,
            rx: None,
            extract,
            timeout: None,
            deadline: None,
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
    pub async fn cast(self) -> Result<(), SendError<A::Msg>> {
        let Request {
            target, msg, timeout, ..
        } = self;
        let send = CastFuture {
            target: &target,
            pending: msg.map(|msg| Envelope { msg, reply: None }),
        };
        match timeout {
            None => send.await,
            Some(d) => {
                let mut send = std::pin::pin!(send);
                match tokio::time::timeout(d, send.as_mut()).await {
                    Ok(r) => r,
                    Err(_) => match send.take_message() {
                        Some(msg) => Err(SendError::Full(msg)),
                        None => Ok(()),
                    },
                }
            }
        }
    }

    /// Enqueues the message if there is room right now.
    #[inline]
    pub fn try_cast(self) -> Result<(), SendError<A::Msg>> {
        let Some(msg) = self.msg else {
            return Ok(());
        };
        self.target
            .try_push(Envelope { msg, reply: None })
            .map_err(|(env, full)| {
                if full {
                    SendError::Full(env.msg)
                } else {
                    SendError::Closed(env.msg)
                }
            })
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Result<R, CallError>> {
        if let Some(sleep) = &mut self.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(CallError::Timeout));
            }
        }
        Poll::Pending
    }
}

/// Polling a request makes the call: resolves to the handler's return value.
impl<A: Agent, R> Future for Request<A, R> {
    type Output = Result<R, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.rx.is_none() {
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
            this.tx = Some(tx);
            this.rx = Some(rx);
            if let Some(d) = this.timeout.take() {
                this.deadline = Some(Box::pin(tokio::time::sleep(d)));
            }
        }
        if let Some(msg) = this.msg.take() {
            let mut slot = Some(Envelope {
                msg,
                reply: this.tx.take(),
            });
            match this.target.poll_push(cx, &mut slot) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_closed)) => return Poll::Ready(Err(CallError::Stopped)),
                Poll::Pending => {
                    // The mailbox is full: keep the message for the next try.
                    if let Some(env) = slot {
                        this.msg = Some(env.msg);
                        this.tx = env.reply;
                    }
                    return this.poll_deadline(cx);
                }
            }
        }
        let Some(rx) = &mut this.rx else {
            return Poll::Ready(Err(CallError::Stopped));
        };
        match Pin::new(rx).poll(cx) {
            Poll::Ready(Ok(Ok(reply))) => Poll::Ready((this.extract)(reply).ok_or(CallError::BadReply)),
            Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
            Poll::Ready(Err(_dropped)) => Poll::Ready(Err(CallError::Stopped)),
            Poll::Pending => this.poll_deadline(cx),
        }
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

/// A cast in progress; keeps the message until it is enqueued.
struct CastFuture<'a, A: Agent> {
    target: &'a RawRef<A>,
    pending: Option<Envelope<A>>,
}

impl<A: Agent> Unpin for CastFuture<'_, A> {}

impl<A: Agent> CastFuture<'_, A> {
    /// The message if it was not enqueued yet.
    fn take_message(self: Pin<&mut Self>) -> Option<A::Msg> {
        self.get_mut().pending.take().map(|env| env.msg)
    }
}

impl<A: Agent> Future for CastFuture<'_, A> {
    type Output = Result<(), SendError<A::Msg>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.target
            .poll_push(cx, &mut this.pending)
            .map(|r| r.map_err(|env| SendError::Closed(env.msg)))
    }
}

fn cast_raw<A: Agent>(target: &RawRef<A>, msg: A::Msg) -> CastFuture<'_, A> {
    CastFuture {
        target,
        pending: Some(Envelope { msg, reply: None }),
    }
}

/// Casts a message value to an agent (used by timers).
pub(crate) async fn cast_msg<A: Agent>(target: &ActorRef<A>, msg: A::Msg) -> Result<(), SendError<A::Msg>> {
    let raw = std::ops::Deref::deref(target).troupe_raw();
    let mut fut = cast_raw(raw, msg);
    poll_fn(|cx| Pin::new(&mut fut).poll(cx)).await
}
