//! Child specifications and the type-erased operations a supervisor performs on a child.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{Restart, SupShared, Supervisor, SupervisorRef};
use crate::actor_ref::short_type_name;
use crate::cell::{Cell, Supervised};
use crate::runner::panic_message;
use crate::{ActorId, ActorRef, Agent, RawRef, StopReason, System};

/// How to build (and rebuild) one child of a supervisor.
pub struct ChildSpec {
    pub(super) name: String,
    pub(super) restart: Restart,
    pub(super) shutdown: Duration,
    pub(super) kind: Kind,
}

type Build = Box<dyn FnOnce(&System, &Arc<SupShared>, u64) -> Box<dyn ChildOps> + Send>;

pub(super) enum Kind {
    Agent(Build),
    Supervisor(Supervisor),
}

impl ChildSpec {
    /// A child agent built by `factory`, called again for every restart (so a restart
    /// starts from fresh state, as in OTP's `init`).
    pub fn new<A, F>(name: impl Into<String>, factory: F) -> Self
    where
        A: Agent,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let factory: Arc<dyn Fn() -> A + Send + Sync> = Arc::new(factory);
        ChildSpec {
            name: name.into(),
            restart: Restart::Permanent,
            shutdown: Duration::from_secs(5),
            kind: Kind::Agent(Box::new(move |system, shared, key| {
                Box::new(AgentChild::create(system, shared, key, factory))
            })),
        }
    }

    /// A nested supervisor (supervisors wait for their children as long as it takes, so
    /// the shutdown timeout does not apply to them).
    pub fn supervisor(name: impl Into<String>, supervisor: Supervisor) -> Self {
        ChildSpec {
            name: name.into(),
            restart: Restart::Permanent,
            shutdown: Duration::MAX,
            kind: Kind::Supervisor(supervisor),
        }
    }

    /// When to restart this child (default `Permanent`).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// How long the child may take to stop before it is killed (default 5 s).
    pub fn shutdown(mut self, timeout: Duration) -> Self {
        self.shutdown = timeout;
        self
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

/// What a supervisor does to a child, whatever its type.
pub(crate) trait ChildOps: Send {
    /// Starts a new instance (agents) or resumes (nested supervisors). An `Err` is a
    /// failed start (the factory panicked).
    fn start(&mut self) -> Result<(), StopReason>;
    /// Asks the running instance to stop; it reports `Exited` when gone.
    fn request_stop(&self);
    /// Aborts the running instance; it reports `Exited` once its task is dropped.
    /// False when there is nothing to kill (a nested supervisor).
    fn kill(&mut self) -> bool;
    /// Stops for good: the mailbox closes and the reference stops working. For a nested
    /// supervisor, returns a receiver that resolves once its subtree is gone.
    fn finalize(&mut self, reason: &StopReason) -> Option<oneshot::Receiver<()>>;
    /// The typed reference (`ActorRef<A>` or `SupervisorRef`).
    fn any_ref(&self) -> &(dyn Any + Send + Sync);
    /// A word for the running instance's state (`running`, `idle`, `hibernating`).
    fn status(&self) -> &'static str;
    /// The nested supervisor, if this child is one.
    fn subtree(&self) -> Option<Arc<SupShared>>;
    /// The agent's id (none for a nested supervisor).
    fn id(&self) -> Option<ActorId>;
    /// The agent's type name, the messages waiting in its mailbox and the messages it
    /// handled so far (none for a nested supervisor).
    fn mailbox(&self) -> Option<(&'static str, usize, u64)>;
}

pub(super) fn build(
    spec_kind: Kind,
    name: &str,
    system: &System,
    shared: &Arc<SupShared>,
    key: u64,
) -> Box<dyn ChildOps> {
    match spec_kind {
        Kind::Agent(build) => build(system, shared, key),
        Kind::Supervisor(sup) => {
            let sub = super::task::start(sup, system, name.to_owned(), Some((Arc::downgrade(shared), key)));
            Box::new(SupChild {
                r: SupervisorRef { shared: sub },
                first: true,
            })
        }
    }
}

struct AgentChild<A: Agent> {
    cell: Arc<Cell<A>>,
    r: ActorRef<A>,
    factory: Arc<dyn Fn() -> A + Send + Sync>,
}

impl<A: Agent> AgentChild<A> {
    fn create(
        system: &System,
        shared: &Arc<SupShared>,
        key: u64,
        factory: Arc<dyn Fn() -> A + Send + Sync>,
    ) -> Self {
        let hook = Supervised {
            factory: factory.clone(),
            shared: Arc::downgrade(shared) as Weak<SupShared>,
            key,
        };
        let cell = crate::cell::new_supervised(system, hook);
        let r = ActorRef::from_raw(RawRef::local(cell.clone()));
        AgentChild { cell, r, factory }
    }
}

impl<A: Agent> ChildOps for AgentChild<A> {
    fn start(&mut self) -> Result<(), StopReason> {
        let agent = catch_unwind(AssertUnwindSafe(|| (self.factory)()))
            .map_err(|p| StopReason::Panicked(panic_message(&*p)))?;
        self.cell.start(crate::cell::Parked { agent, resume: None });
        Ok(())
    }

    fn request_stop(&self) {
        self.cell.request_stop(StopReason::Shutdown);
    }

    fn kill(&mut self) -> bool {
        self.cell.kill()
    }

    fn finalize(&mut self, reason: &StopReason) -> Option<oneshot::Receiver<()>> {
        self.cell.finalize(reason);
        None
    }

    fn any_ref(&self) -> &(dyn Any + Send + Sync) {
        &self.r
    }

    fn status(&self) -> &'static str {
        crate::cell::AnyCell::status(&*self.cell)
    }

    fn subtree(&self) -> Option<Arc<SupShared>> {
        None
    }

    fn id(&self) -> Option<ActorId> {
        Some(self.cell.id())
    }

    fn mailbox(&self) -> Option<(&'static str, usize, u64)> {
        Some((
            short_type_name::<A>(),
            self.cell.mailbox().len(),
            crate::cell::AnyCell::handled(&*self.cell),
        ))
    }
}

struct SupChild {
    r: SupervisorRef,
    first: bool,
}

impl ChildOps for SupChild {
    fn start(&mut self) -> Result<(), StopReason> {
        if std::mem::take(&mut self.first) {
            return Ok(()); // started when it was built
        }
        let _ = self.r.shared.send(super::SupMsg::Resume);
        Ok(())
    }

    fn request_stop(&self) {
        let _ = self.r.shared.send(super::SupMsg::Suspend);
    }

    fn kill(&mut self) -> bool {
        false
    }

    fn finalize(&mut self, _reason: &StopReason) -> Option<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        self.r
            .shared
            .send(super::SupMsg::Shutdown { reply: Some(tx) })
            .ok()?;
        Some(rx)
    }

    fn any_ref(&self) -> &(dyn Any + Send + Sync) {
        &self.r
    }

    fn status(&self) -> &'static str {
        "running"
    }

    fn subtree(&self) -> Option<Arc<SupShared>> {
        Some(self.r.shared.clone())
    }

    fn id(&self) -> Option<ActorId> {
        None
    }

    fn mailbox(&self) -> Option<(&'static str, usize, u64)> {
        None
    }
}
