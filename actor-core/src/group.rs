//! Named process groups (OTP's `pg`): agents join and leave groups by name; a group's
//! members can be listed and sent a cast together. Members leave when they stop.
//!
//! Groups are local to a [`System`](crate::System) today. The table is keyed by group
//! name and agent id and holds each member's reference, so a node layer can later add
//! members that live on other nodes (remote references) and sync joins and leaves
//! between nodes without changing this API.

use std::any::Any;
use std::collections::HashMap;

use parking_lot::Mutex;

use crate::{ActorId, ActorRef, Agent, RegistryError, Request};

#[derive(Default)]
pub(crate) struct Groups {
    groups: Mutex<HashMap<String, Vec<Member>>>,
}

struct Member {
    id: ActorId,
    /// The member's `ActorRef<A>`.
    agent: Box<dyn Any + Send + Sync>,
}

/// What a [`System::broadcast`](crate::System::broadcast) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Broadcast {
    /// Members whose mailbox took the message.
    pub delivered: usize,
    /// Members whose mailbox was full: they did not get it.
    pub full: usize,
    /// Members that had stopped (and were leaving the group).
    pub stopped: usize,
}

impl Groups {
    /// Adds `agent` to `group`; joining twice is the same as once.
    pub(crate) fn join<A: Agent>(&self, group: String, agent: &ActorRef<A>) -> Result<(), RegistryError> {
        let mut groups = self.groups.lock();
        // Flag first, then check liveness (as the registry does): a concurrent stop
        // either sees the flag and removes us after (it needs this lock), or closed the
        // mailbox before our check and we refuse.
        let Some(cell) = agent.local_cell() else {
            return Err(RegistryError::Remote);
        };
        cell.mark_registered();
        if cell.is_closed() {
            return Err(RegistryError::AgentStopped);
        }
        let members = groups.entry(group).or_default();
        if !members.iter().any(|m| m.id == agent.id()) {
            members.push(Member {
                id: agent.id(),
                agent: Box::new(agent.clone()),
            });
        }
        Ok(())
    }

    pub(crate) fn leave(&self, group: &str, id: ActorId) -> bool {
        let mut groups = self.groups.lock();
        let Some(members) = groups.get_mut(group) else {
            return false;
        };
        let before = members.len();
        members.retain(|m| m.id != id);
        let left = members.len() != before;
        if members.is_empty() {
            groups.remove(group);
        }
        left
    }

    /// The members of type `A`, in joining order.
    pub(crate) fn members<A: Agent>(&self, group: &str) -> Vec<ActorRef<A>> {
        let groups = self.groups.lock();
        groups
            .get(group)
            .map(|members| {
                members
                    .iter()
                    .filter_map(|m| m.agent.downcast_ref::<ActorRef<A>>())
                    .filter(|r| r.is_alive())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.groups.lock().keys().cloned().collect();
        names.sort();
        names
    }

    /// Casts `make(member)` to every member of type `A`, without waiting for room.
    pub(crate) fn broadcast<A, R, F>(&self, group: &str, mut make: F) -> Broadcast
    where
        A: Agent,
        F: FnMut(&ActorRef<A>) -> Request<A, R>,
    {
        let mut done = Broadcast::default();
        // Sent outside the lock: a member's mailbox may wake its task.
        for member in self.members::<A>(group) {
            match make(&member).try_cast() {
                Ok(()) => done.delivered += 1,
                Err(e) if e.is_full() => done.full += 1,
                Err(_) => done.stopped += 1,
            }
        }
        done
    }

    /// A stopped agent leaves every group.
    pub(crate) fn remove_agent(&self, id: ActorId) {
        let mut groups = self.groups.lock();
        groups.retain(|_, members| {
            members.retain(|m| m.id != id);
            !members.is_empty()
        });
    }
}
