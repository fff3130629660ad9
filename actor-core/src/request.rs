//! [`Request`]: what a generated client method returns, to be awaited (call), cast, or
//! configured first.

use std::fmt;
use std::future::{poll_fn, Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::actor_ref::{AgentClient, RawRef};
use crate::cell::Envelope;
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
#[must_use = "a request does nothing until it is awaited, cast or try_cast"]
pub struct Request<'a, A: Agent, R> {
    target: &'a RawRef<A>,
    msg: A::Msg,
    extract: fn(A::Reply) -> Option<R>,
    timeout: Option<Duration>,
}

impl<'a, A: Agent, R> Request<'a, A, R> {
    /// Used by generated clients.
    #[doc(hidden)]
    pub fn new(target: &'a RawRef<A>, msg: A::Msg, extract: fn(A::Reply) -> Option<R>) -> Self {
        Request {
            target,
            msg,
            extract,
            timeout: None,
        }
    }

    /// Bounds the whole request (waiting for mailbox room and, for a call, the reply).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The message this request carries (e.g. to schedule it with a timer).
    pub fn into_message(self) -> A::Msg {
        self.msg
    }

    /// Enqueues the message without waiting for it to be handled. Waits while the mailbox
    /// is full (at most the timeout, if one was set).
    pub async fn cast(self) -> Result<(), SendError<A::Msg>> {
        let target = self.target;
        let send = cast_raw(target, self.msg);
        match self.timeout {
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
    pub fn try_cast(self) -> Result<(), SendError<A::Msg>> {
        self.target
            .try_push(Envelope {
                msg: self.msg,
                reply: None,
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

impl<'a, A: Agent, R> IntoFuture for Request<'a, A, R> {
    type Output = Result<R, CallError>;
    type IntoFuture = CallFuture<'a, A, R>;

    fn into_future(self) -> CallFuture<'a, A, R> {
        let (tx, rx) = oneshot::channel();
        CallFuture {
            target: self.target,
            pending: Some(Envelope {
                msg: self.msg,
                reply: Some(tx),
            }),
            rx,
            extract: self.extract,
            timeout: self.timeout,
            deadline: None,
        }
    }
}

impl<A: Agent, R> fmt::Debug for Request<'_, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The future of a call: resolves to the handler's return value.
#[must_use = "futures do nothing unless polled"]
pub struct CallFuture<'a, A: Agent, R> {
    target: &'a RawRef<A>,
    pending: Option<Envelope<A>>,
    rx: oneshot::Receiver<Result<A::Reply, CallError>>,
    extract: fn(A::Reply) -> Option<R>,
    timeout: Option<Duration>,
    deadline: Option<Pin<Box<Sleep>>>,
}

// No field is structurally pinned: the sleep is boxed and the rest is moved freely.
impl<A: Agent, R> Unpin for CallFuture<'_, A, R> {}

impl<A: Agent, R> Future for CallFuture<'_, A, R> {
    type Output = Result<R, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(d) = this.timeout.take() {
            this.deadline = Some(Box::pin(tokio::time::sleep(d)));
        }
        if this.pending.is_some() {
            if crate::runner::current_agent() == Some(this.target.id()) {
                // The agent would wait for itself: fail now rather than deadlock.
                this.pending = None;
                return Poll::Ready(Err(CallError::CallingSelf));
            }
            match this.target.poll_push(cx, &mut this.pending) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_closed)) => return Poll::Ready(Err(CallError::Stopped)),
                Poll::Pending => return this.poll_deadline(cx),
            }
        }
        match Pin::new(&mut this.rx).poll(cx) {
            Poll::Ready(Ok(Ok(reply))) => Poll::Ready((this.extract)(reply).ok_or(CallError::BadReply)),
            Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
            Poll::Ready(Err(_dropped)) => Poll::Ready(Err(CallError::Stopped)),
            Poll::Pending => this.poll_deadline(cx),
        }
    }
}

impl<A: Agent, R> CallFuture<'_, A, R> {
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Result<R, CallError>> {
        if let Some(sleep) = &mut self.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(CallError::Timeout));
            }
        }
        Poll::Pending
    }
}

impl<A: Agent, R> fmt::Debug for CallFuture<'_, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallFuture")
            .field("target", &self.target)
            .field("sent", &self.pending.is_none())
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
