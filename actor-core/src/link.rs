//! Links and monitors: how agents learn that other agents crashed or stopped.
//!
//! - A **monitor** (`ctx.monitor(&other)`) delivers exactly one [`Down`] notice to the
//!   `#[on_down]` hook when `other` stops for good (its reference no longer works),
//!   also when it was already gone at the time of the call. A supervised agent that is
//!   restarted is not down: its reference keeps working. Monitors belong to the
//!   watching agent: a restarted watcher still gets the notice.
//! - A **link** (`ctx.link(&other)`) ties two running instances together: when either
//!   instance ends abnormally (a panic, an error, a kill, or its own linked partner's
//!   crash), the other stops with [`StopReason::Linked`] — unless it traps exits
//!   (`ctx.trap_exits(true)`), in which case every exit of the partner, normal ones
//!   included (as in Erlang), arrives as a [`Down`] notice with `linked: true`. Links
//!   belong to instances: a restarted agent starts unlinked.

use std::sync::Weak;

use crate::{ActorId, StopReason};

/// A notice that a monitored agent stopped, or (when trapping exits) that a linked agent
/// ended. Delivered to the `#[on_down]` hook.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Down {
    /// The agent that stopped or crashed.
    pub id: ActorId,
    /// Why it stopped.
    pub reason: StopReason,
    /// True when this comes from a link (trapped exit), false from a monitor.
    pub linked: bool,
}

/// Someone to tell when an agent (or one of its instances) ends.
pub(crate) struct Watch {
    /// The watching agent's cell.
    pub(crate) cell: Weak<dyn crate::cell::AnyCell>,
    /// The watching instance: notices for an instance that has ended are dropped.
    pub(crate) generation: u32,
    /// A link (instance-scoped, both ways) rather than a monitor.
    pub(crate) link: bool,
    /// For a link to an agent on another node: tells its node instead of a cell.
    pub(crate) remote: Option<RemoteExit>,
}

/// Tells another node that the watched instance ended (the other end of a link to an
/// agent there).
pub(crate) type RemoteExit = std::sync::Arc<dyn Fn(ActorId, StopReason) + Send + Sync>;

/// Tells every watcher that `id` ended with `reason`.
pub(crate) fn notify(id: ActorId, reason: &StopReason, watchers: Vec<Watch>) {
    for w in watchers {
        if let Some(tell) = &w.remote {
            tell(id, reason.clone());
            continue;
        }
        if let Some(cell) = w.cell.upgrade() {
            let signal = if w.link {
                crate::mailbox::Signal::Exit {
                    from: id,
                    reason: reason.clone(),
                    generation: w.generation,
                }
            } else {
                crate::mailbox::Signal::Down {
                    notice: Down {
                        id,
                        reason: reason.clone(),
                        linked: false,
                    },
                }
            };
            cell.deliver(signal);
        }
    }
}
