//! The `main` of a test file whose nodes run as separate processes (`harness = false`):
//! the file runs its tests, or, started again by one of them as a child node, the child.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// One test: a name and what it runs.
pub type Test = (&'static str, fn() -> Pin<Box<dyn Future<Output = ()>>>);

/// Runs `child` when the environment variable `child_var` is set (the process is a
/// child node); otherwise runs `tests` in order, those whose name contains a filter
/// given on the command line, each within `limit`, prints libtest-like lines, and exits
/// with 1 when one failed.
pub fn run(child_var: &str, child: impl Future<Output = ()>, tests: &[Test], limit: Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var_os(child_var).is_some() {
        runtime.block_on(child);
        return;
    }
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut failed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("test {name} ...");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async { tokio::time::timeout(limit, test()).await })
        }));
        match outcome {
            Ok(Ok(())) => println!("test {name} ... ok"),
            Ok(Err(_)) => {
                println!("test {name} ... FAILED (timed out)");
                failed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!(
        "test result: {}. {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
