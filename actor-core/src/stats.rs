//! What a system counts per agent type, read with [`System::stats`](crate::System::stats)
//! and published through the [`metrics`] facade with
//! [`System::record_metrics`](crate::System::record_metrics).
//!
//! The hot path pays little: each agent type has one block of atomics per system,
//! found when an agent's cell is built; the message loop adds a batch's size once per
//! batch, and times one message in [`SAMPLE_EVERY`] of each type (two clock reads).
//! Crashes, restarts and timeouts are counted where they happen. Mailbox depths are
//! read from the mailboxes when a snapshot is taken, so they cost nothing meanwhile.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One handled message in this many (per agent type) is timed for the handling time
/// histogram.
pub const SAMPLE_EVERY: u64 = 64;

/// Finite bucket bounds of the handling time histogram: 2^8 ns (256 ns) to 2^32 ns
/// (about 4.3 s), doubling; one more bucket holds what is slower.
const FIRST_BOUND_LOG2: u32 = 8;
const FINITE_BUCKETS: usize = 25;
const BUCKETS: usize = FINITE_BUCKETS + 1;

/// The counters of one agent type in one system.
pub(crate) struct TypeStats {
    pub(crate) name: &'static str,
    handled: AtomicU64,
    timeouts: AtomicU64,
    restarts: AtomicU64,
    crashes: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
    sampled_ns: AtomicU64,
    /// The bucket counts last published to the `metrics` facade (histograms take
    /// samples, so only what is new since then is recorded).
    published: Mutex<[u64; BUCKETS]>,
}

impl TypeStats {
    fn new(name: &'static str) -> Self {
        TypeStats {
            name,
            handled: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            crashes: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sampled_ns: AtomicU64::new(0),
            published: Mutex::new([0; BUCKETS]),
        }
    }

    /// An agent took `n` messages to handle; returns the count before them (which
    /// decides the messages to time, see [`TypeStats::timed`]).
    #[inline]
    pub(crate) fn took(&self, n: usize) -> u64 {
        self.handled.fetch_add(n as u64, Ordering::Relaxed)
    }

    /// Messages taken but given back unhandled (the instance ended first).
    pub(crate) fn gave_back(&self, n: usize) {
        if n > 0 {
            self.handled.fetch_sub(n as u64, Ordering::Relaxed);
        }
    }

    /// True for the message numbered `base + remaining` of its type: one in
    /// [`SAMPLE_EVERY`] of the messages of a batch taken at count `base`.
    #[inline]
    pub(crate) fn timed(base: u64, remaining: usize) -> bool {
        base.wrapping_add(remaining as u64).is_multiple_of(SAMPLE_EVERY)
    }

    /// Records one timed message.
    pub(crate) fn sample(&self, nanos: u64) {
        self.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.sampled_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn crashed(&self) {
        self.crashes.fetch_add(1, Ordering::Relaxed);
    }

    fn histogram(&self) -> TimeHistogram {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        TimeHistogram {
            samples: counts.iter().sum(),
            sum_ns: self.sampled_ns.load(Ordering::Relaxed),
            buckets: counts
                .iter()
                .enumerate()
                .map(|(i, &count)| HistogramBucket {
                    le_ns: bound_of(i),
                    count,
                })
                .collect(),
        }
    }
}

/// The bucket of a time: the first whose bound is at least `nanos`.
fn bucket_of(nanos: u64) -> usize {
    let log2_ceil = u64::BITS - nanos.saturating_sub(1).leading_zeros();
    (log2_ceil.saturating_sub(FIRST_BOUND_LOG2) as usize).min(FINITE_BUCKETS)
}

/// The upper bound of bucket `i` in nanoseconds; `None` for the last (unbounded) one.
fn bound_of(i: usize) -> Option<u64> {
    (i < FINITE_BUCKETS).then(|| 1u64 << (FIRST_BOUND_LOG2 + i as u32))
}

/// Nanoseconds on a monotonic clock, never 0 (0 stands for "not timed").
#[inline]
pub(crate) fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX) | 1
}

/// Every agent type's counters in one system, created on the first agent of the type.
#[derive(Default)]
pub(crate) struct StatsTable {
    types: Mutex<HashMap<TypeId, Arc<TypeStats>>>,
}

impl StatsTable {
    pub(crate) fn of<A: 'static>(&self) -> Arc<TypeStats> {
        self.types
            .lock()
            .entry(TypeId::of::<A>())
            .or_insert_with(|| Arc::new(TypeStats::new(crate::actor_ref::short_type_name::<A>())))
            .clone()
    }

    pub(crate) fn all(&self) -> Vec<Arc<TypeStats>> {
        self.types.lock().values().cloned().collect()
    }
}

/// A snapshot of what a system's agents did, from
/// [`System::stats`](crate::System::stats): per agent type, the counters since the
/// system started and the mailboxes as they are now. Serializable (serde), e.g. as JSON
/// for a dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Agents alive now (as [`System::agent_count`](crate::System::agent_count)).
    pub agents: usize,
    /// One entry per agent type that ever had an agent in this system, by name.
    pub agent_types: Vec<AgentStats>,
    /// How many times the allocator gave freed memory back to the operating system
    /// after agents hibernated (see [`System::return_memory`](crate::System::return_memory)).
    #[serde(default)]
    pub memory_returned: u64,
}

impl Stats {
    /// The entry of the agent type named `name` (its type name without the module path,
    /// as in [`AgentStats::agent`]).
    pub fn agent_type(&self, name: &str) -> Option<&AgentStats> {
        self.agent_types.iter().find(|a| a.agent == name)
    }
}

/// The numbers of one agent type (see [`Stats`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentStats {
    /// The type's name without its module path (`Counter`, `Cache<String>`).
    pub agent: String,
    /// Agents of this type alive now.
    pub live: usize,
    /// Messages handled (counted when an agent takes a batch from its mailbox, less
    /// what an ending instance gives back unhandled; a message whose handler panicked
    /// counts).
    pub messages_handled: u64,
    /// Messages waiting in the mailboxes of this type's agents now, in total.
    pub mailbox_depth: usize,
    /// The deepest of those mailboxes now.
    pub max_mailbox_depth: usize,
    /// Calls to local agents of this type that timed out (`.timeout(d)`).
    pub calls_timed_out: u64,
    /// Instances started again after one ended (supervised restarts).
    pub restarts: u64,
    /// Instances that ended abnormally ([`StopReason::is_abnormal`](crate::StopReason::is_abnormal):
    /// a panic, an error, a linked crash, a kill).
    pub crashes: u64,
    /// How long handlers took, for one message in [`SAMPLE_EVERY`] (the time from the
    /// call of the handler to its return, awaits included).
    pub handling_time: TimeHistogram,
}

/// A histogram of durations with buckets whose bounds double, from 256 ns to about
/// 4.3 s, then one unbounded bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TimeHistogram {
    /// How many durations were recorded.
    pub samples: u64,
    /// Their sum, in nanoseconds.
    pub sum_ns: u64,
    /// The count of each bucket (not cumulative), in increasing order of bounds.
    pub buckets: Vec<HistogramBucket>,
}

/// One bucket of a [`TimeHistogram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HistogramBucket {
    /// The bucket holds durations up to this many nanoseconds (and above the previous
    /// bucket's bound); `None` for the last bucket, which has no bound.
    pub le_ns: Option<u64>,
    /// How many durations fell in it.
    pub count: u64,
}

impl TimeHistogram {
    /// The mean duration, if any was recorded.
    pub fn mean(&self) -> Option<Duration> {
        (self.samples > 0).then(|| Duration::from_nanos(self.sum_ns / self.samples))
    }

    /// An upper bound of the `q` quantile (`0.0..=1.0`; 0.99 for the 99th percentile):
    /// the bound of the bucket it falls in. `None` when nothing was recorded, or when it
    /// falls in the unbounded bucket.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.samples == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.samples as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for b in &self.buckets {
            seen += b.count;
            if seen >= rank {
                return b.le_ns.map(Duration::from_nanos);
            }
        }
        None
    }
}

/// Takes a snapshot from the table and the live cells (type, mailbox depth).
pub(crate) fn snapshot(
    table: &StatsTable,
    agents: usize,
    memory_returned: u64,
    live: impl IntoIterator<Item = (*const TypeStats, usize)>,
) -> Stats {
    let types = table.all();
    let mut per_type: HashMap<*const TypeStats, (usize, usize, usize)> = HashMap::new();
    for (stats, depth) in live {
        let e = per_type.entry(stats).or_default();
        e.0 += 1;
        e.1 += depth;
        e.2 = e.2.max(depth);
    }
    let mut agent_types: Vec<AgentStats> = types
        .iter()
        .map(|t| {
            let (live, depth, max_depth) = per_type.get(&Arc::as_ptr(t)).copied().unwrap_or_default();
            AgentStats {
                agent: t.name.to_owned(),
                live,
                messages_handled: t.handled.load(Ordering::Relaxed),
                mailbox_depth: depth,
                max_mailbox_depth: max_depth,
                calls_timed_out: t.timeouts.load(Ordering::Relaxed),
                restarts: t.restarts.load(Ordering::Relaxed),
                crashes: t.crashes.load(Ordering::Relaxed),
                handling_time: t.histogram(),
            }
        })
        .collect();
    agent_types.sort_by(|a, b| a.agent.cmp(&b.agent));
    Stats {
        agents,
        agent_types,
        memory_returned,
    }
}

/// Metric names, as published by [`System::record_metrics`](crate::System::record_metrics).
pub mod names {
    /// Counter, label `agent`: messages handled.
    pub const MESSAGES_HANDLED: &str = "troupe_messages_handled_total";
    /// Gauge, label `agent`: messages waiting in the mailboxes now.
    pub const MAILBOX_DEPTH: &str = "troupe_mailbox_depth";
    /// Gauge, label `agent`: agents alive now.
    pub const AGENTS: &str = "troupe_agents";
    /// Histogram, label `agent`: handling time in seconds (sampled).
    pub const HANDLING_SECONDS: &str = "troupe_handling_seconds";
    /// Counter, label `agent`: calls that timed out.
    pub const CALLS_TIMED_OUT: &str = "troupe_calls_timed_out_total";
    /// Counter, label `agent`: restarts.
    pub const RESTARTS: &str = "troupe_restarts_total";
    /// Counter, label `agent`: crashes.
    pub const CRASHES: &str = "troupe_crashes_total";
}

/// Publishes a snapshot through the `metrics` facade (to whatever recorder is
/// installed): counters as absolute values, gauges set, and the histogram samples
/// taken since the last publication, each at its bucket's middle.
pub(crate) fn publish(table: &StatsTable, stats: &Stats) {
    let types = table.all();
    for a in &stats.agent_types {
        let labels = [("agent", a.agent.clone())];
        metrics::counter!(names::MESSAGES_HANDLED, &labels).absolute(a.messages_handled);
        metrics::counter!(names::CALLS_TIMED_OUT, &labels).absolute(a.calls_timed_out);
        metrics::counter!(names::RESTARTS, &labels).absolute(a.restarts);
        metrics::counter!(names::CRASHES, &labels).absolute(a.crashes);
        metrics::gauge!(names::MAILBOX_DEPTH, &labels).set(a.mailbox_depth as f64);
        metrics::gauge!(names::AGENTS, &labels).set(a.live as f64);
        let Some(t) = types.iter().find(|t| t.name == a.agent) else {
            continue;
        };
        let histogram = metrics::histogram!(names::HANDLING_SECONDS, &labels);
        let mut published = t.published.lock();
        for (i, b) in a.handling_time.buckets.iter().enumerate() {
            let new = b.count.saturating_sub(published[i]);
            published[i] = b.count.max(published[i]);
            if new > 0 {
                histogram.record_many(middle_seconds(i), usize::try_from(new).unwrap_or(usize::MAX));
            }
        }
    }
}

/// A representative value of bucket `i`, in seconds: the middle of its bounds (the
/// unbounded bucket: its lower bound).
fn middle_seconds(i: usize) -> f64 {
    let upper = bound_of(i).unwrap_or(1u64 << (FIRST_BOUND_LOG2 + FINITE_BUCKETS as u32 - 1));
    let lower = if i == 0 {
        0
    } else {
        1u64 << (FIRST_BOUND_LOG2 + i as u32 - 1)
    };
    let mid = if bound_of(i).is_some() {
        (lower + upper) / 2
    } else {
        upper
    };
    mid as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_first_bucket_whose_bound_holds_them() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(256), 0);
        assert_eq!(bucket_of(257), 1);
        assert_eq!(bucket_of(512), 1);
        assert_eq!(bucket_of(1_000), 2); // <= 1024 ns
        assert_eq!(bucket_of(1 << 32), FINITE_BUCKETS - 1);
        assert_eq!(bucket_of((1 << 32) + 1), FINITE_BUCKETS);
        assert_eq!(bucket_of(u64::MAX), FINITE_BUCKETS);
        for i in 0..FINITE_BUCKETS {
            let bound = bound_of(i).unwrap();
            assert_eq!(bucket_of(bound), i);
            assert_eq!(bucket_of(bound + 1), i + 1);
        }
    }

    #[test]
    fn one_message_in_sample_every_is_timed_whatever_the_batches() {
        // Batches of 1, 3 and 40 messages, taken one after the other.
        let mut base = 0;
        let mut timed = 0;
        for n in [1usize, 3, 40].into_iter().chain([1; 20]) {
            timed += (0..n).filter(|&r| TypeStats::timed(base, r)).count();
            base += n as u64;
        }
        assert_eq!(base, 64);
        assert_eq!(timed as u64, 64 / SAMPLE_EVERY);
    }

    #[test]
    fn quantiles_are_bucket_bounds() {
        let t = TypeStats::new("T");
        for _ in 0..90 {
            t.sample(200);
        }
        for _ in 0..10 {
            t.sample(3_000);
        }
        let h = t.histogram();
        assert_eq!(h.samples, 100);
        assert_eq!(h.quantile(0.5), Some(Duration::from_nanos(256)));
        assert_eq!(h.quantile(0.95), Some(Duration::from_nanos(4096)));
        assert_eq!(
            h.mean(),
            Some(Duration::from_nanos((90 * 200 + 10 * 3_000) / 100))
        );
    }
}
