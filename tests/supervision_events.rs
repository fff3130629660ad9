//! Supervision events: subscribers see starts, crashes, restarts and give-ups in order,
//! without linking to anything, and a crashing watcher takes nothing down.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::time::Duration;

use tokio::time::timeout;
use troupe::prelude::*;
use troupe::SupervisorEvents;

#[derive(Default)]
pub struct Worker {
    n: u64,
}

#[agent]
impl Worker {
    #[handle]
    fn crash(&mut self) {
        panic!("worker crashed on purpose");
    }

    #[handle]
    fn quit(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }

    #[handle]
    fn incr(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

async fn next(events: &mut SupervisorEvents) -> SupervisionEvent {
    match timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("the supervisor went away"),
        Err(_) => panic!("no event came"),
    }
}

fn kinds(events: &[SupervisionEvent]) -> Vec<String> {
    events.iter().map(ToString::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_report_starts_crashes_stops_and_restarts_in_order() {
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("a", Worker::default))
        .spawn(&system);
    let mut events = sup.events();
    let a: ActorRef<Worker> = sup.child("a").unwrap();
    let _ = a.crash().await;
    let crashed = next(&mut events).await;
    assert_eq!(crashed.agent, Some(a.id()));
    assert!(
        matches!(&crashed.kind, EventKind::Crashed(StopReason::Panicked(m)) if m == "worker crashed on purpose")
    );
    assert_eq!(next(&mut events).await.kind, EventKind::Restarted);
    a.quit().await.unwrap();
    let got = vec![next(&mut events).await, next(&mut events).await];
    assert_eq!(kinds(&got), vec!["root/a stopped: normal", "root/a restarted"]);

    sup.start_child(ChildSpec::new("b", Worker::default).restart(Restart::Transient))
        .await
        .unwrap();
    let started = next(&mut events).await;
    assert_eq!(
        (started.child.as_str(), &started.kind),
        ("b", &EventKind::Started)
    );
    assert_eq!(a.incr().await, Ok(1));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_sees_a_nested_supervisor_give_up_and_restart() {
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::supervisor(
            "mid",
            Supervisor::new(Strategy::OneForOne)
                .max_restarts(0, Duration::from_secs(5))
                .child(ChildSpec::new("leaf", Worker::default)),
        ))
        .spawn(&system);
    let mut events = sup.events();
    let leaf: ActorRef<Worker> = sup.supervisor("mid").unwrap().child("leaf").unwrap();
    let _ = leaf.crash().await;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &SupervisionEvent| e.child == "mid" && e.kind == EventKind::Restarted)
    {
        seen.push(next(&mut events).await);
    }
    let text = kinds(&seen);
    let gave_up = text.iter().position(|t| t == "supervisor root/mid gave up");
    let crashed = text
        .iter()
        .position(|t| t == "root/mid/leaf crashed: panicked: worker crashed on purpose");
    assert!(
        crashed.is_some() && gave_up.is_some() && crashed < gave_up,
        "{text:?}"
    );
    // The leaf works again, under the same reference.
    assert_eq!(
        timeout(Duration::from_secs(10), leaf.incr()).await.unwrap(),
        Ok(1)
    );
    system.shutdown().await;
}

/// Reads supervision events from its own task and crashes on demand.
pub struct Watchdog {
    seen: u64,
}

#[agent]
impl Watchdog {
    #[handle]
    fn seen(&mut self, _event: String) {
        self.seen += 1;
    }

    #[handle]
    fn count(&self) -> u64 {
        self.seen
    }

    #[handle]
    fn crash(&mut self) {
        panic!("watchdog crashed on purpose");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_watcher_takes_nothing_down() {
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let sup = Supervisor::new(Strategy::OneForOne)
        .max_restarts(100, Duration::from_secs(5))
        .child(ChildSpec::new("w1", Worker::default))
        .child(ChildSpec::new("w2", Worker::default))
        .spawn(&system);
    let watchdog = system.spawn(Watchdog { seen: 0 });
    let mut feed = sup.events();
    let forward = {
        let watchdog = watchdog.clone();
        tokio::spawn(async move {
            while let Some(e) = feed.recv().await {
                if watchdog.seen(e.to_string()).cast().await.is_err() {
                    break;
                }
            }
        })
    };
    let w1: ActorRef<Worker> = sup.child("w1").unwrap();
    let w2: ActorRef<Worker> = sup.child("w2").unwrap();
    let _ = w1.crash().await;
    assert_eq!(w1.incr().await, Ok(1));
    // The watchdog crashes: workers, supervisor and other subscribers carry on.
    let mut other = sup.events();
    let _ = watchdog.crash().await;
    let _ = w2.crash().await;
    assert_eq!(w2.incr().await, Ok(1));
    assert_eq!(w1.incr().await, Ok(2));
    assert!(sup.is_alive());
    assert!(matches!(next(&mut other).await.kind, EventKind::Crashed(_)));
    forward.abort();
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_misses_old_events_instead_of_pinning_memory() {
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let sup = Supervisor::new(Strategy::OneForOne)
        .max_restarts(1_000, Duration::from_secs(5))
        .child(ChildSpec::new("w", Worker::default))
        .spawn(&system);
    let mut events = sup.events();
    let w: ActorRef<Worker> = sup.child("w").unwrap();
    for _ in 0..200 {
        let _ = w.crash().await;
    }
    let mut read = 0;
    while events.try_recv().is_some() {
        read += 1;
    }
    // 200 crashes made 400 events; the backlog keeps the newest 256.
    assert_eq!(read, 256);
    assert_eq!(events.missed(), 144);
    system.shutdown().await;
}
