//! Shared pieces: workload sizes, results, runtime construction, RSS reading.

use std::sync::atomic::{AtomicU64, Ordering};
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
    "chain",
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
    /// `chain`: short-lived agents, one after the other.
    pub chain: u64,
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
            chain: s(1_000_000.0, 100),
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

/// A `kB` field of `/proc/self/status`, in bytes.
fn proc_status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .expect("kB value");
            return kb * 1024;
        }
    }
    panic!("no {field} in /proc/self/status");
}

/// Resident set size of this process in bytes, from `/proc/self/status` (VmRSS).
pub fn vm_rss_bytes() -> u64 {
    proc_status_bytes("VmRSS")
}

/// Agents of the `chain` workload whose state has been dropped, i.e. that have stopped.
pub static STOPPED: AtomicU64 = AtomicU64::new(0);

/// Part of every `chain` agent's state: counts the agent as stopped when the framework
/// drops its state (a framework that only parked the agent would never get there).
#[derive(Default)]
pub struct StopMark;

impl Drop for StopMark {
    fn drop(&mut self) {
        STOPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits (polling every millisecond, up to 60 s) until `done` holds; panics otherwise.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = now() + Duration::from_secs(60);
    while !done() {
        assert!(now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Starts a `chain` measurement: settles, resets the peak RSS (VmHWM, by writing 5 to
/// `/proc/self/clear_refs`; if that is refused the peak since exec is used) and returns
/// VmRSS now.
pub async fn chain_start() -> u64 {
    settle().await;
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    vm_rss_bytes()
}

/// Ends a `chain` measurement started at `t` once all `n` agents have stopped (their
/// `StopMark` dropped): ns per agent (spawn, call, stop) and peak RSS above the start, in
/// MiB.
pub async fn chain_outcome(n: u64, t: Instant, rss_start: u64) -> Outcome {
    wait_until("every chain agent has stopped", || {
        STOPPED.load(Ordering::Relaxed) >= n
    })
    .await;
    let d = t.elapsed();
    assert_eq!(STOPPED.load(Ordering::Relaxed), n, "chain agents stopped");
    let peak = proc_status_bytes("VmHWM").saturating_sub(rss_start);
    Outcome::Metrics(vec![
        ("chain_ns", ns_per(n, d)),
        ("chain_peak_mib", peak as f64 / (1024.0 * 1024.0)),
    ])
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
    /// RSS after one call to each agent and then `WORKED_IDLE` without messages: what
    /// agents that have worked and now wait cost (lazily started agents have started).
    pub rss_worked_idle: u64,
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
                "rss_worked_idle_b",
                self.rss_worked_idle.saturating_sub(self.rss_before) as f64 / self.n as f64,
            ),
        ])
    }
}

/// How long the agents of `spawn` stay idle after their one call before RSS is read.
pub const WORKED_IDLE: Duration = Duration::from_secs(1);

/// Finishes a spawn sample: leaves the agents idle for `WORKED_IDLE` after their calls and
/// reads the resident memory they hold then.
pub async fn spawn_outcome(
    n: u64,
    spawn: Duration,
    call_each: Duration,
    rss_before: u64,
    rss_after: u64,
) -> Outcome {
    tokio::time::sleep(WORKED_IDLE).await;
    let rss_worked_idle = vm_rss_bytes();
    SpawnSample {
        n,
        spawn,
        call_each,
        rss_before,
        rss_after,
        rss_worked_idle,
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
