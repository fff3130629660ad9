//! Runs `examples/portal.rs` and `examples/relay.rs` through `cargo run`: a plain TCP
//! client reaches a service through an inlet and an outlet, a node is reached by name
//! through a relay, and strangers are denied.

#[path = "support/run_example.rs"]
mod run_example;

#[test]
fn the_portal_example_carries_a_tcp_service_and_denies_a_stranger() {
    let out = run_example::run_example("portal", &[]);
    let expected = [
        "-> OK",
        "GET greeting                             -> hello-through-a-portal",
        "GET nothing                              -> (none)",
        "stranger: connect to \"kv\" -> denied by the outlet's policy",
        "done",
    ];
    for line in expected {
        assert!(out.contains(line), "no `{line}` in the output:\n{out}");
    }
}

#[test]
fn the_relay_example_reaches_a_node_by_name_and_the_relay_is_not_the_caller() {
    let out = run_example::run_example("relay", &[]);
    let expected = [
        "edge:   registered at the relay as \"sensor-hall-3\"",
        "client: mean of 3 readings through the relay = Some(21.3",
        "(the client: true; the relay: false)",
        "stranger: denied by the other node's access policy",
        "done",
    ];
    for line in expected {
        assert!(out.contains(line), "no `{line}` in the output:\n{out}");
    }
}
