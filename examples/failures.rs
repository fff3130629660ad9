//! When things go wrong: a stuck handler and the shutdown deadline, kill, an agent
//! calling itself, a cycle of calls, and seeing crashes through `tracing`.
//!
//! Run it with `cargo run --example failures`.

use std::time::Duration;

use troupe::prelude::*;

// ANCHOR: stuck
/// Its `fetch` waits on a reply that never comes (a hung connection, say).
#[derive(Debug, Default)]
pub struct Fetcher;

#[agent]
impl Fetcher {
    #[handle]
    async fn fetch(&mut self, url: String) -> String {
        std::future::pending::<()>().await; // hangs forever
        url
    }

    #[handle]
    fn ping(&self) -> &'static str {
        "pong"
    }
}
// ANCHOR_END: stuck

// ANCHOR: self_call
/// Calls itself from a handler: the call fails at once instead of waiting forever.
#[derive(Debug, Default)]
pub struct Narcissus {
    count: u32,
}

#[agent]
impl Narcissus {
    #[handle]
    async fn ask_myself(&mut self, ctx: &mut Context<Self>) -> Result<u32, CallError> {
        ctx.myself().count().await
    }

    #[handle]
    fn count(&self) -> u32 {
        self.count
    }
}
// ANCHOR_END: self_call

// ANCHOR: cycle
/// Two of these call each other: a cycle only a timeout can break.
#[derive(Debug, Default)]
pub struct Peer {
    other: Option<ActorRef<Peer>>,
}

#[agent]
impl Peer {
    #[handle]
    fn pair(&mut self, other: ActorRef<Peer>) {
        self.other = Some(other);
    }

    /// Asks the other peer, which asks us back: we wait for it, it waits for us.
    #[handle]
    async fn ask_other(&mut self) -> Result<u32, CallError> {
        match &self.other {
            Some(other) => other.ask_back().timeout(Duration::from_millis(100)).await,
            None => Ok(0),
        }
    }

    #[handle]
    async fn ask_back(&mut self) -> u32 {
        match &self.other {
            // Our own call has a timeout too, so this peer is free again soon after.
            Some(other) => match other.ask_other().timeout(Duration::from_millis(50)).await {
                Ok(_) => 1,
                Err(_) => 0,
            },
            None => 0,
        }
    }
}
// ANCHOR_END: cycle

/// Crashes on demand.
#[derive(Debug, Default)]
pub struct Fragile;

#[agent]
impl Fragile {
    #[handle]
    fn crash(&self) {
        panic!("fragile crashed on purpose");
    }
}

#[tokio::main]
async fn main() -> troupe::Result<()> {
    // ANCHOR: tracing
    // Crashes are `tracing` error events: install a subscriber to see them. The panic
    // hook's own output is noise for crashes you expect; keep it quiet for agents only.
    tracing_subscriber::fmt().with_target(false).without_time().init();
    let _quiet = troupe::quiet_agent_panics();
    // ANCHOR_END: tracing

    // ANCHOR: kill
    let system = System::new();
    println!("1. a handler hangs; kill ends the agent wherever it waits");
    let fetcher = system.spawn(Fetcher);
    let hung = tokio::spawn(fetcher.fetch("https://example.invalid".into()));
    tokio::time::sleep(Duration::from_millis(10)).await; // the fetch is under way
    let asked = fetcher.ping().timeout(Duration::from_millis(50)).await;
    println!("   a call behind the hung one: {asked:?}");
    fetcher.kill();
    fetcher.stopped().await;
    println!(
        "   the hung call: {:?}",
        hung.await.unwrap_or(Err(CallError::Stopped))
    );
    // ANCHOR_END: kill

    // ANCHOR: self_call_main
    println!("2. an agent that calls itself gets an error at once");
    let narcissus = system.spawn(Narcissus::default());
    println!("   {:?}", narcissus.ask_myself().await?);
    // ANCHOR_END: self_call_main

    // ANCHOR: cycle_main
    println!("3. two agents calling each other: the timeouts break the cycle");
    let (a, b) = (system.spawn(Peer::default()), system.spawn(Peer::default()));
    a.pair(b.clone()).await?;
    b.pair(a.clone()).await?;
    println!("   {:?}", a.ask_other().await?);
    // ANCHOR_END: cycle_main

    println!("4. a crash is logged through tracing (the panic hook stays quiet)");
    let fragile = system.spawn(Fragile);
    let _ = fragile.crash().await;
    fragile.stopped().await; // (the crash is logged before it is gone)

    // ANCHOR: deadline
    println!("5. shutdown with a stuck agent: it is killed at the deadline");
    let stuck = system.spawn(Fetcher);
    stuck.fetch("https://example.invalid".into()).cast().await?;
    tokio::time::sleep(Duration::from_millis(10)).await; // the fetch is under way
    let started = tokio::time::Instant::now();
    system.shutdown_timeout(Duration::from_millis(200)).await;
    println!(
        "   shutdown took {} ms",
        started.elapsed().as_millis() / 100 * 100
    );
    // ANCHOR_END: deadline
    Ok(())
}
