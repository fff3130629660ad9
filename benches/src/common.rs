//! Shared pieces: workload sizes, results, runtime construction, RSS reading.

use std::time::{Duration, Instant};

/// The workloads, in run order. The `-agents` ones send from agents of the framework;
/// `tell`, `fanin` and `ask` send from the driver task (or plain tasks it spawns).
pub const WORKLOADS: &[&str] = &[
    "tell-agents",
    "fanin-agents",
    "ask-agents",
    "pingpong",
    "tell",
    "fanin",
    "ask",
    "spawn",
    "restart",
];

/// Every framework row, in table order (`actix-2t` is opt-in).
pub const FRAMEWORKS: &[&str] = &["tokio", "actix", "actix-2t", "ractor", "kameo", "troupe"];

/// The rows run when `--frameworks` is not given.
pub const DEFAULT_FRAMEWORKS: &[&str] = &["tokio", "actix", "ractor", "kameo", "troupe"];

/// Message counts, already scaled.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// `tell`, `tell-agents`: casts from one sender.
    pub tell: u64,
    /// `ask`, `ask-agents`: sequential calls.
    pub ask: u64,
    /// `fanin`, `fanin-agents`: number of concurrent senders.
    pub fanin_senders: u64,
    /// `fanin`, `fanin-agents`: casts per sender.
    pub fanin_per: u64,
    /// `pingpong`: round trips between two agents.
    pub pingpong: u64,
    /// `spawn`: idle agents kept alive.
    pub spawn: u64,
    /// `restart`: poison/restart/answer cycles.
    pub restart: u64,
}

impl Params {
    pub fn scaled(scale: f64) -> Params {
        let s = |n: f64, min: u64| ((n * scale).round() as u64).max(min);
        Params {
            tell: s(2_000_000.0, 1_000),
            ask: s(200_000.0, 100),
            fanin_senders: 8,
            fanin_per: s(250_000.0, 100),
            pingpong: s(100_000.0, 100),
            spawn: s(1_000_000.0, 100),
            restart: s(1_000.0, 10),
        }
    }
}

/// What a child process reports for one (framework, workload) pair.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Named measurements, e.g. `("tell_mps", 12.1)`.
    Metrics(Vec<(&'static str, f64)>),
    /// The workload cannot be expressed on this framework (text goes in the cell).
    NotApplicable(&'static str),
}

/// The multi-thread tokio runtime every framework except actix runs on: 2 workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `f` as a task on the 2-worker runtime (not on `block_on`'s thread), so the
/// measured code runs on worker threads for every tokio-based framework alike.
pub fn on_runtime<F, Fut>(f: F) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let rt = runtime();
    let fut = f();
    let out = rt.block_on(async move { tokio::spawn(fut).await.expect("bench task panicked") });
    // Children exit right after reporting; dropping a runtime with a million tasks
    // would only add noise, so leak it.
    std::mem::forget(rt);
    out
}

/// Resident set size of this process in bytes, from `/proc/self/status` (VmRSS).
pub fn vm_rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .expect("VmRSS value");
            return kb * 1024;
        }
    }
    panic!("no VmRSS in /proc/self/status");
}

/// Million messages per second.
pub fn mps(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64() / 1e6
}

/// Nanoseconds per item.
pub fn ns_per(n: u64, d: Duration) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// Result of a `spawn` workload body: times and RSS samples taken around it.
pub struct SpawnSample {
    pub n: u64,
    pub spawn: Duration,
    pub call_each: Duration,
    pub rss_before: u64,
    pub rss_after: u64,
    /// RSS after one call to each agent (agents that start lazily have started by then).
    pub rss_called: u64,
}

impl SpawnSample {
    pub fn outcome(&self) -> Outcome {
        let spawn_ns = ns_per(self.n, self.spawn);
        Outcome::Metrics(vec![
            ("spawn_ns", spawn_ns),
            ("spawn_call_ns", spawn_ns + ns_per(self.n, self.call_each)),
            (
                "rss_b",
                self.rss_after.saturating_sub(self.rss_before) as f64 / self.n as f64,
            ),
            (
                "rss_called_b",
                self.rss_called.saturating_sub(self.rss_before) as f64 / self.n as f64,
            ),
        ])
    }
}

/// Finishes a spawn sample: waits for the agents to settle after their calls and reads
/// the resident memory they hold then.
pub async fn spawn_outcome(
    n: u64,
    spawn: Duration,
    call_each: Duration,
    rss_before: u64,
    rss_after: u64,
) -> Outcome {
    settle().await;
    let rss_called = vm_rss_bytes();
    SpawnSample {
        n,
        spawn,
        call_each,
        rss_before,
        rss_after,
        rss_called,
    }
    .outcome()
}

/// Lets freshly spawned agents start and park before RSS is sampled.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Silences the default panic hook (restart workloads panic 1,000 times on purpose; the
/// hook's stderr output is not what is being measured).
pub fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"poison") {
            default(info);
        }
    }));
}

/// Mean microseconds per restart.
pub fn restart_outcome(n: u64, total: Duration) -> Outcome {
    Outcome::Metrics(vec![("restart_us", total.as_secs_f64() * 1e6 / n as f64)])
}

/// Small helper: a timer.
pub fn now() -> Instant {
    Instant::now()
}

/// Untimed restarts before the timed ones.
pub const RESTART_WARMUP: u64 = 10;
