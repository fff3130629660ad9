//! Supervision trees, restarts, escalation, backoff, links and monitors.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::{timeout, Instant};
use troupe::prelude::*;

/// A shared log of lifecycle events.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, line: String) {
        self.0.lock().push(line);
    }
    fn count(&self, line: &str) -> usize {
        self.0.lock().iter().filter(|l| *l == line).count()
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().clone()
    }
}

/// A worker whose every instance logs its start and stop.
pub struct Worker {
    name: &'static str,
    journal: Journal,
    gate: Arc<Notify>,
    handled: Arc<AtomicU64>,
    n: u64,
    fail_start: bool,
}

#[agent]
impl Worker {
    #[on_start]
    fn started(&mut self) {
        self.journal.push(format!("{} start", self.name));
        if self.fail_start {
            panic!("{} cannot start", self.name);
        }
    }

    #[handle]
    fn crash(&mut self) {
        panic!("{} crashed on purpose", self.name);
    }

    #[handle]
    fn fail(&mut self, ctx: &mut Context<Self>) {
        ctx.stop_with(StopReason::Error("failed on purpose".into()));
    }

    #[handle]
    fn quit(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }

    #[handle]
    fn incr(&mut self) {
        self.n += 1;
        self.handled.fetch_add(1, Ordering::SeqCst);
    }

    #[handle]
    fn get(&self) -> u64 {
        self.n
    }

    #[handle]
    async fn block(&mut self) {
        self.gate.notified().await;
    }

    #[handle]
    async fn hang(&mut self) {
        std::future::pending::<()>().await;
    }

    #[on_stop]
    fn stopped(&mut self, reason: &StopReason) {
        self.journal.push(format!("{} stop {reason}", self.name));
    }
}

/// Everything a worker factory needs.
#[derive(Clone, Default)]
struct Kit {
    journal: Journal,
    gate: Arc<Notify>,
    handled: Arc<AtomicU64>,
}

impl Kit {
    fn spec(&self, name: &'static str) -> ChildSpec {
        self.spec_with(name, false)
    }

    fn spec_with(&self, name: &'static str, fail_start: bool) -> ChildSpec {
        let kit = self.clone();
        ChildSpec::new(name, move || Worker {
            name,
            journal: kit.journal.clone(),
            gate: kit.gate.clone(),
            handled: kit.handled.clone(),
            n: 0,
            fail_start,
        })
    }

    fn starts(&self, name: &str) -> usize {
        self.journal.count(&format!("{name} start"))
    }
}

const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl std::future::IntoFuture<Output = T>) -> T {
    match timeout(LIMIT, f.into_future()).await {
        Ok(v) => v,
        Err(_) => panic!("{what} hung"),
    }
}

/// The call failed because the handler panicked on purpose (the message travels along).
#[track_caller]
fn assert_crashed<T: std::fmt::Debug>(r: Result<T, CallError>) {
    match r {
        Err(CallError::Panicked(m)) if m.ends_with("crashed on purpose") => {}
        other => panic!("expected a crash on purpose, got {other:?}"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Exit {
    Panic,
    Error,
    Normal,
}

async fn check_strategy_and_policy(strategy: Strategy, policy: Restart, exit: Exit) {
    let system = System::new();
    let kit = Kit::default();
    let sup = Supervisor::new(strategy)
        .max_restarts(10, Duration::from_secs(5))
        .child(kit.spec("a"))
        .child(kit.spec("b").restart(policy))
        .child(kit.spec("c"))
        .spawn(&system);
    let a: ActorRef<Worker> = sup.child("a").unwrap();
    let b: ActorRef<Worker> = sup.child("b").unwrap();
    let c: ActorRef<Worker> = sup.child("c").unwrap();
    for w in [&a, &b, &c] {
        within("first call", w.incr()).await.unwrap();
    }
    let r = match exit {
        Exit::Panic => within("crash", b.crash()).await,
        Exit::Error => within("fail", b.fail()).await,
        Exit::Normal => within("quit", b.quit()).await,
    };
    match exit {
        Exit::Panic => assert_crashed(r),
        _ => assert_eq!(r, Ok(())),
    }
    let abnormal = !matches!(exit, Exit::Normal);
    let restarted = match policy {
        Restart::Permanent => true,
        Restart::Transient => abnormal,
        _ => false,
    };
    let ctx = format!("{strategy:?} {policy:?} {exit:?}");
    if restarted {
        // The same reference reaches the new instance, which starts from fresh state.
        assert_eq!(within("b after restart", b.get()).await, Ok(0), "{ctx}");
    } else {
        assert_eq!(
            within("b after final stop", b.get()).await,
            Err(CallError::Stopped),
            "{ctx}"
        );
        assert_eq!(sup.children(), vec!["a".to_string(), "c".to_string()], "{ctx}");
    }
    let a_now = within("a", a.get()).await.unwrap();
    let c_now = within("c", c.get()).await.unwrap();
    let (a_restarted, c_restarted) = match (restarted, strategy) {
        (false, _) | (true, Strategy::OneForOne) => (false, false),
        (true, Strategy::OneForAll) => (true, true),
        (true, _) => (false, true),
    };
    assert_eq!(a_now, if a_restarted { 0 } else { 1 }, "{ctx}: a");
    assert_eq!(c_now, if c_restarted { 0 } else { 1 }, "{ctx}: c");
    assert_eq!(kit.starts("a"), 1 + a_restarted as usize, "{ctx}");
    assert_eq!(kit.starts("b"), 1 + restarted as usize, "{ctx}");
    assert_eq!(kit.starts("c"), 1 + c_restarted as usize, "{ctx}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_and_restart_policy_behaves_as_in_otp() {
    for strategy in [Strategy::OneForOne, Strategy::OneForAll, Strategy::RestForOne] {
        for policy in [Restart::Permanent, Restart::Transient, Restart::Temporary] {
            for exit in [Exit::Panic, Exit::Error, Exit::Normal] {
                check_strategy_and_policy(strategy, policy, exit).await;
            }
        }
    }
}

async fn queued_messages_survive_a_restart(sup: Supervisor, kit: &Kit) {
    let system = System::new();
    let sup = sup.child(kit.spec("w")).spawn(&system);
    let w: ActorRef<Worker> = sup.child("w").unwrap();
    // Hold the worker in `block`, queue a crash and 100 increments behind it (`join!`
    // polls in order, so the crash is queued first), then release it.
    w.block().cast().await.unwrap();
    let (crash, ()) = within("crash", async {
        tokio::join!(w.crash(), async {
            for _ in 0..100 {
                w.incr().cast().await.unwrap();
            }
            kit.gate.notify_one();
        })
    })
    .await;
    assert_crashed(crash);
    // Every queued increment is handled exactly once, by the new instance.
    assert_eq!(within("get", w.get()).await, Ok(100));
    assert_eq!(kit.handled.load(Ordering::SeqCst), 100);
    assert_eq!(kit.starts("w"), 2);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_agent_keeps_its_mailbox_in_place() {
    let kit = Kit::default();
    queued_messages_survive_a_restart(Supervisor::new(Strategy::OneForOne), &kit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_agent_keeps_its_mailbox_through_the_supervisor_task() {
    // With a backoff the restart goes through the supervisor's task, not in place.
    let kit = Kit::default();
    let sup = Supervisor::new(Strategy::OneForOne)
        .backoff(Backoff::exponential(Duration::from_millis(5), Duration::from_millis(50)).jitter(0.0));
    queued_messages_survive_a_restart(sup, &kit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_goes_up_two_levels() {
    let system = System::new();
    let kit = Kit::default();
    // The middle supervisor gives up on the second crash; the root restarts it, which
    // restarts the leaf under the same reference.
    let sup = Supervisor::new(Strategy::OneForOne)
        .max_restarts(5, Duration::from_secs(5))
        .child(ChildSpec::supervisor(
            "mid",
            Supervisor::new(Strategy::OneForOne)
                .max_restarts(1, Duration::from_secs(10))
                .child(kit.spec("leaf")),
        ))
        .spawn(&system);
    let mid = sup.supervisor("mid").unwrap();
    let leaf: ActorRef<Worker> = mid.child("leaf").unwrap();
    assert_crashed(within("crash 1", leaf.crash()).await);
    assert_eq!(within("get 1", leaf.get()).await, Ok(0));
    assert_eq!(sup.restarts(), 0);
    assert_crashed(within("crash 2", leaf.crash()).await);
    leaf.incr().await.unwrap();
    assert_eq!(within("get 2", leaf.get()).await, Ok(1));
    assert_eq!(sup.restarts(), 1, "the root restarted the middle supervisor");
    assert_eq!(kit.starts("leaf"), 3);
    assert!(mid.is_alive());
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_past_the_root_stops_the_tree_and_no_call_hangs() {
    let system = System::new();
    let kit = Kit::default();
    let sup = Supervisor::new(Strategy::OneForOne)
        .max_restarts(0, Duration::from_secs(5))
        .child(ChildSpec::supervisor(
            "mid",
            Supervisor::new(Strategy::OneForAll)
                .max_restarts(0, Duration::from_secs(5))
                .child(kit.spec("x"))
                .child(kit.spec("y")),
        ))
        .spawn(&system);
    let mid = sup.supervisor("mid").unwrap();
    let x: ActorRef<Worker> = mid.child("x").unwrap();
    let y: ActorRef<Worker> = mid.child("y").unwrap();
    // Calls pending on y when the whole subtree dies.
    y.block().cast().await.unwrap();
    let pending: Vec<_> = (0..5)
        .map(|_| {
            let y = y.clone();
            tokio::spawn(async move { y.get().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_crashed(within("crash", x.crash()).await);
    kit.gate.notify_one();
    for p in pending {
        let r = within("pending call", p).await.unwrap();
        assert!(r.is_err() || r == Ok(0), "{r:?}");
    }
    within("x gone", x.stopped()).await;
    within("y gone", y.stopped()).await;
    assert_eq!(x.get().await, Err(CallError::Stopped));
    assert_eq!(y.get().await, Err(CallError::Stopped));
    assert!(!sup.is_alive());
    assert!(!mid.is_alive());
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_on_start_counts_toward_intensity() {
    let system = System::new();
    let kit = Kit::default();
    let sup = Supervisor::new(Strategy::OneForOne)
        .max_restarts(3, Duration::from_secs(5))
        .child(kit.spec_with("bad", true))
        .spawn(&system);
    // The supervisor may give up before we get to look the child up.
    if let Ok(bad) = sup.child::<Worker>("bad") {
        within("bad gone", bad.stopped()).await;
        assert_eq!(bad.get().await, Err(CallError::Stopped));
    }
    within("supervisor gives up", async {
        while sup.is_alive() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    // The first start and three restarts, then the supervisor gave up.
    assert_eq!(kit.starts("bad"), 4);
    assert!(sup.children().is_empty());
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_restarts_exponentially() {
    let system = System::new();
    let kit = Kit::default();
    let sup = Supervisor::new(Strategy::OneForOne)
        .max_restarts(10, Duration::from_secs(60))
        .backoff(Backoff::exponential(Duration::from_millis(100), Duration::from_millis(300)).jitter(0.0))
        .child(kit.spec("w"))
        .spawn(&system);
    let w: ActorRef<Worker> = sup.child("w").unwrap();
    w.get().await.unwrap();
    let mut delays = Vec::new();
    for _ in 0..4 {
        let t = Instant::now();
        assert_crashed(w.crash().await);
        // The call waits for the next instance (between instances, calls queue).
        assert_eq!(w.get().await, Ok(0));
        delays.push(t.elapsed().as_millis());
    }
    assert_eq!(delays, vec![100, 200, 300, 300]);
    // A call with a shorter timeout than the backoff times out instead of waiting.
    assert_crashed(w.crash().await);
    assert_eq!(
        w.get().timeout(Duration::from_millis(50)).await,
        Err(CallError::Timeout)
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_children_in_reverse_start_order() {
    let system = System::new();
    let kit = Kit::default();
    let _sup = Supervisor::new(Strategy::OneForOne)
        .child(kit.spec("a"))
        .child(kit.spec("b"))
        .child(kit.spec("c"))
        .spawn(&system);
    tokio::time::sleep(Duration::from_millis(20)).await;
    within("shutdown", system.shutdown()).await;
    let stops: Vec<String> = kit
        .journal
        .lines()
        .into_iter()
        .filter(|l| l.contains("stop"))
        .collect();
    assert_eq!(
        stops,
        vec!["c stop shutdown", "b stop shutdown", "a stop shutdown"]
    );
    assert_eq!(system.agent_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_child_that_does_not_stop_in_time_is_killed() {
    let system = System::new();
    let kit = Kit::default();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(kit.spec("stuck").shutdown(Duration::from_millis(300)))
        .child(kit.spec("fine"))
        .spawn(&system);
    let stuck: ActorRef<Worker> = sup.child("stuck").unwrap();
    stuck.hang().cast().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let t = Instant::now();
    sup.shutdown().await;
    assert_eq!(t.elapsed().as_millis(), 300);
    assert_eq!(stuck.get().await, Err(CallError::Stopped));
    // The well-behaved child stopped cleanly; the stuck one never ran on_stop.
    assert_eq!(kit.journal.count("fine stop shutdown"), 1);
    assert_eq!(kit.journal.count("stuck stop shutdown"), 0);
    system.shutdown().await;
    assert_eq!(system.agent_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_children_start_and_terminate() {
    let system = System::new();
    let kit = Kit::default();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(kit.spec("a"))
        .spawn(&system);
    sup.start_child(kit.spec("extra")).await.unwrap();
    assert_eq!(
        sup.start_child(kit.spec("extra")).await,
        Err(SupervisorError::NameTaken("extra".into()))
    );
    let extra: ActorRef<Worker> = sup.child("extra").unwrap();
    extra.incr().await.unwrap();
    assert!(matches!(
        sup.child::<Counter>("extra"),
        Err(SupervisorError::WrongType(_))
    ));
    sup.terminate_child("extra").await.unwrap();
    assert_eq!(extra.get().await, Err(CallError::Stopped));
    assert_eq!(sup.children(), vec!["a".to_string()]);
    assert_eq!(
        sup.terminate_child("extra").await,
        Err(SupervisorError::NoSuchChild("extra".into()))
    );
    assert_eq!(kit.journal.count("extra stop shutdown"), 1);
    system.shutdown().await;
    assert_eq!(
        sup.start_child(kit.spec("late")).await,
        Err(SupervisorError::Stopped)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_shows_supervisors_children_and_restarts() {
    let system = System::new();
    let kit = Kit::default();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(kit.spec("counter"))
        .child(ChildSpec::supervisor(
            "workers",
            Supervisor::new(Strategy::OneForAll).child(kit.spec("w1")),
        ))
        .spawn(&system);
    let counter: ActorRef<Worker> = sup.child("counter").unwrap();
    let _ = counter.crash().await;
    counter.get().await.unwrap();
    let tree = system.tree().to_string();
    let lines: Vec<&str> = tree.lines().collect();
    assert!(lines[0].starts_with("system (2 agents)"), "{tree}");
    assert_eq!(lines[1], "└── supervisor root (one_for_one, 1 restart)", "{tree}");
    assert!(
        lines[2].starts_with("    ├── counter: Worker #")
            && (lines[2].ends_with(" running") || lines[2].ends_with(" idle")),
        "{tree}"
    );
    assert_eq!(lines[3], "    └── supervisor workers (one_for_all)", "{tree}");
    assert!(lines[4].starts_with("        └── w1: Worker #"), "{tree}");
    system.shutdown().await;
}

/// Records the Down notices it receives.
pub struct Watcher {
    downs: Arc<Mutex<Vec<Down>>>,
    trap: bool,
}

#[agent]
impl Watcher {
    #[on_start]
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.trap_exits(self.trap);
    }

    #[handle]
    fn watch(&mut self, other: ActorRef<Worker>, ctx: &mut Context<Self>) {
        ctx.monitor(&other);
    }

    #[handle]
    fn link(&mut self, other: ActorRef<Worker>, ctx: &mut Context<Self>) {
        ctx.link(&other);
    }

    #[handle]
    fn ping(&self) {}

    #[handle]
    fn crash(&self) {
        panic!("watcher crashed on purpose");
    }

    #[on_down]
    fn down(&mut self, down: Down) {
        self.downs.lock().push(down);
    }
}

fn plain_worker(system: &System, kit: &Kit, name: &'static str) -> ActorRef<Worker> {
    system.spawn(Worker {
        name,
        journal: kit.journal.clone(),
        gate: kit.gate.clone(),
        handled: kit.handled.clone(),
        n: 0,
        fail_start: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_crash_stops_the_partner_unless_it_traps_exits() {
    let system = System::new();
    let kit = Kit::default();
    let downs = Arc::new(Mutex::new(Vec::new()));
    let plain = system.spawn(Watcher {
        downs: downs.clone(),
        trap: false,
    });
    let trapper = system.spawn(Watcher {
        downs: downs.clone(),
        trap: true,
    });
    let w = plain_worker(&system, &kit, "w");
    plain.link(w.clone()).await.unwrap();
    trapper.link(w.clone()).await.unwrap();
    assert_crashed(w.crash().await);
    within("plain partner stops", plain.stopped()).await;
    assert_eq!(plain.ping().await, Err(CallError::Stopped));
    trapper.ping().await.unwrap();
    let got = downs.lock().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].id, w.id());
    assert!(got[0].linked);
    assert!(matches!(got[0].reason, StopReason::Panicked(_)));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_stop_does_not_kill_linked_partners_and_links_are_two_way() {
    let system = System::new();
    let kit = Kit::default();
    let downs = Arc::new(Mutex::new(Vec::new()));
    let watcher = system.spawn(Watcher {
        downs: downs.clone(),
        trap: false,
    });
    let w1 = plain_worker(&system, &kit, "w1");
    let w2 = plain_worker(&system, &kit, "w2");
    watcher.link(w1.clone()).await.unwrap();
    watcher.link(w2.clone()).await.unwrap();
    w1.quit().await.unwrap();
    w1.stopped().await;
    watcher.ping().await.unwrap();
    assert!(
        downs.lock().is_empty(),
        "a normal stop is not an exit signal to a non-trapping partner"
    );
    // The other direction: the watcher crashing takes the linked worker down with it.
    assert_crashed(watcher.crash().await);
    within("w2 stops", w2.stopped()).await;
    assert_eq!(
        kit.journal.lines().last().cloned(),
        Some(format!("w2 stop linked agent {} crashed", watcher.id()))
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_deliver_exactly_one_down_also_for_an_already_dead_agent() {
    let system = System::new();
    let kit = Kit::default();
    let downs = Arc::new(Mutex::new(Vec::new()));
    let watcher = system.spawn(Watcher {
        downs: downs.clone(),
        trap: false,
    });
    let live = plain_worker(&system, &kit, "live");
    let dead = plain_worker(&system, &kit, "dead");
    let _ = dead.crash().await;
    dead.stopped().await;
    watcher.watch(live.clone()).await.unwrap();
    watcher.watch(dead.clone()).await.unwrap();
    live.quit().await.unwrap();
    live.stopped().await;
    watcher.ping().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    watcher.ping().await.unwrap();
    let got = downs.lock().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let dead_down = got.iter().find(|d| d.id == dead.id()).unwrap();
    assert!(matches!(dead_down.reason, StopReason::Panicked(_)));
    assert!(!dead_down.linked);
    let live_down = got.iter().find(|d| d.id == live.id()).unwrap();
    assert_eq!(live_down.reason, StopReason::Normal);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_is_not_down_but_the_final_stop_is() {
    let system = System::new();
    let kit = Kit::default();
    let downs = Arc::new(Mutex::new(Vec::new()));
    let watcher = system.spawn(Watcher {
        downs: downs.clone(),
        trap: false,
    });
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(kit.spec("w"))
        .spawn(&system);
    let w: ActorRef<Worker> = sup.child("w").unwrap();
    watcher.watch(w.clone()).await.unwrap();
    let _ = w.crash().await;
    w.get().await.unwrap();
    watcher.ping().await.unwrap();
    assert!(downs.lock().is_empty());
    sup.terminate_child("w").await.unwrap();
    within("down", async {
        while downs.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(downs.lock()[0].reason, StopReason::Shutdown);
    system.shutdown().await;
}

/// A plain counter, to check typed lookups.
#[derive(Default)]
pub struct Counter;

#[agent]
impl Counter {
    #[handle]
    fn nothing(&self) {}
}

/// Many callers, random crashes, every strategy: no call may hang, no message may be
/// handled twice, and the tree must still shut down cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_crashes_and_calls_never_hang_under_any_strategy() {
    for strategy in [Strategy::OneForOne, Strategy::OneForAll, Strategy::RestForOne] {
        let system = System::new();
        let kit = Kit::default();
        let names = ["w0", "w1", "w2", "w3"];
        let mut sup = Supervisor::new(strategy).max_restarts(100_000, Duration::from_secs(1));
        for name in names {
            sup = sup.child(kit.spec(name));
        }
        let sup = sup.spawn(&system);
        let workers: Vec<ActorRef<Worker>> = names.iter().map(|n| sup.child(n).unwrap()).collect();
        let mut callers = Vec::new();
        for c in 0..4u64 {
            let workers = workers.clone();
            callers.push(tokio::spawn(async move {
                let mut seed = c * 7919 + 17;
                let (mut ok, mut failed) = (0u32, 0u32);
                for _ in 0..300 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let w = &workers[(seed >> 33) as usize % workers.len()];
                    let r = if (seed >> 20) % 10 == 0 {
                        w.crash().await.map(|_| ())
                    } else {
                        w.incr().await
                    };
                    match r {
                        Ok(()) => ok += 1,
                        Err(CallError::Panicked(_)) => failed += 1,
                        Err(e) => panic!("unexpected {e:?} under {strategy:?}"),
                    }
                }
                (ok, failed)
            }));
        }
        let mut total_ok = 0;
        for c in callers {
            let (ok, _) = within("callers", c).await.unwrap();
            total_ok += ok;
        }
        // Every increment that was answered Ok was handled exactly once.
        assert_eq!(
            kit.handled.load(Ordering::SeqCst),
            u64::from(total_ok),
            "{strategy:?}"
        );
        assert!(sup.is_alive());
        within("shutdown", system.shutdown()).await;
        assert_eq!(system.agent_count(), 0, "{strategy:?}");
    }
}

// One thread: once a call returns, the agent has already gone back to waiting (idle).
#[tokio::test]
async fn the_tree_counts_and_shows_every_agent_it_claims() {
    let system = System::new();
    let kit = Kit::default();
    let _sup = Supervisor::new(Strategy::OneForOne)
        .child(kit.spec("a"))
        .spawn(&system);
    let idle = system.spawn(Counter);
    idle.nothing().await.unwrap();
    let fresh = system.spawn(Counter);
    let tree = system.tree();
    let text = tree.to_string();
    assert_eq!((tree.agents(), tree.unsupervised()), (3, 2), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "system (3 agents, 2 unsupervised)", "{text}");
    assert_eq!(lines[1], "├── supervisor root (one_for_one)", "{text}");
    assert_eq!(lines[3], "└── unsupervised", "{text}");
    assert_eq!(lines[4], format!("    ├── Counter {} idle", idle.id()), "{text}");
    assert_eq!(
        lines[5],
        format!("    └── Counter {} not started", fresh.id()),
        "{text}"
    );

    // Past 20, the rest are counted, not listed.
    for _ in 0..25 {
        let _ = system.spawn(Counter);
    }
    let text = system.tree().to_string();
    assert!(text.starts_with("system (28 agents, 27 unsupervised)"), "{text}");
    assert!(text.ends_with("    └── … and 7 more\n"), "{text}");
    system.shutdown().await;
}
