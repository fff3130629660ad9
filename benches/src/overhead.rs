//! The cost per message of troupe's message loop on one thread (issue 13: what tracing
//! spans and per-type stats add). A current-thread runtime runs everything, so the
//! numbers do not depend on how the two cores are shared, and a run under
//! `valgrind --tool=cachegrind` counts the same instructions every time.
//!
//! `overhead [WORKLOAD] [N]`: `tell` (an agent casts N increments to another, then one
//! call reads the total), `ask` (an agent makes N calls), `pingpong` (N round trips of
//! casts between two agents); all three by default. `TROUPE_BENCH_SUBSCRIBER` picks a
//! subscriber (see `subscriber.rs`). Built with `--features tracing-off`
//! (`tracing/max_level_off`), the spans are compiled out: the baseline of the
//! overhead targets.

mod subscriber;

use std::time::Instant;
use troupe::prelude::*;

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

pub struct Sender {
    target: ActorRef<Counter>,
}

#[agent]
impl Sender {
    #[handle]
    async fn tell_n(&mut self, n: u64) -> u64 {
        for _ in 0..n {
            self.target.add(1).cast().await.expect("cast");
        }
        self.target.get().await.expect("call")
    }
    #[handle]
    async fn ask_n(&mut self, n: u64) -> u64 {
        let mut v = 0;
        for _ in 0..n {
            v = std::hint::black_box(self.target.get().await.expect("call"));
        }
        v
    }
}

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
        peer.ping(()).cast().await.expect("ping");
        self.peer = Some(peer);
    }
    #[handle]
    async fn pong(&mut self) {
        self.left -= 1;
        if self.left == 0 {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        } else if let Some(peer) = &self.peer {
            peer.ping(()).cast().await.expect("ping");
        }
    }
}

#[derive(Default)]
pub struct Ponger {
    pinger: Option<ActorRef<Pinger>>,
}

#[agent]
impl Ponger {
    #[handle]
    fn set(&mut self, pinger: ActorRef<Pinger>) {
        self.pinger = Some(pinger);
    }
    #[handle]
    async fn ping(&mut self, _unit: ()) {
        if let Some(p) = &self.pinger {
            p.pong().cast().await.expect("pong");
        }
    }
}

async fn run(workload: &str, n: u64) -> f64 {
    let system = System::new();
    let start;
    let per = match workload {
        "tell" | "ask" => {
            let counter = system.spawn(Counter::default());
            let sender = system.spawn(Sender { target: counter });
            start = Instant::now();
            if workload == "tell" {
                assert_eq!(sender.tell_n(n).await.unwrap(), n);
            } else {
                sender.ask_n(n).await.unwrap();
            }
            n
        }
        _ => {
            let pinger = system.spawn(Pinger::default());
            let ponger = system.spawn(Ponger::default());
            ponger.set(pinger.clone()).await.unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            start = Instant::now();
            pinger.run(ponger, n, tx).await.unwrap();
            rx.await.unwrap();
            n
        }
    };
    let ns = start.elapsed().as_nanos() as f64 / per as f64;
    system.shutdown().await;
    ns
}

fn main() {
    subscriber::install_from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workloads: Vec<&str> = match args.first().map(String::as_str) {
        Some(w) if w != "all" => vec![w],
        _ => vec!["tell", "ask", "pingpong"],
    };
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for w in workloads {
        // Warm-up, untimed.
        rt.block_on(run(w, n / 10));
        let ns = rt.block_on(run(w, n));
        println!("{w} {ns:.1} ns/msg");
    }
}
