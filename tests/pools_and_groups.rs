//! Pools route to supervised workers and survive their crashes; groups track members,
//! broadcast to them, and forget them when they stop.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::timeout;
use troupe::prelude::*;
use troupe::Broadcast;

#[derive(Default)]
pub struct Worker {
    gate: Arc<Notify>,
    jobs: u64,
}

#[agent(mailbox = 4)]
pub struct Marker;

#[agent]
impl Worker {
    /// Answers with the id of the worker that handled it.
    #[handle]
    fn who(&mut self, ctx: &mut Context<Self>) -> ActorId {
        self.jobs += 1;
        ctx.id()
    }

    #[handle]
    async fn wait_gate(&mut self, ctx: &mut Context<Self>) -> ActorId {
        self.gate.notified().await;
        ctx.id()
    }

    #[handle]
    fn crash(&mut self) {
        panic!("worker crashed on purpose");
    }

    #[handle]
    fn jobs(&self) -> u64 {
        self.jobs
    }
}

async fn within<T>(what: &str, f: impl std::future::IntoFuture<Output = T>) -> T {
    match timeout(Duration::from_secs(10), f.into_future()).await {
        Ok(v) => v,
        Err(_) => panic!("{what} hung"),
    }
}

fn tally(ids: &[ActorId]) -> HashMap<ActorId, usize> {
    let mut t = HashMap::new();
    for id in ids {
        *t.entry(*id).or_insert(0) += 1;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_calls_evenly() {
    let system = System::new();
    let pool = Pool::builder(Worker::default).size(4).spawn(&system);
    assert_eq!((pool.size(), pool.routing()), (4, Routing::RoundRobin));
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(pool.who().await.unwrap());
    }
    let t = tally(&ids);
    assert_eq!(t.len(), 4);
    assert!(t.values().all(|&n| n == 10), "{t:?}");
    let workers: Vec<ActorId> = pool.workers().iter().map(ActorRef::id).collect();
    assert!(workers.iter().all(|w| t.contains_key(w)));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_avoids_a_busy_worker() {
    let system = System::new();
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let pool = Pool::builder(move || Worker {
        gate: g.clone(),
        jobs: 0,
    })
    .size(3)
    .routing(Routing::LeastLoaded)
    .spawn(&system);
    let busy = tokio::spawn(pool.wait_gate());
    // Let the slow job reach its worker.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(pool.who().await.unwrap());
    }
    gate.notify_one();
    let busy_id = within("slow job", busy).await.unwrap().unwrap();
    let t = tally(&ids);
    assert!(!t.contains_key(&busy_id), "the busy worker got work: {t:?}");
    assert_eq!(t.len(), 2, "{t:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_worker_is_restarted_and_the_pool_keeps_its_size() {
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let pool = Pool::builder(Worker::default)
        .size(2)
        .max_restarts(10, Duration::from_secs(5))
        .spawn(&system);
    let mut events = pool.supervisor().events();
    let before: Vec<ActorId> = pool.workers().iter().map(ActorRef::id).collect();
    for _ in 0..4 {
        let r = pool.crash().await;
        assert!(matches!(r, Err(CallError::Panicked(_))), "{r:?}");
    }
    let after: Vec<ActorId> = pool.workers().iter().map(ActorRef::id).collect();
    assert_eq!(before, after, "restarted workers keep their references");
    assert_eq!(pool.size(), 2);
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(within("call after crashes", pool.who()).await.unwrap());
    }
    assert_eq!(tally(&ids).len(), 2);
    assert_eq!(pool.supervisor().restarts(), 4);
    let first = within("event", events.recv()).await.unwrap();
    assert!(matches!(first.kind, EventKind::Crashed(_)));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_grows_and_shrinks_at_run_time_without_dropping_queued_work() {
    let system = System::new();
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let pool = Pool::builder(move || Worker {
        gate: g.clone(),
        jobs: 0,
    })
    .size(1)
    .name("resizer")
    .spawn(&system);
    within("grow", pool.set_size(3)).await.unwrap();
    assert_eq!(pool.size(), 3);
    let mut ids = Vec::new();
    for _ in 0..9 {
        ids.push(pool.who().await.unwrap());
    }
    assert_eq!(tally(&ids).len(), 3);

    // The newest worker has work in hand when the pool shrinks: it finishes it.
    let newest = pool.workers()[2].clone();
    let slow = tokio::spawn(newest.wait_gate());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let shrink = tokio::spawn({
        let pool = pool.clone();
        async move { pool.set_size(1).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(pool.size(), 1, "removed workers get no new messages");
    gate.notify_one();
    assert_eq!(within("slow job", slow).await.unwrap(), Ok(newest.id()));
    within("shrink", shrink).await.unwrap().unwrap();
    within("removed worker stops", newest.stopped()).await;
    assert_eq!(pool.supervisor().children(), vec!["resizer-0".to_string()]);
    assert_eq!(pool.who().await, Ok(pool.workers()[0].id()));
    pool.shutdown().await;
    assert_eq!(pool.who().await, Err(CallError::Stopped));
    system.shutdown().await;
}

#[tokio::test]
async fn an_empty_pool_answers_stopped_and_try_cast_spills_to_free_workers() {
    let system = System::new();
    let empty = Pool::builder(Worker::default).size(0).spawn(&system);
    assert_eq!(empty.who().await, Err(CallError::Stopped));
    assert!(empty.jobs().try_cast().is_err());

    // Two workers with mailboxes of 4, neither started: 8 casts fit, the 9th does not.
    let pool = Pool::builder(|| Marker).size(2).spawn(&system);
    for i in 0..8 {
        assert!(pool.mark().try_cast().is_ok(), "cast {i}");
    }
    assert!(pool.mark().try_cast().unwrap_err().is_full());
    system.shutdown().await;
}

#[agent]
impl Marker {
    #[handle]
    fn mark(&self) {}
}

#[tokio::test]
async fn groups_track_members_and_broadcast_to_them() {
    let system = System::new();
    let a = system.spawn(Worker::default());
    let b = system.spawn(Worker::default());
    let m = system.spawn(Marker);
    system.join("workers", &a).unwrap();
    system.join("workers", &b).unwrap();
    system.join("workers", &a).unwrap();
    system.join("workers", &m).unwrap();
    system.join("others", &m).unwrap();
    assert_eq!(system.members::<Worker>("workers"), vec![a.clone(), b.clone()]);
    assert_eq!(system.members::<Marker>("workers"), vec![m.clone()]);
    assert_eq!(system.groups(), vec!["others".to_string(), "workers".to_string()]);

    let sent = system.broadcast::<Worker, _, _>("workers", |w| w.who());
    assert_eq!((sent.delivered, sent.full, sent.stopped), (2, 0, 0));
    assert_ne!(sent, Broadcast::default());
    assert_eq!((a.jobs().await, b.jobs().await), (Ok(1), Ok(1)));

    assert!(system.leave("workers", &b));
    assert!(!system.leave("workers", &b));
    assert_eq!(system.members::<Worker>("workers"), vec![a.clone()]);

    // A member that stops leaves by itself; an empty group disappears.
    assert!(m.stop_gracefully());
    m.stopped().await;
    assert!(system.members::<Marker>("workers").is_empty());
    assert_eq!(system.groups(), vec!["workers".to_string()]);
    assert_eq!(system.join("workers", &m), Err(RegistryError::AgentStopped));
    system.shutdown().await;
    assert!(system.groups().is_empty());
}

#[tokio::test]
async fn a_broadcast_counts_members_with_full_mailboxes() {
    let system = System::new();
    let marker = system.spawn(Marker);
    system.join("markers", &marker).unwrap();
    for _ in 0..4 {
        marker.mark().try_cast().unwrap();
    }
    let sent = system.broadcast::<Marker, _, _>("markers", |m| m.mark());
    assert_eq!((sent.delivered, sent.full, sent.stopped), (0, 1, 0));
    system.shutdown().await;
}

#[tokio::test]
async fn lookup_no_longer_finds_an_agent_that_is_stopping() {
    pub struct Slow {
        gate: Arc<Notify>,
    }
    #[agent]
    impl Slow {
        #[handle]
        fn ping(&self) {}
        #[on_stop]
        async fn bye(&mut self) {
            self.gate.notified().await;
        }
    }
    let system = System::new();
    let gate = Arc::new(Notify::new());
    let slow = system.spawn(Slow { gate: gate.clone() });
    system.register("slow", &slow).unwrap();
    slow.ping().await.unwrap();
    slow.stop_gracefully();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        system.lookup::<Slow>("slow").is_none(),
        "found while on_stop runs"
    );
    gate.notify_one();
    slow.stopped().await;
    system.shutdown().await;
}
