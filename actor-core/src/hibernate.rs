//! Hibernation: agents that stay idle give back their task.
//!
//! The system keeps a list of the agents that have a task. A sweep runs every half of
//! `hibernate_after`: an agent found idle (waiting, nothing queued) at two sweeps in a
//! row, with no delivery in between, is sent `Signal::Hibernate`; its task then parks
//! the agent back in its mailbox and ends (`runner::Task::hibernate`). The next delivery
//! starts a task that goes on with the same instance. Agents without a task leave the
//! list, and the sweep stops when the list is empty.
//!
//! The list is a slab: a cell remembers its entry, so an agent that stops leaves the
//! list at once (a stale entry would keep the cell's memory until the next sweep).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::cell::AnyCell;
use crate::system::SystemInner;

/// How long an agent stays idle before it hibernates, unless
/// [`System::hibernate_after`](crate::System::hibernate_after) says otherwise.
pub const DEFAULT_HIBERNATE_AFTER: Duration = Duration::from_millis(500);

/// A cell's entry in the list: none.
pub(crate) const NOT_WATCHED: u32 = u32::MAX;

/// How many entries a sweep looks at per hold of the list's lock.
const CHUNK: usize = 256;

pub(crate) struct IdleWatch {
    list: Mutex<Slab>,
    /// Milliseconds of idleness before an agent hibernates (0: never).
    after_ms: AtomicU64,
    sweeping: AtomicBool,
    /// Agents that hibernated since the allocator was last asked to return memory.
    hibernated: AtomicU64,
    /// Ask the allocator to return memory after hibernation waves (see `memory`).
    return_memory: AtomicBool,
    /// Times the allocator returned memory (for tests).
    trims: AtomicU64,
}

#[derive(Default)]
struct Slab {
    entries: Vec<Option<Weak<dyn AnyCell>>>,
    free: Vec<u32>,
    len: usize,
}

impl Default for IdleWatch {
    fn default() -> Self {
        IdleWatch {
            list: Mutex::new(Slab::default()),
            after_ms: AtomicU64::new(DEFAULT_HIBERNATE_AFTER.as_millis() as u64),
            sweeping: AtomicBool::new(false),
            hibernated: AtomicU64::new(0),
            return_memory: AtomicBool::new(true),
            trims: AtomicU64::new(0),
        }
    }
}

impl Slab {
    fn insert(&mut self, cell: Weak<dyn AnyCell>) -> u32 {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = Some(cell);
                i
            }
            None => {
                self.entries.push(Some(cell));
                (self.entries.len() - 1) as u32
            }
        }
    }

    fn remove(&mut self, i: u32) -> Option<Weak<dyn AnyCell>> {
        let entry = self.entries.get_mut(i as usize)?.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(entry)
    }
}

impl IdleWatch {
    pub(crate) fn set_after(&self, after: Option<Duration>) {
        let ms = after.map_or(0, |d| d.as_millis().clamp(1, u128::from(u64::MAX)) as u64);
        self.after_ms.store(ms, Ordering::Release);
    }

    pub(crate) fn set_return_memory(&self, on: bool) {
        self.return_memory.store(on, Ordering::Release);
    }

    /// Times the allocator gave memory back after hibernations.
    pub(crate) fn trims(&self) -> u64 {
        self.trims.load(Ordering::Acquire)
    }

    /// An agent's task ended as it hibernated: its memory is free.
    pub(crate) fn hibernated(&self) {
        self.hibernated.fetch_add(1, Ordering::Relaxed);
    }

    /// After enough hibernations since the last time, asks the allocator to return free
    /// pages (on a blocking thread: it walks the allocator's free lists).
    async fn return_memory(&self) {
        if !self.return_memory.load(Ordering::Acquire)
            || self.hibernated.load(Ordering::Relaxed) < crate::memory::TRIM_AFTER_HIBERNATIONS
        {
            return;
        }
        self.hibernated.store(0, Ordering::Relaxed);
        if let Ok(true) = tokio::task::spawn_blocking(crate::memory::trim).await {
            self.trims.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Puts a cell that just got a task on the list (if it is not on it already) and
    /// makes sure a sweep runs.
    pub(crate) fn watch(&self, system: &Arc<SystemInner>, cell: &Arc<dyn AnyCell>, slot: &AtomicU32) {
        if slot.load(Ordering::Acquire) != NOT_WATCHED {
            return;
        }
        {
            let mut list = self.list.lock();
            if slot.load(Ordering::Acquire) != NOT_WATCHED {
                return;
            }
            slot.store(list.insert(Arc::downgrade(cell)), Ordering::Release);
        }
        if !self.sweeping.swap(true, Ordering::AcqRel) {
            drop(system.start(sweep(Arc::downgrade(system))));
        }
    }

    /// Takes a cell that stopped for good off the list.
    pub(crate) fn forget(&self, slot: &AtomicU32) {
        if slot.load(Ordering::Acquire) == NOT_WATCHED {
            return;
        }
        let mut list = self.list.lock();
        let i = slot.swap(NOT_WATCHED, Ordering::AcqRel);
        let entry = (i != NOT_WATCHED).then(|| list.remove(i)).flatten();
        drop(list);
        drop(entry);
    }

    /// One pass over the list; false when the list is empty.
    fn sweep_once(&self) -> bool {
        let mut i = 0;
        loop {
            let mut list = self.list.lock();
            let end = (i + CHUNK).min(list.entries.len());
            if i >= end {
                return list.len > 0;
            }
            // Cells are dropped after the lock is released: dropping the last reference
            // to a cell may run code that starts a task, which takes this lock.
            let mut held: Vec<Arc<dyn AnyCell>> = Vec::new();
            let mut dropped = Vec::new();
            for k in i..end {
                let Some(weak) = &list.entries[k] else { continue };
                let Some(cell) = weak.upgrade() else {
                    dropped.push(list.remove(k as u32));
                    continue;
                };
                // Off the list while it has no task; a task that started since could not
                // re-enter it (this lock), so look again.
                if !cell.clone().sweep() && !cell.has_task() {
                    cell.watch_slot().store(NOT_WATCHED, Ordering::Release);
                    dropped.push(list.remove(k as u32));
                }
                held.push(cell);
            }
            drop(list);
            drop(dropped);
            drop(held);
            i = end;
        }
    }
}

/// The sweep's task: every half of `hibernate_after`, one pass over the list. It ends
/// when the list is empty or the system is gone or shutting down, and starts again
/// with the next task.
async fn sweep(system: Weak<SystemInner>) {
    loop {
        let period = match system.upgrade() {
            Some(s) => match s.idle.after_ms.load(Ordering::Acquire) {
                0 => DEFAULT_HIBERNATE_AFTER / 2,
                ms => Duration::from_millis((ms / 2).max(1)),
            },
            None => return,
        };
        tokio::time::sleep(period).await;
        let Some(s) = system.upgrade() else { return };
        let idle = &s.idle;
        // The tasks the last pass sent to hibernate have ended by now.
        idle.return_memory().await;
        let stop = s.is_shutting_down() || (idle.after_ms.load(Ordering::Acquire) != 0 && !idle.sweep_once());
        if stop {
            idle.sweeping.store(false, Ordering::Release);
            // A task that was put on the list meanwhile found the sweep still running:
            // go on for it.
            let again = !s.is_shutting_down() && idle.list.lock().len > 0;
            if !again || idle.sweeping.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}
