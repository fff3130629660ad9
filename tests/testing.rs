//! `troupe::testing::Probe`: a stand-in agent that records what it receives.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::time::Duration;

use troupe::prelude::*;
use troupe::testing::{Probe, ProbeError};

const SOON: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Counter {
    n: u64,
}

#[agent]
impl Counter {
    #[handle]
    fn add(&mut self, n: u64) {
        self.n += n;
    }
    #[handle]
    fn get(&self) -> u64 {
        self.n
    }
}

// ANCHOR: tally
/// The agent under test: it talks to a counter.
pub struct Tally {
    counter: ActorRef<Counter>,
}

#[agent]
impl Tally {
    /// Adds `n` to the counter, then says the total plus one.
    #[handle]
    async fn bump(&self, n: u64) -> Result<u64, CallError> {
        self.counter.add(n).cast().await.map_err(|_| CallError::Stopped)?;
        Ok(self.counter.get().await? + 1)
    }
}
// ANCHOR_END: tally

// ANCHOR: probe
#[tokio::test]
async fn a_probe_sees_what_an_agent_sends_and_answers_for_the_real_one() {
    let system = System::new();
    let mut probe = Probe::<Counter>::new();
    let tally = system.spawn(Tally {
        counter: probe.reference(),
    });
    let bumped = tokio::spawn({
        let tally = tally.clone();
        async move { tally.bump(5).await }
    });
    let added = probe.expect_cast(SOON).await.expect("the cast");
    assert!(matches!(added, CounterMsg::Add { n: 5 }));
    let (asked, reply) = probe.expect_call(SOON).await.expect("the call");
    assert!(matches!(asked, CounterMsg::Get));
    reply.reply(CounterReply::Get(41));
    assert_eq!(
        bumped.await.unwrap(),
        Ok(Ok(42)),
        "the agent used the probe's answer"
    );
    probe
        .expect_no_message(Duration::from_millis(50))
        .await
        .expect("nothing more");
    system.shutdown().await;
}
// ANCHOR_END: probe

#[tokio::test]
async fn expectations_fail_clearly() {
    let mut probe = Probe::<Counter>::new();
    let counter = probe.reference();
    assert_eq!(
        probe.expect_cast(Duration::from_millis(20)).await.err(),
        Some(ProbeError::Timeout)
    );
    let call = tokio::spawn({
        let counter = counter.clone();
        async move { counter.get().await }
    });
    assert!(matches!(
        probe.expect_cast(SOON).await,
        Err(ProbeError::Unexpected(_))
    ));
    assert_eq!(
        call.await.unwrap(),
        Err(CallError::NoReply),
        "the call taken and dropped fails, it does not hang"
    );
    counter.add(1).try_cast().expect("room");
    assert!(matches!(
        probe.expect_call(SOON).await,
        Err(ProbeError::Unexpected(_))
    ));
    counter.add(2).try_cast().expect("room");
    assert!(matches!(
        probe.expect_no_message(SOON).await,
        Err(ProbeError::Unexpected(_))
    ));
    // A call can be failed on purpose.
    let call = tokio::spawn({
        let counter = counter.clone();
        async move { counter.get().await }
    });
    let (_, reply) = probe.expect_call(SOON).await.expect("the call");
    reply.fail(CallError::Panicked("on purpose".into()));
    assert_eq!(call.await.unwrap(), Err(CallError::Panicked("on purpose".into())));
}

#[derive(Default)]
pub struct Watcher {
    downs: Vec<StopReason>,
}

#[agent]
impl Watcher {
    #[handle]
    fn watch(&mut self, target: ActorRef<Counter>, ctx: &mut Context<Self>) {
        ctx.monitor(&target);
    }
    #[handle]
    fn downs(&self) -> Vec<StopReason> {
        self.downs.clone()
    }
    #[on_down]
    fn down(&mut self, down: Down) {
        self.downs.push(down.reason);
    }
}

#[tokio::test]
async fn a_dropped_probe_is_a_stopped_agent_and_a_full_one_pushes_back() {
    let system = System::new();
    let probe = Probe::<Counter>::new();
    let counter = probe.reference();
    // Bounded, like a mailbox.
    let mut taken = 0;
    while counter.add(1).try_cast().is_ok() {
        taken += 1;
        assert!(taken <= 100_000, "a probe holds a bounded number of messages");
    }
    assert!(counter.add(1).try_cast().unwrap_err().is_full());
    let watcher = system.spawn(Watcher::default());
    watcher.watch(counter.clone()).await.unwrap();
    let waiting = tokio::spawn({
        let counter = counter.clone();
        async move { counter.get().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(probe);
    assert_eq!(
        waiting.await.unwrap(),
        Err(CallError::Stopped),
        "a waiting call ends"
    );
    assert_eq!(counter.get().await, Err(CallError::Stopped));
    assert!(!counter.is_alive());
    tokio::time::timeout(SOON, counter.stopped())
        .await
        .expect("stopped() resolves");
    let mut downs = Vec::new();
    for _ in 0..100 {
        downs = watcher.downs().await.unwrap();
        if !downs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(downs, vec![StopReason::Normal]);
    system.shutdown().await;
}

/// Counts ticks of an interval, and answers slowly when asked to.
#[derive(Default)]
pub struct Clock {
    ticks: u64,
}

#[agent]
impl Clock {
    #[on_start]
    fn start(&mut self, ctx: &mut Context<Self>) {
        ctx.interval(Duration::from_secs(60), || ClockMsg::Tick);
    }
    #[handle]
    fn tick(&mut self) {
        self.ticks += 1;
    }
    #[handle]
    fn ticks(&self) -> u64 {
        self.ticks
    }
    #[handle]
    async fn slow(&self, secs: u64) -> u64 {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        secs
    }
}

// ANCHOR: virtual_time
/// Agents' timers, intervals and call timeouts run on tokio's clock, so a test on paused
/// time covers hours in microseconds.
#[tokio::test(start_paused = true)]
async fn timers_and_timeouts_follow_paused_time() {
    let system = System::new();
    let clock = system.spawn(Clock::default());
    assert_eq!(clock.ticks().await, Ok(0));
    let started = std::time::Instant::now();
    // An hour of a one-minute interval: on paused time, a sleep jumps from timer to
    // timer whenever every task waits. (`tokio::time::advance` jumps the whole hour at
    // once instead, and an interval that falls behind delays its ticks: one tick.)
    tokio::time::sleep(Duration::from_secs(3600) + Duration::from_millis(1)).await;
    assert_eq!(clock.ticks().await, Ok(60));
    // A call that would take a day times out after a minute, at once.
    let late = clock.slow(86_400).timeout(Duration::from_secs(60)).await;
    assert_eq!(late, Err(CallError::Timeout));
    assert!(started.elapsed() < Duration::from_secs(5), "no real hour went by");
    system.shutdown().await;
}
// ANCHOR_END: virtual_time

// --- Fault injection: troupe::testing::faults ---

// ANCHOR: faults
#[tokio::test(start_paused = true)]
async fn a_supervised_counter_survives_an_injected_crash_and_keeps_its_mailbox() {
    use troupe::testing::{faults, INJECTED_CRASH};
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("counter", Counter::default))
        .spawn(&system);
    let counter: ActorRef<Counter> = sup.child("counter").unwrap();
    // The third message from now crashes the counter instead of being handled.
    faults(&counter).crash_on_nth(3);
    for n in [1, 2, 4, 8] {
        counter.add(n).cast().await.unwrap();
    }
    // 1 and 2 were handled, 4 crashed the first instance, 8 went to the restarted one.
    assert_eq!(counter.get().await, Ok(8));
    assert_eq!(sup.restarts(), 1);
    // Once: the next messages are handled as usual.
    counter.add(1).await.unwrap();
    assert_eq!(counter.get().await, Ok(9));
    // A call that meets the crash gets it as a panic.
    faults(&counter).crash_on_nth(1);
    assert_eq!(
        counter.get().await,
        Err(CallError::Panicked(INJECTED_CRASH.into()))
    );
    system.shutdown().await;
}
// ANCHOR_END: faults

#[tokio::test(start_paused = true)]
async fn an_injected_delay_holds_each_message_on_tokios_clock() {
    use troupe::testing::faults;
    let system = System::new();
    let counter = system.spawn(Counter::default());
    let slow = faults(&counter);
    slow.delay(Duration::from_secs(10));
    let start = tokio::time::Instant::now();
    counter.add(1).await.unwrap();
    counter.add(1).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(20));
    // A caller with a shorter timeout gives up.
    assert_eq!(
        counter.get().timeout(Duration::from_secs(1)).await,
        Err(CallError::Timeout)
    );
    slow.delay(Duration::ZERO);
    let start = tokio::time::Instant::now();
    assert_eq!(counter.get().await, Ok(2));
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    system.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn dropped_messages_are_never_handled_and_their_calls_never_answered() {
    use troupe::testing::faults;
    let system = System::new();
    let counter = system.spawn(Counter::default());
    let lossy = faults(&counter);
    lossy.drop_next(2);
    counter.add(5).cast().await.unwrap(); // lost
                                          // Lost too: the caller waits until its timeout.
    assert_eq!(
        counter.get().timeout(Duration::from_secs(3)).await,
        Err(CallError::Timeout)
    );
    counter.add(1).await.unwrap();
    assert_eq!(counter.get().await, Ok(1));
    assert_eq!(lossy.dropped(), 2);
    // A held call fails once the faults are cleared.
    lossy.drop_next(1);
    let held = tokio::spawn(counter.get());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!held.is_finished());
    lossy.clear();
    assert_eq!(held.await.unwrap(), Err(CallError::Stopped));
    assert_eq!(counter.get().await, Ok(1));
    system.shutdown().await;
}

#[tokio::test]
#[should_panic(expected = "is not a local agent")]
async fn faults_need_a_local_agent() {
    let probe = Probe::<Counter>::new();
    troupe::testing::faults(&probe.reference());
}
