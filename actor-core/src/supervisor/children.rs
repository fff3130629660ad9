//! A supervisor's children, in start order, found by key or by name without scanning
//! the list: a supervisor of 100,000 children starts, restarts and stops them in time
//! proportional to their number, not to its square.

use std::collections::{BTreeMap, HashMap};

use super::ChildEntry;

/// The children of one supervisor. Keys grow with each child added, so the key order is
/// the start order.
#[derive(Default)]
pub(crate) struct Children {
    by_key: BTreeMap<u64, ChildEntry>,
    by_name: HashMap<String, u64>,
}

impl Children {
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn get(&self, key: u64) -> Option<&ChildEntry> {
        self.by_key.get(&key)
    }

    pub(crate) fn get_mut(&mut self, key: u64) -> Option<&mut ChildEntry> {
        self.by_key.get_mut(&key)
    }

    /// The child named `name`.
    pub(crate) fn named(&self, name: &str) -> Option<&ChildEntry> {
        self.by_name.get(name).and_then(|key| self.by_key.get(key))
    }

    /// Adds a child after the others (its key is larger than any before it).
    pub(crate) fn push(&mut self, child: ChildEntry) {
        debug_assert!(self.by_key.last_key_value().is_none_or(|(k, _)| *k < child.key));
        self.by_name.insert(child.name.clone(), child.key);
        self.by_key.insert(child.key, child);
    }

    pub(crate) fn remove(&mut self, key: u64) -> Option<ChildEntry> {
        let child = self.by_key.remove(&key)?;
        self.by_name.remove(&child.name);
        Some(child)
    }

    /// Every child, in start order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &ChildEntry> {
        self.by_key.values()
    }

    /// The child `key` and every child started after it.
    pub(crate) fn starting_at(&self, key: u64) -> impl Iterator<Item = &ChildEntry> {
        self.by_key.range(key..).map(|(_, c)| c)
    }

    /// Takes every child out, in start order.
    pub(crate) fn take_all(&mut self) -> Vec<ChildEntry> {
        self.by_name.clear();
        std::mem::take(&mut self.by_key).into_values().collect()
    }
}
