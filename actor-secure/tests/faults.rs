//! The node faults of the test kit: a cut link breaks and stays broken until healed, a
//! slowed link delays what crosses it, and a killed node looks to others like a crash.

use std::time::{Duration, Instant};

use actor_secure::{Node, TrustPolicy};
use troupe::prelude::*;

/// Counts.
#[derive(Debug, Default)]
pub struct Counter {
    n: u64,
}

#[agent(remote)]
impl Counter {
    #[handle]
    fn add(&mut self, by: u64) -> u64 {
        self.n += by;
        self.n
    }
}

/// Records the reasons of the downs it sees.
#[derive(Debug, Default)]
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

async fn node(system: &System) -> Node {
    Node::builder()
        .trust(TrustPolicy::any())
        .reconnect_within(Duration::from_millis(300))
        .start(system)
        .await
        .expect("node starts")
}

async fn downs_within(watcher: &ActorRef<Watcher>, within: Duration) -> Vec<StopReason> {
    let started = Instant::now();
    loop {
        let downs = watcher.downs().await.expect("call");
        if !downs.is_empty() || started.elapsed() >= within {
            return downs;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_stays_broken_both_ways_until_healed() {
    let system = System::new();
    let (a, b) = (node(&system).await, node(&system).await);
    let local = system.spawn(Counter::default());
    a.export("counter", &local).unwrap().policy("true").unwrap();
    let counter = b.lookup::<Counter>("counter", a.addr()).await.unwrap();
    assert_eq!(counter.add(1).await, Ok(1));
    let watcher = system.spawn(Watcher::default());
    watcher.watch(counter.clone()).await.unwrap();

    // ANCHOR: cut
    // Cut on a's side: b's calls fail, b cannot dial a again, and after reconnecting
    // for 300 ms in vain the session is lost.
    a.faults().cut(b.identifier());
    let e = counter.add(1).timeout(Duration::from_secs(2)).await;
    assert!(e.is_err(), "a call over a cut link fails: {e:?}");
    let downs = downs_within(&watcher, Duration::from_secs(3)).await;
    assert_eq!(
        downs,
        vec![StopReason::NodeLost],
        "the watch fires when the session is lost"
    );
    assert!(
        b.lookup::<Counter>("counter", a.addr()).await.is_err(),
        "no new link while cut"
    );
    // ANCHOR_END: cut

    // Healed: a new lookup works, and reaches the same agent. (The call made as the
    // link was cut may or may not have run: it failed, which promises only that it ran
    // at most once.)
    a.faults().heal(b.identifier());
    let counter = b.lookup::<Counter>("counter", a.addr()).await.expect("healed");
    let before = local.add(0).await.unwrap();
    assert!(before == 1 || before == 2, "{before}");
    assert_eq!(counter.add(1).await, Ok(before + 1));
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowed_link_delays_what_crosses_it() {
    let system = System::new();
    let (a, b) = (node(&system).await, node(&system).await);
    a.export("counter", &system.spawn(Counter::default()))
        .unwrap()
        .policy("true")
        .unwrap();
    let counter = b.lookup::<Counter>("counter", a.addr()).await.unwrap();
    counter.add(0).await.unwrap();

    // ANCHOR: slow
    // Replies from a to b wait 150 ms.
    a.faults().slow(b.identifier(), Duration::from_millis(150));
    let started = Instant::now();
    counter.add(1).await.unwrap();
    let slow = started.elapsed();
    assert!(slow >= Duration::from_millis(150), "{slow:?}");
    // A caller's timeout shorter than the delay fires.
    let e = counter.add(1).timeout(Duration::from_millis(50)).await;
    assert_eq!(e, Err(CallError::Timeout));
    // ANCHOR_END: slow

    a.faults().slow(b.identifier(), Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(200)).await; // the slow reply drains
    let started = Instant::now();
    counter.add(1).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_looks_like_a_crash_to_the_others() {
    let system = System::new();
    let (a, b) = (node(&system).await, node(&system).await);
    a.export("counter", &system.spawn(Counter::default()))
        .unwrap()
        .policy("true")
        .unwrap();
    let counter = b.lookup::<Counter>("counter", a.addr()).await.unwrap();
    counter.add(1).await.unwrap();
    let watcher = system.spawn(Watcher::default());
    watcher.watch(counter.clone()).await.unwrap();

    let killed = Instant::now();
    // ANCHOR: kill
    a.kill().await;
    let downs = downs_within(&watcher, Duration::from_secs(3)).await;
    assert_eq!(downs, vec![StopReason::NodeLost]);
    // ANCHOR_END: kill
    eprintln!("NodeLost {:?} after the kill", killed.elapsed());
    assert!(counter.add(1).timeout(Duration::from_secs(1)).await.is_err());
    // Nothing listens where the node was.
    assert!(tokio::net::TcpStream::connect(a.addr()).await.is_err());
    b.shutdown().await;
}
