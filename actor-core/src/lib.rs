//! The troupe runtime: agents, mailboxes, references, contexts, timers and the registry.
//!
//! Most users depend on the `troupe` facade and write `use troupe::prelude::*;`; this
//! crate holds the machinery the `#[agent]` macro generates code against. It never
//! depends on cryptography or networking: remote references plug in from `actor-secure`.

mod actor_ref;
mod agent;
mod cell;
mod context;
mod error;
mod group;
mod hibernate;
mod link;
mod mailbox;
mod memory;
mod panic;
mod pool;
mod protocol;
mod registry;
mod reply;
mod request;
mod runner;
pub mod stats;
mod supervisor;
mod system;
pub mod testing;
mod timer;
pub mod trace;

pub use actor_ref::{ActorId, ActorRef};
pub use agent::{Agent, Options, StopReason, DEFAULT_MAILBOX};
pub use cell::Caller;
pub use context::Context;
pub use error::{CallError, Error, RegistryError, Result, SendError};
pub use group::Broadcast;
pub use hibernate::DEFAULT_HIBERNATE_AFTER;
pub use link::Down;
pub use panic::{quiet_agent_panics, QuietPanics};
pub use pool::{Pool, PoolBuilder, Routing};
pub use protocol::{Protocol, RemoteAgent};
pub use reply::Reply;
pub use request::{Cast, Request};
pub use stats::Stats;
pub use supervisor::{
    AgentNode, AgentState, Backoff, ChildSpec, EventKind, Restart, Strategy, SupervisionEvent, Supervisor,
    SupervisorError, SupervisorEvents, SupervisorNode, SupervisorRef, SupervisorState, Tree, TreeNode,
};
pub use system::{System, DEFAULT_SHUTDOWN_TIMEOUT};
pub use timer::TimerHandle;

#[doc(hidden)]
pub use actor_ref::{AgentClient, RawRef};

/// Items used by the code `#[agent]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::actor_ref::{AgentClient, RawRef, RemoteTarget};
    pub use crate::agent::{AgentOptions, OptionsProbe, ViaDefaultOptions, ViaStructOptions};
    pub use crate::cell::{Envelope, ReplyTx};
    pub use crate::protocol::{with_ref_scope, WireRef};
    pub use crate::request::{deliver, ReplyRx};

    /// Delivers the exit of a linked agent on another node (`from` stands for it here)
    /// to the current instance of a local agent, as a local link would.
    pub fn signal_exit<A: crate::Agent>(
        agent: &crate::ActorRef<A>,
        from: crate::ActorId,
        reason: crate::StopReason,
    ) {
        if let Some(cell) = agent.local_cell() {
            cell.deliver(crate::mailbox::Signal::Exit {
                from,
                reason,
                generation: cell.generation(),
            });
        }
    }

    /// The agent whose task is running here, if any.
    pub fn current_agent() -> Option<crate::ActorId> {
        crate::runner::current_agent()
    }

    /// The wire name of a reference to an agent on another node (`None` for a local one).
    pub fn remote_wire<A: crate::Agent>(agent: &crate::ActorRef<A>) -> Option<WireRef> {
        agent.remote().map(|r| r.wire())
    }

    /// Waits until a local agent is gone for good (a supervised agent that restarts is
    /// not) and says why; for a remote agent, as [`ActorRef::stopped`](crate::ActorRef::stopped).
    pub async fn exit_reason<A: crate::Agent>(agent: &crate::ActorRef<A>) -> crate::StopReason {
        match agent.local_cell() {
            Some(cell) => {
                std::future::poll_fn(|cx| cell.poll_terminated(cx)).await;
                cell.final_reason().unwrap_or(crate::StopReason::Normal)
            }
            None => match agent.remote() {
                Some(remote) => std::future::poll_fn(|cx| remote.poll_down(cx)).await,
                None => crate::StopReason::Normal,
            },
        }
    }
    pub use serde;
}
