//! Requests own their target: they can be spawned, collected, joined and kept past the
//! reference they came from.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use std::time::Duration;

use tokio::task::JoinSet;
use troupe::prelude::*;

#[derive(Default)]
pub struct Doubler;

#[agent]
impl Doubler {
    #[handle]
    fn double(&self, n: u64) -> u64 {
        n * 2
    }

    #[handle]
    async fn slow_double(&self, n: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        n * 2
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_can_be_spawned() {
    let system = System::new();
    let worker = system.spawn(Doubler);
    let handle = tokio::spawn(worker.double(21));
    assert_eq!(handle.await.unwrap(), Ok(42));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_can_be_collected_and_joined() {
    let system = System::new();
    let workers: Vec<ActorRef<Doubler>> = (0..4).map(|_| system.spawn(Doubler)).collect();
    let calls: Vec<_> = workers.iter().map(|w| w.slow_double(3)).collect();
    let results = futures::future::join_all(calls).await;
    assert_eq!(results, vec![Ok(6); 4]);

    let mut set = JoinSet::new();
    for (i, w) in workers.iter().enumerate() {
        set.spawn(w.slow_double(i as u64));
    }
    let mut got: Vec<u64> = set.join_all().await.into_iter().map(Result::unwrap).collect();
    got.sort_unstable();
    assert_eq!(got, vec![0, 2, 4, 6]);
    system.shutdown().await;
}

#[tokio::test]
async fn a_request_outlives_the_reference_it_came_from() {
    let system = System::new();
    system.register("doubler", &system.spawn(Doubler)).unwrap();
    // The reference is a temporary; the request keeps the agent's reference itself.
    let request = system.lookup::<Doubler>("doubler").unwrap().double(4);
    let pending = request.timeout(Duration::from_secs(1));
    assert_eq!(pending.await, Ok(8));
    let cast = system.lookup::<Doubler>("doubler").unwrap().double(1);
    assert!(cast.try_cast().is_ok());
    system.shutdown().await;
}
