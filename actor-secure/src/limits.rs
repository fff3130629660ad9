//! [`ChannelLimits`]: bounds shared by all the channels of a process, so that N hostile
//! peers cannot hold N times what one channel may hold.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// How many channels [`ChannelLimits::global`] lets a process hold open at once.
pub const DEFAULT_MAX_CHANNELS: usize = 1024;
/// How many bytes of partly received messages [`ChannelLimits::global`] lets all channels
/// of a process hold together.
pub const DEFAULT_MEMORY_BUDGET: usize = 128 * 1024 * 1024;

/// Bounds shared by a set of channels: how many may be open at once, and how many bytes
/// of partly received (not yet complete) messages they may hold together.
///
/// Every channel counts against the [`ChannelLimits`] of its
/// [`ChannelConfig`](crate::ChannelConfig); by default that is the process-wide
/// [`ChannelLimits::global`] (1024 channels, 128 MiB). A channel takes its slot before the
/// handshake starts and gives it back when it (or both of its halves) is dropped; opening
/// one more fails at once with [`ChannelError::TooManyChannels`](crate::ChannelError).
/// A message whose next fragment would take the shared memory over budget closes its
/// channel with [`ChannelError::OverBudget`](crate::ChannelError).
///
/// ```
/// use actor_secure::{ChannelConfig, ChannelLimits};
///
/// // A gateway that talks to at most 100 peers and lets them buffer 16 MiB in total.
/// let limits = ChannelLimits::new(100, 16 << 20);
/// let config = ChannelConfig::default().limits(limits.clone());
/// assert_eq!(limits.open_channels(), 0);
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct ChannelLimits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_channels: usize,
    channels: AtomicUsize,
    memory_budget: usize,
    memory: AtomicUsize,
}

impl ChannelLimits {
    /// At most `max_channels` open channels, holding at most `memory_budget` bytes of
    /// incomplete messages together.
    pub fn new(max_channels: usize, memory_budget: usize) -> ChannelLimits {
        ChannelLimits {
            inner: Arc::new(Inner {
                max_channels,
                channels: AtomicUsize::new(0),
                memory_budget,
                memory: AtomicUsize::new(0),
            }),
        }
    }

    /// The limits every channel uses unless its config names others:
    /// [`DEFAULT_MAX_CHANNELS`] channels and [`DEFAULT_MEMORY_BUDGET`] bytes.
    pub fn global() -> ChannelLimits {
        static GLOBAL: OnceLock<ChannelLimits> = OnceLock::new();
        GLOBAL
            .get_or_init(|| ChannelLimits::new(DEFAULT_MAX_CHANNELS, DEFAULT_MEMORY_BUDGET))
            .clone()
    }

    /// The most channels that may be open at once.
    pub fn max_channels(&self) -> usize {
        self.inner.max_channels
    }

    /// Channels open (or handshaking) now.
    pub fn open_channels(&self) -> usize {
        self.inner.channels.load(Ordering::Relaxed)
    }

    /// The most bytes incomplete messages may hold together.
    pub fn memory_budget(&self) -> usize {
        self.inner.memory_budget
    }

    /// Bytes incomplete messages hold now.
    pub fn memory_in_use(&self) -> usize {
        self.inner.memory.load(Ordering::Relaxed)
    }

    /// Takes a channel slot if one is free.
    pub(crate) fn try_open(&self) -> Option<ChannelSlot> {
        let taken = self
            .inner
            .channels
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < self.inner.max_channels).then_some(n + 1)
            });
        taken.ok().map(|_| ChannelSlot { limits: self.clone() })
    }

    /// Takes `n` bytes of the memory budget if they fit.
    pub(crate) fn try_reserve(&self, n: usize) -> bool {
        self.inner
            .memory
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                used.checked_add(n)
                    .filter(|&total| total <= self.inner.memory_budget)
            })
            .is_ok()
    }

    /// Gives back `n` bytes taken with [`ChannelLimits::try_reserve`].
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.inner.memory.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

/// One open channel's place in its [`ChannelLimits`]; freed on drop.
#[derive(Debug)]
pub(crate) struct ChannelSlot {
    limits: ChannelLimits,
}

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        self.limits.inner.channels.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_bytes_are_bounded_and_given_back() {
        let limits = ChannelLimits::new(2, 100);
        let a = limits.try_open().unwrap();
        let b = limits.try_open().unwrap();
        assert!(limits.try_open().is_none());
        drop(a);
        assert_eq!(limits.open_channels(), 1);
        assert!(limits.try_open().is_some());
        drop(b);
        assert!(limits.try_reserve(60));
        assert!(!limits.try_reserve(41));
        assert!(limits.try_reserve(40));
        limits.release(100);
        assert_eq!(limits.memory_in_use(), 0);
        assert!(!limits.try_reserve(usize::MAX));
    }
}
