//! Stopping agents: shutdown with dropped references, stuck handlers and deadlines, kill,
//! and calls that could never be answered.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::{timeout, Instant};
use troupe::prelude::*;
use troupe::DEFAULT_SHUTDOWN_TIMEOUT;

#[agent]
#[derive(Default)]
pub struct Counter {
    count: u64,
}

#[agent]
impl Counter {
    #[handle]
    fn add(&mut self, n: u64) {
        self.count += n;
    }

    #[handle]
    fn get(&self) -> u64 {
        self.count
    }
}

/// What happened to an agent, seen from outside.
#[derive(Clone, Default)]
pub struct Flags {
    dropped: Arc<AtomicBool>,
    on_stop_ran: Arc<AtomicBool>,
    ticks: Arc<AtomicU64>,
}

/// An agent whose `hang` handler never returns.
pub struct Stuck {
    flags: Flags,
}

impl Drop for Stuck {
    fn drop(&mut self) {
        self.flags.dropped.store(true, Ordering::SeqCst);
    }
}

#[agent]
impl Stuck {
    #[handle]
    async fn hang(&mut self) {
        std::future::pending::<()>().await;
    }

    #[handle]
    fn ping(&self) -> u32 {
        1
    }

    #[handle]
    fn tick(&mut self) {
        self.flags.ticks.fetch_add(1, Ordering::SeqCst);
    }

    #[handle]
    fn start_ticking(&mut self, ctx: &mut Context<Self>) {
        ctx.interval(Duration::from_millis(10), || StuckMsg::Tick);
    }

    #[handle]
    async fn ask_myself(&mut self, ctx: &mut Context<Self>) -> Result<u32, CallError> {
        ctx.myself().ping().await
    }

    #[handle]
    fn block_thread(&mut self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    #[on_stop]
    fn bye(&mut self) {
        self.flags.on_stop_ran.store(true, Ordering::SeqCst);
    }
}

/// Records the `Down` notices it gets.
#[derive(Default)]
pub struct Watcher {
    seen: Arc<Mutex<Vec<Down>>>,
}

#[agent]
impl Watcher {
    #[handle]
    fn watch(&mut self, who: ActorRef<Stuck>, ctx: &mut Context<Self>) {
        ctx.monitor(&who);
    }

    #[handle]
    fn link_to(&mut self, who: ActorRef<Stuck>, ctx: &mut Context<Self>) {
        ctx.link(&who);
    }

    #[on_down]
    fn down(&mut self, down: Down) {
        self.seen.lock().push(down);
    }
}

const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl std::future::IntoFuture<Output = T>) -> T {
    match timeout(LIMIT, f.into_future()).await {
        Ok(v) => v,
        Err(_) => panic!("{what} hung"),
    }
}

/// Waits (polling, bounded) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
}

/// A newcomer's first program: spawn, drop the reference, shut down.
async fn spawn_drop_shutdown() {
    let system = System::new();
    drop(system.spawn(Counter::default()));
    let counter = system.spawn(Counter::default());
    counter.add(1).await.unwrap();
    drop(counter);
    let flags = Flags::default();
    drop(system.spawn(Stuck { flags: flags.clone() }));
    within("shutdown", system.shutdown()).await;
    assert_eq!(system.agent_count(), 0);
    // The agent nobody referenced any more still stopped properly.
    assert!(flags.on_stop_ran.load(Ordering::SeqCst));
    assert!(flags.dropped.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_returns_after_refs_were_dropped_on_a_current_thread_runtime() {
    spawn_drop_shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_after_refs_were_dropped_on_a_multi_thread_runtime() {
    spawn_drop_shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_a_stuck_agent_at_its_deadline() {
    let system = System::new();
    let flags = Flags::default();
    let stuck = system.spawn(Stuck { flags: flags.clone() });
    let hung = tokio::spawn({
        let stuck = stuck.clone();
        async move { stuck.hang().await }
    });
    let queued = tokio::spawn({
        let stuck = stuck.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stuck.ping().await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    within("shutdown", system.shutdown_timeout(Duration::from_millis(100))).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100),
        "returned before the deadline: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "killing took {took:?}");
    assert_eq!(system.agent_count(), 0);
    assert!(!stuck.is_alive());
    assert!(flags.dropped.load(Ordering::SeqCst));
    assert!(
        !flags.on_stop_ran.load(Ordering::SeqCst),
        "a killed agent's on_stop does not run"
    );
    assert_eq!(within("hung call", hung).await.unwrap(), Err(CallError::Stopped));
    assert_eq!(
        within("queued call", queued).await.unwrap(),
        Err(CallError::Stopped)
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_shutdown_deadline_is_five_seconds() {
    let system = System::new();
    let stuck = system.spawn(Stuck {
        flags: Flags::default(),
    });
    stuck.hang().cast().await.unwrap();
    tokio::task::yield_now().await;
    let started = Instant::now();
    within("shutdown", system.shutdown()).await;
    assert_eq!(started.elapsed(), DEFAULT_SHUTDOWN_TIMEOUT);
    assert_eq!(DEFAULT_SHUTDOWN_TIMEOUT, Duration::from_secs(5));
    assert_eq!(system.agent_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_on_a_handler_that_blocks_its_thread() {
    let system = System::new();
    let blocker = system.spawn(Stuck {
        flags: Flags::default(),
    });
    blocker.block_thread(3_000).cast().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    within("shutdown", system.shutdown_timeout(Duration::from_millis(100))).await;
    let took = started.elapsed();
    // The deadline, then one second for the killed task to yield, then it gives up.
    assert!(took < Duration::from_millis(2_500), "shutdown took {took:?}");
}

#[tokio::test]
async fn kill_ends_a_stuck_agent_and_tells_monitors_and_links() {
    let system = System::new();
    let flags = Flags::default();
    let stuck = system.spawn(Stuck { flags: flags.clone() });
    let monitor = Watcher::default();
    let seen = monitor.seen.clone();
    let watcher = system.spawn(monitor);
    watcher.watch(stuck.clone()).await.unwrap();
    let partner = system.spawn(Watcher::default());
    partner.link_to(stuck.clone()).await.unwrap();
    stuck.start_ticking().await.unwrap();

    let hung = tokio::spawn({
        let stuck = stuck.clone();
        async move { stuck.hang().await }
    });
    tokio::task::yield_now().await;
    let queued = tokio::spawn({
        let stuck = stuck.clone();
        async move { stuck.ping().await }
    });
    tokio::task::yield_now().await;

    assert!(stuck.kill());
    within("stopped after kill", stuck.stopped()).await;
    assert!(!stuck.is_alive());
    assert!(!stuck.kill(), "a second kill finds nothing to kill");
    assert_eq!(within("hung call", hung).await.unwrap(), Err(CallError::Stopped));
    assert_eq!(
        within("queued call", queued).await.unwrap(),
        Err(CallError::Stopped)
    );
    assert!(flags.dropped.load(Ordering::SeqCst));
    assert!(!flags.on_stop_ran.load(Ordering::SeqCst));

    eventually("the monitor's notice", || !seen.lock().is_empty()).await;
    let down = seen.lock()[0].clone();
    assert_eq!(
        (down.id, down.reason, down.linked),
        (stuck.id(), StopReason::Killed, false)
    );
    // A kill is abnormal: the linked partner (not trapping exits) stops too.
    within("linked partner stops", partner.stopped()).await;

    // Its interval was cancelled with it.
    let ticks = flags.ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(flags.ticks.load(Ordering::SeqCst), ticks);
    within("shutdown", system.shutdown()).await;
}

#[tokio::test]
async fn kill_of_an_agent_that_never_started_stops_it_for_good() {
    let system = System::new();
    let flags = Flags::default();
    let idle = system.spawn(Stuck { flags: flags.clone() });
    assert_eq!(system.agent_count(), 1);
    assert!(idle.kill());
    within("stopped", idle.stopped()).await;
    assert!(flags.dropped.load(Ordering::SeqCst));
    assert_eq!(idle.ping().await, Err(CallError::Stopped));
    assert_eq!(system.agent_count(), 0);
}

#[tokio::test]
async fn a_handler_calling_its_own_agent_fails_at_once() {
    let system = System::new();
    let agent = system.spawn(Stuck {
        flags: Flags::default(),
    });
    let r = within("self-call", agent.ask_myself()).await.unwrap();
    assert_eq!(r, Err(CallError::CallingSelf));
    // The agent is fine and answers others.
    assert_eq!(agent.ping().await, Ok(1));
    within("shutdown", system.shutdown()).await;
}

#[tokio::test]
async fn a_cycle_of_calls_is_broken_by_a_timeout() {
    #[derive(Default)]
    pub struct Peer {
        other: Option<ActorRef<Peer>>,
    }
    #[agent]
    impl Peer {
        #[handle]
        fn pair(&mut self, other: ActorRef<Peer>) {
            self.other = Some(other);
        }
        #[handle]
        async fn relay(&mut self) -> Result<u32, CallError> {
            match &self.other {
                Some(o) => o.echo().timeout(Duration::from_millis(50)).await,
                None => Ok(0),
            }
        }
        #[handle]
        async fn echo(&mut self) -> u32 {
            match &self.other {
                Some(o) => o.relay().await.ok().and_then(Result::ok).unwrap_or(7),
                None => 7,
            }
        }
    }
    let system = System::new();
    let a = system.spawn(Peer::default());
    let b = system.spawn(Peer::default());
    a.pair(b.clone()).await.unwrap();
    b.pair(a.clone()).await.unwrap();
    // a waits for b, b waits for a: only the timeout breaks it.
    let r = within("cycle", a.relay()).await.unwrap();
    assert_eq!(r, Err(CallError::Timeout));
    within("shutdown", system.shutdown_timeout(Duration::from_millis(200))).await;
}
