//! troupe, through its public API (`troupe::prelude`), default mailbox.

use crate::common::*;
use troupe::prelude::*;

#[agent]
#[derive(Default)]
pub struct Counter {
    count: u64,
}

#[agent]
impl Counter {
    #[handle]
    fn add(&mut self, n: u64) {
        self.count += n;
    }
    #[handle]
    fn get(&self) -> u64 {
        self.count
    }
}

/// A sender agent holding its target. Its async handlers await the target's casts and
/// calls; the sender handles nothing else meanwhile (troupe's async handlers hold the agent).
#[agent]
pub struct Sender {
    target: ActorRef<Counter>,
}

#[agent]
impl Sender {
    /// Casts `n` increments to the target, then answers.
    #[handle]
    async fn tell_n(&mut self, n: u64) -> u64 {
        for _ in 0..n {
            self.target.add(1).cast().await.expect("cast");
        }
        n
    }
    /// Makes `n` sequential calls to the target, then answers with the last reply.
    #[handle]
    async fn ask_n(&mut self, n: u64) -> u64 {
        let mut v = 0;
        for _ in 0..n {
            v = std::hint::black_box(self.target.get().await.expect("call"));
        }
        v
    }
}

/// Ping-pong: told `run(peer, n, done)`, the pinger casts `ping` to its peer, which casts
/// `pong` back; each pong starts the next round trip until n are done.
#[agent]
#[derive(Default)]
pub struct Pinger {
    left: u64,
    peer: Option<ActorRef<Ponger>>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

#[agent]
impl Pinger {
    #[handle]
    async fn run(&mut self, peer: ActorRef<Ponger>, n: u64, done: tokio::sync::oneshot::Sender<()>) {
        self.left = n;
        self.done = Some(done);
        peer.ping().cast().await.expect("cast");
        self.peer = Some(peer);
    }
    #[handle]
    async fn pong(&mut self) {
        self.left -= 1;
        if self.left == 0 {
            let _ = self.done.take().expect("running").send(());
        } else {
            let peer = self.peer.as_ref().expect("running");
            peer.ping().cast().await.expect("cast");
        }
    }
}

#[agent]
pub struct Ponger {
    peer: ActorRef<Pinger>,
}

#[agent]
impl Ponger {
    #[handle]
    async fn ping(&mut self) {
        self.peer.pong().cast().await.expect("cast");
    }
}

/// `n` round trips; returns when the pinger has seen the n-th pong.
async fn pingpong(a: &ActorRef<Pinger>, b: &ActorRef<Ponger>, n: u64) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    a.run(b.clone(), n, tx).cast().await.expect("cast");
    rx.await.expect("done");
}

/// A `chain` agent: answers one call and stops itself (`ctx.stop()`).
#[agent]
#[derive(Default)]
pub struct Once {
    _mark: StopMark,
}

#[agent]
impl Once {
    #[handle]
    fn once(&mut self, ctx: &mut Context<Self>) -> u64 {
        ctx.stop();
        1
    }
}

#[cfg(feature = "troupe-supervision")]
mod sup {
    use super::*;

    #[agent]
    #[derive(Default)]
    pub struct Worker {
        n: u64,
    }

    #[agent]
    impl Worker {
        #[handle]
        fn poison(&mut self) {
            panic!("poison");
        }
        #[handle]
        fn get(&self) -> u64 {
            self.n
        }
    }

    pub async fn restart(p: Params) -> Outcome {
        use std::time::Duration;
        quiet_panics();
        let system = System::new();
        let sup: SupervisorRef = Supervisor::new(Strategy::OneForOne)
            .max_restarts(1_000_000, Duration::from_secs(1))
            .child(ChildSpec::new("worker", Worker::default))
            .spawn(&system);
        let w: ActorRef<Worker> = sup.child::<Worker>("worker").expect("child worker");
        let mut total = Duration::ZERO;
        for i in 0..RESTART_WARMUP + p.restart {
            let t = now();
            w.poison().cast().await.expect("cast poison");
            assert_eq!(w.get().await.expect("call after restart"), 0);
            if i >= RESTART_WARMUP {
                total += t.elapsed();
            }
        }
        let out = restart_outcome(p.restart, total);
        system.shutdown().await;
        out
    }
}

pub fn run(workload: &str, p: Params) -> Outcome {
    match workload {
        "tell-agents" => on_runtime(move || async move {
            let system = System::new();
            let warm: ActorRef<Counter> = system.spawn(Counter::default());
            let ws = system.spawn(Sender { target: warm.clone() });
            ws.tell_n(p.tell / 10).await.expect("call");
            assert_eq!(warm.get().await.expect("call"), p.tell / 10);
            let c: ActorRef<Counter> = system.spawn(Counter::default());
            let s = system.spawn(Sender { target: c.clone() });
            let t = now();
            s.tell_n(p.tell).await.expect("call");
            let total = c.get().await.expect("call");
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_agents_mps", mps(p.tell, d))])
        }),
        "fanin-agents" => on_runtime(move || async move {
            let system = System::new();
            let c: ActorRef<Counter> = system.spawn(Counter::default());
            let senders: Vec<ActorRef<Sender>> = (0..p.fanin_senders)
                .map(|_| system.spawn(Sender { target: c.clone() }))
                .collect();
            let t = now();
            futures::future::join_all(
                senders
                    .iter()
                    .map(|s| async move { s.tell_n(p.fanin_per).await.expect("call") }),
            )
            .await;
            let total = c.get().await.expect("call");
            let d = t.elapsed();
            let n = p.fanin_senders * p.fanin_per;
            assert_eq!(total, n);
            Outcome::Metrics(vec![("fanin_agents_mps", mps(n, d))])
        }),
        "ask-agents" => on_runtime(move || async move {
            let system = System::new();
            let c: ActorRef<Counter> = system.spawn(Counter::default());
            let s = system.spawn(Sender { target: c });
            s.ask_n(p.ask / 10).await.expect("call");
            let t = now();
            s.ask_n(p.ask).await.expect("call");
            Outcome::Metrics(vec![("ask_agents_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "pingpong" => on_runtime(move || async move {
            let system = System::new();
            let a: ActorRef<Pinger> = system.spawn(Pinger::default());
            let b: ActorRef<Ponger> = system.spawn(Ponger { peer: a.clone() });
            pingpong(&a, &b, p.pingpong / 10).await;
            let t = now();
            pingpong(&a, &b, p.pingpong).await;
            Outcome::Metrics(vec![("pingpong_ns", ns_per(p.pingpong, t.elapsed()))])
        }),
        "tell" => on_runtime(move || async move {
            let system = System::new();
            let warm: ActorRef<Counter> = system.spawn(Counter::default());
            for _ in 0..p.tell / 10 {
                warm.add(1).cast().await.expect("cast");
            }
            assert_eq!(warm.get().await.expect("call"), p.tell / 10);
            let c: ActorRef<Counter> = system.spawn(Counter::default());
            let t = now();
            for _ in 0..p.tell {
                c.add(1).cast().await.expect("cast");
            }
            let total = c.get().await.expect("call");
            let d = t.elapsed();
            assert_eq!(total, p.tell);
            Outcome::Metrics(vec![("tell_mps", mps(p.tell, d))])
        }),
        "ask" => on_runtime(move || async move {
            let system = System::new();
            let c: ActorRef<Counter> = system.spawn(Counter::default());
            for _ in 0..p.ask / 10 {
                std::hint::black_box(c.get().await.expect("call"));
            }
            let t = now();
            for _ in 0..p.ask {
                std::hint::black_box(c.get().await.expect("call"));
            }
            Outcome::Metrics(vec![("ask_ns", ns_per(p.ask, t.elapsed()))])
        }),
        "fanin" => on_runtime(move || async move {
            let system = System::new();
            let c: ActorRef<Counter> = system.spawn(Counter::default());
            let t = now();
            let senders: Vec<_> = (0..p.fanin_senders)
                .map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        for _ in 0..p.fanin_per {
                            c.add(1).cast().await.expect("cast");
                        }
                    })
                })
                .collect();
            for s in senders {
                s.await.expect("sender");
            }
            let total = c.get().await.expect("call");
            let d = t.elapsed();
            let n = p.fanin_senders * p.fanin_per;
            assert_eq!(total, n);
            Outcome::Metrics(vec![("fanin_mps", mps(n, d))])
        }),
        "spawn" => on_runtime(move || async move {
            let system = System::new();
            let mut refs: Vec<ActorRef<Counter>> = Vec::with_capacity(p.spawn as usize);
            settle().await;
            let rss_before = vm_rss_bytes();
            let t = now();
            for _ in 0..p.spawn {
                refs.push(system.spawn(Counter::default()));
            }
            let spawn = t.elapsed();
            settle().await;
            let rss_after = vm_rss_bytes();
            let t = now();
            for r in &refs {
                std::hint::black_box(r.get().await.expect("call"));
            }
            let out = spawn_outcome(p.spawn, spawn, t.elapsed(), rss_before, rss_after).await;
            std::mem::forget(refs);
            std::mem::forget(system);
            out
        }),
        "chain" => on_runtime(move || async move {
            let system = System::new();
            let rss_start = chain_start().await;
            let t = now();
            for _ in 0..p.chain {
                let a: ActorRef<Once> = system.spawn(Once::default());
                std::hint::black_box(a.once().await.expect("call"));
            }
            wait_until("troupe's agent_count() is 0", || system.agent_count() == 0).await;
            chain_outcome(p.chain, t, rss_start).await
        }),
        #[cfg(feature = "troupe-supervision")]
        "restart" => on_runtime(move || sup::restart(p)),
        #[cfg(not(feature = "troupe-supervision"))]
        "restart" => Outcome::NotApplicable("pending"),
        _ => unreachable!(),
    }
}
