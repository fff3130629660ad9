//! Supervision events: what happens to a supervisor's children, for anyone who watches.

use std::fmt;
use std::sync::OnceLock;

use tokio::sync::broadcast;

use crate::{ActorId, StopReason};

/// How many events a slow subscriber may fall behind before it misses the oldest.
const BACKLOG: usize = 256;

/// Something that happened in a supervision tree.
///
/// Subscribe with [`SupervisorRef::events`](crate::SupervisorRef::events); a supervisor's
/// subscribers see the events of its whole subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SupervisionEvent {
    /// The supervisor's path from the root (`root/workers`).
    pub supervisor: String,
    /// The child's name (empty for [`EventKind::GaveUp`], which is the supervisor's own).
    pub child: String,
    /// The child agent's id (none for a nested supervisor or a failed start).
    pub agent: Option<ActorId>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to a child.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// The child started for the first time.
    Started,
    /// An instance of the child ended abnormally (a panic, an error, a kill, a linked
    /// crash), or its factory panicked.
    Crashed(StopReason),
    /// An instance of the child ended normally (it stopped itself, or was stopped).
    Stopped(StopReason),
    /// A new instance of the child started after the previous one ended.
    Restarted,
    /// The supervisor exceeded its restart intensity and gave up (its parent, if any,
    /// decides next).
    GaveUp,
}

impl fmt::Display for SupervisionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EventKind::GaveUp => write!(f, "supervisor {} gave up", self.supervisor),
            kind => {
                write!(f, "{}/{}", self.supervisor, self.child)?;
                match kind {
                    EventKind::Started => f.write_str(" started"),
                    EventKind::Crashed(r) => write!(f, " crashed: {r}"),
                    EventKind::Stopped(r) => write!(f, " stopped: {r}"),
                    EventKind::Restarted => f.write_str(" restarted"),
                    EventKind::GaveUp => Ok(()),
                }
            }
        }
    }
}

/// A subscription to a supervisor's events (and those of the supervisors below it).
///
/// Events are kept in a bounded backlog: a subscriber that falls more than 256 events
/// behind misses the oldest ones ([`missed`](SupervisorEvents::missed) counts them)
/// rather than making the tree hold memory for it. A subscriber never slows or stops
/// the tree: dropping it, or the agent reading it crashing, changes nothing there.
#[derive(Debug)]
pub struct SupervisorEvents {
    rx: broadcast::Receiver<SupervisionEvent>,
    missed: u64,
}

impl SupervisorEvents {
    /// The next event, waiting for it; `None` once the supervisor is gone.
    pub async fn recv(&mut self) -> Option<SupervisionEvent> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => self.missed += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<SupervisionEvent> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.missed += n,
                Err(_) => return None,
            }
        }
    }

    /// How many events this subscriber missed because it fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// A supervisor's outlet for events, created on first subscription.
#[derive(Default)]
pub(crate) struct Outlet {
    tx: OnceLock<broadcast::Sender<SupervisionEvent>>,
}

impl Outlet {
    pub(crate) fn subscribe(&self) -> SupervisorEvents {
        let tx = self.tx.get_or_init(|| broadcast::channel(BACKLOG).0);
        SupervisorEvents {
            rx: tx.subscribe(),
            missed: 0,
        }
    }

    pub(crate) fn is_watched(&self) -> bool {
        self.tx.get().is_some_and(|tx| tx.receiver_count() > 0)
    }

    pub(crate) fn send(&self, event: SupervisionEvent) {
        if let Some(tx) = self.tx.get() {
            let _ = tx.send(event);
        }
    }
}
