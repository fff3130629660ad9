//! Worker pools: N supervised instances of one agent behind one reference-like handle.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::RwLock;

use crate::actor_ref::{short_type_name, AgentClient, RawRef};
use crate::cell::Envelope;
use crate::{
    ActorRef, Agent, Backoff, ChildSpec, Strategy, Supervisor, SupervisorError, SupervisorRef, System,
};

/// How a [`Pool`] picks the worker for each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Routing {
    /// Each worker in turn. The cheapest choice: one atomic counter per message.
    #[default]
    RoundRobin,
    /// The worker with the fewest messages queued or in hand (ties go round robin).
    /// Looks at every worker's mailbox, so it costs one short lock per worker per
    /// message: worth it when jobs vary in length.
    LeastLoaded,
}

/// How long a worker being removed by [`Pool::resize`] may take to finish the messages
/// it already has before it is stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of workers: `size` instances of one agent, supervised one-for-one, behind one
/// handle that dereferences to the agent's client. Every call or cast through it goes to
/// one worker, chosen by the pool's [`Routing`]:
///
/// ```
/// use troupe::prelude::*;
///
/// #[derive(Default)]
/// pub struct Resizer;
///
/// #[agent]
/// impl Resizer {
///     #[handle]
///     fn resize(&self, w: u32, h: u32) -> u64 {
///         u64::from(w) * u64::from(h)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> troupe::Result<()> {
/// let system = System::new();
/// let pool = Pool::builder(Resizer::default).size(4).spawn(&system);
/// assert_eq!(pool.resize(3, 2).await?, 6); // one of the four workers answers
/// pool.set_size(8).await?;                  // grow (or shrink) at run time
/// assert_eq!(pool.size(), 8);
/// system.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// The pool's own methods (`size`, `routing`, `workers`, `supervisor`, `set_size`,
/// `shutdown`) come before the agent's handlers of the same name; reach such a handler
/// through one worker, from [`workers`](Pool::workers).
///
/// A worker that crashes is restarted by the pool's supervisor under the same
/// reference, with its queued messages, so the pool keeps its size; the crash is one
/// of the pool's [`events`](SupervisorRef::events). If workers crash faster than the
/// restart intensity allows, the pool's supervisor gives up and the pool stops: calls
/// then fail with [`CallError::Stopped`](crate::CallError::Stopped).
pub struct Pool<A: Agent> {
    router: Arc<Router<A>>,
    client: A::Client,
}

/// Builds a [`Pool`].
pub struct PoolBuilder<A: Agent> {
    factory: Arc<dyn Fn() -> A + Send + Sync>,
    size: usize,
    routing: Routing,
    name: String,
    supervisor: Supervisor,
}

/// The routing half of a pool: what a pool reference sends through.
pub(crate) struct Router<A: Agent> {
    workers: RwLock<Vec<ActorRef<A>>>,
    routing: Routing,
    next: AtomicUsize,
    name: String,
    factory: Arc<dyn Fn() -> A + Send + Sync>,
    sup: SupervisorRef,
    /// Serialises resizes.
    resizing: tokio::sync::Mutex<()>,
    /// Numbers the workers' child names (`pool-3`), never reused.
    created: AtomicUsize,
}

impl<A: Agent> Pool<A> {
    /// A pool of workers built by `factory` (called again for every restart). Defaults:
    /// as many workers as the machine has cores, round robin, the supervisor defaults
    /// (3 restarts in 5 s).
    pub fn builder<F>(factory: F) -> PoolBuilder<A>
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        PoolBuilder {
            factory: Arc::new(factory),
            size: std::thread::available_parallelism().map_or(1, |n| n.get()),
            routing: Routing::RoundRobin,
            name: format!("pool-{}", short_type_name::<A>()),
            supervisor: Supervisor::new(Strategy::OneForOne),
        }
    }

    /// How many workers the pool has.
    pub fn size(&self) -> usize {
        self.router.len()
    }

    /// The pool's routing.
    pub fn routing(&self) -> Routing {
        self.router.routing
    }

    /// References to the workers, in pool order (each stays valid across its restarts).
    pub fn workers(&self) -> Vec<ActorRef<A>> {
        self.router.workers.read().clone()
    }

    /// The supervisor of the workers: for its [`events`](SupervisorRef::events), its
    /// restart count, or to shut the pool down.
    pub fn supervisor(&self) -> &SupervisorRef {
        &self.router.sup
    }

    /// Grows or shrinks the pool to `size` workers. New workers start at once; removed
    /// workers (the newest first) stop receiving messages at once, finish what they
    /// already have (for up to 5 s), then stop.
    pub async fn set_size(&self, size: usize) -> Result<(), SupervisorError> {
        let r = &self.router;
        let _one_at_a_time = r.resizing.lock().await;
        while r.len() < size {
            let n = r.created.fetch_add(1, Ordering::Relaxed);
            let name = format!("{}-{n}", r.name);
            let factory = r.factory.clone();
            r.sup
                .start_child(ChildSpec::new(name.clone(), move || factory()))
                .await?;
            let worker = r.sup.child::<A>(&name)?;
            r.workers.write().push(worker);
        }
        // Out of the routing first, all at once; then each finishes its work and stops.
        let removed: Vec<ActorRef<A>> = {
            let mut workers = r.workers.write();
            let keep = size.min(workers.len());
            workers.split_off(keep)
        };
        for worker in removed.into_iter().rev() {
            let drained = async {
                while worker.is_alive() && worker.cell().mailbox().load() > 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
            if let Some(name) = r.sup.child_name(worker.id()) {
                r.sup.terminate_child(&name).await?;
            }
        }
        Ok(())
    }

    /// Stops every worker (newest first) and the pool's supervisor.
    pub async fn shutdown(&self) {
        self.router.workers.write().clear();
        self.router.sup.shutdown().await;
    }
}

impl<A: Agent> PoolBuilder<A> {
    /// How many workers to start with (0 is allowed: calls then fail with `Stopped`
    /// until the pool grows).
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// How messages are spread over the workers (default round robin).
    pub fn routing(mut self, routing: Routing) -> Self {
        self.routing = routing;
        self
    }

    /// The supervisor's name in [`System::tree`] and in events (default `pool-Type`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Restart intensity of the workers' supervisor (see [`Supervisor::max_restarts`]).
    pub fn max_restarts(mut self, max: u32, period: Duration) -> Self {
        self.supervisor = self.supervisor.max_restarts(max, period);
        self
    }

    /// Delays restarts of a worker that keeps failing (see [`Supervisor::backoff`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.supervisor = self.supervisor.backoff(backoff);
        self
    }

    /// Starts the pool's supervisor and its workers.
    pub fn spawn(self, system: &System) -> Pool<A> {
        let names: Vec<String> = (0..self.size).map(|i| format!("{}-{i}", self.name)).collect();
        let mut sup = self.supervisor;
        for name in &names {
            let factory = self.factory.clone();
            sup = sup.child(ChildSpec::new(name.clone(), move || factory()));
        }
        let sup = sup.spawn_named(system, self.name.clone());
        let workers = names.iter().filter_map(|n| sup.child::<A>(n).ok()).collect();
        let router = Arc::new(Router {
            workers: RwLock::new(workers),
            routing: self.routing,
            next: AtomicUsize::new(0),
            name: self.name,
            factory: self.factory,
            sup,
            resizing: tokio::sync::Mutex::new(()),
            created: AtomicUsize::new(self.size),
        });
        Pool {
            client: A::Client::troupe_from_raw(RawRef::pool(router.clone())),
            router,
        }
    }
}

impl<A: Agent> Router<A> {
    pub(crate) fn len(&self) -> usize {
        self.workers.read().len()
    }

    /// The worker for the next message.
    fn pick(&self, workers: &[ActorRef<A>]) -> usize {
        let start = self.next.fetch_add(1, Ordering::Relaxed) % workers.len();
        match self.routing {
            Routing::RoundRobin => start,
            Routing::LeastLoaded => {
                let mut best = (usize::MAX, start);
                for k in 0..workers.len() {
                    let i = (start + k) % workers.len();
                    let load = workers[i].cell().mailbox().load();
                    if load < best.0 {
                        best = (load, i);
                        if load == 0 {
                            break;
                        }
                    }
                }
                best.1
            }
        }
    }

    /// Enqueues without waiting: at the chosen worker, or the next ones if it is full.
    pub(crate) fn try_push(&self, mut env: Envelope<A>) -> Result<(), (Envelope<A>, bool)> {
        let workers = self.workers.read();
        if workers.is_empty() {
            return Err((env, false));
        }
        let first = self.pick(&workers);
        let mut full = false;
        for k in 0..workers.len() {
            match workers[(first + k) % workers.len()].cell().try_push(env) {
                Ok(()) => return Ok(()),
                Err((back, is_full)) => {
                    full |= is_full;
                    env = back;
                }
            }
        }
        Err((env, full))
    }

    /// Enqueues at the chosen worker, waiting for room there.
    pub(crate) fn poll_push(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<Envelope<A>>,
    ) -> Poll<Result<(), Envelope<A>>> {
        let workers = self.workers.read();
        if workers.is_empty() {
            return match slot.take() {
                Some(env) => Poll::Ready(Err(env)),
                None => Poll::Ready(Ok(())),
            };
        }
        let i = self.pick(&workers);
        workers[i].cell().poll_push(cx, slot)
    }
}

impl<A: Agent> Deref for Pool<A> {
    type Target = A::Client;

    fn deref(&self) -> &A::Client {
        &self.client
    }
}

impl<A: Agent> Clone for Pool<A> {
    fn clone(&self) -> Self {
        Pool {
            router: self.router.clone(),
            client: self.client.clone(),
        }
    }
}

impl<A: Agent> fmt::Debug for Pool<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("agent", &short_type_name::<A>())
            .field("size", &self.size())
            .field("routing", &self.router.routing)
            .finish()
    }
}

impl<A: Agent> fmt::Debug for PoolBuilder<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("agent", &short_type_name::<A>())
            .field("size", &self.size)
            .field("routing", &self.routing)
            .field("name", &self.name)
            .finish()
    }
}
