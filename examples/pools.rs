//! A planner hands jobs to a supervised pool of workers, tools sit in a group, and a
//! reporter watches the pool's crashes and prints a heartbeat.
//!
//! Run it with `cargo run --example pools`.

use std::time::Duration;

use troupe::prelude::*;

// ANCHOR: worker
/// Runs jobs; a job named "bad" crashes it (the pool restarts it).
#[derive(Debug, Default)]
pub struct Worker {
    done: u32,
}

#[agent]
impl Worker {
    #[handle]
    async fn run(&mut self, job: String) -> String {
        if job == "bad" {
            panic!("cannot run {job}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.done += 1;
        format!("{job}: done")
    }
}
// ANCHOR_END: worker

// ANCHOR: planner
/// Plans batches of jobs on a pool, and stays free to take the next batch meanwhile.
#[derive(Debug)]
pub struct Planner {
    workers: Pool<Worker>,
}

#[agent]
impl Planner {
    #[handle]
    fn plan(&mut self, jobs: Vec<String>, reply: Reply<Vec<Result<String, CallError>>>) {
        // Each request owns its target: spawn them all, then answer when all are back.
        let running: Vec<_> = jobs
            .into_iter()
            .map(|job| tokio::spawn(self.workers.run(job)))
            .collect();
        tokio::spawn(async move {
            let mut results = Vec::new();
            for r in running {
                results.push(r.await.unwrap_or(Err(CallError::Stopped)));
            }
            reply.send(results);
        });
    }
}
// ANCHOR_END: planner

// ANCHOR: tools
/// A tool the planner's users can discover through the "tools" group.
#[derive(Debug)]
pub struct Tool {
    name: &'static str,
    reloads: u32,
}

#[agent]
impl Tool {
    #[handle]
    fn describe(&self) -> String {
        format!("{} (reloaded {} times)", self.name, self.reloads)
    }

    #[handle]
    fn reload(&mut self) {
        self.reloads += 1;
    }
}
// ANCHOR_END: tools

// ANCHOR: reporter
/// Counts crashes reported by the pool's supervisor; prints a heartbeat on a timer.
#[derive(Debug, Default)]
pub struct Reporter {
    crashes: u32,
}

#[agent]
impl Reporter {
    #[on_start]
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.interval(Duration::from_millis(40), || ReporterMsg::Beat);
    }

    #[handle]
    fn event(&mut self, event: SupervisionEvent) {
        if let EventKind::Crashed(reason) = &event.kind {
            self.crashes += 1;
            println!("   reporter: {} crashed ({reason})", event.child);
        }
    }

    #[handle]
    fn beat(&self) {
        println!("   reporter: heartbeat, {} crash(es) so far", self.crashes);
    }

    #[handle]
    fn crashes(&self) -> u32 {
        self.crashes
    }
}
// ANCHOR_END: reporter

#[tokio::main]
async fn main() -> troupe::Result<()> {
    let _quiet = troupe::quiet_agent_panics(); // the "bad" job crashes on purpose
                                               // ANCHOR: main
    let system = System::new();
    let workers = Pool::builder(Worker::default)
        .size(3)
        .routing(Routing::LeastLoaded)
        .name("workers")
        .spawn(&system);

    // Crash reporting: forward the pool's supervision events to an agent.
    let reporter = system.spawn(Reporter::default());
    let mut events = workers.supervisor().events();
    let sink = reporter.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if sink.event(event).cast().await.is_err() {
                break;
            }
        }
    });

    println!("1. the planner spreads a batch over the pool; one job crashes its worker");
    let planner = system.spawn(Planner {
        workers: workers.clone(),
    });
    let jobs = ["parse", "bad", "index", "render"].map(String::from).to_vec();
    for result in planner.plan(jobs).await? {
        println!("   {result:?}");
    }
    println!("   the pool still has {} workers", workers.size());

    println!("2. the pool grows at run time");
    workers.set_size(5).await?;
    let again = planner.plan(vec!["summarise".into(); 5]).await?;
    println!("   {} jobs done by {} workers", again.len(), workers.size());

    println!("3. tools join a group; the planner finds them and broadcasts a reload");
    for name in ["search", "calculator"] {
        let tool = system.spawn(Tool { name, reloads: 0 });
        system.join("tools", &tool)?;
    }
    let sent = system.broadcast::<Tool, _, _>("tools", |t| t.reload());
    println!("   reload delivered to {} tools", sent.delivered);
    for tool in system.members::<Tool>("tools") {
        println!("   {}", tool.describe().await?);
    }

    tokio::time::sleep(Duration::from_millis(50)).await;
    println!("   crashes reported: {}", reporter.crashes().await?);
    println!("{}", system.tree());
    system.shutdown().await;
    // ANCHOR_END: main
    Ok(())
}
