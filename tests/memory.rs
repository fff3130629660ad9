//! Hibernated agents give their memory back to the operating system, not only to the
//! allocator (`System::return_memory`, on by default). A test binary of its own: the
//! resident memory of the process is what it measures.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::time::{Duration, Instant};

use troupe::prelude::*;

/// Counts its messages.
#[derive(Debug, Default)]
pub struct Counter {
    n: u64,
}

#[agent]
impl Counter {
    #[handle]
    fn bump(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

/// The process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_that_hibernate_give_their_tasks_memory_back_to_the_system() {
    const AGENTS: usize = 50_000;
    // Turned off, a system never trims (first, so that it does not disturb the
    // measurement below).
    let quiet = System::new();
    quiet.return_memory(false);
    quiet.hibernate_after(Some(Duration::from_millis(20)));
    let few: Vec<ActorRef<Counter>> = (0..2_000).map(|_| quiet.spawn(Counter::default())).collect();
    futures::future::join_all(few.iter().map(|a| a.bump())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(quiet.stats().memory_returned, 0);
    quiet.shutdown().await;

    let system = System::new();
    system.hibernate_after(Some(Duration::from_millis(100)));
    let agents: Vec<ActorRef<Counter>> = (0..AGENTS).map(|_| system.spawn(Counter::default())).collect();
    let spawned = rss();
    // Every agent handles a message at once: 50,000 tasks are alive together.
    let replies = futures::future::join_all(agents.iter().map(|a| a.bump())).await;
    assert!(replies.into_iter().all(|r| r == Ok(1)));
    let worked = rss();
    let grown = worked.saturating_sub(spawned);
    assert!(
        grown > 10 * 1024 * 1024,
        "the tasks took {grown} bytes: too little to tell"
    );
    // They all hibernate (after 100 ms idle), and a sweep after that gives the memory
    // back.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut kept = grown;
    while kept >= grown / 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        kept = rss().saturating_sub(spawned);
    }
    assert!(
        kept < grown / 2,
        "after hibernation the process still holds {kept} of the {grown} bytes the tasks took"
    );
    assert!(system.stats().memory_returned >= 1);
    // They still answer, each with its own state.
    assert_eq!(agents[0].bump().await, Ok(2));
    assert_eq!(agents[AGENTS - 1].bump().await, Ok(2));
    system.shutdown().await;
}
