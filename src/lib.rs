//! troupe: supervised, secure-by-default actors for Rust, in the Erlang/Elixir tradition.
//!
//! Agents are plain structs. `#[agent]` on the struct (optional, for options) and on its
//! `impl` block, `#[handle]` on methods, and every handler becomes a typed method of the
//! agent's reference:
//!
//! ```
//! use std::time::Duration;
//! use troupe::prelude::*;
//!
//! #[agent(mailbox = 64)]
//! #[derive(Default)]
//! pub struct Counter {
//!     count: u64,
//! }
//!
//! #[agent]
//! impl Counter {
//!     #[handle]
//!     fn add(&mut self, n: u64) {
//!         self.count += n;
//!     }
//!
//!     #[handle]
//!     fn get(&self) -> u64 {
//!         self.count
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> troupe::Result<()> {
//!     let system = System::new();
//!     let counter: ActorRef<Counter> = system.spawn(Counter::default());
//!     counter.add(2).cast().await?; // cast: enqueue and go on
//!     counter.add(3).await?; // call: wait until handled
//!     assert_eq!(counter.get().await?, 5);
//!     let n = counter.get().timeout(Duration::from_millis(50)).await?;
//!     assert_eq!(n, 5);
//!     system.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! The guide (`book/`) walks through agents, supervision and secure channels; the
//! crates behind this facade are `actor-core` (the runtime), `actor-macros`,
//! `actor-secure` (identities and secure channels) and `actor-abac` (access control).
//!
//! Cargo features: `cli` (on by default: the `troupe` command for identities,
//! credentials, policies and inlets), `mcp` (`troupe::mcp`: agents that call MCP servers'
//! tools, and handlers served as tools), `web` (`troupe::web`: a live view in a web
//! browser), `otel` (`troupe::otel`: the handlers' spans exported to OpenTelemetry,
//! one trace per request across nodes). Only `cli` is on by default.

#[doc(inline)]
pub use actor_core::{
    quiet_agent_panics, ActorId, ActorRef, Agent, AgentNode, AgentState, Backoff, Broadcast, CallError,
    Caller, Cast, ChildSpec, Context, Down, Error, EventKind, Options, Pool, PoolBuilder, Protocol,
    QuietPanics, RegistryError, RemoteAgent, Reply, Request, Restart, Result, Routing, SendError, Stats,
    StopReason, Strategy, SupervisionEvent, Supervisor, SupervisorError, SupervisorEvents, SupervisorNode,
    SupervisorRef, SupervisorState, System, TimerHandle, Tree, TreeNode, DEFAULT_HIBERNATE_AFTER,
    DEFAULT_MAILBOX, DEFAULT_SHUTDOWN_TIMEOUT,
};
#[doc(inline)]
pub use actor_macros::{agent, handle, on_down, on_start, on_stop};

// MCP: agents that call MCP servers' tools, and handlers served as MCP tools (feature
// `mcp`). Documented by its own inner doc comment, whose links resolve in its scope.
#[cfg(feature = "mcp")]
pub mod mcp;

/// Access control: attributes and policies (see the `actor-abac` crate).
pub use actor_abac as abac;
/// What a system's agents did, per agent type: [`System::stats`] and the metric names of
/// [`System::record_metrics`].
pub use actor_core::stats;
/// Testing agents: [`Probe`](testing::Probe), a stand-in that records what it receives.
pub use actor_core::testing;
/// Identities and secure channels (see the `actor-secure` crate).
pub use actor_secure as secure;
// A live view in a web browser (feature `web`); documented inside.
#[cfg(feature = "web")]
pub mod web;
// Exporting the handlers' spans to OpenTelemetry (feature `otel`); documented inside.
#[cfg(feature = "otel")]
pub mod otel;

/// Everything an agent author needs: `use troupe::prelude::*;`.
pub mod prelude {
    pub use actor_core::{
        ActorId, ActorRef, Agent, Backoff, CallError, Caller, ChildSpec, Context, Down, EventKind, Pool,
        RegistryError, RemoteAgent, Reply, Restart, Routing, SendError, StopReason, Strategy,
        SupervisionEvent, Supervisor, SupervisorError, SupervisorRef, System, TimerHandle,
    };
    pub use actor_macros::{agent, handle, on_down, on_start, on_stop};
    pub use actor_secure::{CallerIdentity, ChannelError, Identifier, Identity, SecureChannel, TrustPolicy};
}

/// Used by the code `#[agent]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use actor_core::__private::*;
    pub use actor_secure::__private::{ref_from_wire as node_ref_from_wire, ref_to_wire as node_ref_to_wire};
    /// For `#[handle(tool)]` (feature `mcp`).
    #[cfg(feature = "mcp")]
    pub use schemars;
    /// For `#[handle(tool)]` (feature `mcp`).
    #[cfg(feature = "mcp")]
    pub use serde_json;
}
