//! Supervise a flaky worker: crashes, restarts that keep the reference and the mailbox,
//! backoff, escalation, and the tree as `system.tree()` prints it.
//!
//! Run it with `cargo run --example supervision`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use troupe::prelude::*;

// ANCHOR: worker
/// A worker that crashes on every third job.
#[derive(Debug)]
pub struct Flaky {
    done: u32,
    generation: u32,
}

#[agent]
impl Flaky {
    #[on_start]
    fn started(&mut self) {
        println!("   flaky: instance {} started", self.generation);
    }

    /// Does a job; the third job of an instance panics.
    #[handle]
    fn job(&mut self, n: u32) -> u32 {
        self.done += 1;
        if self.done == 3 {
            panic!("job {n} broke the worker");
        }
        n * 10
    }

    #[on_stop]
    fn stopped(&mut self, reason: &StopReason) {
        println!("   flaky: instance {} stopped ({reason})", self.generation);
    }
}

/// A steady sibling that keeps a count.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: u32,
}

#[agent]
impl Ledger {
    #[handle]
    fn record(&mut self) -> u32 {
        self.entries += 1;
        self.entries
    }
}
// ANCHOR_END: worker

#[tokio::main]
async fn main() -> troupe::Result<()> {
    // Keep the demo's output readable: the crashes below are on purpose (panics outside
    // agents would still print).
    let _quiet = troupe::quiet_agent_panics();

    // ANCHOR: tree
    let system = System::new();
    let generations = Arc::new(AtomicU32::new(0));
    let counter = generations.clone();
    let sup = Supervisor::new(Strategy::OneForOne)
        .max_restarts(3, Duration::from_secs(5))
        .backoff(Backoff::exponential(
            Duration::from_millis(10),
            Duration::from_secs(1),
        ))
        .child(ChildSpec::new("flaky", move || Flaky {
            done: 0,
            generation: counter.fetch_add(1, Ordering::SeqCst) + 1,
        }))
        .child(ChildSpec::supervisor(
            "books",
            Supervisor::new(Strategy::OneForAll).child(ChildSpec::new("ledger", Ledger::default)),
        ))
        .spawn(&system);
    let flaky: ActorRef<Flaky> = sup.child::<Flaky>("flaky")?;
    // ANCHOR_END: tree

    println!("1. the tree as it starts:\n{}", system.tree());

    // ANCHOR: crash
    println!("2. six calls queue up at once; every third job crashes the worker");
    let (r1, r2, r3, r4, r5, r6) = tokio::join!(
        flaky.job(1),
        flaky.job(2),
        flaky.job(3),
        flaky.job(4),
        flaky.job(5),
        flaky.job(6)
    );
    for (n, r) in [r1, r2, r3, r4, r5, r6].into_iter().enumerate() {
        match r {
            Ok(v) => println!("   job {} -> {v}", n + 1),
            Err(e) => println!("   job {} -> error: {e}", n + 1),
        }
    }
    // ANCHOR_END: crash
    println!(
        "   the same reference still works: job(7) -> {}",
        flaky.job(7).await?
    );
    println!("   restarts so far: {}", sup.restarts());

    println!("3. the tree after the crashes:\n{}", system.tree());

    // ANCHOR: give_up
    println!("4. keep crashing it: a 4th restart within 5 s is one too many");
    for n in 8.. {
        match flaky.job(n).await {
            Ok(_) => {}
            Err(CallError::Panicked(why)) => println!("   job {n} crashed it: {why}"),
            Err(e) => {
                println!("   job {n} -> error: {e} (the supervisor gave up)");
                break;
            }
        }
    }
    println!("   supervisor alive: {}", sup.is_alive());
    // ANCHOR_END: give_up

    system.shutdown().await;
    Ok(())
}
