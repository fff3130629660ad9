//! The [`Agent`] trait that `#[agent]` implements, and the reasons an agent stops.

use std::fmt;
use std::future::Future;

use crate::{AgentClient, Context};

/// Mailbox capacity used when an agent sets none (`#[agent(mailbox = N)]` overrides it).
pub const DEFAULT_MAILBOX: usize = 1024;

/// A stateful agent: owns its state and handles one message at a time.
///
/// You do not implement this by hand: `#[agent]` on an `impl` block generates the
/// message enum, the reply enum, the typed client and this impl from the `#[handle]`
/// methods.
pub trait Agent: Sized + Send + 'static {
    /// The message enum: one variant per handler, carrying its arguments.
    type Msg: Send + 'static;
    /// The reply enum: one variant per handler, carrying its return value.
    type Reply: Send + 'static;
    /// The typed client that [`ActorRef<Self>`](crate::ActorRef) dereferences to.
    type Client: AgentClient<Self>;

    /// True when the agent has an `#[on_start]` hook, which must run at spawn time;
    /// other agents start on their first message. Set by `#[agent]`.
    #[doc(hidden)]
    const EAGER_START: bool = false;

    /// Runtime options (mailbox capacity, ...), from `#[agent(..)]` on the struct.
    fn options() -> Options {
        Options::default()
    }

    /// The name of the handler that `msg` is for (the `#[handle]` method's name), for
    /// traces and metrics: the `handler` field of the `troupe::handle` span. Generated
    /// by `#[agent]` (a `match` returning a string literal: no allocation); a
    /// hand-written agent that does not override it reports `"handle"`.
    fn handler_name(msg: &Self::Msg) -> &'static str {
        let _ = msg;
        "handle"
    }

    /// Handles one message and produces its reply; `None` when the handler took the
    /// reply slot to answer later (see [`Reply`](crate::Reply)).
    fn handle(
        &mut self,
        msg: Self::Msg,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Option<Self::Reply>> + Send;

    /// Runs once before the first message of each instance (`#[on_start]`).
    fn on_start(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// Receives a [`Down`](crate::Down) notice (`#[on_down]`): a monitored agent stopped,
    /// or a linked one exited while this agent traps exits. A panic here is a crash, as
    /// in a handler.
    fn on_down(&mut self, down: crate::Down, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = (down, ctx);
        async {}
    }

    /// Runs once after the last message of each instance (`#[on_stop]`), whatever the
    /// reason, except when the instance is killed (its task is aborted). Timers and
    /// children it starts are cancelled and stopped when it returns; a panic in it is
    /// logged and does not change the outcome.
    fn on_stop(&mut self, reason: &StopReason, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        async {}
    }
}

/// Runtime options of an agent type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// How many messages may wait in the mailbox before senders wait (or `try_cast` fails).
    pub mailbox: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mailbox: DEFAULT_MAILBOX,
        }
    }
}

impl Options {
    /// Options with the given mailbox capacity (at least 1).
    pub const fn with_mailbox(mailbox: usize) -> Self {
        Options {
            mailbox: if mailbox == 0 { 1 } else { mailbox },
        }
    }
}

/// Why an agent stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// It asked to stop (`ctx.stop()`) or was asked to by its owner.
    Normal,
    /// The system is shutting down.
    Shutdown,
    /// A handler or hook panicked; the panic message.
    Panicked(String),
    /// It stopped with an abnormal reason of its own (`ctx.stop_with(StopReason::Error(..))`).
    Error(String),
    /// A linked agent ended abnormally (and this agent does not trap exits).
    Linked(crate::ActorId),
    /// It was killed ([`ActorRef::kill`](crate::ActorRef::kill), or it did not stop
    /// within a shutdown timeout): its task was aborted where it stood and `#[on_stop]`
    /// did not run.
    Killed,
    /// The agent is on another node and the link to that node was lost: it may still be
    /// running there, but nothing can reach it from here (Erlang's `noconnection`).
    NodeLost,
}

impl StopReason {
    /// True for reasons that count as a crash (a panic or an error), false for a normal stop
    /// or shutdown.
    pub fn is_abnormal(&self) -> bool {
        matches!(
            self,
            StopReason::Panicked(_)
                | StopReason::Error(_)
                | StopReason::Linked(_)
                | StopReason::Killed
                | StopReason::NodeLost
        )
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Normal => f.write_str("normal"),
            StopReason::Shutdown => f.write_str("shutdown"),
            StopReason::Panicked(m) => write!(f, "panicked: {m}"),
            StopReason::Error(m) => write!(f, "error: {m}"),
            StopReason::Linked(id) => write!(f, "linked agent {id} crashed"),
            StopReason::Killed => f.write_str("killed"),
            StopReason::NodeLost => f.write_str("link to its node lost"),
        }
    }
}

/// Implemented by `#[agent(..)]` on a struct to carry its options. Not for direct use.
#[doc(hidden)]
pub trait AgentOptions {
    fn agent_options() -> Options;
}

/// Picks the struct's options when `#[agent(..)]` is on the struct, the defaults otherwise
/// (autoref specialisation; used by generated code).
#[doc(hidden)]
#[derive(Debug)]
pub struct OptionsProbe<T>(std::marker::PhantomData<fn() -> T>);

impl<T> OptionsProbe<T> {
    #[doc(hidden)]
    pub const fn new() -> Self {
        OptionsProbe(std::marker::PhantomData)
    }
}

impl<T> Default for OptionsProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[doc(hidden)]
pub trait ViaStructOptions {
    fn troupe_options(&self) -> Options;
}

impl<T: AgentOptions> ViaStructOptions for &OptionsProbe<T> {
    fn troupe_options(&self) -> Options {
        T::agent_options()
    }
}

#[doc(hidden)]
pub trait ViaDefaultOptions {
    fn troupe_options(&self) -> Options;
}

impl<T> ViaDefaultOptions for OptionsProbe<T> {
    fn troupe_options(&self) -> Options {
        Options::default()
    }
}
