//! Restart backoff: exponential delays with jitter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a supervisor waits before restarting a child that keeps failing.
///
/// The n-th restart of a child within the intensity period waits `min * 2^(n-1)`, at
/// most `max`, minus a random part of up to `jitter` of it (default 10%), so that many
/// children failing together do not restart in lockstep. With `jitter(0.0)` the delays
/// are exact, which tests under paused tokio time rely on; with a fixed `seed` they are
/// still jittered, but the same on every run.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
    seed: Option<u64>,
}

static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

impl Backoff {
    /// Exponential backoff from `min`, doubling up to `max`.
    pub fn exponential(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            jitter: 0.1,
            seed: None,
        }
    }

    /// The fraction (0.0 to 1.0) of each delay that is randomised away.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Makes the jitter reproducible: the same seed gives the same delays on every run
    /// (they are still jittered; `jitter(0.0)` makes them exact).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The delay before restart number `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let base = self.min.saturating_mul(1u32 << exp).min(self.max);
        if self.jitter == 0.0 {
            return base;
        }
        let r = match self.seed {
            Some(seed) => mix(seed ^ u64::from(attempt)),
            None => mix(SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)),
        };
        let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(1.0 - self.jitter * unit)
    }
}

/// SplitMix64: a small, well-distributed mixer (jitter needs no cryptographic quality).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_without_jitter() {
        let b = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(70)).jitter(0.0);
        let d: Vec<_> = (1..=5).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(d, vec![10, 20, 40, 70, 70]);
        assert_eq!(b.delay(1_000), Duration::from_millis(70));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_is_reproducible_with_a_seed() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.5);
        for n in 1..50 {
            let d = b.delay(n % 4 + 1);
            let base = Duration::from_millis(100 << (n % 4));
            assert!(d <= base && d >= base / 2, "{d:?} vs {base:?}");
        }
        let s = b.clone().seed(7);
        assert_eq!(s.delay(3), s.delay(3));
    }
}
