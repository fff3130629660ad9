//! A busy application and its live view: a supervised dispatcher feeding a pool of
//! workers that crash now and then, a group of tools, and two nodes in one cluster, all
//! shown live in a web page.
//!
//! ```text
//! cargo run --features web --example observe                 # until Ctrl-C
//! cargo run --features web --example observe -- --seconds 30 # or for 30 s
//! ```
//!
//! It prints the page's address (`live view: http://127.0.0.1:PORT/`); open it in a
//! browser.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use troupe::prelude::*;
use troupe::secure::{Node, TrustPolicy};
use troupe::web::LiveView;

/// Runs jobs; every 200th job of an instance crashes it (its pool restarts it).
#[derive(Debug)]
pub struct Worker {
    done: u32,
    handled: Arc<AtomicU64>,
}

#[agent]
impl Worker {
    #[handle]
    async fn run(&mut self, job: u64) -> u64 {
        self.handled.fetch_add(1, Ordering::Relaxed);
        self.done += 1;
        if self.done.is_multiple_of(200) {
            panic!("job {job} broke the worker");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        job * 2
    }
}

/// Hands batches of jobs to the pool; the batch size rises and falls, so the chart
/// has something to show.
#[derive(Debug)]
pub struct Dispatcher {
    workers: Pool<Worker>,
    next: u64,
}

#[agent]
impl Dispatcher {
    #[handle]
    fn tick(&mut self, batch: u64) {
        for _ in 0..batch {
            self.next += 1;
            let job = self.workers.run(self.next);
            tokio::spawn(async move {
                // A crash fails this one call; the pool goes on with a new worker.
                let _ = job.await;
            });
        }
    }
}

/// A tool in the "tools" group: answers, and counts what it was asked.
#[derive(Debug, Default)]
pub struct Tool {
    asked: u64,
}

#[agent]
impl Tool {
    #[handle]
    fn ask(&mut self) -> u64 {
        self.asked += 1;
        self.asked
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _quiet = troupe::quiet_agent_panics(); // the workers crash on purpose
    let seconds: Option<u64> = match std::env::args().skip_while(|a| a != "--seconds").nth(1) {
        Some(n) => Some(
            n.parse()
                .map_err(|_| format!("--seconds takes a number, not {n:?}"))?,
        ),
        None => None,
    };

    let system = System::new();
    let handled = Arc::new(AtomicU64::new(0));
    let workers = {
        let handled = handled.clone();
        Pool::builder(move || Worker {
            done: 0,
            handled: handled.clone(),
        })
        .size(4)
        .name("workers")
        .max_restarts(1_000, Duration::from_secs(10))
        .spawn(&system)
    };
    let pool = workers.clone();
    let app = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("dispatcher", move || Dispatcher {
            workers: pool.clone(),
            next: 0,
        }))
        .child(ChildSpec::supervisor(
            "tools",
            Supervisor::new(Strategy::OneForAll)
                .child(ChildSpec::new("search", Tool::default))
                .child(ChildSpec::new("calendar", Tool::default)),
        ))
        .spawn(&system);
    let dispatcher: ActorRef<Dispatcher> = app.child("dispatcher")?;
    for name in ["search", "calendar"] {
        let tools: SupervisorRef = app.supervisor("tools")?;
        system.join("tools", &tools.child::<Tool>(name)?)?;
    }

    // Two nodes of one cluster: b joins through a.
    let (a_identity, b_identity) = (Identity::generate(), Identity::generate());
    let ids = [a_identity.identifier(), b_identity.identifier()];
    let a = Node::builder()
        .identity(a_identity)
        .listen("127.0.0.1:0")
        .trust(TrustPolicy::allow(ids))
        .start(&system)
        .await?;
    let b = Node::builder()
        .identity(b_identity)
        .listen("127.0.0.1:0")
        .trust(TrustPolicy::allow(ids))
        .seeds([a.addr().to_string()])
        .start(&system)
        .await?;

    // ANCHOR: prometheus
    // Prometheus (or curl) scrapes http://127.0.0.1:PORT/metrics: troupe publishes its
    // counters through the `metrics` facade, here every second, to the exporter you
    // install (this one is the `metrics-exporter-prometheus` crate).
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(([127, 0, 0, 1], port))
        .install()?;
    system.publish_metrics(Duration::from_secs(1));
    a.publish_metrics(Duration::from_secs(1));
    println!("metrics: http://127.0.0.1:{port}/metrics");
    // ANCHOR_END: prometheus

    // ANCHOR: serve
    let counted = handled.clone();
    let view = LiveView::new(&system)
        .node(&a)
        .node(&b)
        .counter("messages", move || counted.load(Ordering::Relaxed))
        .bind("127.0.0.1:0")
        .serve()
        .await?;
    println!("live view: {}", view.url());
    // ANCHOR_END: serve

    // The load: a batch every 50 ms, its size going up and down over 20 s; the tools
    // are asked through their group now and then.
    let load = tokio::spawn({
        let system = system.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            for n in 0u64.. {
                tick.tick().await;
                let phase = (n % 400) as f64 / 400.0 * std::f64::consts::TAU;
                let batch = (6.0 + 5.0 * phase.sin()).round() as u64;
                if dispatcher.tick(batch).cast().await.is_err() {
                    break;
                }
                if n.is_multiple_of(20) {
                    for tool in system.members::<Tool>("tools") {
                        let _ = tool.ask().cast().await;
                    }
                }
            }
        }
    });

    match seconds {
        Some(n) => tokio::time::sleep(Duration::from_secs(n)).await,
        None => tokio::signal::ctrl_c().await?,
    }

    // ANCHOR: stop
    load.abort();
    view.stop().await;
    b.shutdown().await;
    a.shutdown().await;
    system.shutdown().await;
    // ANCHOR_END: stop
    println!(
        "done: {} jobs handled, {} worker restarts",
        handled.load(Ordering::Relaxed),
        workers.supervisor().restarts()
    );
    Ok(())
}
