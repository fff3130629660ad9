//! actix 0.13: actors live on an actix `System` (a current-thread runtime; actix cannot run
//! an actor on a multi-thread tokio runtime). Agents and senders all run on the System's
//! one Arbiter thread, as in peers.md's "actix (one thread)" row. Casts use `do_send`
//! (actix's usual fire-and-forget, bypassing the default 16-slot mailbox capacity), calls
//! use `send(..).await`.
//!
//! Sender agents (the `-agents` workloads) are actors on the same Arbiter. Casting needs no
//! await (`do_send` is synchronous), so `TellN` is a plain handler. A handler cannot await
//! a call, so `AskN` returns an `AtomicResponse` (a `ResponseActFuture` run with
//! `ctx.wait`): actix's idiomatic async handler that, like troupe's async handlers, keeps
//! the sender from handling anything else until the n calls are done.

use crate::common::*;
use actix::prelude::*;

#[derive(Default)]
struct Counter {
    count: u64,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Add(u64);

#[derive(Message)]
#[rtype(result = "u64")]
struct Get;

impl Handler<Add> for Counter {
    type Result = ();
    fn handle(&mut self, msg: Add, _: &mut Context<Self>) {
        self.count += msg.0;
    }
}

impl Handler<Get> for Counter {
    type Result = u64;
    fn handle(&mut self, _: Get, _: &mut Context<Self>) -> u64 {
        self.count
    }
}

/// A sender agent holding its target counter.
struct Sender {
    target: Addr<Counter>,
}

impl Actor for Sender {
    type Context = Context<Self>;
}

/// Cast `n` increments to the target, then answer.
#[derive(Message)]
#[rtype(result = "u64")]
struct TellN(u64);

/// Make `n` sequential calls to the target, then answer with the last reply.
#[derive(Message)]
#[rtype(result = "u64")]
struct AskN(u64);

impl Handler<TellN> for Sender {
    type Result = u64;
    fn handle(&mut self, msg: TellN, _: &mut Context<Self>) -> u64 {
        for _ in 0..msg.0 {
            self.target.do_send(Add(1));
        }
        msg.0
    }
}

impl Handler<AskN> for Sender {
    type Result = AtomicResponse<Self, u64>;
    fn handle(&mut self, msg: AskN, _: &mut Context<Self>) -> Self::Result {
        let target = self.target.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let mut v = 0;
                for _ in 0..msg.0 {
                    v = std::hint::black_box(target.send(Get).await.unwrap());
                }
                v
            }
            .into_actor(self),
        ))
    }
}

fn sender(target: &Addr<Counter>) -> Addr<Sender> {
    Sender {
        target: target.clone(),
    }
    .start()
}

/// Ping-pong: told `Run`, the pinger casts `Ping` to its peer, which casts `Pong` back;
/// each pong starts the next round trip until n are done. Casts are `do_send`, so the
/// handlers stay synchronous.
#[derive(Default)]
struct Pinger {
    left: u64,
    peer: Option<Addr<Ponger>>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Ponger {
    peer: Addr<Pinger>,
}

impl Actor for Pinger {
    type Context = Context<Self>;
}

impl Actor for Ponger {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Run(Addr<Ponger>, u64, tokio::sync::oneshot::Sender<()>);

#[derive(Message)]
#[rtype(result = "()")]
struct Ping;

#[derive(Message)]
#[rtype(result = "()")]
struct Pong;

impl Handler<Run> for Pinger {
    type Result = ();
    fn handle(&mut self, Run(peer, n, done): Run, _: &mut Context<Self>) {
        (self.left, self.done) = (n, Some(done));
        peer.do_send(Ping);
        self.peer = Some(peer);
    }
}

impl Handler<Pong> for Pinger {
    type Result = ();
    fn handle(&mut self, _: Pong, _: &mut Context<Self>) {
        self.left -= 1;
        if self.left == 0 {
            let _ = self.done.take().expect("running").send(());
        } else {
            self.peer.as_ref().expect("running").do_send(Ping);
        }
    }
}

impl Handler<Ping> for Ponger {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {
        self.peer.do_send(Pong);
    }
}

/// `n` round trips; returns when the pinger has seen the n-th pong.
async fn pingpong(a: &Addr<Pinger>, b: &Addr<Ponger>, n: u64) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    a.do_send(Run(b.clone(), n, tx));
    rx.await.expect("done");
}

/// A `chain` agent: answers one call and stops itself (`ctx.stop()`).
#[derive(Default)]
struct Once {
    _mark: StopMark,
}

impl Actor for Once {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "u64")]
struct OnceMsg;

impl Handler<OnceMsg> for Once {
    type Result = u64;
    fn handle(&mut self, _: OnceMsg, ctx: &mut Context<Self>) -> u64 {
        ctx.stop();
        1
    }
}

/// Runs `fut` as a task spawned on the System's Arbiter and returns its output.
fn on_system<F, Fut>(f: F) -> Outcome
where
    F: FnOnce() -> Fut + 'static,
    Fut: std::future::Future<Output = Outcome> + 'static,
{
    let sys = System::new();
    let out = sys.block_on(async move { actix_rt::spawn(f()).await.expect("bench task") });
    std::mem::forget(sys);
    out
}

/// Opt-in variant (`--frameworks actix-2t`): the counter runs on a second Arbiter (its own
/// thread) while the senders stay on the System's thread, as in peers.md's
/// "actix, agent on a 2nd thread" row. Only tell, ask and fanin.
pub fn run_two_threads(workload: &str, p: Params) -> Outcome {
    fn counter_elsewhere(arb: &Arbiter) -> Addr<Counter> {
        Counter::start_in_arbiter(&arb.handle(), |_| Counter::default())
    }
    match workload {
        "tell" => on_system(move || async move {
            let arb = Arbiter::new();
            let warm = counter_elsewhere(&arb);
            for _ in 0..p.tell / 10 {
                warm.do_send(Add(1));
            }
            assert_eq!(warm.send(Get).await.unwrap(), p.tell / 10);
            let c = counter_elsewhere(&arb);
            let t = now();
            for _ in 0..p.tell {
                c.do_send(Add(1));
            }
            let total = c.send(Get).await.unwrap();
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_mps", mps(p.tell, d))])
        }),
        "ask" => on_system(move || async move {
            let arb = Arbiter::new();
            let c = counter_elsewhere(&arb);
            for _ in 0..p.ask / 10 {
                std::hint::black_box(c.send(Get).await.unwrap());
            }
            let t = now();
            for _ in 0..p.ask {
                std::hint::black_box(c.send(Get).await.unwrap());
            }
            Outcome::Metrics(vec![("ask_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "fanin" => on_system(move || async move {
            let arb = Arbiter::new();
            let c = counter_elsewhere(&arb);
            let t = now();
            let senders: Vec<_> = (0..p.fanin_senders)
                .map(|_| {
                    let c = c.clone();
                    actix_rt::spawn(async move {
                        for _ in 0..p.fanin_per {
                            c.do_send(Add(1));
                        }
                    })
                })
                .collect();
            for s in senders {
                s.await.expect("sender");
            }
            let total = c.send(Get).await.unwrap();
            let d = t.elapsed();
            let n = p.fanin_senders * p.fanin_per;
            assert_eq!(total, n);
            Outcome::Metrics(vec![("fanin_mps", mps(n, d))])
        }),
        _ => Outcome::NotApplicable(""),
    }
}

pub fn run(workload: &str, p: Params) -> Outcome {
    match workload {
        "tell-agents" => on_system(move || async move {
            let warm = Counter::default().start();
            sender(&warm).send(TellN(p.tell / 10)).await.unwrap();
            assert_eq!(warm.send(Get).await.unwrap(), p.tell / 10);
            let c = Counter::default().start();
            let s = sender(&c);
            let t = now();
            s.send(TellN(p.tell)).await.unwrap();
            let total = c.send(Get).await.unwrap();
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_agents_mps", mps(p.tell, d))])
        }),
        "fanin-agents" => on_system(move || async move {
            let c = Counter::default().start();
            let senders: Vec<Addr<Sender>> = (0..p.fanin_senders).map(|_| sender(&c)).collect();
            let t = now();
            for r in futures::future::join_all(senders.iter().map(|s| s.send(TellN(p.fanin_per)))).await {
                r.unwrap();
            }
            let total = c.send(Get).await.unwrap();
            let d = t.elapsed();
            let n = p.fanin_senders * p.fanin_per;
            assert_eq!(total, n);
            Outcome::Metrics(vec![("fanin_agents_mps", mps(n, d))])
        }),
        "ask-agents" => on_system(move || async move {
            let s = sender(&Counter::default().start());
            s.send(AskN(p.ask / 10)).await.unwrap();
            let t = now();
            s.send(AskN(p.ask)).await.unwrap();
            Outcome::Metrics(vec![("ask_agents_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "pingpong" => on_system(move || async move {
            let a = Pinger::default().start();
            let b = Ponger { peer: a.clone() }.start();
            pingpong(&a, &b, p.pingpong / 10).await;
            let t = now();
            pingpong(&a, &b, p.pingpong).await;
            Outcome::Metrics(vec![("pingpong_ns", ns_per(p.pingpong, t.elapsed()))])
        }),
        "tell" => on_system(move || async move {
            let warm = Counter::default().start();
            for _ in 0..p.tell / 10 {
                warm.do_send(Add(1));
            }
            assert_eq!(warm.send(Get).await.unwrap(), p.tell / 10);
            let c = Counter::default().start();
            let t = now();
            for _ in 0..p.tell {
                c.do_send(Add(1));
            }
            let total = c.send(Get).await.unwrap();
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_mps", mps(p.tell, d))])
        }),
        "ask" => on_system(move || async move {
            let c = Counter::default().start();
            for _ in 0..p.ask / 10 {
                std::hint::black_box(c.send(Get).await.unwrap());
            }
            let t = now();
            for _ in 0..p.ask {
                std::hint::black_box(c.send(Get).await.unwrap());
            }
            Outcome::Metrics(vec![("ask_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "fanin" => on_system(move || async move {
            let c = Counter::default().start();
            let t = now();
            let senders: Vec<_> = (0..p.fanin_senders)
                .map(|_| {
                    let c = c.clone();
                    actix_rt::spawn(async move {
                        for _ in 0..p.fanin_per {
                            c.do_send(Add(1));
                        }
                    })
                })
                .collect();
            for s in senders {
                s.await.expect("sender");
            }
            let total = c.send(Get).await.unwrap();
            let d = t.elapsed();
            let n = p.fanin_senders * p.fanin_per;
            assert_eq!(total, n);
            Outcome::Metrics(vec![("fanin_mps", mps(n, d))])
        }),
        "spawn" => on_system(move || async move {
            let mut refs = Vec::with_capacity(p.spawn as usize);
            settle().await;
            let rss_before = vm_rss_bytes();
            let t = now();
            for _ in 0..p.spawn {
                refs.push(Counter::default().start());
            }
            let spawn = t.elapsed();
            settle().await;
            let rss_after = vm_rss_bytes();
            let t = now();
            for r in &refs {
                std::hint::black_box(r.send(Get).await.unwrap());
            }
            let out = spawn_outcome(p.spawn, spawn, t.elapsed(), rss_before, rss_after).await;
            std::mem::forget(refs);
            out
        }),
        "chain" => on_system(move || async move {
            let rss_start = chain_start().await;
            let t = now();
            for _ in 0..p.chain {
                let a = Once::default().start();
                std::hint::black_box(a.send(OnceMsg).await.unwrap());
            }
            chain_outcome(p.chain, t, rss_start).await
        }),
        "restart" => Outcome::NotApplicable("n/a (panic kills the actor)"),
        _ => unreachable!(),
    }
}
