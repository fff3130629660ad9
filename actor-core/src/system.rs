//! [`System`]: spawns agents, keeps the registry, and shuts everything down.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cell::{self, AnyCell};
use crate::group::{Broadcast, Groups};
use crate::hibernate::IdleWatch;
use crate::registry::Registry;
use crate::stats::{self, Stats, StatsTable};
use crate::supervisor::{AgentNode, SupShared, SupervisorRef, Tree};
use crate::{ActorRef, Agent, RegistryError, Request, StopReason};

/// A group of agents sharing a registry and a shutdown.
///
/// `System` is a cheap handle (clone it freely). It runs agents as tasks on the tokio
/// runtime it was created in, so it works inside any tokio runtime, current-thread or
/// multi-thread.
///
/// ```
/// use troupe::prelude::*;
///
/// #[derive(Default)]
/// pub struct Greeter;
///
/// #[agent]
/// impl Greeter {
///     #[handle]
///     fn greet(&self, name: String) -> String {
///         format!("hello, {name}")
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> troupe::Result<()> {
/// let system = System::new();
/// let greeter = system.spawn(Greeter);
/// assert_eq!(greeter.greet("ada".into()).await?, "hello, ada");
/// system.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct System {
    inner: Arc<SystemInner>,
}

pub(crate) struct SystemInner {
    handle: Option<Handle>,
    slots: Mutex<Slots>,
    live: AtomicUsize,
    all_stopped: Notify,
    shutting_down: AtomicBool,
    pub(crate) registry: Registry,
    pub(crate) groups: Groups,
    /// Agents with a task, watched for hibernation.
    pub(crate) idle: IdleWatch,
    supervisors: Mutex<Vec<Weak<SupShared>>>,
    /// The counters of each agent type.
    pub(crate) stats: StatsTable,
}

/// Every live agent, so that shutdown can reach them all. The system holds each agent
/// until it stops for good (an agent lives until it is stopped, whether or not anyone
/// still holds a reference to it). A slot is reused once its agent has exited.
#[derive(Default)]
struct Slots {
    entries: Vec<Option<Arc<dyn AnyCell>>>,
    free: Vec<usize>,
}

/// How long [`System::shutdown`] waits for agents to stop before it kills them.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long shutdown waits for killed agents' tasks to be dropped before it gives up on
/// them (a task that never yields, e.g. a handler in a blocking loop, cannot be aborted).
const KILL_GRACE: Duration = Duration::from_secs(1);

impl System {
    /// Creates an empty system on the current tokio runtime.
    ///
    /// Call it inside a tokio runtime; if there is none, agents are started on whatever
    /// runtime `spawn` is later called from.
    pub fn new() -> Self {
        Self::build(Handle::try_current().ok())
    }

    /// Creates an empty system whose agents run on the given runtime.
    pub fn with_handle(handle: Handle) -> Self {
        Self::build(Some(handle))
    }

    fn build(handle: Option<Handle>) -> Self {
        System {
            inner: Arc::new(SystemInner {
                handle,
                slots: Mutex::new(Slots::default()),
                live: AtomicUsize::new(0),
                all_stopped: Notify::new(),
                shutting_down: AtomicBool::new(false),
                registry: Registry::default(),
                groups: Groups::default(),
                idle: IdleWatch::default(),
                supervisors: Mutex::new(Vec::new()),
                stats: StatsTable::default(),
            }),
        }
    }

    pub(crate) fn from_inner(inner: Arc<SystemInner>) -> Self {
        System { inner }
    }

    pub(crate) fn inner(&self) -> &Arc<SystemInner> {
        &self.inner
    }

    /// Starts an agent and returns its reference. Its `#[on_start]` hook runs before its
    /// first message.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime on a system created outside one.
    pub fn spawn<A: Agent>(&self, agent: A) -> ActorRef<A> {
        cell::spawn(self, agent)
    }

    /// Registers `agent` under `name`. The name is released when the agent stops.
    pub fn register<A: Agent>(
        &self,
        name: impl Into<String>,
        agent: &ActorRef<A>,
    ) -> Result<(), RegistryError> {
        self.inner.registry.register(name.into(), agent)
    }

    /// Releases a name. Returns true when it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        self.inner.registry.unregister(name)
    }

    /// The agent registered under `name`, if it is alive and of type `A`. An agent that
    /// is stopping (its `#[on_stop]` runs) is no longer found.
    pub fn lookup<A: Agent>(&self, name: &str) -> Option<ActorRef<A>> {
        self.inner.registry.lookup(name)
    }

    /// A name the agent `id` is registered under here (for the node layer, which names
    /// calling agents). Not an API.
    #[doc(hidden)]
    pub fn registered_name(&self, id: crate::ActorId) -> Option<String> {
        self.inner.registry.name_of(id)
    }

    /// Adds `agent` to the process group `group` (OTP's `pg`), creating the group on first
    /// join; joining twice is the same as once. The agent leaves every group when it
    /// stops. Fails when the agent has already stopped.
    pub fn join<A: Agent>(&self, group: impl Into<String>, agent: &ActorRef<A>) -> Result<(), RegistryError> {
        self.inner.groups.join(group.into(), agent)
    }

    /// Removes `agent` from `group`. Returns true when it was a member.
    pub fn leave<A: Agent>(&self, group: &str, agent: &ActorRef<A>) -> bool {
        self.inner.groups.leave(group, agent.id())
    }

    /// The live members of `group` that are agents of type `A`, in joining order.
    pub fn members<A: Agent>(&self, group: &str) -> Vec<ActorRef<A>> {
        self.inner.groups.members(group)
    }

    /// The names of the groups that have members, sorted.
    pub fn groups(&self) -> Vec<String> {
        self.inner.groups.names()
    }

    /// Casts a message to every member of `group` of type `A`: `make` builds each
    /// member's request (`|w| w.reload()`). Like Erlang's send, it never waits: a
    /// member whose mailbox is full does not get the message, and the returned
    /// [`Broadcast`] counts it.
    pub fn broadcast<A, R, F>(&self, group: &str, make: F) -> Broadcast
    where
        A: Agent,
        F: FnMut(&ActorRef<A>) -> Request<A, R>,
    {
        self.inner.groups.broadcast(group, make)
    }

    /// How many agents are alive: spawned and not yet fully stopped, including agents
    /// that have not received their first message yet (they start on it) and agents
    /// running their `#[on_stop]` hook.
    pub fn agent_count(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// True once [`shutdown`](System::shutdown) or
    /// [`shutdown_timeout`](System::shutdown_timeout) has been called on this system (or a
    /// clone of it): services built on the system, such as a live view, stop with it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let system = troupe::System::new();
    /// let watched = system.clone();
    /// assert!(!watched.is_shutting_down());
    /// system.shutdown().await;
    /// assert!(watched.is_shutting_down());
    /// # }
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.inner.is_shutting_down()
    }

    /// Sets how long an agent may stay idle before it **hibernates** (default
    /// [`DEFAULT_HIBERNATE_AFTER`](crate::DEFAULT_HIBERNATE_AFTER), half a second);
    /// `None` turns hibernation off.
    ///
    /// A hibernating agent gives back its task and its queue buffers, keeping only its
    /// state in its cell (a couple of hundred bytes), as Erlang's `hibernate` does. Its
    /// next message or signal gives it a task again (about a microsecond) and it goes on
    /// where it was: `#[on_start]` does not run again, nothing it could observe
    /// changes. An agent with an active timer or a live `ctx.spawn` child does not
    /// hibernate. A busy agent is never idle long enough to be affected.
    pub fn hibernate_after(&self, after: Option<Duration>) {
        self.inner.idle.set_after(after);
    }

    /// Whether the system asks the allocator to give freed memory back to the operating
    /// system after a wave of hibernations (on by default).
    ///
    /// Agents that hibernate free their tasks and buffers, but glibc's `malloc` keeps
    /// freed memory resident for reuse: a million agents that each handled one message
    /// and went idle stay at about a kilobyte of resident memory each, against about
    /// 220 bytes once it is given back. So after at least 1,024 agents hibernated, the
    /// next hibernation sweep calls `malloc_trim(0)` on a blocking thread (it takes
    /// about 25 ms for a gigabyte of freed memory, locking each allocator arena in
    /// turn). Turn it off if those pauses matter more to you than resident memory, or
    /// if you trim yourself. It does nothing with other allocators or outside
    /// glibc-based Linux. [`stats`](System::stats) counts the times it returned memory.
    pub fn return_memory(&self, on: bool) {
        self.inner.idle.set_return_memory(on);
    }

    /// A snapshot of every agent of this system, printable with `{}`: the supervision
    /// trees (pools included), then the agents no supervisor owns (the first 20 of them
    /// by id, then a count of the rest). Serializable with serde (e.g. as JSON), with
    /// each agent's type, id, names, state (running, restarting, stopped), mailbox
    /// depth and restarts; see [`Tree`].
    ///
    /// ```
    /// use troupe::prelude::*;
    ///
    /// #[derive(Default)]
    /// pub struct Counter { n: u64 }
    ///
    /// #[agent]
    /// impl Counter {
    ///     #[handle] fn add(&mut self, n: u64) { self.n += n; }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> troupe::Result<()> {
    /// let system = System::new();
    /// let sup = Supervisor::new(Strategy::OneForOne)
    ///     .child(ChildSpec::new("counter", Counter::default))
    ///     .spawn(&system);
    /// let counter: ActorRef<Counter> = sup.child("counter")?;
    /// counter.add(1).await?;
    /// let tree = system.tree();
    /// let node = tree.agent(counter.id()).unwrap();
    /// assert_eq!((node.agent.as_str(), node.name.as_deref()), ("Counter", Some("counter")));
    /// let json = serde_json::to_value(&tree).unwrap();
    /// assert_eq!(json["supervisors"][0]["children"][0]["state"], "running");
    /// # system.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tree(&self) -> Tree {
        let roots: Vec<Arc<SupShared>> = self.inner.root_supervisors();
        let mut unsupervised: Vec<Arc<dyn AnyCell>> = self
            .inner
            .live_cells()
            .into_iter()
            .filter(|c| !c.is_supervised())
            .collect();
        let count = unsupervised.len();
        unsupervised.sort_by_key(|c| c.id());
        unsupervised.truncate(crate::supervisor::MAX_UNSUPERVISED);
        let registry = &self.inner.registry;
        let nodes = unsupervised
            .iter()
            .map(|c| {
                AgentNode::unsupervised(
                    c.id(),
                    c.type_name(),
                    c.status(),
                    c.queue_len(),
                    c.handled(),
                    registry.name_of(c.id()),
                )
            })
            .collect();
        Tree::new(self.agent_count(), &roots, nodes, count, &|id| {
            registry.name_of(id)
        })
    }

    /// What the agents of this system did, per agent type: messages handled, mailbox
    /// depth (now), handling time (a histogram), calls timed out, restarts, crashes. A
    /// snapshot, serializable with serde (e.g. as JSON); see [`Stats`].
    ///
    /// The counters cost the message loop an atomic add per batch and two clock reads
    /// per [`SAMPLE_EVERY`](crate::stats::SAMPLE_EVERY) messages; the mailbox depths are
    /// read here, one mailbox lock per live agent.
    ///
    /// ```
    /// use troupe::prelude::*;
    ///
    /// #[derive(Default)]
    /// pub struct Counter { n: u64 }
    ///
    /// #[agent]
    /// impl Counter {
    ///     #[handle] fn add(&mut self, n: u64) { self.n += n; }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> troupe::Result<()> {
    /// let system = System::new();
    /// let counter = system.spawn(Counter::default());
    /// for n in 0..3 {
    ///     counter.add(n).await?;
    /// }
    /// let stats = system.stats();
    /// let counters = stats.agent_type("Counter").unwrap();
    /// assert_eq!((counters.live, counters.messages_handled), (1, 3));
    /// println!("{}", serde_json::to_string_pretty(&stats).unwrap());
    /// # system.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        let cells = self.inner.live_cells();
        stats::snapshot(
            &self.inner.stats,
            self.agent_count(),
            self.inner.idle.trims(),
            cells.iter().map(|c| (Arc::as_ptr(c.type_stats()), c.queue_len())),
        )
    }

    /// Publishes [`stats`](System::stats) through the [`metrics`] facade, to whatever
    /// recorder the application installed (e.g. `metrics-exporter-prometheus`): per agent
    /// type (label `agent`), counters as absolute values, gauges set to the current
    /// value, and the handling times sampled since the last call into a histogram (each
    /// at the middle of its bucket). The names are in [`stats::names`](crate::stats::names).
    /// Without a recorder this does nothing but take the snapshot. See
    /// [`publish_metrics`](System::publish_metrics) to do it periodically.
    pub fn record_metrics(&self) {
        stats::publish(&self.inner.stats, &self.stats());
    }

    /// Calls [`record_metrics`](System::record_metrics) every `every` (from now) on a
    /// task of the system's runtime, until the system is dropped or shut down.
    pub fn publish_metrics(&self, every: Duration) {
        let system = Arc::downgrade(&self.inner);
        let task = async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = system.upgrade() else { return };
                let system = System::from_inner(inner);
                system.record_metrics();
                if system.inner.is_shutting_down() {
                    return;
                }
            }
        };
        drop(self.inner.start(task));
    }

    /// Stops every agent and waits until all have stopped and run their `#[on_stop]`
    /// hooks, for at most [`DEFAULT_SHUTDOWN_TIMEOUT`] (5 s); agents still running then
    /// are killed. See [`shutdown_timeout`](System::shutdown_timeout).
    pub async fn shutdown(&self) {
        self.shutdown_timeout(DEFAULT_SHUTDOWN_TIMEOUT).await
    }

    /// Stops every agent and waits until all have stopped and run their `#[on_stop]`
    /// hooks, for at most `timeout`. Supervisors stop first, each stopping its children
    /// in reverse start order; children started with `ctx.spawn` stop before their
    /// parents. Agents spawned during shutdown are stopped too.
    ///
    /// Agents still running when `timeout` has passed (a handler stuck in an `.await`,
    /// a slow `#[on_stop]`) are killed: their tasks are aborted, their queued calls get
    /// [`CallError::Stopped`](crate::CallError::Stopped), and each is logged (a `tracing`
    /// warning). An aborted task is dropped the next time it yields; one that never
    /// yields (a handler in a blocking loop) cannot be aborted: after one more second,
    /// shutdown logs an error naming it and returns anyway. Shutdown never hangs.
    pub async fn shutdown_timeout(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let graceful = async {
            for sup in self.inner.root_supervisors() {
                SupervisorRef::from_shared(sup).shutdown().await;
            }
            self.inner.wait_all_stopped(true).await;
        };
        if tokio::time::timeout_at(deadline, graceful).await.is_ok() {
            return;
        }
        for cell in self.inner.live_cells() {
            if cell.clone().kill() {
                tracing::warn!(agent = %cell.id(), kind = cell.type_name(), ?timeout, "agent did not stop within the shutdown timeout; killed");
            }
        }
        if tokio::time::timeout(KILL_GRACE, self.inner.wait_all_stopped(false))
            .await
            .is_err()
        {
            for cell in self.inner.live_cells() {
                tracing::error!(agent = %cell.id(), kind = cell.type_name(), "agent could not be killed (its handler never yields: a blocking loop?); shutdown gives up on it");
            }
        }
    }
}

impl Default for System {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("System")
            .field("agents", &self.agent_count())
            .finish_non_exhaustive()
    }
}

impl SystemInner {
    /// Allocates a slot and builds the cell that occupies it.
    pub(crate) fn track<C: AnyCell + 'static>(&self, build: impl FnOnce(u32) -> C) -> Arc<C> {
        let mut slots = self.slots.lock();
        let slot = match slots.free.pop() {
            Some(i) => i,
            None => {
                slots.entries.push(None);
                slots.entries.len() - 1
            }
        };
        let cell = Arc::new(build(slot as u32));
        let entry: Arc<dyn AnyCell> = cell.clone();
        slots.entries[slot] = Some(entry);
        self.live.fetch_add(1, Ordering::AcqRel);
        drop(slots);
        if self.shutting_down.load(Ordering::SeqCst) {
            cell.clone().request_stop(StopReason::Shutdown);
        }
        cell
    }

    /// Runs an agent's (or a supervisor's) task on the system's runtime, or on the
    /// current one for a system created outside a runtime. With no runtime at all the
    /// task is dropped (an agent's task then ends as killed) and an error is logged.
    pub(crate) fn start<F>(&self, task: F) -> Option<JoinHandle<()>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.handle {
            Some(h) => Some(h.spawn(task)),
            None => match Handle::try_current() {
                Ok(h) => Some(h.spawn(task)),
                Err(_) => {
                    tracing::error!(
                        "troupe: no tokio runtime to run an agent on; create the System inside one"
                    );
                    drop(task);
                    None
                }
            },
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn add_root_supervisor(&self, sup: Weak<SupShared>) {
        let mut sups = self.supervisors.lock();
        sups.retain(|s| s.strong_count() > 0);
        sups.push(sup);
    }

    fn root_supervisors(&self) -> Vec<Arc<SupShared>> {
        self.supervisors.lock().iter().filter_map(Weak::upgrade).collect()
    }

    pub(crate) fn agent_exited(&self, slot: usize) {
        {
            let mut slots = self.slots.lock();
            if let Some(entry) = slots.entries.get_mut(slot) {
                *entry = None;
                slots.free.push(slot);
            }
        }
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_stopped.notify_waiters();
        }
    }

    pub(crate) fn live_cells(&self) -> Vec<Arc<dyn AnyCell>> {
        self.slots.lock().entries.iter().flatten().cloned().collect()
    }

    /// Resolves once no agent is alive; with `stop`, asks every live agent to stop each
    /// time it looks (agents spawned meanwhile included).
    async fn wait_all_stopped(&self, stop: bool) {
        loop {
            let notified = self.all_stopped.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            if stop {
                for cell in self.live_cells() {
                    cell.request_stop(StopReason::Shutdown);
                }
            }
            notified.await;
        }
    }
}
