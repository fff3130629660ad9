//! Runs `examples/cluster.rs` in its all-in-one mode (three nodes in three processes)
//! through `cargo run`, and checks that it tells the whole story and exits by itself.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_cluster_example_shares_work_survives_a_killed_node_and_exits() {
    let mut child = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "cluster"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cargo runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    // Generous: the first run may wait for cargo to build the example.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the example did not finish within 120 s; it said:\n{}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().expect("stdout reader");
    assert!(status.success(), "the example failed ({status}); it said:\n{out}");

    let expected = [
        // Work done on all three nodes, each in its own process.
        "node a (pid ",
        "node b (pid ",
        "node c (pid ",
        "counted",
        "node a kills node c",
        // The monitor on node a fires with NodeLost...
        "watcher on node a: got Down for worker-c, reason: link to its node lost (StopReason::NodeLost)",
        // ...and the failure detector agrees.
        "members() went from 3 to 2",
        "summary:",
        "12 lines, 88 words in all",
        "node b exited",
        "done",
    ];
    for line in expected {
        assert!(out.contains(line), "no `{line}` in the output:\n{out}");
    }
    // The remaining lines went to the survivors only.
    let after_kill = out.split("step 5").nth(1).expect("a step 5");
    assert!(!after_kill.contains("worker-c gets"), "{out}");
    assert!(after_kill.contains("node b (pid "), "{out}");
}
