//! Behaviour of agents: calls, casts, mailboxes, timeouts, panics, hooks and the registry.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use troupe::prelude::*;

#[agent(mailbox = 4)]
#[derive(Default)]
pub struct Counter {
    count: u64,
    seen: Vec<u64>,
}

#[agent]
impl Counter {
    /// Adds `n`.
    #[handle]
    fn add(&mut self, n: u64) {
        self.count += n;
        self.seen.push(n);
    }

    #[handle]
    fn get(&self) -> u64 {
        self.count
    }

    #[handle]
    fn seen(&self) -> Vec<u64> {
        self.seen.clone()
    }

    #[handle]
    async fn slow_get(&mut self, ms: u64, ctx: &mut Context<Self>) -> u64 {
        let _ = ctx.id();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.count
    }

    #[handle]
    fn checked_div(&self, by: u64) -> Result<u64, String> {
        self.count
            .checked_div(by)
            .ok_or_else(|| "division by zero".into())
    }
}

#[tokio::test]
async fn call_returns_the_handler_result_and_cast_is_handled_in_order() {
    let system = System::new();
    let counter: ActorRef<Counter> = system.spawn(Counter::default());
    counter.add(2).cast().await.unwrap();
    counter.add(2).try_cast().unwrap();
    counter.add(3).await.unwrap();
    assert_eq!(counter.get().await.unwrap(), 7);
    assert_eq!(counter.slow_get(1).await.unwrap(), 7);
    assert_eq!(
        counter.checked_div(0).await.unwrap(),
        Err("division by zero".to_string())
    );
    assert_eq!(counter.checked_div(7).await.unwrap(), Ok(1));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_one_sender_arrive_in_order_under_backpressure() {
    let system = System::new();
    let counter = system.spawn(Counter::default());
    // Capacity is 4: most of these casts wait for room, none may be lost or reordered.
    for i in 0..2_000u64 {
        counter.add(i).cast().await.unwrap();
    }
    let seen = counter.seen().await.unwrap();
    assert_eq!(seen, (0..2_000).collect::<Vec<_>>());
    system.shutdown().await;
}

/// An agent that blocks in a handler until released, to fill its mailbox.
#[derive(Default)]
pub struct Gate {
    release: Arc<Notify>,
    handled: u32,
}

#[agent]
impl Gate {
    #[handle]
    async fn wait(&mut self) {
        self.release.notified().await;
    }

    #[handle]
    fn ping(&mut self) -> u32 {
        self.handled += 1;
        self.handled
    }

    #[handle]
    fn boom(&mut self) -> u32 {
        panic!("gate exploded")
    }

    #[handle]
    async fn async_boom(&mut self) -> u32 {
        tokio::task::yield_now().await;
        panic!("async gate exploded")
    }

    #[handle]
    fn quit(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[agent(mailbox = 3)]
#[derive(Default)]
pub struct SmallGate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

#[agent]
impl SmallGate {
    #[handle]
    async fn wait(&mut self) {
        self.entered.notify_one();
        self.release.notified().await;
    }

    #[handle]
    fn ping(&self) {}
}

#[tokio::test]
async fn try_cast_on_a_full_mailbox_fails_and_gives_the_message_back() {
    let system = System::new();
    let release = Arc::new(Notify::new());
    let entered = Arc::new(Notify::new());
    let gate = system.spawn(SmallGate {
        entered: entered.clone(),
        release: release.clone(),
    });
    // The agent takes `wait` and blocks in it; then three casts fill the mailbox.
    gate.wait().cast().await.unwrap();
    entered.notified().await;
    for _ in 0..3 {
        gate.ping().try_cast().unwrap();
    }
    let err = gate.ping().try_cast().unwrap_err();
    assert!(err.is_full(), "{err:?}");
    assert!(matches!(err.into_inner(), SmallGateMsg::Ping));
    // A bounded cast waits for room and then gives up with the message.
    let err = gate
        .ping()
        .timeout(Duration::from_millis(20))
        .cast()
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Full(SmallGateMsg::Ping)));
    release.notify_one();
    gate.ping().await.unwrap();
    system.shutdown().await;
}

#[tokio::test]
async fn call_timeout_returns_timeout_error() {
    let system = System::new();
    let counter = system.spawn(Counter::default());
    let r = counter.slow_get(200).timeout(Duration::from_millis(10)).await;
    assert_eq!(r, Err(CallError::Timeout));
    // The agent is still fine afterwards.
    assert_eq!(counter.get().await, Ok(0));
    system.shutdown().await;
}

#[tokio::test]
async fn a_panic_fails_that_call_and_every_pending_and_later_call() {
    let system = System::new();
    let release = Arc::new(Notify::new());
    let gate = system.spawn(Gate {
        release: release.clone(),
        handled: 0,
    });
    gate.wait().cast().await.unwrap();
    // `join!` polls in order: `boom` is queued before `ping`, and both before the release.
    let (boom, queued, ()) = tokio::join!(gate.boom(), gate.ping(), async { release.notify_one() });
    assert_eq!(boom, Err(CallError::Panicked("gate exploded".into())));
    assert_eq!(queued, Err(CallError::Stopped));
    gate.stopped().await;
    assert!(!gate.is_alive());
    assert_eq!(gate.ping().await, Err(CallError::Stopped));
    assert!(matches!(gate.ping().try_cast(), Err(SendError::Closed(_))));
    system.shutdown().await;
}

#[tokio::test]
async fn a_panic_in_an_async_handler_is_a_crash_too() {
    let system = System::new();
    let gate = system.spawn(Gate::default());
    assert_eq!(
        gate.async_boom().await,
        Err(CallError::Panicked("async gate exploded".into()))
    );
    assert_eq!(gate.ping().await, Err(CallError::Stopped));
}

#[tokio::test]
async fn ctx_stop_stops_after_the_current_message() {
    let system = System::new();
    let gate = system.spawn(Gate::default());
    assert_eq!(gate.ping().await, Ok(1));
    gate.quit().await.unwrap();
    gate.stopped().await;
    assert_eq!(gate.ping().await, Err(CallError::Stopped));
    assert_eq!(system.agent_count(), 0);
}

#[tokio::test]
async fn stop_gracefully_overtakes_queued_messages() {
    let system = System::new();
    let release = Arc::new(Notify::new());
    let gate = system.spawn(Gate {
        release: release.clone(),
        handled: 0,
    });
    gate.wait().cast().await.unwrap();
    gate.ping().cast().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(gate.stop_gracefully());
    release.notify_one();
    gate.stopped().await;
    assert!(!gate.stop_gracefully());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_handler_holds_the_agent_until_it_returns() {
    /// Records overlapping handler runs.
    #[derive(Default)]
    pub struct Exclusive {
        busy: bool,
        overlaps: u32,
    }
    #[agent]
    impl Exclusive {
        #[handle]
        async fn work(&mut self) {
            if self.busy {
                self.overlaps += 1;
            }
            self.busy = true;
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.busy = false;
        }
        #[handle]
        fn overlaps(&self) -> u32 {
            self.overlaps
        }
    }
    let system = System::new();
    let ex = system.spawn(Exclusive::default());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let ex = ex.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                ex.work().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ex.overlaps().await, Ok(0));
    system.shutdown().await;
}

#[tokio::test]
async fn refs_are_comparable_hashable_clonable_with_stable_ids() {
    fn assert_send_sync<T: Send + Sync + Clone + Eq + std::hash::Hash>() {}
    assert_send_sync::<ActorRef<Counter>>();
    let system = System::new();
    let a = system.spawn(Counter::default());
    let b = system.spawn(Counter::default());
    let a2 = a.clone();
    assert_eq!(a, a2);
    assert_ne!(a, b);
    assert_eq!(a.id(), a2.id());
    // Hash and Eq use only the immutable id; clippy cannot see that through the Arc.
    #[allow(clippy::mutable_key_type)]
    let set: HashSet<_> = [a.clone(), a2, b.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert!(format!("{a:?}").contains("Counter"));
    system.shutdown().await;
}

/// Logs its lifecycle to a shared journal.
pub struct Lifecycle {
    name: &'static str,
    journal: Arc<Mutex<Vec<String>>>,
    child: Option<ActorRef<Lifecycle>>,
}

#[agent]
impl Lifecycle {
    #[on_start]
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.journal.lock().push(format!("{} started", self.name));
        if self.name == "parent" {
            let child = ctx.spawn(Lifecycle {
                name: "child",
                journal: self.journal.clone(),
                child: None,
            });
            self.child = Some(child);
        }
    }

    #[handle]
    fn child(&self) -> Option<ActorRef<Lifecycle>> {
        self.child.clone()
    }

    #[handle]
    fn note(&self, what: String) {
        self.journal.lock().push(format!("{} {what}", self.name));
    }

    #[on_stop]
    async fn stopping(&mut self, reason: &StopReason) {
        self.journal
            .lock()
            .push(format!("{} stopped ({reason})", self.name));
    }
}

#[tokio::test]
async fn hooks_run_in_order_and_children_stop_before_parents() {
    let system = System::new();
    let journal = Arc::new(Mutex::new(Vec::new()));
    let parent = system.spawn(Lifecycle {
        name: "parent",
        journal: journal.clone(),
        child: None,
    });
    parent.note("works".into()).await.unwrap();
    let child = parent.child().await.unwrap().unwrap();
    child.note("works".into()).await.unwrap();
    system.shutdown().await;
    let j = journal.lock().clone();
    assert_eq!(j[0], "parent started");
    assert_eq!(j[1], "parent works");
    assert!(j.contains(&"child started".to_string()));
    let child_stop = j.iter().position(|l| l == "child stopped (shutdown)").unwrap();
    let parent_stop = j.iter().position(|l| l == "parent stopped (shutdown)").unwrap();
    assert!(child_stop < parent_stop, "{j:?}");
    assert_eq!(system.agent_count(), 0);
    assert!(!child.is_alive());
}

#[tokio::test]
async fn a_panicking_agent_still_runs_on_stop_with_the_panic_reason() {
    pub struct Fragile {
        reason: Arc<Mutex<Option<StopReason>>>,
    }
    #[agent]
    impl Fragile {
        #[handle]
        fn crash(&self) {
            panic!("fragile broke");
        }
        #[on_stop]
        fn stopped(&mut self, reason: &StopReason) {
            *self.reason.lock() = Some(reason.clone());
        }
    }
    let system = System::new();
    let reason = Arc::new(Mutex::new(None));
    let f = system.spawn(Fragile {
        reason: reason.clone(),
    });
    assert_eq!(f.crash().await, Err(CallError::Panicked("fragile broke".into())));
    f.stopped().await;
    let r = reason.lock().clone().unwrap();
    assert_eq!(r, StopReason::Panicked("fragile broke".into()));
    assert!(r.is_abnormal());
}

#[tokio::test]
async fn registry_is_typed_and_names_are_released_when_agents_stop() {
    let system = System::new();
    let counter = system.spawn(Counter::default());
    system.register("counter", &counter).unwrap();
    let other = system.spawn(Counter::default());
    assert_eq!(
        system.register("counter", &other),
        Err(RegistryError::NameTaken("counter".into()))
    );
    let found: Option<ActorRef<Counter>> = system.lookup::<Counter>("counter");
    assert_eq!(found.as_ref(), Some(&counter));
    assert!(
        system.lookup::<Gate>("counter").is_none(),
        "wrong type must not match"
    );
    assert!(system.lookup::<Counter>("nobody").is_none());

    counter.stop_gracefully();
    counter.stopped().await;
    assert!(system.lookup::<Counter>("counter").is_none());
    assert_eq!(
        system.register("late", &counter),
        Err(RegistryError::AgentStopped)
    );
    system.register("counter", &other).unwrap();
    assert!(system.unregister("counter"));
    assert!(!system.unregister("counter"));
    system.shutdown().await;
}

/// A timer-driven agent.
#[derive(Default)]
pub struct Ticker {
    ticks: u32,
    pings: u32,
    timer: Option<TimerHandle>,
}

#[agent]
impl Ticker {
    #[on_start]
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.timer = Some(ctx.interval(Duration::from_millis(100), || TickerMsg::Tick));
        ctx.send_after(Duration::from_millis(250), TickerMsg::Ping { times: 10 });
    }

    #[handle]
    fn tick(&mut self) {
        self.ticks += 1;
    }

    #[handle]
    fn ping(&mut self, times: u32) {
        self.pings += times;
    }

    #[handle]
    fn cancel_ticks(&mut self) {
        if let Some(t) = &self.timer {
            t.cancel();
        }
    }

    #[handle]
    fn counts(&self) -> (u32, u32) {
        (self.ticks, self.pings)
    }
}

#[tokio::test(start_paused = true)]
async fn timers_fire_on_schedule_and_can_be_cancelled() {
    let system = System::new();
    let t = system.spawn(Ticker::default());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(t.counts().await.unwrap(), (3, 10));
    t.cancel_ticks().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(t.counts().await.unwrap(), (3, 10));
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn timers_stop_with_the_agent() {
    let system = System::new();
    let t = system.spawn(Ticker::default());
    tokio::time::sleep(Duration::from_millis(150)).await;
    t.stop_gracefully();
    t.stopped().await;
    // Nothing keeps running: the interval task was cancelled with the agent.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(system.agent_count(), 0);
}

/// A generic agent.
pub struct Store<T> {
    items: Vec<T>,
}

#[agent]
impl<T: Clone + Send + 'static> Store<T> {
    #[handle]
    fn put(&mut self, item: T) -> usize {
        self.items.push(item);
        self.items.len()
    }

    #[handle]
    fn all(&self) -> Vec<T> {
        self.items.clone()
    }

    #[handle]
    fn len(&self) -> usize {
        self.items.len()
    }
}

#[tokio::test]
async fn generic_agents_work() {
    let system = System::new();
    let s: ActorRef<Store<String>> = system.spawn(Store { items: Vec::new() });
    assert_eq!(s.put("a".into()).await.unwrap(), 1);
    assert_eq!(s.put("b".into()).await.unwrap(), 2);
    assert_eq!(s.all().await.unwrap(), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(s.len().await.unwrap(), 2);
    system.shutdown().await;
}

#[test]
fn struct_options_set_the_mailbox_and_defaults_apply_without_them() {
    assert_eq!(<Counter as Agent>::options().mailbox, 4);
    assert_eq!(<Gate as Agent>::options().mailbox, troupe::DEFAULT_MAILBOX);
    assert_eq!(<Store<u8> as Agent>::options().mailbox, troupe::DEFAULT_MAILBOX);
}

/// An agent whose messages can cross the network.
#[derive(Default)]
pub struct Remote {
    last: String,
}

#[agent(remote)]
impl Remote {
    #[handle]
    fn set(&mut self, value: String, times: u8) -> usize {
        self.last = value.repeat(times as usize);
        self.last.len()
    }
}

#[test]
fn remote_agents_messages_and_replies_round_trip_through_messagepack() {
    let msg = RemoteMsg::Set {
        value: "ab".into(),
        times: 3,
    };
    let bytes = rmp_serde::to_vec(&msg).unwrap();
    let RemoteMsg::Set { value, times } = rmp_serde::from_slice::<RemoteMsg>(&bytes).unwrap();
    assert_eq!((value.as_str(), times), ("ab", 3));
    let reply = RemoteReply::Set(6);
    let bytes = rmp_serde::to_vec(&reply).unwrap();
    assert!(matches!(
        rmp_serde::from_slice::<RemoteReply>(&bytes).unwrap(),
        RemoteReply::Set(6)
    ));
}

#[tokio::test]
async fn works_on_a_current_thread_runtime_and_shutdown_is_idempotent() {
    let system = System::new();
    let c = system.spawn(Counter::default());
    c.add(1).await.unwrap();
    system.shutdown().await;
    system.shutdown().await;
    assert_eq!(c.get().await, Err(CallError::Stopped));
}

#[tokio::test]
async fn on_start_runs_before_the_first_message_and_can_use_myself() {
    pub struct SelfStarter {
        got: Vec<&'static str>,
    }
    #[agent]
    impl SelfStarter {
        #[on_start]
        async fn begin(&mut self, ctx: &mut Context<Self>) {
            self.got.push("start");
            ctx.myself().push("from on_start").cast().await.unwrap();
        }
        #[handle]
        fn push(&mut self, what: &'static str) {
            self.got.push(what);
        }
        #[handle]
        fn got(&self) -> Vec<&'static str> {
            self.got.clone()
        }
    }
    let system = System::new();
    let s = system.spawn(SelfStarter { got: vec![] });
    s.push("first call").await.unwrap();
    // Messages sent before the task ran wait in the mailbox: on_start still comes first.
    let got = s.got().await.unwrap();
    assert_eq!(got[0], "start");
    assert_eq!(got.len(), 3);
    assert!(got.contains(&"from on_start") && got.contains(&"first call"));
    system.shutdown().await;
}

#[tokio::test]
async fn an_agent_that_never_got_a_message_still_stops_and_runs_on_stop() {
    pub struct Quiet {
        stopped: Arc<Mutex<Vec<String>>>,
    }
    #[agent]
    impl Quiet {
        #[handle]
        fn hello(&self) {}
        #[on_stop]
        fn bye(&mut self, reason: &StopReason) {
            self.stopped.lock().push(reason.to_string());
        }
    }
    let system = System::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let a = system.spawn(Quiet { stopped: log.clone() });
    let b = system.spawn(Quiet { stopped: log.clone() });
    assert_eq!(system.agent_count(), 2);
    assert!(a.is_alive());
    assert!(a.stop_gracefully());
    a.stopped().await;
    system.shutdown().await;
    assert!(!b.is_alive());
    let mut got = log.lock().clone();
    got.sort();
    assert_eq!(got, vec!["normal".to_string(), "shutdown".to_string()]);
}

#[test]
fn generated_messages_and_replies_print_with_debug_when_their_types_do() {
    /// Not `Debug`: the agent still compiles, its enums just are not `Debug`.
    pub struct Opaque;
    pub struct Mixed;
    #[agent]
    impl Mixed {
        #[handle]
        fn named(&self, f: u64, label: String) -> Vec<u8> {
            let _ = (f, label);
            Vec::new()
        }
        #[handle]
        fn nothing(&self) {}
        #[handle]
        fn opaque(&self, _o: Opaque) {}
    }
    #[derive(Default)]
    pub struct Plain;
    #[agent]
    impl Plain {
        #[handle]
        fn add(&mut self, n: u64, tag: String) -> Option<u64> {
            let _ = tag;
            Some(n)
        }
        #[handle]
        fn ping(&self) {}
    }
    let msg = PlainMsg::Add {
        n: 5,
        tag: "x".into(),
    };
    assert_eq!(format!("{msg:?}"), r#"Add { n: 5, tag: "x" }"#);
    assert_eq!(format!("{:?}", PlainMsg::Ping), "Ping");
    assert_eq!(format!("{:?}", PlainReply::Add(Some(5))), "Add(Some(5))");
    assert_eq!(format!("{:#?}", PlainReply::Ping(())), "Ping(\n    (),\n)");
    fn assert_debug<T: std::fmt::Debug>(value: &T) -> String {
        format!("{value:?}")
    }
    assert_eq!(assert_debug(&PlainMsg::Ping), "Ping");
    pub struct Holder<T> {
        items: Vec<T>,
    }
    #[agent]
    impl<T: Send + 'static> Holder<T> {
        #[handle]
        fn put(&mut self, item: T) {
            self.items.push(item);
        }
    }
    assert_eq!(format!("{:?}", HolderMsg::Put { item: 3u8 }), "Put { item: 3 }");
    // `MixedMsg` has a non-Debug argument: it compiles, without Debug.
    let _ = MixedMsg::Opaque { _o: Opaque };
    let _ = MixedMsg::Named {
        f: 1,
        label: String::new(),
    };
}

// An agent declared by a `macro_rules!` macro: the generated calls to its methods must
// resolve `self` like the generated `handle` does.
macro_rules! counter_agent {
    ($name:ident, $($handlers:tt)*) => {
        #[derive(Default)]
        pub struct $name {
            n: u64,
        }

        #[agent]
        impl $name {
            $($handlers)*
        }
    };
}

counter_agent! {
    MacroCounter,
    #[handle]
    fn bump(&mut self, by: u64) -> u64 {
        self.n += by;
        self.n
    }
    #[on_start]
    fn begin(&mut self) {
        self.n = 10;
    }
}

#[tokio::test]
async fn an_agent_declared_by_a_macro_rules_macro_works() {
    let system = System::new();
    let c = system.spawn(MacroCounter::default());
    assert_eq!(c.bump(5).await, Ok(15));
    system.shutdown().await;
}
