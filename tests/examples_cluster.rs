//! Runs `examples/cluster.rs` in its all-in-one mode (three nodes in three processes)
//! through `cargo run`, and checks that it tells the whole story and exits by itself.

#[path = "support/run_example.rs"]
mod run_example;

#[test]
fn the_cluster_example_shares_work_survives_a_killed_node_and_exits() {
    let out = run_example::run_example("cluster", &[]);

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
