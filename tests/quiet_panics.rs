//! `quiet_agent_panics` silences the panic hook for agent crashes only, and only while
//! its guard lives. (Its own test binary: panic hooks are global to the process.)
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use troupe::prelude::*;

#[derive(Default)]
pub struct Fragile;

#[agent]
impl Fragile {
    #[handle]
    fn crash(&self) {
        panic!("fragile crashed on purpose");
    }
}

#[tokio::test]
async fn agent_panics_are_quiet_while_the_guard_lives_and_other_panics_are_not() {
    let printed = Arc::new(AtomicUsize::new(0));
    let counter = printed.clone();
    // Stands in for the default hook: counts what would have been printed.
    std::panic::set_hook(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    let system = System::new();

    let guard = troupe::quiet_agent_panics();
    let r = system.spawn(Fragile).crash().await;
    assert!(matches!(r, Err(CallError::Panicked(m)) if m == "fragile crashed on purpose"));
    assert_eq!(printed.load(Ordering::SeqCst), 0, "an agent crash stays quiet");

    // A panic outside any agent still reaches the hook.
    let outside = tokio::spawn(async { panic!("a real bug") }).await;
    assert!(outside.is_err());
    assert_eq!(printed.load(Ordering::SeqCst), 1);

    drop(guard);
    let _ = system.spawn(Fragile).crash().await;
    assert_eq!(
        printed.load(Ordering::SeqCst),
        2,
        "without the guard, agent panics print"
    );
    system.shutdown().await;
}
