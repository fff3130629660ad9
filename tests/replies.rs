//! Replies later: a handler takes the reply slot (`Reply<T>`) and answers from another
//! task or another message, while the agent goes on; a lost reply fails the call.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::timeout;
use troupe::prelude::*;

/// Plans slowly in the background and keeps some replies for later.
#[derive(Default)]
pub struct Planner {
    parked: Vec<Reply<u64>>,
    gate: Arc<Notify>,
    cast_answer: Option<bool>,
}

#[agent]
impl Planner {
    /// Answers from a spawned task once the gate opens.
    #[handle]
    fn plan(&mut self, task: String, reply: Reply<String>) {
        let gate = self.gate.clone();
        tokio::spawn(async move {
            gate.notified().await;
            reply.send(format!("plan for {task}"));
        });
    }

    /// Keeps the reply: answered by a later `release`.
    #[handle]
    fn wait_for_release(&mut self, reply: Reply<u64>) {
        self.parked.push(reply);
    }

    #[handle]
    fn release(&mut self, value: u64) -> usize {
        let n = self.parked.len();
        for r in self.parked.drain(..) {
            r.send(value);
        }
        n
    }

    #[handle]
    fn forget(&mut self, reply: Reply<u64>) {
        drop(reply);
    }

    #[handle]
    fn explode(&mut self, _reply: Reply<u64>) {
        panic!("planner exploded");
    }

    #[handle]
    async fn answer_async(&mut self, n: u64, reply: Reply<u64>, ctx: &mut Context<Self>) {
        tokio::task::yield_now().await;
        let _ = ctx.id();
        reply.send(n * 2);
    }

    #[handle]
    fn note_cast(&mut self, reply: Reply<u64>) {
        self.cast_answer = Some(reply.send(1));
    }

    #[handle]
    fn cast_answer(&self) -> Option<bool> {
        self.cast_answer
    }

    #[handle]
    fn fail_it(&mut self, reply: Reply<u64>) {
        reply.fail(CallError::Stopped);
    }

    #[handle]
    fn ping(&self) -> &'static str {
        "pong"
    }
}

async fn within<T>(what: &str, f: impl std::future::IntoFuture<Output = T>) -> T {
    match timeout(Duration::from_secs(10), f.into_future()).await {
        Ok(v) => v,
        Err(_) => panic!("{what} hung"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_from_another_task_leaves_the_agent_free() {
    let system = System::new();
    let planner = Planner::default();
    let gate = planner.gate.clone();
    let planner = system.spawn(planner);
    let pending = tokio::spawn({
        let planner = planner.clone();
        async move { planner.plan("dinner".into()).await }
    });
    // The agent answers other calls while the plan is in progress.
    for _ in 0..3 {
        assert_eq!(within("ping", planner.ping()).await, Ok("pong"));
    }
    assert!(!pending.is_finished());
    gate.notify_one();
    assert_eq!(
        within("plan", pending).await.unwrap(),
        Ok("plan for dinner".to_string())
    );
    within("shutdown", system.shutdown()).await;
}

#[tokio::test]
async fn a_reply_kept_in_state_is_answered_by_a_later_message() {
    let system = System::new();
    let planner = system.spawn(Planner::default());
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let planner = planner.clone();
            tokio::spawn(async move { planner.wait_for_release().await })
        })
        .collect();
    // Let the three calls reach the agent before releasing them.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(planner.release(42).await, Ok(3));
    for w in waiters {
        assert_eq!(within("waiter", w).await.unwrap(), Ok(42));
    }
    within("shutdown", system.shutdown()).await;
}

#[tokio::test]
async fn a_dropped_reply_fails_the_call_instead_of_hanging() {
    let system = System::new();
    let planner = system.spawn(Planner::default());
    assert_eq!(within("forget", planner.forget()).await, Err(CallError::NoReply));
    assert_eq!(within("fail", planner.fail_it()).await, Err(CallError::Stopped));
    assert_eq!(planner.ping().await, Ok("pong"));
    within("shutdown", system.shutdown()).await;
}

#[tokio::test]
async fn a_panic_with_the_reply_taken_fails_the_call_as_panicked() {
    let system = System::new();
    let planner = system.spawn(Planner::default());
    let r = within("explode", planner.explode()).await;
    assert!(matches!(r, Err(CallError::Panicked(_))), "{r:?}");
    within("stopped", planner.stopped()).await;
    within("shutdown", system.shutdown()).await;
}

#[tokio::test]
async fn async_handlers_and_casts_work_with_a_reply_slot() {
    let system = System::new();
    let planner = system.spawn(Planner::default());
    assert_eq!(within("async", planner.answer_async(21)).await, Ok(42));
    // Cast: nobody waits, sending does nothing and says so.
    planner.note_cast().cast().await.unwrap();
    assert_eq!(planner.cast_answer().await, Ok(Some(false)));
    within("shutdown", system.shutdown()).await;
}

#[tokio::test]
async fn a_reply_after_the_caller_timed_out_reports_nobody_waits() {
    let system = System::new();
    let planner = system.spawn(Planner::default());
    let r = planner
        .wait_for_release()
        .timeout(Duration::from_millis(10))
        .await;
    assert_eq!(r, Err(CallError::Timeout));
    assert_eq!(planner.release(1).await, Ok(1));
    within("shutdown", system.shutdown()).await;
}
