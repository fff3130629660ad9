//! Supervision trees: supervisors restart crashed agents, keeping their references and
//! mailboxes, and escalate when restarts come too often.
//!
//! A supervisor is a task of its own with its children's records behind a lock. The
//! common case — one-for-one, no backoff — is decided by the crashed child's own task
//! under that lock and restarted in place (no task hop, no new task); everything else
//! (backoff, one-for-all, rest-for-one, giving up, shutdown) goes through the
//! supervisor's task, which waits for each stopped instance to be fully gone before it
//! starts a new one on the same mailbox.

mod backoff;
mod child;
mod children;
mod events;
mod task;
mod tree;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub use backoff::Backoff;
pub use child::ChildSpec;
pub use events::{EventKind, SupervisionEvent, SupervisorEvents};
pub(crate) use tree::MAX_UNSUPERVISED;
pub use tree::{AgentNode, AgentState, SupervisorNode, SupervisorState, Tree, TreeNode};

use crate::{ActorId, ActorRef, Agent, StopReason, System};
use child::ChildOps;
use children::Children;
use events::Outlet;

/// Which children a supervisor restarts when one of them fails (as in OTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Restart only the child that failed.
    OneForOne,
    /// Stop all other children (in reverse start order), then restart them all.
    OneForAll,
    /// Stop the children started after the failed one (in reverse order), then restart
    /// the failed one and those.
    RestForOne,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::OneForAll => "one_for_all",
            Strategy::RestForOne => "rest_for_one",
        })
    }
}

/// When a child is restarted (as in OTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Restart {
    /// Always, whatever the reason it stopped.
    #[default]
    Permanent,
    /// Only after an abnormal exit (a panic or an error reason).
    Transient,
    /// Never.
    Temporary,
}

impl Restart {
    fn applies(self, reason: &StopReason) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        }
    }
}

/// Why a supervisor operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupervisorError {
    /// No child has this name.
    NoSuchChild(String),
    /// The child exists but is not of the requested type.
    WrongType(String),
    /// A child with this name already exists.
    NameTaken(String),
    /// The supervisor has stopped.
    Stopped,
}

impl fmt::Display for SupervisorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupervisorError::NoSuchChild(n) => write!(f, "no child named `{n}`"),
            SupervisorError::WrongType(n) => write!(f, "child `{n}` is of another type"),
            SupervisorError::NameTaken(n) => write!(f, "a child named `{n}` already exists"),
            SupervisorError::Stopped => f.write_str("supervisor stopped"),
        }
    }
}

impl std::error::Error for SupervisorError {}

impl From<SupervisorError> for crate::Error {
    fn from(e: SupervisorError) -> Self {
        crate::Error::Supervisor(e)
    }
}

/// A supervisor, being configured. Finish with [`spawn`](Supervisor::spawn), or nest it
/// with [`ChildSpec::supervisor`].
///
/// Defaults: at most 3 restarts in 5 seconds (Elixir's default), no backoff.
pub struct Supervisor {
    strategy: Strategy,
    max_restarts: u32,
    period: Duration,
    backoff: Option<Backoff>,
    children: Vec<ChildSpec>,
}

impl Supervisor {
    /// A supervisor with the given strategy and no children yet.
    pub fn new(strategy: Strategy) -> Self {
        Supervisor {
            strategy,
            max_restarts: 3,
            period: Duration::from_secs(5),
            backoff: None,
            children: Vec::new(),
        }
    }

    /// Restart intensity: more than `max` restarts within `period` makes the supervisor
    /// stop its children and fail, so that its own supervisor decides (escalation).
    pub fn max_restarts(mut self, max: u32, period: Duration) -> Self {
        self.max_restarts = max;
        self.period = period;
        self
    }

    /// Delays restarts of a child that keeps failing.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Adds a child; children start in the order they are added.
    pub fn child(mut self, spec: ChildSpec) -> Self {
        self.children.push(spec);
        self
    }

    /// Starts the supervisor and its children, in order.
    pub fn spawn(self, system: &System) -> SupervisorRef {
        self.spawn_named(system, "root".to_owned())
    }

    /// Starts a root supervisor under a name of its own (pools).
    pub(crate) fn spawn_named(self, system: &System, name: String) -> SupervisorRef {
        let shared = task::start(self, system, name, None);
        system.inner().add_root_supervisor(Arc::downgrade(&shared));
        SupervisorRef { shared }
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("strategy", &self.strategy)
            .field("max_restarts", &self.max_restarts)
            .field("period", &self.period)
            .field("backoff", &self.backoff)
            .field("children", &self.children.len())
            .finish()
    }
}

/// A handle to a running supervisor: look up children, add and remove them.
#[derive(Clone)]
pub struct SupervisorRef {
    shared: Arc<SupShared>,
}

impl SupervisorRef {
    pub(crate) fn from_shared(shared: Arc<SupShared>) -> Self {
        SupervisorRef { shared }
    }

    /// The child agent named `name`, as a typed reference. It stays valid across
    /// restarts.
    pub fn child<A: Agent>(&self, name: &str) -> Result<ActorRef<A>, SupervisorError> {
        self.typed_child(name)
    }

    /// The nested supervisor named `name`.
    pub fn supervisor(&self, name: &str) -> Result<SupervisorRef, SupervisorError> {
        self.typed_child(name)
    }

    fn typed_child<T: Clone + 'static>(&self, name: &str) -> Result<T, SupervisorError> {
        let st = self.shared.state.lock();
        let entry = st
            .children
            .named(name)
            .ok_or_else(|| SupervisorError::NoSuchChild(name.to_owned()))?;
        entry
            .ops
            .any_ref()
            .downcast_ref::<T>()
            .cloned()
            .ok_or_else(|| SupervisorError::WrongType(name.to_owned()))
    }

    /// The name of the child agent with this id.
    pub(crate) fn child_name(&self, id: ActorId) -> Option<String> {
        let st = self.shared.state.lock();
        let name = st
            .children
            .iter()
            .find(|c| c.ops.id() == Some(id))
            .map(|c| c.name.clone());
        name
    }

    /// The names of the current children, in start order.
    pub fn children(&self) -> Vec<String> {
        self.shared
            .state
            .lock()
            .children
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// Starts a new child after the existing ones.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<(), SupervisorError> {
        let (reply, rx) = oneshot::channel();
        self.shared.send(SupMsg::StartChild { spec, reply })?;
        rx.await.unwrap_or(Err(SupervisorError::Stopped))
    }

    /// Stops a child (waiting for it, within its shutdown timeout) and removes it.
    pub async fn terminate_child(&self, name: &str) -> Result<(), SupervisorError> {
        let (reply, rx) = oneshot::channel();
        self.shared.send(SupMsg::TerminateChild {
            name: name.to_owned(),
            reply,
        })?;
        rx.await.unwrap_or(Err(SupervisorError::Stopped))
    }

    /// Stops every child in reverse start order, then the supervisor.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.shared.send(SupMsg::Shutdown { reply: Some(reply) }).is_ok() {
            let _ = rx.await;
        }
    }

    /// True until the supervisor has stopped (after a shutdown, or after it gave up with
    /// no supervisor above it).
    pub fn is_alive(&self) -> bool {
        !self.shared.tx.is_closed() && self.shared.state.lock().status != Status::Stopped
    }

    /// Restarts performed so far (in place and by the supervisor's task).
    pub fn restarts(&self) -> u64 {
        self.shared.state.lock().total_restarts
    }

    /// Subscribes to what happens to the children of this supervisor and of the
    /// supervisors below it: started, crashed (with the reason), stopped, restarted, and
    /// supervisors giving up. Watching needs no link to any child, so a watcher that
    /// crashes takes nothing down with it.
    ///
    /// ```
    /// use troupe::prelude::*;
    ///
    /// #[derive(Default)]
    /// pub struct Worker;
    ///
    /// #[agent]
    /// impl Worker {
    ///     #[handle]
    ///     fn crash(&self) {
    ///         panic!("boom");
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let _quiet = troupe::quiet_agent_panics();
    /// let system = System::new();
    /// let sup = Supervisor::new(Strategy::OneForOne)
    ///     .child(ChildSpec::new("worker", Worker::default))
    ///     .spawn(&system);
    /// let mut events = sup.events();
    /// let worker: ActorRef<Worker> = sup.child("worker").unwrap();
    /// let _ = worker.crash().await;
    /// let crashed = events.recv().await.unwrap();
    /// assert_eq!(crashed.to_string(), "root/worker crashed: panicked: boom");
    /// assert_eq!(events.recv().await.unwrap().kind, EventKind::Restarted);
    /// system.shutdown().await;
    /// # }
    /// ```
    pub fn events(&self) -> SupervisorEvents {
        self.shared.outlet.subscribe()
    }
}

impl fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.state.lock();
        f.debug_struct("SupervisorRef")
            .field("name", &self.shared.name)
            .field("strategy", &st.strategy)
            .field("children", &st.children.len())
            .finish()
    }
}

/// Messages to a supervisor's task.
pub(crate) enum SupMsg {
    /// A child instance has fully ended and its mailbox waits for a decision.
    Exited { key: u64, reason: StopReason },
    StartChild {
        spec: ChildSpec,
        reply: oneshot::Sender<Result<(), SupervisorError>>,
    },
    TerminateChild {
        name: String,
        reply: oneshot::Sender<Result<(), SupervisorError>>,
    },
    /// Stop all children for good, then the supervisor.
    Shutdown { reply: Option<oneshot::Sender<()>> },
    /// From the parent: stop the children but keep their mailboxes, then report
    /// `Exited` to the parent.
    Suspend,
    /// From the parent: start the children again (after a suspend or a give-up).
    Resume,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Children run; crashes are handled.
    Running,
    /// A group operation or a give-up is in progress in the task.
    Busy,
    /// Children are stopped, mailboxes kept; waiting for the parent's decision.
    Suspended,
    /// Gone for good.
    Stopped,
}

/// The state shared by a supervisor's task and its children's tasks.
pub(crate) struct SupShared {
    name: String,
    /// The names from the root down to this supervisor (`root/workers`).
    path: String,
    parent: Option<Weak<SupShared>>,
    outlet: Outlet,
    tx: mpsc::UnboundedSender<SupMsg>,
    state: Mutex<SupState>,
    system: Weak<crate::system::SystemInner>,
}

pub(crate) struct SupState {
    strategy: Strategy,
    max_restarts: u32,
    period: Duration,
    backoff: Option<Backoff>,
    children: Children,
    restarts: VecDeque<Instant>,
    status: Status,
    total_restarts: u64,
    next_key: u64,
}

pub(crate) struct ChildEntry {
    key: u64,
    name: String,
    restart: Restart,
    shutdown: Duration,
    ops: Box<dyn ChildOps>,
    phase: Phase,
    /// The supervisor stopped this instance itself and is waiting for it.
    expect_exit: bool,
    /// An instance has started before (the next start is a restart).
    started: bool,
    /// Restarts of this child in a row (for backoff); reset after a quiet period.
    attempts: u32,
    /// Restarts of this child in all (for `system.tree()`).
    restarts: u64,
    last_restart: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Between instances: mailbox kept, waiting (possibly for a backoff deadline).
    Waiting(Option<Instant>),
}

/// What a crashed or stopped child instance does next (decided under the lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Build a new instance now, in the same task, over the same mailbox.
    RestartInPlace,
    /// Close the mailbox and stop for good.
    Final,
    /// Keep the mailbox, end the task and report `Exited` to the supervisor's task.
    Suspend,
}

impl SupShared {
    fn send(&self, msg: SupMsg) -> Result<(), SupervisorError> {
        self.tx.send(msg).map_err(|_| SupervisorError::Stopped)
    }

    pub(crate) fn report_exit(&self, key: u64, reason: StopReason) {
        let _ = self.tx.send(SupMsg::Exited { key, reason });
    }

    fn system_shutting_down(&self) -> bool {
        self.system.upgrade().is_none_or(|s| s.is_shutting_down())
    }

    /// True when someone subscribed to this supervisor's events or an ancestor's.
    fn watched(&self) -> bool {
        if self.outlet.is_watched() {
            return true;
        }
        self.parent
            .as_ref()
            .and_then(Weak::upgrade)
            .is_some_and(|p| p.watched())
    }

    /// Tells this supervisor's subscribers, and its ancestors', what happened to `child`.
    pub(crate) fn emit(&self, child: &str, agent: Option<ActorId>, kind: EventKind) {
        if !self.watched() {
            return;
        }
        let event = SupervisionEvent {
            supervisor: self.path.clone(),
            child: child.to_owned(),
            agent,
            kind,
        };
        self.outlet.send(event.clone());
        let mut up = self.parent.as_ref().and_then(Weak::upgrade);
        while let Some(sup) = up {
            sup.outlet.send(event.clone());
            up = sup.parent.as_ref().and_then(Weak::upgrade);
        }
    }

    /// Called by a child's task when its instance ended: the fast path. A restart in
    /// place needs the task, so `in_place` is false for a killed instance.
    pub(crate) fn decide(&self, key: u64, reason: &StopReason, in_place: bool) -> Decision {
        let watched = self.watched();
        let mut child = None;
        let decision = self.decide_locked(key, reason, in_place, watched.then_some(&mut child));
        if let Some((name, id)) = child {
            let kind = if reason.is_abnormal() {
                EventKind::Crashed(reason.clone())
            } else {
                EventKind::Stopped(reason.clone())
            };
            self.emit(&name, id, kind);
            if decision == Decision::RestartInPlace {
                self.emit(&name, id, EventKind::Restarted);
            }
        }
        decision
    }

    fn decide_locked(
        &self,
        key: u64,
        reason: &StopReason,
        in_place: bool,
        child: Option<&mut Option<(String, Option<ActorId>)>>,
    ) -> Decision {
        let shutting_down = self.system_shutting_down();
        let mut st = self.state.lock();
        let st = &mut *st;
        let running = st.status == Status::Running;
        let Some(c) = st.children.get_mut(key) else {
            return Decision::Final;
        };
        if let Some(slot) = child {
            *slot = Some((c.name.clone(), c.ops.id()));
        }
        if !running || c.expect_exit || shutting_down {
            c.phase = Phase::Waiting(None);
            return if shutting_down && !c.expect_exit {
                st.children.remove(key);
                Decision::Final
            } else {
                Decision::Suspend
            };
        }
        if !c.restart.applies(reason) {
            st.children.remove(key);
            return Decision::Final;
        }
        if in_place && st.strategy == Strategy::OneForOne && st.backoff.is_none() && st.record_restart() {
            if let Some(child) = st.children.get_mut(key) {
                child.attempts += 1;
                child.restarts += 1;
                child.last_restart = Some(Instant::now());
            }
            return Decision::RestartInPlace;
        }
        if let Some(c) = st.children.get_mut(key) {
            c.phase = Phase::Waiting(None);
        }
        Decision::Suspend
    }
}

impl SupState {
    /// Counts a restart against the intensity; false when it exceeds it.
    fn record_restart(&mut self) -> bool {
        let now = Instant::now();
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.period)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= self.max_restarts as usize {
            return false;
        }
        self.restarts.push_back(now);
        self.total_restarts += 1;
        true
    }
}

impl fmt::Debug for SupShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupShared")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
