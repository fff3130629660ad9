//! Hibernation: an agent idle for a while gives back its task and comes back on its
//! next message, where it was, with nothing observable changed.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use troupe::prelude::*;

#[derive(Default, Clone)]
pub struct Counts {
    starts: Arc<AtomicU32>,
    stops: Arc<AtomicU32>,
    downs: Arc<Mutex<Vec<Down>>>,
}

pub struct Sleeper {
    counts: Counts,
    seen: Vec<u64>,
    timer: Option<TimerHandle>,
}

#[agent]
impl Sleeper {
    #[on_start]
    fn started(&mut self) {
        self.counts.starts.fetch_add(1, Ordering::SeqCst);
    }

    #[handle]
    fn add(&mut self, n: u64) {
        self.seen.push(n);
    }

    #[handle]
    fn seen(&self) -> Vec<u64> {
        self.seen.clone()
    }

    #[handle]
    fn tick_every(&mut self, ms: u64, ctx: &mut Context<Self>) {
        self.timer = Some(ctx.interval(Duration::from_millis(ms), || SleeperMsg::Add { n: 0 }));
    }

    #[handle]
    fn stop_ticking(&mut self) {
        if let Some(t) = self.timer.take() {
            t.cancel();
        }
    }

    #[handle]
    fn trap_and_link(&mut self, other: ActorRef<Fragile>, ctx: &mut Context<Self>) {
        ctx.trap_exits(true);
        ctx.link(&other);
    }

    #[on_down]
    fn down(&mut self, down: Down) {
        self.counts.downs.lock().push(down);
    }

    #[on_stop]
    fn stopped(&mut self) {
        self.counts.stops.fetch_add(1, Ordering::SeqCst);
    }
}

fn sleeper(counts: &Counts) -> Sleeper {
    Sleeper {
        counts: counts.clone(),
        seen: Vec::new(),
        timer: None,
    }
}

#[derive(Default)]
pub struct Fragile;

#[agent]
impl Fragile {
    #[handle]
    fn crash(&self) {
        panic!("fragile crashed on purpose");
    }
}

/// The state word `system.tree()` shows for `agent`.
fn status<A: Agent>(system: &System, agent: &ActorRef<A>) -> String {
    let id = agent.id().to_string();
    let tree = system.tree().to_string();
    tree.lines()
        .find_map(|l| l.split_once(&format!(" {id} ")).map(|(_, s)| s.to_string()))
        .unwrap_or_else(|| panic!("{id} not in\n{tree}"))
}

#[tokio::test(start_paused = true)]
async fn an_idle_agent_hibernates_and_comes_back_where_it_was() {
    let system = System::new();
    let counts = Counts::default();
    let agent = system.spawn(sleeper(&counts));
    agent.add(1).await.unwrap();
    assert_eq!(status(&system, &agent), "idle");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&system, &agent), "hibernating");

    // Back on the next message: same state, same instance (no second on_start).
    agent.add(2).await.unwrap();
    assert_eq!(agent.seen().await, Ok(vec![1, 2]));
    assert_eq!(counts.starts.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&system, &agent), "hibernating");
    // Casts that wake it are handled in order.
    for n in 3..10 {
        agent.add(n).cast().await.unwrap();
    }
    assert_eq!(agent.seen().await, Ok((1..10).collect::<Vec<_>>()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    system.shutdown().await;
    assert_eq!(
        counts.stops.load(Ordering::SeqCst),
        1,
        "on_stop ran for the hibernating agent"
    );
}

#[tokio::test(start_paused = true)]
async fn an_agent_with_a_timer_stays_awake_and_hibernation_can_be_turned_off() {
    let system = System::new();
    let counts = Counts::default();
    let ticking = system.spawn(sleeper(&counts));
    ticking.tick_every(2_000).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(status(&system, &ticking), "idle");
    ticking.stop_ticking().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&system, &ticking), "hibernating");

    system.hibernate_after(None);
    let awake = system.spawn(sleeper(&counts));
    awake.add(1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(status(&system, &awake), "idle");
    system.hibernate_after(Some(Duration::from_millis(100)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status(&system, &awake), "hibernating");
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_hibernating_agent_still_traps_exits_and_is_watched() {
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let counts = Counts::default();
    let agent = system.spawn(sleeper(&counts));
    let fragile = system.spawn(Fragile);
    agent.trap_and_link(fragile.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&system, &agent), "hibernating");
    let _ = fragile.crash().await;
    fragile.stopped().await;
    // The exit woke it: a trapped exit, not a crash of its own.
    assert_eq!(agent.seen().await, Ok(vec![]));
    let downs = counts.downs.lock().clone();
    assert_eq!(downs.len(), 1);
    assert!(downs[0].linked && matches!(downs[0].reason, StopReason::Panicked(_)));
    assert!(agent.is_alive());
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn killing_a_hibernating_agent_stops_it_or_restarts_it_under_supervision() {
    let system = System::new();
    let counts = Counts::default();
    let alone = system.spawn(sleeper(&counts));
    alone.add(1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&system, &alone), "hibernating");
    assert!(alone.kill());
    alone.stopped().await;
    assert_eq!(alone.seen().await, Err(CallError::Stopped));
    assert_eq!(
        counts.stops.load(Ordering::SeqCst),
        0,
        "a killed agent's on_stop does not run"
    );

    let c = counts.clone();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("s", move || sleeper(&c)))
        .spawn(&system);
    let child: ActorRef<Sleeper> = sup.child("s").unwrap();
    child.add(7).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&system, &child), "hibernating");
    assert!(child.kill());
    assert_eq!(child.seen().await, Ok(vec![]), "a fresh instance after the kill");
    assert_eq!(sup.restarts(), 1);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_across_hibernation_are_never_lost_or_reordered() {
    let system = System::new();
    system.hibernate_after(Some(Duration::from_millis(2)));
    let counts = Counts::default();
    let agent = system.spawn(sleeper(&counts));
    let mut expected = Vec::new();
    for n in 0..300u64 {
        agent.add(n).cast().await.unwrap();
        expected.push(n);
        if n % 10 == 0 {
            // Pauses long enough for the agent to hibernate now and then.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(agent.seen().await, Ok(expected));
    assert_eq!(counts.starts.load(Ordering::SeqCst), 1);
    system.shutdown().await;
    assert_eq!(counts.stops.load(Ordering::SeqCst), 1);
}
