//! The bounded mailbox: one queue per agent, drained in batches.
//!
//! Design (see ARCHITECTURE.md): one lock-protected `VecDeque` per agent, allocated only
//! when the first message arrives. The agent swaps the whole queue out in one lock
//! acquisition and handles the batch without touching the lock again, so a busy agent
//! pays one lock per batch and senders one uncontended lock per message. Messages are
//! stored by value (the generated enum): nothing is boxed. Signals (stop, and later link
//! and monitor notices) go to a separate lane that bypasses the capacity and is checked
//! between messages, so a full mailbox never blocks a stop.
//!
//! An agent that has not started yet is *parked* in the mailbox (`Rx::Parked`): it has no
//! task until the first message or signal arrives, and the sender that delivers it gets
//! the parked value back to start the task. Rarely used state (signals, waiting senders,
//! termination waiters) lives in a box allocated on first use, so an idle agent's
//! mailbox is a few words.

use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use tokio::task::AbortHandle;

use crate::link::{Down, Watch};
use crate::{ActorId, StopReason};

/// A control message that bypasses the user queue.
#[derive(Debug)]
pub(crate) enum Signal {
    /// Stop after the current message.
    Stop(StopReason),
    /// A monitored agent is gone (monitors belong to the agent, whatever its instance).
    Down { notice: Down },
    /// A linked instance ended (for our instance `generation`).
    Exit {
        from: ActorId,
        reason: StopReason,
        generation: u32,
    },
    /// The agent has been idle for a while: it may give back its task (see `sweep`).
    Hibernate,
}

/// What `poll_recv` produced.
#[derive(Debug)]
pub(crate) enum Received {
    /// A signal, handled before any further user message.
    Signal(Signal),
    /// The batch buffer was filled with user messages.
    Batch,
}

/// What a sender must do after enqueueing, outside the lock.
#[must_use]
pub(crate) enum Wake<P> {
    /// The receiver is running or already woken.
    Nothing,
    /// Wake the receiver's task.
    Task(Waker),
    /// The receiver was parked: start it.
    Start(P),
}

impl<P> Wake<P> {
    fn take(rx: &mut Rx<P>) -> Self {
        match mem::replace(rx, Rx::Running) {
            Rx::Running => Wake::Nothing,
            Rx::Waiting(w) => Wake::Task(w),
            Rx::Parked(p) => Wake::Start(p),
        }
    }
}

/// What `kill` found.
pub(crate) enum Kill<P> {
    /// The agent had already stopped for good.
    Gone,
    /// Its task was aborted (or will be as soon as it is known).
    Aborted,
    /// It had no task (not started yet, or hibernating): here it is; the caller ends
    /// its instance as killed.
    Parked(P),
}

/// What a sweep found.
pub(crate) enum Sweep<P> {
    /// Its task runs or waits, and it was not idle since the last sweep (marked now).
    Busy,
    /// Idle since the last sweep: it was asked to hibernate; wake it.
    Hibernate(Wake<P>),
    /// It has no task (parked, or stopped): nothing to watch.
    Gone,
}

/// The receiving side's state.
enum Rx<P> {
    /// Its task is running (or has been woken and will look at the queue).
    Running,
    /// Its task waits for a message or signal.
    Waiting(Waker),
    /// It has no task yet: the first delivery starts it.
    Parked(P),
}

/// Queue capacity an idle agent may keep; larger buffers (after a burst) are freed.
const IDLE_KEEP: usize = 64;

/// The layout is fixed (`repr(C)`) because it is on the hot path of every message:
/// senders write the lock, the queue and `rx`, which come first; the agent reads
/// `has_signal` after every message, so it comes last, with the owner's cold `header`
/// (and the rarely written fields) in between. That keeps the two at least a cache line
/// apart for small agents: the agent's per-message check never misses because a sender
/// just pushed. (Measured: without it, a one-field change of the state moved the flag
/// next to the queue and cost a sixth of `tell` throughput.)
#[repr(C)]
pub(crate) struct Mailbox<M, P, H = ()> {
    state: Mutex<State<M, P>>,
    header: H,
    /// Senders only read it; next to the flag it fills what would be padding.
    capacity: u32,
    has_signal: AtomicBool,
}

/// Hot fields first (see [`Mailbox`]).
#[repr(C)]
struct State<M, P> {
    queue: VecDeque<M>,
    rx: Rx<P>,
    closed: bool,
    terminated: bool,
    /// Everyone was told: `stopped()` resolves from here on.
    gone: bool,
    /// A kill arrived while the task was being started: abort it once known.
    kill_pending: bool,
    /// How many messages the receiver took with its last batch (0 once it is idle):
    /// with the queue's length, how busy it is.
    taken: u16,
    /// Set by a sweep that found the receiver idle, cleared by any delivery: still set at
    /// the next sweep means it stayed idle in between.
    idle_mark: bool,
    /// A sweep asked the receiver to hibernate (a signal kept as a flag, so that asking
    /// allocates nothing).
    hibernate: bool,
    rare: Option<Box<Rare>>,
    /// The task running the current instance, so that it can be killed.
    task: Option<AbortHandle>,
}

#[derive(Default)]
struct Rare {
    signals: VecDeque<Signal>,
    senders: Vec<Waker>,
    stop_waiters: Vec<Waker>,
    /// Links of the current instance and monitors on this agent.
    watchers: Vec<Watch>,
    /// Why the agent stopped for good, for monitors that arrive late.
    final_reason: Option<StopReason>,
}

/// Enqueues; the first buffer holds a single message (most agents see one message at a
/// time), later growth doubles as usual.
fn push<M>(queue: &mut VecDeque<M>, msg: M) {
    if queue.capacity() == 0 {
        queue.reserve_exact(1);
    }
    queue.push_back(msg);
}

fn push_waker(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

impl<M, P, H> Mailbox<M, P, H> {
    /// A mailbox whose receiver is `parked` (started on first delivery) or running;
    /// `header` is the owner's cold data, stored here for the layout's sake.
    pub(crate) fn new(capacity: usize, parked: Option<P>, header: H) -> Self {
        Mailbox {
            capacity: capacity.clamp(1, u32::MAX as usize) as u32,
            header,
            has_signal: AtomicBool::new(false),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                rx: match parked {
                    Some(p) => Rx::Parked(p),
                    None => Rx::Running,
                },
                rare: None,
                task: None,
                closed: false,
                terminated: false,
                gone: false,
                kill_pending: false,
                taken: 0,
                idle_mark: false,
                hibernate: false,
            }),
        }
    }

    /// Enqueues without waiting: `Err((msg, true))` when full, `Err((msg, false))` when closed.
    pub(crate) fn try_push(&self, msg: M) -> Result<Wake<P>, (M, bool)> {
        let mut st = self.state.lock();
        if st.closed {
            return Err((msg, false));
        }
        if st.queue.len() >= self.capacity as usize {
            return Err((msg, true));
        }
        push(&mut st.queue, msg);
        st.idle_mark = false;
        Ok(Wake::take(&mut st.rx))
    }

    /// Enqueues the message in `slot`, waiting for room. `Ready(Err(msg))` when closed.
    pub(crate) fn poll_push(&self, cx: &mut Context<'_>, slot: &mut Option<M>) -> Poll<Result<Wake<P>, M>> {
        let Some(msg) = slot.take() else {
            return Poll::Ready(Ok(Wake::Nothing));
        };
        let mut st = self.state.lock();
        if st.closed {
            return Poll::Ready(Err(msg));
        }
        if st.queue.len() >= self.capacity as usize {
            push_waker(&mut st.rare.get_or_insert_with(Box::default).senders, cx.waker());
            *slot = Some(msg);
            return Poll::Pending;
        }
        push(&mut st.queue, msg);
        st.idle_mark = false;
        Poll::Ready(Ok(Wake::take(&mut st.rx)))
    }

    /// Delivers a signal ahead of queued messages. `None` when the mailbox is closed.
    pub(crate) fn signal(&self, signal: Signal) -> Option<Wake<P>> {
        let mut st = self.state.lock();
        if st.closed {
            return None;
        }
        st.rare.get_or_insert_with(Box::default).signals.push_back(signal);
        self.has_signal.store(true, Ordering::Release);
        st.idle_mark = false;
        Some(Wake::take(&mut st.rx))
    }

    /// Cheap check, between messages of a batch, for a pending signal.
    pub(crate) fn has_signal(&self) -> bool {
        self.has_signal.load(Ordering::Acquire)
    }

    /// Takes the next pending signal, if any.
    pub(crate) fn take_signal(&self) -> Option<Signal> {
        let mut st = self.state.lock();
        Self::pop_signal(&mut st, &self.has_signal)
    }

    /// The owner's cold data.
    pub(crate) fn header(&self) -> &H {
        &self.header
    }

    fn pop_signal(st: &mut State<M, P>, flag: &AtomicBool) -> Option<Signal> {
        let sig = match st.rare.as_mut().and_then(|r| r.signals.pop_front()) {
            Some(sig) => Some(sig),
            None => mem::take(&mut st.hibernate).then_some(Signal::Hibernate),
        };
        if !st.hibernate && st.rare.as_ref().is_none_or(|r| r.signals.is_empty()) {
            flag.store(false, Ordering::Release);
        }
        sig
    }

    /// Takes the next signal, or else moves every queued message into `batch` (which
    /// must be empty), or else registers the receiver's waker.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>, batch: &mut VecDeque<M>) -> Poll<Received> {
        debug_assert!(batch.is_empty());
        let mut st = self.state.lock();
        if let Some(sig) = Self::pop_signal(&mut st, &self.has_signal) {
            return Poll::Ready(Received::Signal(sig));
        }
        if st.queue.is_empty() {
            st.taken = 0;
            match &mut st.rx {
                Rx::Waiting(w) if w.will_wake(cx.waker()) => {}
                rx => *rx = Rx::Waiting(cx.waker().clone()),
            }
            // Going idle. The queue's buffer and the agent's (empty) batch buffer swap
            // places at every batch; keep both while they are small, so an agent that
            // goes idle between bursts reuses them instead of freeing one and regrowing
            // it from nothing each time. Buffers larger than `IDLE_KEEP` are freed. The
            // queue gets the batch's buffer when it has none, ready for the next message.
            if st.queue.capacity() == 0 {
                mem::swap(&mut st.queue, batch);
            }
            let spare = (st.queue.capacity() > IDLE_KEEP).then(|| mem::take(&mut st.queue));
            drop(st);
            drop(spare);
            if batch.capacity() > IDLE_KEEP {
                *batch = VecDeque::new();
            }
            return Poll::Pending;
        }
        mem::swap(&mut st.queue, batch);
        st.taken = u16::try_from(batch.len()).unwrap_or(u16::MAX);
        let senders = st.rare.as_mut().map(|r| mem::take(&mut r.senders));
        drop(st);
        for w in senders.into_iter().flatten() {
            w.wake();
        }
        Poll::Ready(Received::Batch)
    }

    /// Puts unhandled messages back at the front, in order (used when an instance ends
    /// but the mailbox lives on).
    pub(crate) fn requeue_front(&self, mut rest: VecDeque<M>) {
        if rest.is_empty() {
            return;
        }
        let mut st = self.state.lock();
        rest.append(&mut st.queue);
        st.queue = rest;
    }

    /// Drops pending stop requests (they were meant for an instance that has ended).
    pub(crate) fn clear_stop_signals(&self) {
        let mut st = self.state.lock();
        let Some(rare) = st.rare.as_mut() else {
            return;
        };
        rare.signals.retain(|s| !matches!(s, Signal::Stop(_)));
        if rare.signals.is_empty() && !st.hibernate {
            self.has_signal.store(false, Ordering::Release);
        }
    }

    /// Records the task that runs the current instance.
    pub(crate) fn set_task(&self, task: AbortHandle) {
        let mut st = self.state.lock();
        if mem::take(&mut st.kill_pending) {
            task.abort();
        }
        st.task = Some(task);
    }

    /// Forgets the task of an instance that has ended.
    pub(crate) fn clear_task(&self) {
        self.state.lock().task = None;
    }

    /// Kills the receiver: aborts its task, or, when it has none, hands it back.
    pub(crate) fn kill(&self) -> Kill<P> {
        let mut st = self.state.lock();
        if st.terminated {
            return Kill::Gone;
        }
        if matches!(st.rx, Rx::Parked(_)) {
            let Rx::Parked(p) = mem::replace(&mut st.rx, Rx::Running) else {
                return Kill::Gone;
            };
            return Kill::Parked(p);
        }
        match &st.task {
            Some(task) => task.abort(),
            None => st.kill_pending = true,
        }
        Kill::Aborted
    }

    /// Closes the mailbox: later sends and signals fail, and every queued message is
    /// returned so the caller can drop it outside the lock (dropping a call's reply slot
    /// resolves it to `CallError::Stopped`).
    pub(crate) fn close(&self) -> VecDeque<M> {
        let mut st = self.state.lock();
        st.closed = true;
        st.hibernate = false;
        let queue = mem::take(&mut st.queue);
        self.has_signal.store(false, Ordering::Release);
        st.rx = Rx::Running;
        let senders = st.rare.as_mut().map(|r| {
            r.signals.clear();
            mem::take(&mut r.senders)
        });
        drop(st);
        for w in senders.into_iter().flatten() {
            w.wake();
        }
        queue
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// A word for the receiver's state, for people (`system.tree()`); `parked` names a
    /// parked receiver.
    pub(crate) fn status(&self, parked: impl Fn(&P) -> &'static str) -> &'static str {
        let st = self.state.lock();
        match (&st.rx, st.closed, st.terminated) {
            (_, _, true) => "stopped",
            (_, true, false) => "stopping",
            (Rx::Parked(p), ..) => parked(p),
            (Rx::Waiting(_), ..) if st.queue.is_empty() => "idle",
            _ => "running",
        }
    }

    /// Looks at a receiver for hibernation: one that stayed idle (waiting, nothing
    /// queued) from one sweep to the next is sent `Signal::Hibernate`.
    pub(crate) fn sweep(&self) -> Sweep<P> {
        let mut st = self.state.lock();
        if st.closed || matches!(st.rx, Rx::Parked(_)) {
            return Sweep::Gone;
        }
        let idle = matches!(st.rx, Rx::Waiting(_)) && st.queue.is_empty();
        if !idle {
            st.idle_mark = false;
            return Sweep::Busy;
        }
        if !mem::replace(&mut st.idle_mark, true) {
            return Sweep::Busy;
        }
        st.idle_mark = false;
        st.rare
            .get_or_insert_with(Box::default)
            .signals
            .push_back(Signal::Hibernate);
        self.has_signal.store(true, Ordering::Release);
        Sweep::Hibernate(Wake::take(&mut st.rx))
    }

    /// True while the receiver has a task (it is neither parked nor stopped for good).
    pub(crate) fn has_task(&self) -> bool {
        let st = self.state.lock();
        !st.closed && !matches!(st.rx, Rx::Parked(_))
    }

    /// Parks the receiver (its task ends): only while nothing waits for it. The queue's
    /// buffer is freed. Gives `parked` back when it must keep running.
    pub(crate) fn hibernate(&self, parked: P) -> Result<(), P> {
        let mut st = self.state.lock();
        let pending = st.hibernate || st.rare.as_ref().is_some_and(|r| !r.signals.is_empty());
        if st.closed || !st.queue.is_empty() || pending || st.kill_pending {
            return Err(parked);
        }
        st.rx = Rx::Parked(parked);
        st.task = None;
        st.idle_mark = false;
        st.hibernate = false;
        let buffer = mem::take(&mut st.queue);
        // The rare state goes too when nothing is in it (no watchers, no waiters).
        let rare = st.rare.take_if(|r| {
            r.signals.is_empty()
                && r.senders.is_empty()
                && r.stop_waiters.is_empty()
                && r.watchers.is_empty()
                && r.final_reason.is_none()
        });
        drop(st);
        drop(buffer);
        drop(rare);
        Ok(())
    }

    /// How busy the receiver is: messages queued plus those of the batch it is working
    /// through (all of them until it comes back for more).
    pub(crate) fn load(&self) -> usize {
        let st = self.state.lock();
        st.queue.len() + st.taken as usize
    }

    /// Marks the agent as fully stopped and returns the watchers (monitors and remaining
    /// links) to notify; [`release_waiters`](Self::release_waiters) comes after.
    pub(crate) fn terminate(&self, reason: &StopReason) -> Vec<Watch> {
        let mut st = self.state.lock();
        st.terminated = true;
        st.task = None;
        let rare = st.rare.get_or_insert_with(Box::default);
        rare.final_reason = Some(reason.clone());
        mem::take(&mut rare.watchers)
    }

    /// Wakes whoever waits for the end, once the watchers were told: when `stopped()`
    /// resolves, every monitor's notice is already in its mailbox.
    pub(crate) fn release_waiters(&self) {
        let mut st = self.state.lock();
        st.gone = true;
        let waiters = st.rare.as_mut().map(|r| mem::take(&mut r.stop_waiters));
        drop(st);
        for w in waiters.into_iter().flatten() {
            w.wake();
        }
    }

    /// Adds a watcher. When the agent already stopped for good, returns the final reason
    /// instead (the caller notifies at once).
    /// Why the agent ended, once it has for good.
    pub(crate) fn final_reason(&self) -> Option<StopReason> {
        let st = self.state.lock();
        st.terminated.then(|| {
            st.rare
                .as_ref()
                .and_then(|r| r.final_reason.clone())
                .unwrap_or(StopReason::Normal)
        })
    }

    pub(crate) fn watch(&self, watch: Watch) -> Result<(), StopReason> {
        let mut st = self.state.lock();
        let terminated = st.terminated;
        let rare = st.rare.get_or_insert_with(Box::default);
        if terminated {
            return Err(rare.final_reason.clone().unwrap_or(StopReason::Normal));
        }
        rare.watchers.push(watch);
        Ok(())
    }

    /// Removes and returns the links of the instance that just ended (monitors stay).
    pub(crate) fn take_links(&self) -> Vec<Watch> {
        let mut st = self.state.lock();
        let Some(rare) = st.rare.as_mut() else {
            return Vec::new();
        };
        if !rare.watchers.iter().any(|w| w.link) {
            return Vec::new();
        }
        let (links, monitors) = mem::take(&mut rare.watchers).into_iter().partition(|w| w.link);
        rare.watchers = monitors;
        links
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.state.lock().terminated
    }

    pub(crate) fn poll_terminated(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.state.lock();
        if st.gone {
            return Poll::Ready(());
        }
        push_waker(
            &mut st.rare.get_or_insert_with(Box::default).stop_waiters,
            cx.waker(),
        );
        Poll::Pending
    }

    /// Messages waiting (not counting a batch the receiver took).
    pub(crate) fn len(&self) -> usize {
        self.state.lock().queue.len()
    }
}

/// How far (in bytes) the agent's per-message flag sits from the end of the fields
/// senders write for every message, for a mailbox of these types.
#[cfg(test)]
pub(crate) fn signal_flag_distance<M, P, H>() -> usize {
    let rx_end = std::mem::offset_of!(Mailbox<M, P, H>, state) + std::mem::size_of::<Mutex<State<M, P>>>()
        - std::mem::size_of::<State<M, P>>()
        + std::mem::offset_of!(State<M, P>, rx)
        + std::mem::size_of::<Rx<P>>();
    std::mem::offset_of!(Mailbox<M, P, H>, has_signal) - rx_end
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    type Mb = Mailbox<i32, &'static str>;

    fn ok<P>(r: Result<Wake<P>, (i32, bool)>) {
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn full_mailbox_refuses_try_push_and_gives_the_message_back() {
        let mb = Mb::new(2, None, ());
        ok(mb.try_push(1));
        ok(mb.try_push(2));
        assert!(matches!(mb.try_push(3), Err((3, true))));
        assert_eq!(mb.len(), 2);
    }

    #[tokio::test]
    async fn the_first_delivery_hands_back_the_parked_receiver_once() {
        let mb = Mb::new(4, Some("agent"), ());
        assert!(matches!(mb.try_push(1), Ok(Wake::Start("agent"))));
        assert!(matches!(mb.try_push(2), Ok(Wake::Nothing)));
        let parked = Mb::new(4, Some("other"), ());
        assert!(matches!(
            parked.signal(Signal::Stop(StopReason::Normal)),
            Some(Wake::Start("other"))
        ));
    }

    #[tokio::test]
    async fn batch_drains_everything_in_order_and_frees_room() {
        let mb = Mb::new(3, None, ());
        for i in 0..3 {
            ok(mb.try_push(i));
        }
        let mut batch = VecDeque::new();
        let r = poll_fn(|cx| mb.poll_recv(cx, &mut batch)).await;
        assert!(matches!(r, Received::Batch));
        assert_eq!(batch, VecDeque::from(vec![0, 1, 2]));
        ok(mb.try_push(3));
    }

    #[tokio::test]
    async fn signals_overtake_queued_messages() {
        let mb = Mb::new(1, None, ());
        ok(mb.try_push(1));
        assert!(mb.signal(Signal::Stop(StopReason::Normal)).is_some());
        assert!(mb.has_signal());
        let mut batch = VecDeque::new();
        let r = poll_fn(|cx| mb.poll_recv(cx, &mut batch)).await;
        assert!(matches!(r, Received::Signal(Signal::Stop(StopReason::Normal))));
        assert!(!mb.has_signal());
        assert!(mb.take_signal().is_none());
    }

    #[tokio::test]
    async fn closed_mailbox_returns_queue_and_refuses_sends() {
        let mb = Mb::new(4, None, ());
        ok(mb.try_push(7));
        let rest = mb.close();
        assert_eq!(rest, VecDeque::from(vec![7]));
        assert!(matches!(mb.try_push(8), Err((8, false))));
        assert!(mb.signal(Signal::Stop(StopReason::Normal)).is_none());
    }

    #[tokio::test]
    async fn requeued_messages_come_before_later_ones() {
        let mb = Mb::new(8, None, ());
        ok(mb.try_push(3));
        mb.requeue_front(VecDeque::from(vec![1, 2]));
        let mut batch = VecDeque::new();
        let _ = poll_fn(|cx| mb.poll_recv(cx, &mut batch)).await;
        assert_eq!(batch, VecDeque::from(vec![1, 2, 3]));
    }

    #[tokio::test]
    async fn waiting_sender_is_woken_when_room_frees() {
        let mb = std::sync::Arc::new(Mb::new(1, None, ()));
        ok(mb.try_push(0));
        let mb2 = mb.clone();
        let sender = tokio::spawn(async move {
            let mut slot = Some(1);
            poll_fn(|cx| mb2.poll_push(cx, &mut slot)).await.is_ok()
        });
        tokio::task::yield_now().await;
        let mut batch = VecDeque::new();
        let _ = poll_fn(|cx| mb.poll_recv(cx, &mut batch)).await;
        assert!(sender.await.unwrap());
        assert_eq!(mb.len(), 1);
    }

    #[tokio::test]
    async fn termination_wakes_waiters() {
        let mb = std::sync::Arc::new(Mb::new(1, None, ()));
        let mb2 = mb.clone();
        let waiter = tokio::spawn(async move { poll_fn(|cx| mb2.poll_terminated(cx)).await });
        tokio::task::yield_now().await;
        assert!(!mb.is_terminated());
        assert!(mb.terminate(&StopReason::Normal).is_empty());
        mb.release_waiters();
        waiter.await.unwrap();
        assert!(mb.is_terminated());
        let late = Watch {
            cell: std::sync::Weak::<crate::cell::Cell<NoAgent>>::new(),
            generation: 0,
            link: false,
            remote: None,
        };
        assert_eq!(mb.watch(late).unwrap_err(), StopReason::Normal);
    }

    /// A stand-in agent type for a `Weak` that points nowhere.
    struct NoAgent;
    impl crate::Agent for NoAgent {
        type Msg = ();
        type Reply = ();
        type Client = NoClient;
        async fn handle(&mut self, _: (), _: &mut crate::Context<Self>) -> Option<()> {
            None
        }
    }
    #[derive(Clone)]
    struct NoClient(crate::actor_ref::RawRef<NoAgent>);
    impl crate::actor_ref::AgentClient<NoAgent> for NoClient {
        fn troupe_from_raw(raw: crate::actor_ref::RawRef<NoAgent>) -> Self {
            NoClient(raw)
        }
        fn troupe_raw(&self) -> &crate::actor_ref::RawRef<NoAgent> {
            &self.0
        }
    }
}
