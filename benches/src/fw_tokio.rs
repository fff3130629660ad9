//! Baseline: a tokio task owning the state, an unbounded mpsc mailbox, oneshot replies.

use crate::common::*;
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Add(u64),
    Get(oneshot::Sender<u64>),
}

#[derive(Clone)]
struct Counter(mpsc::UnboundedSender<Msg>);

impl Counter {
    fn spawn() -> Counter {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut count = 0u64;
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Add(n) => count += n,
                    Msg::Get(reply) => {
                        let _ = reply.send(count);
                    }
                }
            }
        });
        Counter(tx)
    }
    fn add(&self, n: u64) {
        self.0.send(Msg::Add(n)).expect("agent alive");
    }
    async fn get(&self) -> u64 {
        let (tx, rx) = oneshot::channel();
        self.0.send(Msg::Get(tx)).expect("agent alive");
        rx.await.expect("reply")
    }
}

enum SenderMsg {
    Tell(u64, oneshot::Sender<u64>),
    Ask(u64, oneshot::Sender<u64>),
}

/// A sender agent: a task with its own mailbox holding a counter. Told `Tell(n)` it casts
/// n increments, told `Ask(n)` it makes n sequential calls; then it replies.
struct Sender(mpsc::UnboundedSender<SenderMsg>);

impl Sender {
    fn spawn(target: Counter) -> Sender {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                match msg {
                    SenderMsg::Tell(n, reply) => {
                        for _ in 0..n {
                            target.add(1);
                        }
                        let _ = reply.send(n);
                    }
                    SenderMsg::Ask(n, reply) => {
                        let mut v = 0;
                        for _ in 0..n {
                            v = std::hint::black_box(target.get().await);
                        }
                        let _ = reply.send(v);
                    }
                }
            }
        });
        Sender(tx)
    }
    async fn tell_n(&self, n: u64) -> u64 {
        let (tx, rx) = oneshot::channel();
        self.0.send(SenderMsg::Tell(n, tx)).expect("sender alive");
        rx.await.expect("reply")
    }
    async fn ask_n(&self, n: u64) -> u64 {
        let (tx, rx) = oneshot::channel();
        self.0.send(SenderMsg::Ask(n, tx)).expect("sender alive");
        rx.await.expect("reply")
    }
}

enum PingerMsg {
    Run(u64, oneshot::Sender<()>),
    Pong,
}

/// Two agents (tasks with mailboxes) casting to each other: `pinger` sends a ping per
/// round trip, `ponger` answers each with a pong.
struct PingPong {
    pinger: mpsc::UnboundedSender<PingerMsg>,
}

impl PingPong {
    fn spawn() -> PingPong {
        let (a_tx, mut a_rx) = mpsc::unbounded_channel::<PingerMsg>();
        let (b_tx, mut b_rx) = mpsc::unbounded_channel::<()>();
        let to_pinger = a_tx.clone();
        tokio::spawn(async move {
            while b_rx.recv().await.is_some() {
                to_pinger.send(PingerMsg::Pong).expect("pinger alive");
            }
        });
        tokio::spawn(async move {
            let (mut left, mut done) = (0u64, None);
            while let Some(msg) = a_rx.recv().await {
                match msg {
                    PingerMsg::Run(n, d) => {
                        (left, done) = (n, Some(d));
                        b_tx.send(()).expect("ponger alive");
                    }
                    PingerMsg::Pong => {
                        left -= 1;
                        if left == 0 {
                            let _ = done.take().expect("running").send(());
                        } else {
                            b_tx.send(()).expect("ponger alive");
                        }
                    }
                }
            }
        });
        PingPong { pinger: a_tx }
    }
    /// `n` round trips; returns when the pinger has seen the n-th pong.
    async fn run(&self, n: u64) {
        let (tx, rx) = oneshot::channel();
        self.pinger.send(PingerMsg::Run(n, tx)).expect("pinger alive");
        rx.await.expect("done");
    }
}

/// A `chain` agent: a task that answers one request and returns (its state dropped).
fn spawn_once() -> mpsc::UnboundedSender<oneshot::Sender<u64>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<u64>>();
    tokio::spawn(async move {
        let _mark = StopMark;
        if let Some(reply) = rx.recv().await {
            let _ = reply.send(1);
        }
    });
    tx
}

pub fn run(workload: &str, p: Params) -> Outcome {
    match workload {
        "tell-agents" => on_runtime(move || async move {
            let warm = Counter::spawn();
            Sender::spawn(warm.clone()).tell_n(p.tell / 10).await;
            assert_eq!(warm.get().await, p.tell / 10);
            let c = Counter::spawn();
            let s = Sender::spawn(c.clone());
            let t = now();
            s.tell_n(p.tell).await;
            let total = c.get().await;
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_agents_mps", mps(p.tell, d))])
        }),
        "fanin-agents" => on_runtime(move || async move {
            let c = Counter::spawn();
            let senders: Vec<Sender> = (0..p.fanin_senders).map(|_| Sender::spawn(c.clone())).collect();
            let t = now();
            futures::future::join_all(senders.iter().map(|s| s.tell_n(p.fanin_per))).await;
            let total = c.get().await;
            let d = t.elapsed();
            let n = p.fanin_senders * p.fanin_per;
            assert_eq!(total, n);
            Outcome::Metrics(vec![("fanin_agents_mps", mps(n, d))])
        }),
        "ask-agents" => on_runtime(move || async move {
            let s = Sender::spawn(Counter::spawn());
            s.ask_n(p.ask / 10).await;
            let t = now();
            s.ask_n(p.ask).await;
            Outcome::Metrics(vec![("ask_agents_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "pingpong" => on_runtime(move || async move {
            let pp = PingPong::spawn();
            pp.run(p.pingpong / 10).await;
            let t = now();
            pp.run(p.pingpong).await;
            Outcome::Metrics(vec![("pingpong_ns", ns_per(p.pingpong, t.elapsed()))])
        }),
        "tell" => on_runtime(move || async move {
            let warm = Counter::spawn();
            for _ in 0..p.tell / 10 {
                warm.add(1);
            }
            assert_eq!(warm.get().await, p.tell / 10);
            let c = Counter::spawn();
            let t = now();
            for _ in 0..p.tell {
                c.add(1);
            }
            let total = c.get().await;
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_mps", mps(p.tell, d))])
        }),
        "ask" => on_runtime(move || async move {
            let c = Counter::spawn();
            for _ in 0..p.ask / 10 {
                std::hint::black_box(c.get().await);
            }
            let t = now();
            for _ in 0..p.ask {
                std::hint::black_box(c.get().await);
            }
            Outcome::Metrics(vec![("ask_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "fanin" => on_runtime(move || async move {
            let c = Counter::spawn();
            let t = now();
            let senders: Vec<_> = (0..p.fanin_senders)
                .map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        for _ in 0..p.fanin_per {
                            c.add(1);
                        }
                    })
                })
                .collect();
            for s in senders {
                s.await.expect("sender");
            }
            let total = c.get().await;
            let d = t.elapsed();
            let n = p.fanin_senders * p.fanin_per;
            assert_eq!(total, n);
            Outcome::Metrics(vec![("fanin_mps", mps(n, d))])
        }),
        "spawn" => on_runtime(move || async move {
            let mut refs = Vec::with_capacity(p.spawn as usize);
            settle().await;
            let rss_before = vm_rss_bytes();
            let t = now();
            for _ in 0..p.spawn {
                refs.push(Counter::spawn());
            }
            let spawn = t.elapsed();
            settle().await;
            let rss_after = vm_rss_bytes();
            let t = now();
            for r in &refs {
                std::hint::black_box(r.get().await);
            }
            let out = spawn_outcome(p.spawn, spawn, t.elapsed(), rss_before, rss_after).await;
            std::mem::forget(refs);
            out
        }),
        "chain" => on_runtime(move || async move {
            let rss_start = chain_start().await;
            let t = now();
            for _ in 0..p.chain {
                let agent = spawn_once();
                let (tx, rx) = oneshot::channel();
                agent.send(tx).expect("agent alive");
                std::hint::black_box(rx.await.expect("reply"));
            }
            chain_outcome(p.chain, t, rss_start).await
        }),
        "restart" => Outcome::NotApplicable("-"),
        _ => unreachable!(),
    }
}
