//! The bounded mailbox: one queue per agent, drained in batches.
//!
//! Design (see ARCHITECTURE.md): one lock-protected `VecDeque` per agent, allocated only
//! when the first message arrives. The agent swaps the whole queue out in one lock
//! acquisition and handles the batch without touching the lock again, so a busy agent
//! pays one lock per batch and senders one uncontended lock per message. Messages are
//! stored by value (the generated enum): nothing is boxed. Signals (stop, and later link
//! and monitor notices) go to a separate lane that bypasses the capacity and is checked
//! between messages, so a full mailbox never blocks a stop.

use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::StopReason;

/// A control message that bypasses the user queue.
#[derive(Debug)]
pub(crate) enum Signal {
    /// Stop after the current message.
    Stop(StopReason),
}

/// What `poll_recv` produced.
#[derive(Debug)]
pub(crate) enum Received {
    /// A signal, handled before any further user message.
    Signal(Signal),
    /// The batch buffer was filled with user messages.
    Batch,
}

pub(crate) struct Mailbox<M> {
    capacity: usize,
    has_signal: AtomicBool,
    state: Mutex<State<M>>,
}

struct State<M> {
    queue: VecDeque<M>,
    signals: VecDeque<Signal>,
    receiver: Option<Waker>,
    senders: Vec<Waker>,
    closed: bool,
}

impl<M> Mailbox<M> {
    pub(crate) fn new(capacity: usize) -> Self {
        Mailbox {
            capacity: capacity.max(1),
            has_signal: AtomicBool::new(false),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                signals: VecDeque::new(),
                receiver: None,
                senders: Vec::new(),
                closed: false,
            }),
        }
    }

    /// Enqueues without waiting: `Err((msg, true))` when full, `Err((msg, false))` when closed.
    pub(crate) fn try_push(&self, msg: M) -> Result<(), (M, bool)> {
        let mut st = self.state.lock();
        if st.closed {
            return Err((msg, false));
        }
        if st.queue.len() >= self.capacity {
            return Err((msg, true));
        }
        st.queue.push_back(msg);
        let waker = st.receiver.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Enqueues the message in `slot`, waiting for room. `Ready(Err(msg))` when closed.
    pub(crate) fn poll_push(&self, cx: &mut Context<'_>, slot: &mut Option<M>) -> Poll<Result<(), M>> {
        let Some(msg) = slot.take() else {
            return Poll::Ready(Ok(()));
        };
        let mut st = self.state.lock();
        if st.closed {
            return Poll::Ready(Err(msg));
        }
        if st.queue.len() >= self.capacity {
            if !st.senders.iter().any(|w| w.will_wake(cx.waker())) {
                st.senders.push(cx.waker().clone());
            }
            *slot = Some(msg);
            return Poll::Pending;
        }
        st.queue.push_back(msg);
        let waker = st.receiver.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }

    /// Delivers a signal ahead of queued messages. False when the mailbox is closed.
    pub(crate) fn signal(&self, signal: Signal) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        st.signals.push_back(signal);
        self.has_signal.store(true, Ordering::Release);
        let waker = st.receiver.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Cheap check, between messages of a batch, for a pending signal.
    pub(crate) fn has_signal(&self) -> bool {
        self.has_signal.load(Ordering::Acquire)
    }

    /// Takes the next signal, or else moves every queued message into `batch` (which
    /// must be empty), or else registers the receiver's waker.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>, batch: &mut VecDeque<M>) -> Poll<Received> {
        debug_assert!(batch.is_empty());
        let mut st = self.state.lock();
        if let Some(sig) = st.signals.pop_front() {
            if st.signals.is_empty() {
                self.has_signal.store(false, Ordering::Release);
            }
            return Poll::Ready(Received::Signal(sig));
        }
        if st.queue.is_empty() {
            match &mut st.receiver {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        mem::swap(&mut st.queue, batch);
        let senders = mem::take(&mut st.senders);
        drop(st);
        for w in senders {
            w.wake();
        }
        Poll::Ready(Received::Batch)
    }

    /// Puts unhandled messages back at the front, in order (used when an instance ends
    /// but the mailbox lives on).
    #[allow(dead_code)] // used by supervision restarts
    pub(crate) fn requeue_front(&self, mut rest: VecDeque<M>) {
        if rest.is_empty() {
            return;
        }
        let mut st = self.state.lock();
        rest.append(&mut st.queue);
        st.queue = rest;
    }

    /// Closes the mailbox: later sends fail, and every queued message and signal is
    /// returned so the caller can drop them outside the lock (dropping a call's reply
    /// slot resolves it to `CallError::Stopped`).
    pub(crate) fn close(&self) -> VecDeque<M> {
        let mut st = self.state.lock();
        st.closed = true;
        let queue = mem::take(&mut st.queue);
        st.signals.clear();
        self.has_signal.store(false, Ordering::Release);
        st.receiver = None;
        let senders = mem::take(&mut st.senders);
        drop(st);
        for w in senders {
            w.wake();
        }
        queue
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.lock().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn full_mailbox_refuses_try_push_and_gives_the_message_back() {
        let mb = Mailbox::new(2);
        mb.try_push(1).unwrap();
        mb.try_push(2).unwrap();
        assert_eq!(mb.try_push(3), Err((3, true)));
        assert_eq!(mb.len(), 2);
    }

    #[tokio::test]
    async fn batch_drains_everything_in_order_and_frees_room() {
        let mb = Mailbox::new(3);
        for i in 0..3 {
            mb.try_push(i).unwrap();
        }
        let mut batch = VecDeque::new();
        let r = poll_fn(|cx| mb.poll_recv(cx, &mut batch)).await;
        assert!(matches!(r, Received::Batch));
        assert_eq!(batch, VecDeque::from(vec![0, 1, 2]));
        mb.try_push(3).unwrap();
    }

    #[tokio::test]
    async fn signals_overtake_queued_messages() {
        let mb = Mailbox::new(1);
        mb.try_push(1).unwrap();
        assert!(mb.signal(Signal::Stop(StopReason::Normal)));
        assert!(mb.has_signal());
        let mut batch = VecDeque::new();
        let r = poll_fn(|cx| mb.poll_recv(cx, &mut batch)).await;
        assert!(matches!(r, Received::Signal(Signal::Stop(StopReason::Normal))));
        assert!(!mb.has_signal());
    }

    #[tokio::test]
    async fn closed_mailbox_returns_queue_and_refuses_sends() {
        let mb = Mailbox::new(4);
        mb.try_push(7).unwrap();
        let rest = mb.close();
        assert_eq!(rest, VecDeque::from(vec![7]));
        assert_eq!(mb.try_push(8), Err((8, false)));
        assert!(!mb.signal(Signal::Stop(StopReason::Normal)));
    }

    #[tokio::test]
    async fn requeued_messages_come_before_later_ones() {
        let mb = Mailbox::new(8);
        mb.try_push(3).unwrap();
        mb.requeue_front(VecDeque::from(vec![1, 2]));
        let mut batch = VecDeque::new();
        let _ = poll_fn(|cx| mb.poll_recv(cx, &mut batch)).await;
        assert_eq!(batch, VecDeque::from(vec![1, 2, 3]));
    }

    #[tokio::test]
    async fn waiting_sender_is_woken_when_room_frees() {
        let mb = std::sync::Arc::new(Mailbox::new(1));
        mb.try_push(0).unwrap();
        let mb2 = mb.clone();
        let sender = tokio::spawn(async move {
            let mut slot = Some(1);
            poll_fn(|cx| mb2.poll_push(cx, &mut slot)).await
        });
        tokio::task::yield_now().await;
        let mut batch = VecDeque::new();
        let _ = poll_fn(|cx| mb.poll_recv(cx, &mut batch)).await;
        assert_eq!(sender.await.unwrap(), Ok(()));
        assert_eq!(mb.len(), 1);
    }
}
