//! A short tour of troupe: spawn, call, cast, timeouts, the registry and a timer.
//!
//! Run it with `cargo run --example tour`.

use std::time::Duration;

use troupe::prelude::*;

// ANCHOR: counter
/// A counter: the state is a plain struct.
#[agent(mailbox = 64)]
#[derive(Debug, Default)]
pub struct Counter {
    count: u64,
}

#[agent]
impl Counter {
    /// Adds `n` to the count.
    #[handle]
    fn add(&mut self, n: u64) {
        self.count += n;
    }

    /// The current count.
    #[handle]
    fn get(&self) -> u64 {
        self.count
    }

    /// Answers after `ms` milliseconds; the agent handles nothing else meanwhile.
    #[handle]
    async fn slow_get(&mut self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.count
    }
}
// ANCHOR_END: counter

// ANCHOR: clock
/// Counts its own ticks, sent by a periodic timer, and reports them to a counter.
#[derive(Debug)]
pub struct Clock {
    ticks: u32,
    sink: ActorRef<Counter>,
}

#[agent]
impl Clock {
    #[on_start]
    fn start(&mut self, ctx: &mut Context<Self>) {
        ctx.interval(Duration::from_millis(100), || ClockMsg::Tick);
    }

    #[handle]
    async fn tick(&mut self) {
        self.ticks += 1;
        println!("  clock: tick {}", self.ticks);
        // An agent talks to another agent exactly as any other code does.
        let _ = self.sink.add(1).cast().await;
    }

    #[handle]
    fn ticks(&self) -> u32 {
        self.ticks
    }

    #[on_stop]
    fn stop(&mut self, reason: &StopReason) {
        println!("  clock: stopping after {} ticks ({reason})", self.ticks);
    }
}
// ANCHOR_END: clock

#[tokio::main]
async fn main() -> troupe::Result<()> {
    // ANCHOR: main
    let system = System::new();

    println!("1. spawn a counter and call it");
    let counter: ActorRef<Counter> = system.spawn(Counter::default());
    counter.add(3).await?; // call: returns once the handler ran
    println!("   count after add(3): {}", counter.get().await?);

    println!("2. cast: enqueue without waiting for the handler");
    for _ in 0..10 {
        counter.add(1).cast().await?;
    }
    println!("   count after ten casts: {}", counter.get().await?);

    println!("3. a call with a timeout");
    match counter.slow_get(500).timeout(Duration::from_millis(50)).await {
        Err(CallError::Timeout) => println!("   slow_get(500) did not answer within 50 ms: timeout"),
        other => println!("   unexpected: {other:?}"),
    }

    println!("4. the registry: find agents by name, typed");
    system.register("counter", &counter)?;
    let found = system
        .lookup::<Counter>("counter")
        .expect("registered just above");
    println!("   lookup(\"counter\") is the same agent: {}", found == counter);

    println!("5. a timer: a clock agent ticks every 100 ms and feeds the counter");
    let before = counter.get().await?;
    let clock = system.spawn(Clock {
        ticks: 0,
        sink: counter.clone(),
    });
    tokio::time::sleep(Duration::from_millis(350)).await;
    let ticks = clock.ticks().await?;
    println!(
        "   {ticks} ticks so far; the counter went from {before} to {}",
        counter.get().await?
    );

    println!("6. shut down: every agent stops and runs its on_stop hook");
    system.shutdown().await;
    println!(
        "   calls to a stopped agent fail cleanly: {:?}",
        counter.get().await
    );
    // ANCHOR_END: main
    Ok(())
}
