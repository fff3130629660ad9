//! kameo 0.22 (default features, default bounded mailbox of 64). Restart uses kameo's own
//! supervision (`Spawn::supervise`), which keeps the child's ref and mailbox.

use crate::common::*;
use kameo::actor::{Actor, ActorRef, Spawn};
use kameo::error::{Infallible, SendError};
use kameo::message::{Context, Message};
use kameo::supervision::SupervisionStrategy;
use std::time::Duration;

#[derive(Clone, Default)]
struct Counter {
    count: u64,
}

impl Actor for Counter {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

struct Add(u64);
struct Get;
struct Poison;

impl Message<Add> for Counter {
    type Reply = ();
    async fn handle(&mut self, msg: Add, _: &mut Context<Self, ()>) {
        self.count += msg.0;
    }
}

impl Message<Get> for Counter {
    type Reply = u64;
    async fn handle(&mut self, _: Get, _: &mut Context<Self, u64>) -> u64 {
        self.count
    }
}

impl Message<Poison> for Counter {
    type Reply = ();
    async fn handle(&mut self, _: Poison, _: &mut Context<Self, ()>) {
        panic!("poison");
    }
}

/// A sender agent holding its target counter; its handlers await the target's tells and
/// asks (kameo's handlers are async and hold the actor meanwhile).
struct Sender {
    target: ActorRef<Counter>,
}

impl Actor for Sender {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

/// Tell `n` increments to the target, then answer.
struct TellN(u64);
/// Make `n` sequential asks to the target, then answer with the last reply.
struct AskN(u64);

impl Message<TellN> for Sender {
    type Reply = u64;
    async fn handle(&mut self, msg: TellN, _: &mut Context<Self, u64>) -> u64 {
        for _ in 0..msg.0 {
            self.target.tell(Add(1)).await.expect("tell");
        }
        msg.0
    }
}

impl Message<AskN> for Sender {
    type Reply = u64;
    async fn handle(&mut self, msg: AskN, _: &mut Context<Self, u64>) -> u64 {
        let mut v = 0;
        for _ in 0..msg.0 {
            v = std::hint::black_box(self.target.ask(Get).await.expect("ask"));
        }
        v
    }
}

fn spawn_sender(target: &ActorRef<Counter>) -> ActorRef<Sender> {
    Sender::spawn(Sender {
        target: target.clone(),
    })
}

/// Ping-pong: told `Run`, the pinger tells `Ping` to its peer, which tells `Pong` back;
/// each pong starts the next round trip until n are done.
#[derive(Default)]
struct Pinger {
    left: u64,
    peer: Option<ActorRef<Ponger>>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Ponger {
    peer: ActorRef<Pinger>,
}

impl Actor for Pinger {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

impl Actor for Ponger {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

struct Run(ActorRef<Ponger>, u64, tokio::sync::oneshot::Sender<()>);
struct Ping;
struct Pong;

impl Message<Run> for Pinger {
    type Reply = ();
    async fn handle(&mut self, Run(peer, n, done): Run, _: &mut Context<Self, ()>) {
        (self.left, self.done) = (n, Some(done));
        peer.tell(Ping).await.expect("tell");
        self.peer = Some(peer);
    }
}

impl Message<Pong> for Pinger {
    type Reply = ();
    async fn handle(&mut self, _: Pong, _: &mut Context<Self, ()>) {
        self.left -= 1;
        if self.left == 0 {
            let _ = self.done.take().expect("running").send(());
        } else {
            let peer = self.peer.as_ref().expect("running");
            peer.tell(Ping).await.expect("tell");
        }
    }
}

impl Message<Ping> for Ponger {
    type Reply = ();
    async fn handle(&mut self, _: Ping, _: &mut Context<Self, ()>) {
        self.peer.tell(Pong).await.expect("tell");
    }
}

/// `n` round trips; returns when the pinger has seen the n-th pong.
async fn pingpong(a: &ActorRef<Pinger>, b: &ActorRef<Ponger>, n: u64) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    a.tell(Run(b.clone(), n, tx)).await.expect("tell");
    rx.await.expect("done");
}

/// A `chain` agent: answers one ask and stops itself (`ctx.stop()`).
#[derive(Default)]
struct Once {
    _mark: StopMark,
}

impl Actor for Once {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

struct OnceMsg;

impl Message<OnceMsg> for Once {
    type Reply = u64;
    async fn handle(&mut self, _: OnceMsg, ctx: &mut Context<Self, u64>) -> u64 {
        ctx.stop();
        1
    }
}

struct Sup;

impl Actor for Sup {
    type Args = Self;
    type Error = Infallible;
    fn supervision_strategy() -> SupervisionStrategy {
        SupervisionStrategy::OneForOne
    }
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

fn spawn_counter() -> ActorRef<Counter> {
    Counter::spawn(Counter::default())
}

pub fn run(workload: &str, p: Params) -> Outcome {
    match workload {
        "tell-agents" => on_runtime(move || async move {
            let warm = spawn_counter();
            spawn_sender(&warm).ask(TellN(p.tell / 10)).await.expect("ask");
            assert_eq!(warm.ask(Get).await.expect("ask"), p.tell / 10);
            let c = spawn_counter();
            let s = spawn_sender(&c);
            let t = now();
            s.ask(TellN(p.tell)).await.expect("ask");
            let total = c.ask(Get).await.expect("ask");
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_agents_mps", mps(p.tell, d))])
        }),
        "fanin-agents" => on_runtime(move || async move {
            let c = spawn_counter();
            let senders: Vec<ActorRef<Sender>> = (0..p.fanin_senders).map(|_| spawn_sender(&c)).collect();
            let t = now();
            futures::future::join_all(
                senders
                    .iter()
                    .map(|s| async move { s.ask(TellN(p.fanin_per)).await.expect("ask") }),
            )
            .await;
            let total = c.ask(Get).await.expect("ask");
            let d = t.elapsed();
            let n = p.fanin_senders * p.fanin_per;
            assert_eq!(total, n);
            Outcome::Metrics(vec![("fanin_agents_mps", mps(n, d))])
        }),
        "ask-agents" => on_runtime(move || async move {
            let s = spawn_sender(&spawn_counter());
            s.ask(AskN(p.ask / 10)).await.expect("ask");
            let t = now();
            s.ask(AskN(p.ask)).await.expect("ask");
            Outcome::Metrics(vec![("ask_agents_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "pingpong" => on_runtime(move || async move {
            let a = Pinger::spawn(Pinger::default());
            let b = Ponger::spawn(Ponger { peer: a.clone() });
            pingpong(&a, &b, p.pingpong / 10).await;
            let t = now();
            pingpong(&a, &b, p.pingpong).await;
            Outcome::Metrics(vec![("pingpong_ns", ns_per(p.pingpong, t.elapsed()))])
        }),
        "tell" => on_runtime(move || async move {
            let warm = spawn_counter();
            for _ in 0..p.tell / 10 {
                warm.tell(Add(1)).await.expect("tell");
            }
            assert_eq!(warm.ask(Get).await.expect("ask"), p.tell / 10);
            let c = spawn_counter();
            let t = now();
            for _ in 0..p.tell {
                c.tell(Add(1)).await.expect("tell");
            }
            let total = c.ask(Get).await.expect("ask");
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_mps", mps(p.tell, d))])
        }),
        "ask" => on_runtime(move || async move {
            let c = spawn_counter();
            for _ in 0..p.ask / 10 {
                std::hint::black_box(c.ask(Get).await.expect("ask"));
            }
            let t = now();
            for _ in 0..p.ask {
                std::hint::black_box(c.ask(Get).await.expect("ask"));
            }
            Outcome::Metrics(vec![("ask_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "fanin" => on_runtime(move || async move {
            let c = spawn_counter();
            let t = now();
            let senders: Vec<_> = (0..p.fanin_senders)
                .map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        for _ in 0..p.fanin_per {
                            c.tell(Add(1)).await.expect("tell");
                        }
                    })
                })
                .collect();
            for s in senders {
                s.await.expect("sender");
            }
            let total = c.ask(Get).await.expect("ask");
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
                refs.push(spawn_counter());
            }
            let spawn = t.elapsed();
            settle().await;
            let rss_after = vm_rss_bytes();
            let t = now();
            for r in &refs {
                std::hint::black_box(r.ask(Get).await.expect("ask"));
            }
            let out = spawn_outcome(p.spawn, spawn, t.elapsed(), rss_before, rss_after).await;
            std::mem::forget(refs);
            out
        }),
        "chain" => on_runtime(move || async move {
            let rss_start = chain_start().await;
            let t = now();
            for _ in 0..p.chain {
                let a = Once::spawn(Once::default());
                std::hint::black_box(a.ask(OnceMsg).await.expect("ask"));
            }
            chain_outcome(p.chain, t, rss_start).await
        }),
        "restart" => on_runtime(move || async move {
            quiet_panics();
            let sup = Sup::spawn(Sup);
            let w = Counter::supervise(&sup, Counter::default())
                .restart_limit(1_000_000, Duration::from_secs(1))
                .spawn()
                .await;
            let mut total = Duration::ZERO;
            for i in 0..RESTART_WARMUP + p.restart {
                let t = now();
                w.tell(Poison).await.expect("tell poison");
                // kameo bounces asks that reach the child while it restarts
                // (`ActorRestarting`, documented as safe to retry) or drops their reply
                // (`ActorStopped`); retry until the new incarnation answers.
                let mut tries = 0u32;
                let v = loop {
                    tries += 1;
                    assert!(tries < 1_000_000, "kameo child never came back");
                    match w.ask(Get).await {
                        Ok(v) => break v,
                        Err(
                            SendError::ActorRestarting(_)
                            | SendError::ActorStopped
                            | SendError::ActorNotRunning(_),
                        ) => tokio::task::yield_now().await,
                        Err(e) => panic!("ask after restart: {e:?}"),
                    }
                };
                assert_eq!(v, 0);
                if i >= RESTART_WARMUP {
                    total += t.elapsed();
                }
            }
            restart_outcome(p.restart, total)
        }),
        _ => unreachable!(),
    }
}
