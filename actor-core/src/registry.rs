//! The name registry: typed lookup of agents by name.

use std::any::Any;
use std::collections::HashMap;

use parking_lot::Mutex;

use crate::{ActorId, ActorRef, Agent, RegistryError};

#[derive(Default)]
pub(crate) struct Registry {
    names: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    id: ActorId,
    agent: Box<dyn Any + Send + Sync>,
}

impl Registry {
    pub(crate) fn register<A: Agent>(&self, name: String, agent: &ActorRef<A>) -> Result<(), RegistryError> {
        let mut names = self.names.lock();
        if names.contains_key(&name) {
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
        names.insert(
            name,
            Entry {
                id: agent.id(),
                agent: Box::new(agent.clone()),
            },
        );
        Ok(())
    }

    pub(crate) fn unregister(&self, name: &str) -> bool {
        self.names.lock().remove(name).is_some()
    }

    pub(crate) fn lookup<A: Agent>(&self, name: &str) -> Option<ActorRef<A>> {
        let names = self.names.lock();
        let entry = names.get(name)?;
        // An agent that is stopping keeps its names until it is gone, but is not found.
        entry
            .agent
            .downcast_ref::<ActorRef<A>>()
            .filter(|r| r.is_alive())
            .cloned()
    }

    pub(crate) fn remove_agent(&self, id: ActorId) {
        self.names.lock().retain(|_, e| e.id != id);
    }
}
