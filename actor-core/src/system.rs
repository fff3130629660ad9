//! [`System`]: spawns agents, keeps the registry, and shuts everything down.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cell::{self, AnyCell};
use crate::registry::Registry;
use crate::supervisor::{SupShared, SupervisorRef, Tree};
use crate::{ActorRef, Agent, RegistryError, StopReason};

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
    supervisors: Mutex<Vec<Weak<SupShared>>>,
}

/// Every live agent, so that shutdown can reach them all. A slot is reused once its
/// agent has exited.
#[derive(Default)]
struct Slots {
    entries: Vec<Option<Weak<dyn AnyCell>>>,
    free: Vec<usize>,
}

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
                supervisors: Mutex::new(Vec::new()),
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

    /// The agent registered under `name`, if it is alive and of type `A`.
    pub fn lookup<A: Agent>(&self, name: &str) -> Option<ActorRef<A>> {
        self.inner.registry.lookup(name)
    }

    /// How many agents are running (started and not yet fully stopped).
    pub fn agent_count(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// The supervision trees of this system, printable with `{}`.
    pub fn tree(&self) -> Tree {
        let roots: Vec<Arc<SupShared>> = self.inner.root_supervisors();
        Tree::new(self.agent_count(), &roots)
    }

    /// Stops every agent and waits until all have stopped and run their `#[on_stop]`
    /// hooks. Supervisors stop first, each stopping its children in reverse start order;
    /// children started with `ctx.spawn` stop before their parents. Agents spawned during
    /// shutdown are stopped too.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        for sup in self.inner.root_supervisors() {
            SupervisorRef::from_shared(sup).shutdown().await;
        }
        loop {
            let notified = self.inner.all_stopped.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.inner.live.load(Ordering::Acquire) == 0 {
                return;
            }
            for cell in self.inner.live_cells() {
                cell.request_stop(StopReason::Shutdown);
            }
            notified.await;
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
    pub(crate) fn track<C: AnyCell + 'static>(&self, build: impl FnOnce(usize) -> C) -> Arc<C> {
        let mut slots = self.slots.lock();
        let slot = match slots.free.pop() {
            Some(i) => i,
            None => {
                slots.entries.push(None);
                slots.entries.len() - 1
            }
        };
        let cell = Arc::new(build(slot));
        let weak: Weak<dyn AnyCell> = Arc::downgrade(&cell) as Weak<dyn AnyCell>;
        slots.entries[slot] = Some(weak);
        self.live.fetch_add(1, Ordering::AcqRel);
        drop(slots);
        if self.shutting_down.load(Ordering::SeqCst) {
            cell.clone().request_stop(StopReason::Shutdown);
        }
        cell
    }

    /// Runs an agent's (or a supervisor's) task on the system's runtime.
    pub(crate) fn start<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.handle {
            Some(h) => h.spawn(task),
            None => tokio::spawn(task),
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

    fn live_cells(&self) -> Vec<Arc<dyn AnyCell>> {
        self.slots
            .lock()
            .entries
            .iter()
            .filter_map(|e| e.as_ref().and_then(Weak::upgrade))
            .collect()
    }
}
