//! The name registry: typed lookup of agents by name.

use std::any::Any;
use std::collections::HashMap;

use parking_lot::Mutex;

use crate::{ActorId, ActorRef, Agent, RegistryError};

#[derive(Default)]
pub(crate) struct Registry {
    names: Mutex<Names>,
}

#[derive(Default)]
struct Names {
    by_name: HashMap<String, Entry>,
    /// The names of each registered agent (for the node layer, which names the agent
    /// that makes a remote call).
    by_id: HashMap<ActorId, Vec<String>>,
}

struct Entry {
    id: ActorId,
    agent: Box<dyn Any + Send + Sync>,
}

impl Registry {
    pub(crate) fn register<A: Agent>(&self, name: String, agent: &ActorRef<A>) -> Result<(), RegistryError> {
        let mut names = self.names.lock();
        if names.by_name.contains_key(&name) {
            return Err(RegistryError::NameTaken(name));
        }
        // Flag first, then check liveness: a concurrent stop either sees the flag and
        // removes the entry after us (it needs this lock), or closed the mailbox before
        // our check and we refuse.
        let Some(cell) = agent.local_cell() else {
            return Err(RegistryError::Remote);
        };
        cell.mark_registered();
        if cell.is_closed() {
            return Err(RegistryError::AgentStopped);
        }
        names.by_id.entry(agent.id()).or_default().push(name.clone());
        names.by_name.insert(
            name,
            Entry {
                id: agent.id(),
                agent: Box::new(agent.clone()),
            },
        );
        Ok(())
    }

    /// The first name `id` was registered under that it still holds.
    pub(crate) fn name_of(&self, id: ActorId) -> Option<String> {
        self.names.lock().by_id.get(&id)?.first().cloned()
    }

    pub(crate) fn unregister(&self, name: &str) -> bool {
        let mut names = self.names.lock();
        let Some(entry) = names.by_name.remove(name) else {
            return false;
        };
        if let Some(held) = names.by_id.get_mut(&entry.id) {
            held.retain(|n| n != name);
            if held.is_empty() {
                names.by_id.remove(&entry.id);
            }
        }
        true
    }

    pub(crate) fn lookup<A: Agent>(&self, name: &str) -> Option<ActorRef<A>> {
        let names = self.names.lock();
        let entry = names.by_name.get(name)?;
        // An agent that is stopping keeps its names until it is gone, but is not found.
        entry
            .agent
            .downcast_ref::<ActorRef<A>>()
            .filter(|r| r.is_alive())
            .cloned()
    }

    pub(crate) fn remove_agent(&self, id: ActorId) {
        let mut names = self.names.lock();
        if let Some(held) = names.by_id.remove(&id) {
            for name in held {
                names.by_name.remove(&name);
            }
        }
    }
}
