//! Links and monitors: learn that another agent stopped or crashed.
//!
//! Run it with `cargo run --example monitors`.

use troupe::prelude::*;

// ANCHOR: watchdog
/// Watches other agents and counts how often one went down.
#[derive(Debug, Default)]
pub struct Watchdog {
    downs: u32,
}

#[agent]
impl Watchdog {
    /// Monitor `other`: one `Down` notice when it stops for good.
    #[handle]
    fn watch(&mut self, other: ActorRef<Fragile>, ctx: &mut Context<Self>) {
        ctx.monitor(&other);
    }

    /// Link to `other`, trapping exits: its crash becomes a notice, not our crash.
    #[handle]
    fn guard(&mut self, other: ActorRef<Fragile>, ctx: &mut Context<Self>) {
        ctx.trap_exits(true);
        ctx.link(&other);
    }

    #[handle]
    fn downs(&self) -> u32 {
        self.downs
    }

    #[on_down]
    fn down(&mut self, down: Down) {
        let how = if down.linked { "linked" } else { "monitored" };
        println!("   watchdog: {how} agent {} is down ({})", down.id, down.reason);
        self.downs += 1;
    }
}

/// Crashes on demand.
#[derive(Debug, Default)]
pub struct Fragile;

#[agent]
impl Fragile {
    #[handle]
    fn break_now(&self) {
        panic!("broken on purpose");
    }
}
// ANCHOR_END: watchdog

#[tokio::main]
async fn main() -> troupe::Result<()> {
    let _quiet = troupe::quiet_agent_panics(); // the crash below is on purpose
                                               // ANCHOR: main
    let system = System::new();
    let dog = system.spawn(Watchdog::default());

    println!("1. monitor an agent that then stops normally");
    let a = system.spawn(Fragile);
    dog.watch(a.clone()).await?;
    a.stop_gracefully();
    // Once `stopped()` resolves, the notice is in the watchdog's mailbox, and notices
    // are handled before the messages queued after them: `downs()` sees it.
    a.stopped().await;
    println!("   notices so far: {}", dog.downs().await?);

    println!("2. link to an agent that crashes, trapping exits");
    let b = system.spawn(Fragile);
    dog.guard(b.clone()).await?;
    let _ = b.break_now().await;
    b.stopped().await;
    println!("   notices so far: {}", dog.downs().await?);

    println!("3. monitor an agent that is already gone: the notice comes at once");
    dog.watch(a.clone()).await?;
    println!("   notices so far: {}", dog.downs().await?);
    system.shutdown().await;
    // ANCHOR_END: main
    Ok(())
}
