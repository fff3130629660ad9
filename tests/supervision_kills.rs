//! Supervision when instances are killed: clean-up runs, a crash counts once, queued
//! messages survive, timers and monitors behave as documented.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::timeout;
use troupe::prelude::*;

/// Shared observations across instances.
#[derive(Clone, Default)]
pub struct Seen {
    starts: Arc<AtomicU64>,
    ticks: Arc<AtomicU64>,
    handled: Arc<AtomicU64>,
    children: Arc<Mutex<Vec<ActorRef<Child>>>>,
    downs: Arc<Mutex<Vec<Down>>>,
}

/// A child started with `ctx.spawn`.
pub struct Child;

#[agent]
impl Child {
    #[handle]
    fn ping(&self) {}
}

/// A supervised agent with an interval, a child of its own, and a handler that hangs.
pub struct Ticker {
    seen: Seen,
    on_stop_timer: bool,
}

#[agent]
impl Ticker {
    #[on_start]
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.seen.starts.fetch_add(1, Ordering::SeqCst);
        if !self.on_stop_timer {
            ctx.interval(Duration::from_millis(10), || TickerMsg::Tick);
        }
        let child = ctx.spawn(Child);
        self.seen.children.lock().push(child);
    }

    #[handle]
    fn tick(&mut self) {
        self.seen.ticks.fetch_add(1, Ordering::SeqCst);
    }

    #[handle]
    fn incr(&mut self) {
        self.seen.handled.fetch_add(1, Ordering::SeqCst);
    }

    #[handle]
    async fn hang(&mut self) {
        std::future::pending::<()>().await;
    }

    #[handle]
    fn crash(&mut self) {
        panic!("ticker crashed on purpose");
    }

    #[handle]
    fn watch(&mut self, other: ActorRef<Child>, ctx: &mut Context<Self>) {
        ctx.monitor(&other);
    }

    #[handle]
    fn ping(&self) -> u64 {
        self.seen.starts.load(Ordering::SeqCst)
    }

    #[on_down]
    fn down(&mut self, down: Down) {
        self.seen.downs.lock().push(down);
    }

    #[on_stop]
    fn stopping(&mut self, ctx: &mut Context<Self>) {
        if self.on_stop_timer {
            ctx.interval(Duration::from_millis(10), || TickerMsg::Tick);
        }
    }
}

/// A sibling that crashes on demand.
#[derive(Default)]
pub struct Crasher {
    starts: Arc<AtomicU64>,
}

#[agent]
impl Crasher {
    #[on_start]
    fn started(&mut self) {
        self.starts.fetch_add(1, Ordering::SeqCst);
    }

    #[handle]
    fn crash(&mut self) {
        panic!("crasher crashed on purpose");
    }

    #[handle]
    fn ping(&self) {}
}

fn ticker_spec(seen: &Seen, on_stop_timer: bool) -> ChildSpec {
    let seen = seen.clone();
    ChildSpec::new("ticker", move || Ticker {
        seen: seen.clone(),
        on_stop_timer,
    })
}

async fn within<T>(what: &str, f: impl std::future::IntoFuture<Output = T>) -> T {
    match timeout(Duration::from_secs(10), f.into_future()).await {
        Ok(v) => v,
        Err(_) => panic!("{what} hung"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_killed_child_is_cleaned_up_and_restarted_once() {
    let system = System::new();
    let seen = Seen::default();
    let crasher_starts = Arc::new(AtomicU64::new(0));
    let starts = crasher_starts.clone();
    let sup = Supervisor::new(Strategy::OneForAll)
        .max_restarts(10, Duration::from_secs(60))
        .child(ticker_spec(&seen, false).shutdown(Duration::from_millis(50)))
        .child(ChildSpec::new("crasher", move || Crasher {
            starts: starts.clone(),
        }))
        .spawn(&system);
    let ticker: ActorRef<Ticker> = sup.child("ticker").unwrap();
    let crasher: ActorRef<Crasher> = sup.child("crasher").unwrap();
    within("first ping", ticker.ping()).await.unwrap();

    // The ticker hangs in a handler with three messages queued behind it.
    ticker.hang().cast().await.unwrap();
    for _ in 0..3 {
        ticker.incr().cast().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Its sibling crashes: one-for-all stops the ticker, which does not stop within its
    // 50 ms and is killed.
    let _ = crasher.crash().await;
    assert_eq!(within("ping after restart", ticker.ping()).await, Ok(2));
    crasher.ping().await.unwrap();

    // One crash, one restart of each.
    assert_eq!(sup.restarts(), 1);
    assert_eq!(seen.starts.load(Ordering::SeqCst), 2);
    assert_eq!(crasher_starts.load(Ordering::SeqCst), 2);
    // The messages queued behind the hung one were handled once, by the new instance.
    assert_eq!(seen.handled.load(Ordering::SeqCst), 3);
    // The killed instance's child was stopped; the new instance has its own.
    let children = seen.children.lock().clone();
    assert_eq!(children.len(), 2);
    within("first child stops", children[0].stopped()).await;
    assert!(children[1].is_alive());
    // Only the new instance's interval ticks: 10 ticks in 100 ms, not 20.
    let before = seen.ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    ticker.ping().await.unwrap();
    assert_eq!(seen.ticks.load(Ordering::SeqCst) - before, 10);
    // Nothing else restarts later on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sup.restarts(), 1);
    assert_eq!(seen.starts.load(Ordering::SeqCst), 2);
    within("shutdown", system.shutdown()).await;
    assert_eq!(system.agent_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_timer_started_in_on_stop_does_not_fire_into_the_next_instance() {
    let system = System::new();
    let seen = Seen::default();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ticker_spec(&seen, true))
        .spawn(&system);
    let ticker: ActorRef<Ticker> = sup.child("ticker").unwrap();
    let _ = ticker.crash().await;
    assert_eq!(within("ping", ticker.ping()).await, Ok(2));
    tokio::time::sleep(Duration::from_millis(100)).await;
    ticker.ping().await.unwrap();
    assert_eq!(seen.ticks.load(Ordering::SeqCst), 0);
    within("shutdown", system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_supervised_agent_restarts_it_with_its_mailbox() {
    let system = System::new();
    let seen = Seen::default();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ticker_spec(&seen, true))
        .spawn(&system);
    let ticker: ActorRef<Ticker> = sup.child("ticker").unwrap();
    within("ping", ticker.ping()).await.unwrap();
    ticker.hang().cast().await.unwrap();
    for _ in 0..5 {
        ticker.incr().cast().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(ticker.kill());
    assert_eq!(within("ping after kill", ticker.ping()).await, Ok(2));
    assert_eq!(seen.handled.load(Ordering::SeqCst), 5);
    assert_eq!(sup.restarts(), 1);
    assert!(ticker.is_alive());
    within("shutdown", system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_watcher_keeps_its_monitors() {
    let system = System::new();
    let seen = Seen::default();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ticker_spec(&seen, true))
        .spawn(&system);
    let watcher: ActorRef<Ticker> = sup.child("ticker").unwrap();
    let watched = system.spawn(Child);
    watcher.watch(watched.clone()).await.unwrap();
    let _ = watcher.crash().await;
    assert_eq!(within("restarted", watcher.ping()).await, Ok(2));
    assert!(watched.stop_gracefully());
    within("watched stops", watched.stopped()).await;
    within("one notice", async {
        while seen.downs.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    watcher.ping().await.unwrap();
    let downs = seen.downs.lock().clone();
    assert_eq!(downs.len(), 1, "{downs:?}");
    assert_eq!(
        (downs[0].id, &downs[0].reason),
        (watched.id(), &StopReason::Normal)
    );
    within("shutdown", system.shutdown()).await;
}

/// Traps exits and records what arrives.
#[derive(Default)]
pub struct Trapper {
    downs: Arc<Mutex<Vec<Down>>>,
}

#[agent]
impl Trapper {
    #[on_start]
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.trap_exits(true);
    }

    #[handle]
    fn link(&mut self, other: ActorRef<Child>, ctx: &mut Context<Self>) {
        ctx.link(&other);
    }

    #[handle]
    fn count(&self) -> usize {
        self.downs.lock().len()
    }

    #[on_down]
    fn down(&mut self, down: Down) {
        self.downs.lock().push(down);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_agent_sees_normal_stops_of_linked_agents_too() {
    let system = System::new();
    let trapper = Trapper::default();
    let downs = trapper.downs.clone();
    let trapper = system.spawn(trapper);
    let child = system.spawn(Child);
    trapper.link(child.clone()).await.unwrap();
    child.stop_gracefully();
    within("child stops", child.stopped()).await;
    within("notice", async {
        while trapper.count().await.unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let got = downs.lock().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].id, &got[0].reason, got[0].linked),
        (child.id(), &StopReason::Normal, true)
    );
    within("shutdown", system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_stopped_resolves_the_monitors_notice_is_already_queued() {
    let system = System::new();
    let seen = Seen::default();
    let watcher = system.spawn(Ticker {
        seen: seen.clone(),
        on_stop_timer: true,
    });
    for _ in 0..20 {
        let watched = system.spawn(Child);
        watcher.watch(watched.clone()).await.unwrap();
        watched.stop_gracefully();
        watched.stopped().await;
        // No sleep: the notice was delivered before `stopped()` resolved, and notices
        // are handled before the messages behind them.
        watcher.ping().await.unwrap();
        let got = seen.downs.lock().iter().any(|d| d.id == watched.id());
        assert!(got, "no notice for {} yet", watched.id());
    }
    within("shutdown", system.shutdown()).await;
}
