//! Errors returned by the runtime, one type per concern.

use std::fmt;

/// Why a call (ask) did not produce a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// The reply did not arrive within the time given to [`Request::timeout`](crate::Request::timeout).
    /// The message may still be handled later; its reply is then dropped.
    Timeout,
    /// The agent was stopped (or stopped before handling the message); nothing was handled.
    Stopped,
    /// The handler panicked while handling this message, with the panic message (cut to
    /// 256 bytes). The agent crashed; its supervisor, if any, decides what happens next.
    Panicked(String),
    /// A handler called its own agent, which can only answer after the handler returns:
    /// the call would wait forever (Erlang's `calling_self`). Cast to yourself instead,
    /// or reply later with [`Reply`](crate::Reply).
    CallingSelf,
    /// The handler took the reply slot ([`Reply`](crate::Reply)) and dropped it without
    /// answering.
    NoReply,
    /// The reply did not match the request (a protocol error; never happens locally).
    BadReply,
    /// The agent is on another node, whose access policy does not let this node call
    /// this handler; the handler did not run. The other node recorded the decision in
    /// its audit log.
    Denied,
    /// The agent is on another node and the link to it was lost before the reply came:
    /// the message may or may not have been handled.
    LinkLost,
    /// The agent is on another node, which could not handle the call: the message or
    /// reply could not be encoded or decoded, the agent is no longer exported, or the
    /// node is overloaded. The text says which (nothing of the remote side's internals).
    Remote(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout => f.write_str("call timed out"),
            CallError::Stopped => f.write_str("agent stopped"),
            CallError::Panicked(m) => write!(f, "handler panicked: {m}"),
            CallError::CallingSelf => f.write_str("an agent called itself and would wait forever"),
            CallError::NoReply => f.write_str("the handler dropped the reply without answering"),
            CallError::BadReply => f.write_str("reply did not match the request"),
            CallError::LinkLost => f.write_str("link to the agent's node lost before the reply"),
            CallError::Denied => f.write_str("denied by the remote node's access policy"),
            CallError::Remote(why) => write!(f, "remote node could not handle the call: {why}"),
        }
    }
}

impl std::error::Error for CallError {}

/// A message that could not be enqueued, given back to the sender.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The mailbox is full: from [`Request::try_cast`](crate::Request::try_cast), or from
    /// a cast given a [`timeout`](crate::Request::timeout) that passed while it waited
    /// for room.
    Full(M),
    /// The agent has stopped; its mailbox no longer accepts messages.
    Closed(M),
}

impl<M> SendError<M> {
    /// The message that was not delivered.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m) | SendError::Closed(m) => m,
        }
    }

    /// True when the mailbox was full rather than closed.
    pub fn is_full(&self) -> bool {
        matches!(self, SendError::Full(_))
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Full(_) => "mailbox full",
            SendError::Closed(_) => "agent stopped",
        })
    }
}

impl<M> std::error::Error for SendError<M> {}

/// Why a name could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// Another live agent already holds this name.
    NameTaken(String),
    /// The agent has already stopped, so it cannot be registered.
    AgentStopped,
    /// The reference is to an agent on another node; names and groups here hold only
    /// this node's agents (export an agent on its own node instead).
    Remote,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::NameTaken(name) => write!(f, "name `{name}` is already registered"),
            RegistryError::AgentStopped => f.write_str("agent stopped"),
            RegistryError::Remote => {
                f.write_str("a reference to an agent on another node cannot be registered here")
            }
        }
    }
}

impl std::error::Error for RegistryError {}

/// Any troupe error, for applications that propagate with `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A call failed.
    Call(CallError),
    /// A cast could not be enqueued (the message itself is dropped here).
    Send {
        /// True when the mailbox was full, false when the agent had stopped.
        full: bool,
    },
    /// A registry operation failed.
    Registry(RegistryError),
    /// A supervisor operation failed.
    Supervisor(crate::SupervisorError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Call(e) => e.fmt(f),
            Error::Send { full: true } => f.write_str("mailbox full"),
            Error::Send { full: false } => f.write_str("agent stopped"),
            Error::Registry(e) => e.fmt(f),
            Error::Supervisor(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Call(e) => Some(e),
            Error::Registry(e) => Some(e),
            Error::Supervisor(e) => Some(e),
            Error::Send { .. } => None,
        }
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        Error::Call(e)
    }
}

impl<M> From<SendError<M>> for Error {
    fn from(e: SendError<M>) -> Self {
        Error::Send { full: e.is_full() }
    }
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Self {
        Error::Registry(e)
    }
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
