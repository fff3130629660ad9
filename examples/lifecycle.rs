//! Lifecycle of agents: hooks, children, stopping, crashes, generic agents and timers
//! you cancel. Used by the "Agents and messages" chapter of the book.
//!
//! Run it with `cargo run --example lifecycle`.

use std::time::Duration;

use troupe::prelude::*;

// ANCHOR: hooks
/// Keeps a list of jobs; starts a helper child when it starts.
#[derive(Debug, Default)]
pub struct Foreman {
    jobs: Vec<String>,
    helper: Option<ActorRef<Helper>>,
}

#[agent]
impl Foreman {
    /// Runs once, before the first message.
    #[on_start]
    fn started(&mut self, ctx: &mut Context<Self>) {
        println!("  foreman {}: started", ctx.id());
        // A child: stopped (and its on_stop run) before this agent's on_stop.
        self.helper = Some(ctx.spawn(Helper));
    }

    #[handle]
    async fn assign(&mut self, job: String) -> Result<usize, String> {
        if job.is_empty() {
            return Err("a job needs a name".into());
        }
        let helper = self.helper.as_ref().ok_or("no helper")?;
        let echoed = helper.echo(job).await.map_err(|e| e.to_string())?;
        self.jobs.push(echoed);
        Ok(self.jobs.len())
    }

    /// Stops this agent after the current message.
    #[handle]
    fn retire(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }

    /// Runs once, after the last message, whatever the reason.
    #[on_stop]
    fn stopped(&mut self, reason: &StopReason) {
        println!("  foreman: stopped ({reason}) with {} jobs", self.jobs.len());
    }
}

/// A child agent of the foreman.
#[derive(Debug)]
pub struct Helper;

#[agent]
impl Helper {
    #[handle]
    fn echo(&self, job: String) -> String {
        job
    }

    #[handle]
    fn explode(&self) {
        panic!("the helper exploded");
    }

    #[on_stop]
    fn stopped(&mut self, reason: &StopReason) {
        println!("  helper: stopped ({reason})");
    }
}
// ANCHOR_END: hooks

// ANCHOR: generic
/// A generic agent: one type, many element types.
#[derive(Debug)]
pub struct Stack<T> {
    items: Vec<T>,
}

#[agent]
impl<T: Send + 'static> Stack<T> {
    #[handle]
    fn push(&mut self, item: T) {
        self.items.push(item);
    }

    #[handle]
    fn pop(&mut self) -> Option<T> {
        self.items.pop()
    }
}
// ANCHOR_END: generic

// ANCHOR: timers
/// Sends itself a reminder, then thinks better of it.
#[derive(Debug, Default)]
pub struct Reminder {
    fired: u32,
    pending: Option<TimerHandle>,
}

#[agent]
impl Reminder {
    #[handle]
    fn remind_in(&mut self, ms: u64, ctx: &mut Context<Self>) {
        // The message is the generated enum: one variant per handler.
        self.pending = Some(ctx.send_after(Duration::from_millis(ms), ReminderMsg::Fire));
    }

    #[handle]
    fn cancel(&mut self) {
        if let Some(timer) = self.pending.take() {
            timer.cancel();
        }
    }

    #[handle]
    fn fire(&mut self) {
        self.fired += 1;
    }

    #[handle]
    fn fired(&self) -> u32 {
        self.fired
    }
}
// ANCHOR_END: timers

#[tokio::main]
async fn main() -> troupe::Result<()> {
    // Step 2 crashes an agent on purpose: keep the panic hook's output (and a backtrace
    // under RUST_BACKTRACE=1) out of the way; the crash is still reported below.
    let _quiet = troupe::quiet_agent_panics();
    let system = System::new();

    // ANCHOR: results
    println!("1. handlers may return Result: the call gives Result<Result<_, _>, CallError>");
    let foreman = system.spawn(Foreman::default());
    println!(
        "   assign(\"paint\") -> {:?}",
        foreman.assign("paint".into()).await?
    );
    println!(
        "   assign(\"\")      -> {:?}",
        foreman.assign(String::new()).await?
    );
    // ANCHOR_END: results

    // ANCHOR: crash
    println!("2. a panic is a crash of that agent only");
    let helper = system.spawn(Helper);
    let crashed = helper.explode().await;
    println!("   the caller of explode() gets {crashed:?}");
    println!("   later calls get {:?}", helper.echo("anyone?".into()).await);
    // ANCHOR_END: crash

    println!("3. generic agents");
    let stack: ActorRef<Stack<&'static str>> = system.spawn(Stack { items: Vec::new() });
    stack.push("a").await?;
    stack.push("b").await?;
    println!(
        "   pop -> {:?}, pop -> {:?}",
        stack.pop().await?,
        stack.pop().await?
    );

    println!("4. timers can be cancelled");
    let reminder = system.spawn(Reminder::default());
    reminder.remind_in(20).await?;
    reminder.cancel().await?;
    reminder.remind_in(10).await?;
    tokio::time::sleep(Duration::from_millis(60)).await;
    println!(
        "   reminders fired: {} (one was cancelled)",
        reminder.fired().await?
    );

    println!("5. an agent stops itself; its child stops first");
    foreman.retire().await?;
    foreman.stopped().await;

    system.shutdown().await;
    Ok(())
}
