//! The attribute and option names the macros recognise.

pub(crate) const AGENT: &str = "agent";
pub(crate) const HANDLE: &str = "handle";
pub(crate) const ON_START: &str = "on_start";
pub(crate) const ON_STOP: &str = "on_stop";
pub(crate) const ON_DOWN: &str = "on_down";

pub(crate) const OPT_MAILBOX: &str = "mailbox";
pub(crate) const OPT_CRATE: &str = "crate";
pub(crate) const OPT_REMOTE: &str = "remote";
/// `#[handle(policy = "...")]`.
pub(crate) const POLICY: &str = "policy";
/// `#[handle(tool)]`: serve the handler as an MCP tool.
pub(crate) const TOOL: &str = "tool";

/// The type of the optional context parameter (matched on its last path segment).
pub(crate) const CONTEXT: &str = "Context";

/// The type of a deferred reply parameter, `Reply<T>` (matched on its last path segment).
pub(crate) const REPLY: &str = "Reply";

/// Methods of `ActorRef` itself (and the traits it implements), which would shadow a
/// generated client method of the same name.
pub(crate) const RESERVED_HANDLER_NAMES: &[(&str, &str)] = &[
    ("id", "ActorRef::id"),
    ("is_alive", "ActorRef::is_alive"),
    ("stopped", "ActorRef::stopped"),
    ("stop_gracefully", "ActorRef::stop_gracefully"),
    ("kill", "ActorRef::kill"),
    ("clone", "Clone::clone"),
    ("eq", "PartialEq::eq"),
    ("ne", "PartialEq::ne"),
    ("hash", "Hash::hash"),
    ("fmt", "Debug::fmt"),
    ("deref", "Deref::deref"),
];
